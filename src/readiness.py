"""What the data supports, told before a long job starts: counts, label windows and a verdict per model.

:func:`assess` measures clean tables as of a date (point in time: only rows with ``ts < as_of + 1 day``)
and says, model by model, whether it can be fitted, with the rule in words. Real data are often
transactions only, with short histories and small cohorts; this names what is missing and what data
would fix it, instead of a run failing an hour in.

The report is :class:`churnclv.readiness_report.Readiness`; the rules and thresholds behind its
verdicts are in :mod:`churnclv.readiness_rules`.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

import ibis
import ibis.expr.types as ir

from churnclv.features import FeatureConfig, Source, as_of_date, connect, load_tables
from churnclv.features.checks import last_transaction_day
from churnclv.features.dates import DAY, date_literal, ts_literal
from churnclv.features.definitions import known_customers
from churnclv.features.errors import FeatureError
from churnclv.features.inputs import FeatureTables
from churnclv.models.btyd import BTYDModel
from churnclv.readiness_report import Readiness
from churnclv.readiness_rules import judge, labelled_cutoffs, longest_backtest

__all__ = ["assess"]

log = logging.getLogger(__name__)


def _one(con: ibis.BaseBackend, expr: ir.Table) -> dict[str, Any]:
    row: dict[str, Any] = con.to_pyarrow(expr).to_pylist()[0]
    return row


def _measure(
    con: ibis.BaseBackend, tables: FeatureTables, day: dt.date, horizon: int, min_history: int, config: FeatureConfig
) -> dict[str, Any]:
    end = ts_literal(day + DAY)
    tx = tables.transactions
    tx = tx.filter(tx.ts < end)
    lines = _one(con, tx.aggregate(first=tx.ts.min(), last=tx.ts.max()))
    first = None if lines["first"] is None else lines["first"].date()
    last = None if lines["last"] is None else lines["last"].date()
    n_cutoffs, cutoff = labelled_cutoffs(first, day, horizon, min_history)
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
        in_window=bought.count(where=(bought.day > date_literal(c)) & (bought.day <= date_literal(c + horizon * DAY))),
    )
    p = per_customer
    repeat = p.n_days >= 2
    at_c = p.first_p <= date_literal(c)
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
    ids = {"n": 0, "missing": 0}
    if cust is not None:  # counted only to compare with the customers table: a distinct over every line
        with_lines = tx.select("customer_id").distinct()
        ids["n"] = con.to_pyarrow(with_lines.count()).as_py()
        ids["missing"] = con.to_pyarrow(with_lines.anti_join(cust, "customer_id").count()).as_py()
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
        "customers_with_lines": int(ids["n"] or 0),
        "lines_not_in_customers": int(ids["missing"] or 0),
        "labelled_cutoffs": n_cutoffs,
        "latest_labelled_cutoff": cutoff,
        "customers_at_latest_cutoff": int(counts["at_c"] or 0) if cutoff else 0,
        "churners_at_latest_cutoff": int(counts["churn_c"] or 0) if cutoff else 0,
    }


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
        raise FeatureError(f"horizon_days={horizon_days!r}: must be a whole number of days >= 1, e.g. 90")
    if isinstance(min_history_days, bool) or not isinstance(min_history_days, int) or min_history_days < 0:
        raise FeatureError(f"min_history_days={min_history_days!r}: must be a whole number of days >= 0, e.g. 60")
    con = connect(memory_limit=memory_limit)
    tables = load_tables(clean, con)
    gg_min = int(BTYDModel().get_params()["gg_min_repeat_buyers"])  # the scorer's default, one definition
    data_end = last_transaction_day(con, tables)
    day = data_end if as_of is None else as_of_date(as_of)
    measured = (
        _nothing(tables)
        if day is None
        else _measure(con, tables, day, horizon_days, min_history_days, config or FeatureConfig())
    )
    models, errors, warnings = judge(measured, day, horizon_days, min_history_days, gg_min, data_end=data_end)
    verdict = {m.name: m.ok for m in models}
    result = Readiness(
        as_of=day,
        horizon_days=horizon_days,
        min_history_days=min_history_days,
        **measured,
        backtest_fits=verdict["backtest"],
        max_backtest_horizon_days=longest_backtest(measured, min_history_days),
        models=tuple(models),
        errors=tuple(errors),
        warnings=tuple(warnings),
    )
    log.debug("readiness as of %s: %s", day, ", ".join(f"{m.name} {'ok' if m.ok else 'not ok'}" for m in models))
    return result


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
        "customers_with_lines": 0,
        "lines_not_in_customers": 0,
        "labelled_cutoffs": 0,
        "latest_labelled_cutoff": None,
        "customers_at_latest_cutoff": 0,
        "churners_at_latest_cutoff": 0,
    }
