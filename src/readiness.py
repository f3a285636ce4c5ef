"""What the data supports, told before a long job starts: counts, label windows and a verdict per model.

:func:`assess` measures clean tables as of a date (point in time: only rows with ``ts < as_of + 1 day``)
and says, model by model, whether it can be fitted, with the rule in words. Real data are often
transactions only, with short histories and small cohorts; this names what is missing and what data
would fix it, instead of a run failing an hour in.

The thresholds follow the code that fits the models: BG/NBD and Gamma-Gamma are
:class:`churnclv.models.btyd.BTYDModel` (Fader, Hardie and Lee 2005, Marketing Science 24(2) and JMR
42(4)); labelled cutoffs and backtest folds follow the training pipeline's layout (monthly cutoffs
``as_of - H - 30k`` with ``min_history_days`` of data before each; a fold evaluates at ``as_of - H`` and
trains at ``as_of - 2H`` or earlier).
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import asdict, dataclass
from typing import Any

import ibis
import ibis.expr.types as ir

from churnclv.features import FeatureConfig, Source, as_of_date, connect, load_tables
from churnclv.features.definitions import FeatureTables, known_customers
from churnclv.models.btyd import BTYDModel

__all__ = ["ModelReadiness", "Readiness", "assess"]

log = logging.getLogger(__name__)

_DAY = dt.timedelta(days=1)
# the training pipeline's cutoff step (TrainConfig.cutoff_step_days); src/ may not import training/
CUTOFF_STEP_DAYS = 30
# without a backtest at the horizon, training chooses its models on the longest shorter horizon a
# backtest fits, when it is at least this long (shorter windows say little about a longer horizon)
MIN_BACKTEST_HORIZON_DAYS = 14
# below this many repeat buyers BG/NBD's parameters are poorly identified (a warning, not a refusal)
BGNBD_WARN_REPEAT_BUYERS = 10
# LightGBM with min_data_in_leaf 50 and a held-out part for early stopping needs a few hundred rows
GBM_MIN_CUSTOMERS = 100


@dataclass(frozen=True)
class ModelReadiness:
    """One model's verdict: ``ok`` when it can be fitted as configured, ``rule`` in words, ``detail``
    with this data's numbers."""

    name: str
    ok: bool
    rule: str
    detail: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Readiness:
    """What clean tables support as of a date (see :func:`assess`).

    Attributes
    ----------
    as_of, horizon_days, min_history_days
        The question asked; ``as_of`` is None only when the data hold no transaction line at all.
    customers_known
        Distinct customers with a transaction line or a signup on or before as-of.
    customers_with_purchase
        Customers with a purchase day (a line with ``amount > 0``) on or before as-of.
    repeat_buyers, repeat_buyers_positive_spend
        Customers with purchases on two or more days; of those, the ones whose mean net spend of the
        repeat purchase days is positive (Gamma-Gamma's population).
    first_transaction, last_transaction, first_purchase
        Dates of the first and last transaction line and of the first purchase (None without one).
    history_days
        ``as_of - first_transaction`` in days (0 without transactions).
    has_events, has_customers, has_signup_ts
        An events table with a row on or before as-of; a customers table; a signup on or before as-of.
    labelled_cutoffs
        Monthly cutoffs ``c = as_of - H - 30k`` with ``c >= first_transaction + min_history_days``:
        the cutoffs whose label window ``(c, c + H]`` has closed by as-of.
    latest_labelled_cutoff, customers_at_latest_cutoff, churners_at_latest_cutoff
        The latest of them (None when there is none); its customers with a purchase on or before it,
        and how many of those made no purchase in its label window.
    backtest_fits, max_backtest_horizon_days
        Whether one backtest fold fits at ``horizon_days`` (history >= min_history_days + 2 H), and
        the longest horizon one would fit at (None when even 1 day does not).
    models
        One :class:`ModelReadiness` per model: ``btyd``, ``gamma_gamma``, ``gbm``, ``hybrid``,
        ``backtest``.
    errors
        Why nothing can be fitted at all (empty when something can).
    warnings
        What is missing or thin, and what data would fix it.
    """

    as_of: dt.date | None
    horizon_days: int
    min_history_days: int
    customers_known: int
    customers_with_purchase: int
    repeat_buyers: int
    repeat_buyers_positive_spend: int
    first_transaction: dt.date | None
    last_transaction: dt.date | None
    first_purchase: dt.date | None
    history_days: int
    has_events: bool
    has_customers: bool
    has_signup_ts: bool
    labelled_cutoffs: int
    latest_labelled_cutoff: dt.date | None
    customers_at_latest_cutoff: int
    churners_at_latest_cutoff: int
    backtest_fits: bool
    max_backtest_horizon_days: int | None
    models: tuple[ModelReadiness, ...]
    errors: tuple[str, ...]
    warnings: tuple[str, ...]

    @property
    def ok(self) -> bool:
        """True when at least something can be fitted (no errors)."""
        return not self.errors

    def model(self, name: str) -> ModelReadiness:
        """The verdict of the model ``name``."""
        for m in self.models:
            if m.name == name:
                return m
        raise KeyError(f"no model {name!r} in the readiness report; choose from {[m.name for m in self.models]}")

    def to_dict(self) -> dict[str, Any]:
        """JSON-able: dates as ISO strings, lists for the sequences."""
        out: dict[str, Any] = {}
        for key, value in asdict(self).items():
            if isinstance(value, dt.date):
                value = value.isoformat()
            elif isinstance(value, tuple):
                value = list(value)
            out[key] = value
        return out

    def format(self) -> str:
        """A short human-readable summary: a few lines, then one line per model."""
        day = "-" if self.as_of is None else self.as_of.isoformat()
        lines = [f"readiness as of {day}, horizon {self.horizon_days} days"]
        lines.append(
            f"  customers: {self.customers_known:,} known, {self.customers_with_purchase:,} with a purchase, "
            f"{self.repeat_buyers:,} repeat buyers ({self.repeat_buyers_positive_spend:,} with positive spend)"
        )
        span = (
            "no transactions"
            if self.first_transaction is None
            else f"{self.first_transaction} to {self.last_transaction} ({self.history_days:,} days)"
        )
        yes = {True: "yes", False: "no"}
        lines.append(
            f"  history: {span}; events: {yes[self.has_events]}, customers table: "
            f"{yes[self.has_customers]}, signup_ts: {yes[self.has_signup_ts]}"
        )
        cutoff = (
            ""
            if self.latest_labelled_cutoff is None
            else f" (latest {self.latest_labelled_cutoff}, {self.customers_at_latest_cutoff:,} customers "
            "with a purchase)"
        )
        longest = "none" if self.max_backtest_horizon_days is None else f"up to {self.max_backtest_horizon_days} days"
        lines.append(
            f"  labelled cutoffs: {self.labelled_cutoffs}{cutoff}; backtest: "
            f"{yes[self.backtest_fits]} (horizons that fit: {longest})"
        )
        width = max(len(m.name) for m in self.models)
        for m in self.models:
            lines.append(f"  {'ok' if m.ok else 'not ok':<6}  {m.name:<{width}}  {m.detail}")
        if self.errors:
            lines.append("NOTHING CAN BE FITTED:")
            lines += [f"  error: {e}" for e in self.errors]
        lines += [f"  warning: {w}" for w in self.warnings]
        return "\n".join(lines)


def _one(con: ibis.BaseBackend, expr: ir.Table) -> dict[str, Any]:
    return con.to_pyarrow(expr).to_pylist()[0]


def _date_lit(day: dt.date) -> ir.DateScalar:
    return ibis.literal(day, type="date")


def _latest_cutoff(first: dt.date | None, day: dt.date, horizon: int, min_history: int) -> tuple[int, dt.date | None]:
    """How many monthly cutoffs have a closed label window and enough history, and the latest."""
    if first is None:
        return 0, None
    latest = day - horizon * _DAY
    earliest = first + min_history * _DAY
    if latest < earliest:
        return 0, None
    return (latest - earliest).days // CUTOFF_STEP_DAYS + 1, latest


def _measure(
    con: ibis.BaseBackend, tables: FeatureTables, day: dt.date, horizon: int, min_history: int, config: FeatureConfig
) -> dict[str, Any]:
    end = ibis.literal(dt.datetime.combine(day + _DAY, dt.time()), type="timestamp")
    tx = tables.transactions
    tx = tx.filter(tx.ts < end)
    lines = _one(con, tx.aggregate(first=tx.ts.min(), last=tx.ts.max()))
    first = None if lines["first"] is None else lines["first"].date()
    last = None if lines["last"] is None else lines["last"].date()
    n_cutoffs, cutoff = _latest_cutoff(first, day, horizon, min_history)
    c = cutoff or day  # a stand-in when no cutoff fits: its counts are then not reported

    # purchase days as the feature engine defines them: a day with a line with amount > 0; its net
    # spend includes that day's returns; the repeat purchase days are every one after the first
    daily = tx.group_by(customer_id=tx.customer_id, day=tx.ts.date()).aggregate(
        net=tx.amount.sum(), top=tx.amount.max()
    )
    bought = daily.filter(daily.top >= 0 if config.zero_amount_is_purchase else daily.top > 0)
    order = ibis.window(group_by=bought.customer_id, order_by=bought.day)
    bought = bought.mutate(nth=ibis.row_number().over(order))
    per_customer = bought.group_by("customer_id").aggregate(
        first_p=bought.day.min(),
        n_days=bought.count(),
        mv=bought.net.mean(where=bought.nth > 0),
        in_window=bought.count(where=(bought.day > _date_lit(c)) & (bought.day <= _date_lit(c + horizon * _DAY))),
    )
    p = per_customer
    repeat = p.n_days >= 2
    at_c = p.first_p <= _date_lit(c)
    counts = _one(
        con,
        p.aggregate(
            purchasers=p.count(),
            repeat=p.count(where=repeat),
            repeat_pos=p.count(where=repeat & (p.mv > 0)),
            first_p=p.first_p.min(),
            at_c=p.count(where=at_c),
            churn_c=p.count(where=at_c & (p.in_window == 0)),
        ),
    )
    known = int(con.to_pyarrow(known_customers(tables, day).count()).as_py())

    has_events = False
    if tables.events is not None:
        ev = tables.events
        has_events = int(con.to_pyarrow(ev.filter(ev.ts < end).count()).as_py()) > 0
    has_signup = False
    cust = tables.customers
    if cust is not None and "signup_ts" in cust.columns:
        signed = cust.filter(cust.signup_ts.notnull() & (cust.signup_ts < end))
        has_signup = int(con.to_pyarrow(signed.count()).as_py()) > 0
    return {
        "customers_known": known,
        "customers_with_purchase": int(counts["purchasers"] or 0),
        "repeat_buyers": int(counts["repeat"] or 0),
        "repeat_buyers_positive_spend": int(counts["repeat_pos"] or 0),
        "first_transaction": first,
        "last_transaction": last,
        "first_purchase": counts["first_p"],
        "history_days": 0 if first is None else (day - first).days,
        "has_events": has_events,
        "has_customers": cust is not None,
        "has_signup_ts": has_signup,
        "labelled_cutoffs": n_cutoffs,
        "latest_labelled_cutoff": cutoff,
        "customers_at_latest_cutoff": int(counts["at_c"] or 0) if cutoff else 0,
        "churners_at_latest_cutoff": int(counts["churn_c"] or 0) if cutoff else 0,
    }


def _verdicts(
    m: dict[str, Any], day: dt.date | None, horizon: int, min_history: int, gg_min: int
) -> tuple[list[ModelReadiness], list[str], list[str]]:
    errors: list[str] = []
    warnings: list[str] = []
    buyers, repeat, repeat_pos = m["customers_with_purchase"], m["repeat_buyers"], m["repeat_buyers_positive_spend"]
    history = m["history_days"]
    t_max = 0 if day is None or m["first_purchase"] is None else (day - m["first_purchase"]).days
    later = "use a later as-of or data with a longer history"

    if day is None:
        errors.append("the data hold no transaction line: nothing can be fitted; add the transactions table's rows")
    elif m["first_transaction"] is None:
        errors.append(f"no transaction line on or before as-of {day}: nothing can be fitted; {later}")
    elif buyers == 0:
        errors.append(
            f"no customer with a purchase (a line with amount > 0) by as-of {day}: nothing can be "
            "fitted; add the sales lines, not only returns or zero amounts"
        )
    elif t_max == 0:
        errors.append(
            f"every first purchase is on the as-of date {day} (T is 0 for every customer): no time "
            f"has passed to observe repeat purchases; {later}"
        )
    elif repeat == 0:
        errors.append(
            f"no repeat buyer (nobody bought on two different days) by as-of {day}: BG/NBD is not "
            f"identified and every churn label would be 'churned'; {later}"
        )

    # BG/NBD (and the BTYD wrapper, which needs a spend to learn from)
    btyd_ok = buyers > 0 and t_max > 0 and repeat_pos > 0
    btyd = ModelReadiness(
        "btyd",
        btyd_ok,
        "BG/NBD needs >= 1 customer with a purchase, a first purchase before as-of (T > 0) and >= 1 repeat "
        f"buyer with positive spend; below {BGNBD_WARN_REPEAT_BUYERS} repeat buyers its parameters are poorly "
        "identified",
        f"{buyers:,} customers with a purchase, {repeat:,} repeat buyers ({repeat_pos:,} with positive "
        f"spend), T up to {t_max:,} days",
    )
    if btyd_ok and repeat < BGNBD_WARN_REPEAT_BUYERS:
        warnings.append(
            f"only {repeat} repeat buyers by as-of: BG/NBD parameters are poorly identified "
            f"(about {BGNBD_WARN_REPEAT_BUYERS} or more wanted); {later}"
        )
    if not errors and not btyd_ok:  # repeat buyers, but none with a positive net spend
        warnings.append(
            "no repeat buyer with a positive net spend by as-of: the BTYD spend model has nothing "
            "to learn from and BTYD cannot be fitted; check that sales lines carry positive amounts"
        )

    gg_ok = repeat_pos >= gg_min
    gg = ModelReadiness(
        "gamma_gamma",
        gg_ok,
        f"Gamma-Gamma spend needs >= {gg_min} repeat buyers with positive spend, else every customer's order "
        "value is the population mean order value",
        f"{repeat_pos:,} repeat buyers with positive spend"
        + ("" if gg_ok else f" (needs {gg_min}): population mean used"),
    )
    if btyd_ok and not gg_ok:
        warnings.append(
            f"only {repeat_pos} repeat buyers with positive spend (Gamma-Gamma needs {gg_min}): "
            f"spend uses the population mean order value; {later}"
        )

    # the learned models: labels at the latest cutoff whose window has closed
    need_labels = min_history + horizon
    cutoff, at_c, churn_c = m["latest_labelled_cutoff"], m["customers_at_latest_cutoff"], m["churners_at_latest_cutoff"]
    if cutoff is None:
        gbm_ok = False
        gbm_detail = (
            f"no labelled cutoff: needs {need_labels:,} days of history ({min_history} + horizon "
            f"{horizon}), has {history:,}"
        )
        if not errors:
            short = history - min_history
            fix = (f"a horizon of at most {short} days or " if short >= 1 else "") + later
            warnings.append(
                f"no labelled cutoff for LightGBM/hybrid: a {horizon}-day label window needs "
                f"{need_labels:,} days of history, the data have {history:,}; {fix}"
            )
    else:
        one_class = churn_c in (0, at_c)
        gbm_ok = at_c >= GBM_MIN_CUSTOMERS and not one_class
        gbm_detail = (
            f"{m['labelled_cutoffs']} labelled cutoffs, latest {cutoff} with {at_c:,} customers with a "
            f"purchase ({churn_c:,} without one in its window)"
        )
        if errors:
            pass  # the errors say it all
        elif at_c < GBM_MIN_CUSTOMERS:
            warnings.append(
                f"only {at_c} customers with a purchase by the latest labelled cutoff {cutoff} "
                f"(LightGBM/hybrid need {GBM_MIN_CUSTOMERS}): the learned models are not trained; "
                "more customers or a later as-of would fix it"
            )
        elif one_class:
            kind = "churned" if churn_c == at_c else "bought again"
            warnings.append(
                f"at the latest labelled cutoff {cutoff} every customer {kind} within the "
                f"{horizon}-day window: the churn classifier needs both outcomes; use another horizon "
                "or a later as-of"
            )
    gbm = ModelReadiness(
        "gbm",
        gbm_ok,
        f"LightGBM needs >= 1 labelled cutoff (c >= first transaction + {min_history} days, c + horizon <= as-of) "
        f"with >= {GBM_MIN_CUSTOMERS} customers with a purchase by it, some of whom buy again in its window and "
        "some not",
        gbm_detail,
    )
    hybrid = ModelReadiness(
        "hybrid",
        gbm_ok and btyd_ok,
        "LightGBM on the features plus BTYD outputs: needs what gbm and btyd need",
        f"gbm {'ok' if gbm_ok else 'not ok'}, btyd {'ok' if btyd_ok else 'not ok'}",
    )

    need_backtest = min_history + 2 * horizon
    backtest_ok = m["first_transaction"] is not None and history >= need_backtest
    longest = _longest_backtest(m, min_history)
    backtest = ModelReadiness(
        "backtest",
        backtest_ok,
        f"a backtest fold (model selection) needs history >= {min_history} + 2 x horizon days: an evaluation "
        f"cutoff at as-of - horizon and a training cutoff at as-of - 2 x horizon with {min_history} days before "
        "it; otherwise training goes on without a backtest at this horizon: models chosen on the longest "
        f"horizon a backtest fits (at least {MIN_BACKTEST_HORIZON_DAYS} days), learned models trained on the "
        "labelled cutoffs, or BTYD (label-free) for every target when neither exists",
        f"needs {need_backtest:,} days of history, has {history:,}"
        + (
            ""
            if backtest_ok
            else (f"; a backtest fits with a horizon of at most {longest} days" if longest else "; no horizon fits")
        ),
    )
    if not backtest_ok and not errors:
        fix = f"a horizon of at most {longest} days or " if longest else ""
        warnings.append(
            f"no backtest at horizon {horizon}: it needs {need_backtest:,} days of history, the data "
            f"have {history:,}; training goes on without a backtest at this horizon ("
            + (f"models chosen on a {longest}-day backtest" if longest else "BTYD for every target")
            + f"); {fix}{need_backtest - history:,} more days of "
            "history (a later as-of or earlier data) would fix it"
        )
    return [btyd, gg, gbm, hybrid, backtest], errors, warnings


def assess(
    clean: Source,
    as_of: Any,
    horizon_days: int,
    *,
    min_history_days: int = 60,
    memory_limit: str | None = None,
    config: FeatureConfig | None = None,
) -> Readiness:
    """What clean tables support as of ``as_of``: counts, label windows and a verdict per model.

    Point in time: only rows with ``ts < as_of + 1 day`` count, so rows after as-of change nothing.

    Parameters
    ----------
    clean
        The folder of clean tables in the canonical contract (``transactions.parquet|csv`` and
        optional ``events.*``, ``customers.*``), or a dict of clean frames (see
        :func:`churnclv.features.load_tables`).
    as_of
        The as-of calendar date; None means the last transaction date in the data.
    horizon_days
        The churn/spend horizon H in days (>= 1).
    min_history_days
        Days of data a cutoff needs before it (the training pipeline's ``min_history_days``).
    memory_limit
        DuckDB memory limit, e.g. ``"1GB"``.
    config
        The feature configuration: with ``zero_amount_is_purchase`` a line of amount 0 is a purchase.

    Returns
    -------
    Readiness
        The numbers, the per-model verdicts (``btyd``, ``gamma_gamma``, ``gbm``, ``hybrid``,
        ``backtest``), errors and warnings. Messages name no customer.

    Notes
    -----
    BG/NBD: Fader, Hardie and Lee (2005), Marketing Science 24(2), 275-284; Gamma-Gamma: Fader,
    Hardie and Lee (2005), JMR 42(4), 415-430.
    """
    if isinstance(horizon_days, bool) or not isinstance(horizon_days, int) or horizon_days < 1:
        raise ValueError(f"horizon_days={horizon_days!r}: must be a whole number of days >= 1, e.g. 90")
    if isinstance(min_history_days, bool) or not isinstance(min_history_days, int) or min_history_days < 0:
        raise ValueError(f"min_history_days={min_history_days!r}: must be a whole number of days >= 0, e.g. 60")
    con = connect(memory_limit=memory_limit)
    tables = load_tables(clean, con)
    gg_min = int(BTYDModel().get_params()["gg_min_repeat_buyers"])  # the scorer's default, one definition
    if as_of is None:
        last = con.to_pyarrow(tables.transactions.ts.max()).as_py()
        day = None if last is None else last.date()
    else:
        day = as_of_date(as_of)
    measured = (
        _nothing(tables)
        if day is None
        else _measure(con, tables, day, horizon_days, min_history_days, config or FeatureConfig())
    )
    models, errors, warnings = _verdicts(measured, day, horizon_days, min_history_days, gg_min)
    if day is not None and not measured["has_events"]:
        warnings.append(
            "no events by as-of: engagement features (logins, e-mails, support) stay empty; add an "
            "events table to use them"
        )
    if day is not None and not measured["has_signup_ts"]:
        warnings.append(
            "no signup_ts by as-of: customers who signed up but never bought are not scored; add a "
            "customers table with signup_ts to include them"
        )
    verdict = {m.name: m.ok for m in models}
    result = Readiness(
        as_of=day,
        horizon_days=horizon_days,
        min_history_days=min_history_days,
        **measured,
        backtest_fits=verdict["backtest"],
        max_backtest_horizon_days=_longest_backtest(measured, min_history_days),
        models=tuple(models),
        errors=tuple(errors),
        warnings=tuple(warnings),
    )
    log.debug("readiness as of %s: %s", day, ", ".join(f"{m.name} {'ok' if m.ok else 'not ok'}" for m in models))
    return result


def _longest_backtest(measured: dict[str, Any], min_history: int) -> int | None:
    """The longest horizon H with history >= min_history + 2 H (None below MIN_BACKTEST_HORIZON_DAYS)."""
    longest = (measured["history_days"] - min_history) // 2
    return longest if measured["first_transaction"] is not None and longest >= MIN_BACKTEST_HORIZON_DAYS else None


def _nothing(tables: FeatureTables) -> dict[str, Any]:
    """The measurements of data without a single transaction line."""
    return {
        "customers_known": 0,
        "customers_with_purchase": 0,
        "repeat_buyers": 0,
        "repeat_buyers_positive_spend": 0,
        "first_transaction": None,
        "last_transaction": None,
        "first_purchase": None,
        "history_days": 0,
        "has_events": False,
        "has_customers": tables.customers is not None,
        "has_signup_ts": False,
        "labelled_cutoffs": 0,
        "latest_labelled_cutoff": None,
        "customers_at_latest_cutoff": 0,
        "churners_at_latest_cutoff": 0,
    }
