"""The feature catalogue: every output column of the feature and label jobs, as data.

Names may hold placeholders that :func:`expand` fills from a :class:`~churnclv.features.FeatureConfig`:
``{w}`` (a purchase window in days), ``{tw}`` (the purchase trend window), ``{event}`` (an event
type), ``{ew}`` (an engagement window in days), ``{etw}`` (the engagement trend window) and ``{attr}``
(a customers-table attribute). The order of
the catalogue is the column order of the output.

Day semantics shared by every entry (see :mod:`churnclv.features.definitions`):

- *as of D* means every row with ``ts < D + 1 day`` (the whole calendar day D counts);
- a *purchase day* is a calendar day with at least one line with ``amount > 0``; returns (negative
  amounts) lower spend but are not purchases; several lines on one day are one purchase day;
- *the last w days* are the days ``D - w + 1 .. D`` (w calendar days, as-of day included).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace

from churnclv.features.config import FeatureConfig

__all__ = ["FEATURES", "LABELS", "Feature", "expand", "render_markdown"]


@dataclass(frozen=True)
class Feature:
    """One output column (or a family of columns when ``name`` holds a placeholder).

    ``dtype`` is the pandas/Parquet type: ``string``, ``int64``, ``float64``, ``bool`` or ``date``.
    An ``int64`` column that may be null comes out as pandas ``Int64`` (nullable).
    """

    name: str
    meaning: str
    unit: str
    dtype: str
    nullable: bool
    group: str


def _f(name: str, meaning: str, unit: str, dtype: str, nullable: bool, group: str) -> Feature:
    return Feature(name, meaning, unit, dtype, nullable, group)


_NO_PURCHASE = "null when the customer has no purchase day"
_NO_EVENTS = "null when there is no events table"

FEATURES: tuple[Feature, ...] = (
    _f(
        "customer_id",
        "customer key; one row per customer known at as-of (first transaction line or signup on or before as-of)",
        "-",
        "string",
        False,
        "key",
    ),
    # BTYD statistics, exactly as lifetimes.utils.summary_data_from_transaction_data(freq='D')
    _f(
        "frequency",
        f"repeat purchase days: purchase days minus 1 (BTYD x); {_NO_PURCHASE}",
        "days",
        "float64",
        True,
        "btyd",
    ),
    _f(
        "recency",
        f"days from the first to the last purchase day (BTYD t_x); {_NO_PURCHASE}",
        "days",
        "float64",
        True,
        "btyd",
    ),
    _f(
        "T",
        f"days from the first purchase day to the as-of day (BTYD T); {_NO_PURCHASE}",
        "days",
        "float64",
        True,
        "btyd",
    ),
    _f(
        "monetary_value",
        "mean net spend of the repeat purchase days (first purchase day excluded); "
        f"0 when frequency is 0; {_NO_PURCHASE}",
        "currency",
        "float64",
        True,
        "btyd",
    ),
    # raw counts and sums up to as-of
    _f("n_lines", "transaction lines (purchases and returns)", "lines", "int64", False, "totals"),
    _f(
        "n_orders",
        "distinct order_id over purchase lines; null without an order_id column",
        "orders",
        "int64",
        True,
        "totals",
    ),
    _f(
        "n_purchase_days", "purchase days (calendar days with a line with amount > 0)", "days", "int64", False, "totals"
    ),
    _f("gross_spend", "sum of positive amounts", "currency", "float64", False, "totals"),
    _f("net_spend", "sum of all amounts (returns subtract)", "currency", "float64", False, "totals"),
    # recent windows
    _f("purchase_days_{w}d", "purchase days in the last {w} days", "days", "int64", False, "windows"),
    _f("net_spend_{w}d", "sum of all amounts in the last {w} days", "currency", "float64", False, "windows"),
    _f(
        "purchase_days_trend_{tw}d",
        "(purchase days in the last {tw} days + 1) / (purchase days in the "
        "{tw} days before + 1); 1 = steady, > 1 = rising",
        "ratio",
        "float64",
        False,
        "windows",
    ),
    _f(
        "net_spend_trend_{tw}d",
        "(max(net spend in the last {tw} days, 0) + 1) / (max(net spend in the "
        "{tw} days before, 0) + 1); clipped at 0 so returns cannot flip the sign",
        "ratio",
        "float64",
        False,
        "windows",
    ),
    # inter-purchase gaps
    _f(
        "gap_mean_days",
        "mean gap between consecutive purchase days; null with fewer than 2 purchase days",
        "days",
        "float64",
        True,
        "gaps",
    ),
    _f(
        "gap_std_days",
        "sample standard deviation of the gaps between consecutive purchase days; null with fewer than 3 purchase days",
        "days",
        "float64",
        True,
        "gaps",
    ),
    _f(
        "days_since_last_purchase",
        f"days from the last purchase day to the as-of day; {_NO_PURCHASE}",
        "days",
        "int64",
        True,
        "gaps",
    ),
    _f(
        "days_since_last_purchase_rel_gap",
        "days_since_last_purchase / gap_mean_days (> 1: overdue by "
        "the customer's own rhythm); null with fewer than 2 purchase days",
        "ratio",
        "float64",
        True,
        "gaps",
    ),
    # returns
    _f("n_returns", "return lines (amount < 0)", "lines", "int64", False, "returns"),
    _f(
        "returned_spend",
        "sum of -amount over return lines (a positive number)",
        "currency",
        "float64",
        False,
        "returns",
    ),
    _f("return_share", "returned_spend / gross_spend; null when gross_spend is 0", "ratio", "float64", True, "returns"),
    # tenure and breadth
    _f(
        "tenure_days",
        "days from the earlier of signup (if on or before as-of) and the first transaction line to the as-of day",
        "days",
        "int64",
        False,
        "tenure",
    ),
    _f(
        "n_channels",
        "distinct channels over purchase lines; null without a channel column",
        "channels",
        "int64",
        True,
        "tenure",
    ),
    _f(
        "n_categories",
        "distinct categories over purchase lines; null without a category column",
        "categories",
        "int64",
        True,
        "tenure",
    ),
    # engagement, one family per configured event type
    _f(
        "{event}_count_{ew}d",
        f"{{event}} events in the last {{ew}} days; {_NO_EVENTS}",
        "events",
        "int64",
        True,
        "engagement",
    ),
    _f(
        "{event}_days_since_last",
        "days from the last {event} event to the as-of day; null when there is none (or no events table)",
        "days",
        "int64",
        True,
        "engagement",
    ),
    _f(
        "{event}_trend_{etw}d",
        "({event} events in the last {etw} days + 1) / ({event} events in the "
        f"{{etw}} days before + 1); {_NO_EVENTS}",
        "ratio",
        "float64",
        True,
        "engagement",
    ),
    # pass-through customer attributes
    _f(
        "attr_{attr}",
        "customers-table attribute {attr} as given (taken as static, not point in time)",
        "-",
        "string",
        True,
        "attributes",
    ),
)

LABELS: tuple[Feature, ...] = (
    _f(
        "cutoff",
        "the cutoff date c: features are as of c, labels read (c, c + horizon]",
        "date",
        "date",
        False,
        "label",
    ),
    _f("churned", "no purchase day in (c, c + horizon]", "-", "bool", False, "label"),
    _f("purchases", "purchase days in (c, c + horizon]", "days", "int64", False, "label"),
    _f("spend", "sum of all amounts in (c, c + horizon] (returns subtract)", "currency", "float64", False, "label"),
)


def _fill(template: Feature, **values: object) -> Feature:
    return replace(template, name=template.name.format(**values), meaning=template.meaning.format(**values))


def expand(
    config: FeatureConfig, attributes: Sequence[str] = (), features: Iterable[Feature] = FEATURES
) -> list[Feature]:
    """The concrete output columns, in order, for a configuration and the customers' attributes.

    Parameters
    ----------
    config
        Windows and event types that fill the ``{w}``, ``{tw}``, ``{event}`` and ``{ew}`` placeholders.
    attributes
        Attribute columns of the customers table (each gives ``attr_<name>``).
    features
        Templates to expand (default: :data:`FEATURES`).
    """
    out: list[Feature] = []
    for f in features:
        if "{event}" in f.name:
            for event in config.event_types:
                if "{ew}" in f.name:
                    out.extend(_fill(f, event=event, ew=w) for w in config.event_windows)
                else:
                    out.append(_fill(f, event=event, etw=config.event_trend_days))
        elif "{w}" in f.name:
            out.extend(_fill(f, w=w) for w in config.windows)
        elif "{tw}" in f.name:
            out.append(_fill(f, tw=config.trend_days))
        elif "{attr}" in f.name:
            out.extend(_fill(f, attr=a) for a in attributes)
        else:
            out.append(f)
    return out


def render_markdown(features: Iterable[Feature] = FEATURES + LABELS, config: FeatureConfig | None = None) -> str:
    """The catalogue as a Markdown table (column, meaning, unit, type) for the README.

    Placeholders stay in the names; a legend under the table gives their values for ``config``
    (default :class:`~churnclv.features.FeatureConfig()`).
    """
    config = config or FeatureConfig()
    rows = ["| column | meaning | unit | type |", "|---|---|---|---|"]
    for f in features:
        dtype = f.dtype + (" (nullable)" if f.nullable and f.dtype == "int64" else "")
        meaning = f.meaning.replace("|", "\\|")
        rows.append(f"| `{f.name}` | {meaning} | {f.unit} | {dtype} |")

    def days(values: Iterable[int]) -> str:
        return ", ".join(str(v) for v in values)

    legend = (
        f"\n`{{w}}` in {days(config.windows)} (`FeatureConfig.windows`); `{{tw}}` = {config.trend_days} "
        f"(`trend_days`); `{{event}}` in {', '.join(config.event_types)} (`event_types`); `{{ew}}` in "
        f"{days(config.event_windows)} (`event_windows`); `{{etw}}` = {config.event_trend_days} "
        "(`event_trend_days`); `{attr}`: each attribute column of the customers table. Integer columns "
        "marked nullable are pandas `Int64`.\n"
    )
    return "\n".join(rows) + "\n" + legend
