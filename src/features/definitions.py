"""Point-in-time features, labels and rolling cutoffs, written once as Ibis expressions.

Everything here builds expressions and executes nothing, so the same definitions run on DuckDB (the
default, see :mod:`churnclv.features.engine`) and unchanged on other Ibis backends such as PySpark:
only portable Ibis operations are used.

Semantics (the catalogue in :mod:`churnclv.features.catalogue` documents every column):

- **as of D** (a calendar date) means every row with ``ts < D + 1 day``: the whole day D counts, as
  with ``lifetimes``' ``observation_period_end=D, freq='D'``. Timestamps are naive UTC.
- A **purchase day** is a calendar day with at least one line with ``amount > 0``. Several lines on
  one day are one purchase day (as in the BTYD literature); returns lower spend but are not
  purchases. The net spend of a purchase day is the sum of all its amounts (returns included), as
  ``lifetimes`` sums the monetary column per period.
- A customer is **known** at D when they have a transaction line (purchase or return) or a signup on
  or before D. Known customers without a purchase day get null BTYD statistics (``frequency``,
  ``recency``, ``T``, ``monetary_value``) and zero counts.
- A **label** for cutoff c and horizon H reads only rows with ``c + 1 day <= ts < c + H + 1 day``,
  i.e. the days ``(c, c + H]``.

Reference: P. S. Fader, B. G. S. Hardie and K. L. Lee (2005), "Counting your customers the easy way:
an alternative to the Pareto/NBD model", Marketing Science 24(2), for frequency, recency and T.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Union

import ibis
import ibis.expr.types as ir
import pandas as pd

from churnclv.features.catalogue import FEATURES, LABELS, Feature, expand
from churnclv.features.config import FeatureConfig

__all__ = [
    "AsOf",
    "FeatureConfig",  # defined in features/config.py; re-exported where it was defined before
    "FeatureTables",
    "as_of_date",
    "build_features",
    "build_labels",
    "build_training_frame",
    "feature_columns",
    "known_customers",
    "rolling_cutoffs",
    "sample_customers",
]

AsOf = Union[dt.date, dt.datetime, pd.Timestamp, str]

_IBIS_TYPES = {"string": "string", "int64": "int64", "float64": "float64", "bool": "boolean", "date": "date"}
_DAY = dt.timedelta(days=1)


@dataclass(frozen=True)
class FeatureTables:
    """The clean tables as Ibis tables (see :mod:`churnclv.schema` for their columns).

    ``events`` and ``customers`` are optional. Optional columns (``order_id``, ``channel``,
    ``category``, ``signup_ts``) may be absent; the features that need them are then null.
    """

    transactions: ir.Table
    events: ir.Table | None = None
    customers: ir.Table | None = None

    def __post_init__(self) -> None:
        _require(self.transactions, "transactions", ("customer_id", "ts", "amount"))
        if self.events is not None:
            _require(self.events, "events", ("customer_id", "ts", "event_type"))
        if self.customers is not None:
            _require(self.customers, "customers", ("customer_id",))

    @property
    def attributes(self) -> tuple[str, ...]:
        """Customer attribute columns passed through as ``attr_<name>``."""
        if self.customers is None:
            return ()
        return tuple(c for c in self.customers.columns if c not in ("customer_id", "signup_ts"))


def _require(table: ir.Table, name: str, columns: Sequence[str]) -> None:
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise ValueError(
            f"{name} table: required column(s) {missing} missing (has {list(table.columns)}): "
            f"map them onto the canonical names of churnclv.schema"
        )


def as_of_date(value: AsOf, name: str = "as_of") -> dt.date:
    """A calendar date from a date, a midnight timestamp or an ISO string.

    Raises
    ------
    ValueError
        When the value has a time of day or a time zone: an as-of is a whole day.
    """
    if isinstance(value, dt.date) and not isinstance(value, dt.datetime):
        return value
    try:
        ts = pd.Timestamp(value)
    except (TypeError, ValueError):
        raise ValueError(
            f"{name}={value!r} is not a date: pass e.g. '2024-06-30' or datetime.date(2024, 6, 30)"
        ) from None
    if ts is pd.NaT:
        raise ValueError(f"{name} is missing (NaT): pass a date")
    if ts.tzinfo is not None:
        raise ValueError(f"{name}={value!r} has a time zone: pass the calendar date in UTC (naive)")
    if ts != ts.normalize():
        raise ValueError(
            f"{name}={value!r} has a time of day: an as-of is a whole calendar day (rows with ts before "
            f"the next midnight count); pass the date, e.g. {ts.date().isoformat()!r}"
        )
    return ts.date()


def _ts(day: dt.date) -> ir.TimestampScalar:
    return ibis.literal(dt.datetime.combine(day, dt.time()), type="timestamp")


def _date(day: dt.date) -> ir.DateScalar:
    return ibis.literal(day, type="date")


def _is_purchase(tx: ir.Table, config: FeatureConfig) -> ir.BooleanColumn:
    return tx.amount >= 0 if config.zero_amount_is_purchase else tx.amount > 0


def _daily(tx: ir.Table, config: FeatureConfig) -> ir.Table:
    """One row per customer and calendar day: net spend and whether it is a purchase day.

    Kept to the two columns the purchase-day features need: this is the big intermediate table.
    """
    top = tx.amount.max()  # the largest line decides: cheaper than a boolean aggregate over lines
    return tx.group_by(customer_id=tx.customer_id, day=tx.ts.date()).aggregate(
        net=tx.amount.sum(),
        purchase=(top >= 0) if config.zero_amount_is_purchase else (top > 0),
    )


def _known(tables: FeatureTables, end: ir.TimestampScalar, tx_ids: ir.Table) -> ir.Table:
    """Customers known at as-of: ``tx_ids`` (with a line before ``end``) plus signups before ``end``."""
    cust = tables.customers
    if cust is None or "signup_ts" not in cust.columns:
        return tx_ids
    signed = cust.filter(cust.signup_ts.notnull() & (cust.signup_ts < end)).select("customer_id")
    return tx_ids.union(signed, distinct=True)


def known_customers(tables: FeatureTables, as_of: AsOf) -> ir.Table:
    """The ``customer_id`` of every customer known at ``as_of``: a transaction line or a signup on or
    before it (the population :func:`build_features` scores)."""
    end = _ts(as_of_date(as_of) + _DAY)
    tx = tables.transactions
    return _known(tables, end, tx.filter(tx.ts < end).select("customer_id").distinct())


def feature_columns(tables: FeatureTables, config: FeatureConfig = FeatureConfig()) -> list[Feature]:
    """The catalogue entries of the output of :func:`build_features`, in column order."""
    return expand(config, tables.attributes, FEATURES)


def build_features(tables: FeatureTables, as_of: AsOf, *, config: FeatureConfig = FeatureConfig()) -> ir.Table:
    """One row per customer known at ``as_of`` with every feature of the catalogue.

    A pure Ibis expression: it reads only rows with ``ts < as_of + 1 day`` and executes nothing.

    Parameters
    ----------
    tables
        The clean tables.
    as_of
        The as-of calendar date (see :func:`as_of_date`).
    config
        Windows and event types.

    Returns
    -------
    ibis.Table
        Columns in catalogue order (:func:`feature_columns`), cast to their catalogue types.
    """
    day = as_of_date(as_of)
    end = _ts(day + _DAY)
    d = _date(day)

    def lines(*cols: str) -> ir.Table:
        # each branch reads its own projection of the table: a filtered table shared by several
        # branches becomes a CTE that DuckDB materializes in full instead of streaming the scan
        t = tables.transactions.select("customer_id", "ts", "amount", *cols)
        return t.filter(t.ts < end)

    tx = lines()

    def start(w: int) -> dt.date:  # first day of the last w days (as-of day included)
        return day - (w - 1) * _DAY

    # line-level sums straight from the lines (one group per customer: cheap) ...
    amount, ts = tx.amount, tx.ts
    tw = config.trend_days
    returns = amount < 0
    line_aggs: dict[str, ir.Value] = {
        "first_day": ts.min().date(),
        "n_lines": tx.count(),
        "gross_spend": amount.sum(where=amount > 0).coalesce(0.0),
        "net_spend": amount.sum(),
        "n_returns": tx.count(where=returns),
        "returned_spend": (-amount).sum(where=returns).coalesce(0.0),
        "_s_now": amount.sum(where=ts >= _ts(start(tw))).coalesce(0.0),
        "_s_before": amount.sum(where=(ts >= _ts(start(2 * tw))) & (ts < _ts(start(tw)))).coalesce(0.0),
    }
    for w in config.windows:
        line_aggs[f"net_spend_{w}d"] = amount.sum(where=ts >= _ts(start(w))).coalesce(0.0)
    per_customer = tx.group_by("customer_id").aggregate(**line_aggs)

    # ... and purchase-day features from one row per customer and day
    raw = tables.transactions
    daily = _daily(raw.filter(raw.ts < end), config)
    # gap to the previous purchase day: partitioning by (customer, purchase) makes a plain LAG skip
    # return-only days, in one pass over the daily rows
    order = ibis.window(group_by=[daily.customer_id, daily.purchase], order_by=daily.day)
    prev = daily.day.lag().over(order)
    gap = ibis.ifelse(daily.purchase, daily.day.delta(prev, unit="day"), ibis.null("int64"))
    daily = daily.mutate(gap=gap)
    p = daily.purchase

    def since(w: int) -> ir.BooleanColumn:
        return daily.day >= _date(start(w))

    def before(w: int) -> ir.BooleanColumn:  # the w days before the last w days
        return (daily.day >= _date(start(2 * w))) & (daily.day < _date(start(w)))

    day_aggs: dict[str, ir.Value] = {
        "n_purchase_days": daily.count(where=p),
        "_p_now": daily.count(where=p & since(tw)),
        "_p_before": daily.count(where=p & before(tw)),
        # BTYD: a purchase day with a gap is a repeat purchase day
        "first_p": daily.day.min(where=p),
        "last_p": daily.day.max(where=p),
        "repeats": daily.gap.count(),
        "gap_mean": daily.gap.mean(),
        "gap_std": daily.gap.std(how="sample"),
        "mv": daily.net.mean(where=daily.gap.notnull()),
    }
    for w in config.windows:
        day_aggs[f"purchase_days_{w}d"] = daily.count(where=p & since(w))
    per_day = daily.group_by("customer_id").aggregate(**day_aggs)

    tx_ids = per_customer.select("customer_id")
    known = _known(tables, end, tx_ids)

    # everything else is one row per customer too; join it all, then define the columns on the join
    extra: list[ir.Table] = [per_customer, per_day]
    cust = tables.customers
    if cust is not None:
        cust_cols: dict[str, ir.Value] = {"customer_id": cust.customer_id}
        if "signup_ts" in cust.columns:
            signed_up = cust.signup_ts < end
            cust_cols["_signup_day"] = ibis.ifelse(signed_up, cust.signup_ts.date(), ibis.null("date"))
        for a in tables.attributes:
            cust_cols[f"attr_{a}"] = cust[a].cast("string")
        extra.append(cust.select(**cust_cols))
    breadth = {"order_id": "n_orders", "channel": "n_channels", "category": "n_categories"}
    present = {col: out for col, out in breadth.items() if col in tables.transactions.columns}
    for col, out in present.items():
        # distinct (customer, value) pairs, then a count: cheaper than COUNT(DISTINCT) on DuckDB
        bought = lines(col)
        bought = bought.filter(_is_purchase(bought, config) & bought[col].notnull())
        pairs = bought.select("customer_id", col).distinct()
        extra.append(pairs.group_by("customer_id").aggregate(**{out: pairs.count()}))
    if tables.events is not None:
        extra.append(_engagement(tables.events, day, config))

    j = known
    for table in extra:
        j = j.left_join(table, "customer_id")
    got = {name for table in extra for name in table.columns if name != "customer_id"}

    columns: dict[str, ir.Value] = {"customer_id": known.customer_id}
    has_p = j.first_p.notnull()
    columns["frequency"] = ibis.ifelse(has_p, j.repeats, ibis.null("int64")).cast("float64")
    columns["recency"] = j.last_p.delta(j.first_p, unit="day").cast("float64")
    columns["T"] = d.delta(j.first_p, unit="day").cast("float64")
    columns["monetary_value"] = ibis.ifelse(has_p, j.mv.coalesce(0.0), ibis.null("float64"))

    columns["n_lines"] = j.n_lines.coalesce(0)
    columns["n_purchase_days"] = j.n_purchase_days.coalesce(0)
    columns["gross_spend"] = j.gross_spend.coalesce(0.0)
    columns["net_spend"] = j.net_spend.coalesce(0.0)
    for w in config.windows:
        columns[f"purchase_days_{w}d"] = j[f"purchase_days_{w}d"].coalesce(0)
        columns[f"net_spend_{w}d"] = j[f"net_spend_{w}d"].coalesce(0.0)
    columns[f"purchase_days_trend_{tw}d"] = (j._p_now.coalesce(0) + 1) / (j._p_before.coalesce(0) + 1)
    s_now = ibis.greatest(j._s_now.coalesce(0.0), 0.0)
    s_before = ibis.greatest(j._s_before.coalesce(0.0), 0.0)
    columns[f"net_spend_trend_{tw}d"] = (s_now + 1.0) / (s_before + 1.0)

    columns["gap_mean_days"] = j.gap_mean
    columns["gap_std_days"] = j.gap_std
    since_last = d.delta(j.last_p, unit="day")
    columns["days_since_last_purchase"] = since_last
    columns["days_since_last_purchase_rel_gap"] = since_last / j.gap_mean

    columns["n_returns"] = j.n_returns.coalesce(0)
    returned = j.returned_spend.coalesce(0.0)
    gross = j.gross_spend.coalesce(0.0)
    columns["returned_spend"] = returned
    columns["return_share"] = ibis.ifelse(gross > 0, returned / gross, ibis.null("float64"))

    signup_day = j._signup_day if "_signup_day" in got else ibis.null("date")
    first_day = j.first_day
    start = ibis.least(first_day.coalesce(signup_day), signup_day.coalesce(first_day))
    columns["tenure_days"] = d.delta(start, unit="day")
    for out in breadth.values():
        columns[out] = j[out].coalesce(0) if out in got else ibis.null("int64")
    for e in config.event_types:
        for w in config.event_windows:
            name = f"{e}_count_{w}d"
            columns[name] = j[name].coalesce(0) if name in got else ibis.null("int64")
        name = f"{e}_days_since_last"
        columns[name] = j[name] if name in got else ibis.null("int64")
        name = f"{e}_trend_{config.event_trend_days}d"
        if f"_{e}_now" in got:
            columns[name] = (j[f"_{e}_now"].coalesce(0) + 1) / (j[f"_{e}_before"].coalesce(0) + 1)
        else:
            columns[name] = ibis.null("float64")
    for a in tables.attributes:
        columns[f"attr_{a}"] = j[f"attr_{a}"]

    return _finish(j, columns, feature_columns(tables, config))


def _finish(base: ir.Table, columns: dict[str, ir.Value], spec: list[Feature]) -> ir.Table:
    names = [f.name for f in spec]
    if set(names) != set(columns):
        # a definition without a catalogue entry (or the reverse) is a bug here, not bad input
        raise RuntimeError(
            f"feature definitions and catalogue disagree: only defined {sorted(set(columns) - set(names))}, "
            f"only catalogued {sorted(set(names) - set(columns))}"
        )
    return base.select(**{f.name: columns[f.name].cast(_IBIS_TYPES[f.dtype]) for f in spec})


def _engagement(events: ir.Table, day: dt.date, config: FeatureConfig) -> ir.Table:
    """Per customer, for each configured event type: window counts, trend counts, last event day."""
    end = _ts(day + _DAY)
    ev = events.filter((events.ts < end) & events.event_type.isin(config.event_types))
    tw = config.event_trend_days
    start = {w: _ts(day - (w - 1) * _DAY) for w in (*config.event_windows, tw, 2 * tw)}
    # two stages: (customer, type) first keeps the wide pivot off the big table
    by_type = ev.group_by(["customer_id", "event_type"]).aggregate(
        last_ts=ev.ts.max(),
        _now=ev.count(where=ev.ts >= start[tw]),
        _before=ev.count(where=(ev.ts >= start[2 * tw]) & (ev.ts < start[tw])),
        **{f"_c{w}": ev.count(where=ev.ts >= start[w]) for w in config.event_windows},
    )
    aggs: dict[str, ir.Value] = {}
    d = _date(day)
    for e in config.event_types:
        is_e = by_type.event_type == e
        for w in config.event_windows:
            aggs[f"{e}_count_{w}d"] = by_type[f"_c{w}"].sum(where=is_e).coalesce(0)
        aggs[f"{e}_days_since_last"] = d.delta(by_type.last_ts.max(where=is_e).date(), unit="day")
        aggs[f"_{e}_now"] = by_type._now.sum(where=is_e).coalesce(0)
        aggs[f"_{e}_before"] = by_type._before.sum(where=is_e).coalesce(0)
    return by_type.group_by("customer_id").aggregate(**aggs)


def _window_labels(tables: FeatureTables, cutoff: dt.date, horizon_days: int, config: FeatureConfig) -> ir.Table:
    """Purchase days and net spend per customer with a line in ``(cutoff, cutoff + horizon]``."""
    tx = tables.transactions
    tx = tx.filter((tx.ts >= _ts(cutoff + _DAY)) & (tx.ts < _ts(cutoff + (horizon_days + 1) * _DAY)))
    daily = tx.group_by(customer_id=tx.customer_id, day=tx.ts.date()).aggregate(
        purchase=_is_purchase(tx, config).any(), net=tx.amount.sum()
    )
    return daily.group_by("customer_id").aggregate(_purchases=daily.count(where=daily.purchase), _spend=daily.net.sum())


def _check_window(cutoff: dt.date, horizon_days: int, as_of: dt.date) -> None:
    if not isinstance(horizon_days, int) or horizon_days <= 0:
        raise ValueError(f"horizon_days={horizon_days!r}: must be a positive whole number of days")
    if cutoff + horizon_days * _DAY > as_of:
        raise ValueError(
            f"cutoff {cutoff} with horizon {horizon_days} days ends on {cutoff + horizon_days * _DAY}, after "
            f"as_of {as_of}: its label window is not closed; use a cutoff on or before "
            f"{as_of - horizon_days * _DAY}"
        )


def _label_columns(known: ir.Table, window: ir.Table) -> ir.Table:
    j = known.left_join(window, "customer_id")
    purchases = j._purchases.coalesce(0)
    return j.select(
        customer_id=known.customer_id,
        churned=(purchases == 0),
        purchases=purchases.cast("int64"),
        spend=j._spend.coalesce(0.0).cast("float64"),
    )


def build_labels(
    tables: FeatureTables,
    cutoff: AsOf,
    horizon_days: int,
    *,
    as_of: AsOf,
    config: FeatureConfig = FeatureConfig(),
) -> ir.Table:
    """Labels for every customer known at ``cutoff``: ``churned``, ``purchases``, ``spend``.

    Labels read only the rows of the days ``(cutoff, cutoff + horizon_days]``; the population (the
    customers known at the cutoff) reads rows up to the cutoff.

    Parameters
    ----------
    tables
        The clean tables.
    cutoff
        The cutoff date c.
    horizon_days
        The label window H in days.
    as_of
        The date the data is known up to; the window must be closed: ``cutoff + horizon_days <= as_of``.
    config
        Only ``zero_amount_is_purchase`` matters here.

    Raises
    ------
    ValueError
        When the label window is not closed at ``as_of``.
    """
    c = as_of_date(cutoff, "cutoff")
    _check_window(c, horizon_days, as_of_date(as_of))
    end = _ts(c + _DAY)
    tx = tables.transactions
    tx_ids = tx.filter(tx.ts < end).select("customer_id").distinct()
    known = _known(tables, end, tx_ids)
    return _label_columns(known, _window_labels(tables, c, horizon_days, config))


def rolling_cutoffs(as_of: AsOf, horizon_days: int, *, step_days: int = 30, n_cutoffs: int = 12) -> list[dt.date]:
    """Cutoffs ``as_of - horizon_days - k * step_days`` for ``k = 0 .. n_cutoffs - 1``, oldest first.

    Every cutoff's label window closes on or before ``as_of``.
    """
    day = as_of_date(as_of)
    if not isinstance(step_days, int) or step_days <= 0:
        raise ValueError(f"step_days={step_days!r}: must be a positive whole number of days")
    if not isinstance(n_cutoffs, int) or n_cutoffs <= 0:
        raise ValueError(f"n_cutoffs={n_cutoffs!r}: must be a positive whole number")
    if not isinstance(horizon_days, int) or horizon_days <= 0:
        raise ValueError(f"horizon_days={horizon_days!r}: must be a positive whole number of days")
    last = day - horizon_days * _DAY
    return sorted(last - k * step_days * _DAY for k in range(n_cutoffs))


def in_sample(customer_id: ir.StringValue, fraction: float) -> ir.BooleanValue:
    """True for a fixed pseudo-random share ``fraction`` of customer ids.

    A customer is in the sample when the first 32 bits of ``md5(customer_id)`` (as 8 lowercase hex
    digits) fall below ``fraction * 2**32``: the same customers on every run, engine and library
    version, and a sample of fraction f is contained in every sample of a larger fraction.
    """
    if not 0.0 < fraction <= 1.0:
        raise ValueError(f"sample fraction={fraction!r}: must be in (0, 1]")
    threshold = f"{min(int(fraction * 16**8), 16**8 - 1):08x}"
    return customer_id.hexdigest("md5").substr(0, 8) < threshold


def sample_customers(tables: FeatureTables, fraction: float) -> FeatureTables:
    """``tables`` restricted to the customers of :func:`in_sample` (every table, whole histories).

    Training reads a sample of a large base this way: each sampled customer keeps every row, so
    their features and labels are exactly those of the whole base. ``fraction`` 1 returns
    ``tables`` unchanged.
    """
    if fraction == 1.0:
        return tables

    def keep(t: ir.Table | None) -> ir.Table | None:
        return None if t is None else t.filter(in_sample(t.customer_id, fraction))

    # in_sample checks the fraction (transactions are always there, so a bad one always raises)
    return FeatureTables(
        transactions=keep(tables.transactions), events=keep(tables.events), customers=keep(tables.customers)
    )


def build_training_frame(
    tables: FeatureTables,
    as_of: AsOf,
    horizon_days: int,
    *,
    cutoffs: Sequence[AsOf] | None = None,
    step_days: int = 30,
    n_cutoffs: int = 12,
    config: FeatureConfig = FeatureConfig(),
) -> ir.Table:
    """Features as of each cutoff joined with the labels of its window, stacked over cutoffs.

    Parameters
    ----------
    tables
        The clean tables.
    as_of
        The date the data is known up to. Every cutoff must satisfy ``cutoff + horizon_days <= as_of``.
    horizon_days
        The label window H in days.
    cutoffs
        Explicit cutoffs; default :func:`rolling_cutoffs` ``(as_of, horizon_days, step_days, n_cutoffs)``.
    step_days, n_cutoffs
        Spacing and number of the default rolling cutoffs.
    config
        Feature configuration.

    Returns
    -------
    ibis.Table
        ``cutoff`` (date), the feature columns, then ``churned``, ``purchases``, ``spend``.
        A cutoff before any data contributes no rows.

    Raises
    ------
    ValueError
        When a cutoff's label window is not closed at ``as_of``.
    """
    day = as_of_date(as_of)
    if cutoffs is None:
        days = rolling_cutoffs(day, horizon_days, step_days=step_days, n_cutoffs=n_cutoffs)
    else:
        days = sorted({as_of_date(c, "cutoff") for c in cutoffs})
        if not days:
            raise ValueError("cutoffs is empty: pass at least one cutoff date or leave it None")
    for c in days:
        _check_window(c, horizon_days, day)
    parts = []
    label_names = [f.name for f in LABELS if f.name != "cutoff"]
    for c in days:
        feats = build_features(tables, c, config=config)
        labels = _label_columns(feats.select("customer_id"), _window_labels(tables, c, horizon_days, config))
        j = feats.left_join(labels, "customer_id")
        parts.append(
            j.select(
                cutoff=_date(c),
                **{name: j[name] for name in feats.columns},
                **{name: j[name] for name in label_names},
            )
        )
    return parts[0].union(*parts[1:]) if len(parts) > 1 else parts[0]
