"""Point-in-time features, written once as Ibis expressions (labels: :mod:`churnclv.features.labels`).

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

import ibis
import ibis.expr.types as ir

from churnclv.features.catalogue import FEATURES, Feature, expand
from churnclv.features.config import FeatureConfig
from churnclv.features.dates import DAY, AsOf, as_of_date, date_literal, ts_literal
from churnclv.features.inputs import FeatureTables

__all__ = ["build_features", "feature_columns", "is_purchase", "known_by", "known_customers"]

_IBIS_TYPES = {"string": "string", "int64": "int64", "float64": "float64", "bool": "boolean", "date": "date"}


def is_purchase(tx: ir.Table, config: FeatureConfig) -> ir.BooleanColumn:
    """True for a transaction line that counts as a purchase (``amount > 0``, or ``>= 0`` when configured)."""
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


def known_by(tables: FeatureTables, end: ir.TimestampScalar, tx_ids: ir.Table) -> ir.Table:
    """Customers known before ``end``: ``tx_ids`` (with a line before ``end``) plus signups before ``end``."""
    cust = tables.customers
    if cust is None or "signup_ts" not in cust.columns:
        return tx_ids
    signed = cust.filter(cust.signup_ts.notnull() & (cust.signup_ts < end)).select("customer_id")
    return tx_ids.union(signed, distinct=True)


def known_customers(tables: FeatureTables, as_of: AsOf) -> ir.Table:
    """The ``customer_id`` of every customer known at ``as_of``: a transaction line or a signup on or
    before it (the population :func:`build_features` scores)."""
    end = ts_literal(as_of_date(as_of) + DAY)
    tx = tables.transactions
    return known_by(tables, end, tx.filter(tx.ts < end).select("customer_id").distinct())


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
    end = ts_literal(day + DAY)
    d = date_literal(day)

    def lines(*cols: str) -> ir.Table:
        # each branch reads its own projection of the table: a filtered table shared by several
        # branches becomes a CTE that DuckDB materializes in full instead of streaming the scan
        t = tables.transactions.select("customer_id", "ts", "amount", *cols)
        return t.filter(t.ts < end)

    tx = lines()

    def start(w: int) -> dt.date:  # first day of the last w days (as-of day included)
        return day - (w - 1) * DAY

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
        "_s_now": amount.sum(where=ts >= ts_literal(start(tw))).coalesce(0.0),
        "_s_before": amount.sum(where=(ts >= ts_literal(start(2 * tw))) & (ts < ts_literal(start(tw)))).coalesce(0.0),
    }
    for w in config.windows:
        line_aggs[f"net_spend_{w}d"] = amount.sum(where=ts >= ts_literal(start(w))).coalesce(0.0)
    per_customer = tx.group_by("customer_id").aggregate(**line_aggs)

    # ... and purchase-day features from one row per customer and day
    raw = tables.transactions
    daily = _daily(raw.filter(raw.ts < end), config)
    # every purchase-day feature reads purchase days only: the others go before the gap window, which
    # then partitions by customer alone (a LAG over the customer's purchase days)
    daily = daily.filter(daily.purchase)
    prev = daily.day.lag().over(ibis.window(group_by=daily.customer_id, order_by=daily.day))
    daily = daily.mutate(gap=daily.day.delta(prev, unit="day"))

    def since(w: int) -> ir.BooleanColumn:
        return daily.day >= date_literal(start(w))

    def before(w: int) -> ir.BooleanColumn:  # the w days before the last w days
        return (daily.day >= date_literal(start(2 * w))) & (daily.day < date_literal(start(w)))

    day_aggs: dict[str, ir.Value] = {
        "n_purchase_days": daily.count(),
        "_p_now": daily.count(where=since(tw)),
        "_p_before": daily.count(where=before(tw)),
        # BTYD: a purchase day with a gap is a repeat purchase day
        "first_p": daily.day.min(),
        "last_p": daily.day.max(),
        "repeats": daily.gap.count(),
        "gap_mean": daily.gap.mean(),
        "gap_std": daily.gap.std(how="sample"),
        "mv": daily.net.mean(where=daily.gap.notnull()),
    }
    for w in config.windows:
        day_aggs[f"purchase_days_{w}d"] = daily.count(where=since(w))
    per_day = daily.group_by("customer_id").aggregate(**day_aggs)

    tx_ids = per_customer.select("customer_id")
    known = known_by(tables, end, tx_ids)

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
        bought = bought.filter(is_purchase(bought, config) & bought[col].notnull())
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
    end = ts_literal(day + DAY)
    ev = events.filter((events.ts < end) & events.event_type.isin(config.event_types))
    tw = config.event_trend_days
    start = {w: ts_literal(day - (w - 1) * DAY) for w in (*config.event_windows, tw, 2 * tw)}
    # two stages: (customer, type) first keeps the wide pivot off the big table
    by_type = ev.group_by(["customer_id", "event_type"]).aggregate(
        last_ts=ev.ts.max(),
        _now=ev.count(where=ev.ts >= start[tw]),
        _before=ev.count(where=(ev.ts >= start[2 * tw]) & (ev.ts < start[tw])),
        **{f"_c{w}": ev.count(where=ev.ts >= start[w]) for w in config.event_windows},
    )
    aggs: dict[str, ir.Value] = {}
    d = date_literal(day)
    for e in config.event_types:
        is_e = by_type.event_type == e
        for w in config.event_windows:
            aggs[f"{e}_count_{w}d"] = by_type[f"_c{w}"].sum(where=is_e).coalesce(0)
        aggs[f"{e}_days_since_last"] = d.delta(by_type.last_ts.max(where=is_e).date(), unit="day")
        aggs[f"_{e}_now"] = by_type._now.sum(where=is_e).coalesce(0)
        aggs[f"_{e}_before"] = by_type._before.sum(where=is_e).coalesce(0)
    return by_type.group_by("customer_id").aggregate(**aggs)
