"""Labels and the training frame, written once as Ibis expressions: what happens in the days
``(cutoff, cutoff + horizon]`` after a cutoff, and the features at rolling cutoffs joined with it."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

import ibis.expr.types as ir

from churnclv.features.catalogue import LABELS
from churnclv.features.config import FeatureConfig
from churnclv.features.dates import DAY, AsOf, as_of_date, date_literal, ts_literal
from churnclv.features.definitions import build_features, is_purchase, known_by
from churnclv.features.errors import FeatureError
from churnclv.features.inputs import FeatureTables

__all__ = ["build_labels", "build_training_frame", "rolling_cutoffs"]


def _window_labels(tables: FeatureTables, cutoff: dt.date, horizon_days: int, config: FeatureConfig) -> ir.Table:
    """Purchase days and net spend per customer with a line in ``(cutoff, cutoff + horizon]``."""
    tx = tables.transactions
    tx = tx.filter((tx.ts >= ts_literal(cutoff + DAY)) & (tx.ts < ts_literal(cutoff + (horizon_days + 1) * DAY)))
    daily = tx.group_by(customer_id=tx.customer_id, day=tx.ts.date()).aggregate(
        purchase=is_purchase(tx, config).any(), net=tx.amount.sum()
    )
    return daily.group_by("customer_id").aggregate(_purchases=daily.count(where=daily.purchase), _spend=daily.net.sum())


def _check_window(cutoff: dt.date, horizon_days: int, as_of: dt.date) -> None:
    if not isinstance(horizon_days, int) or horizon_days <= 0:
        raise FeatureError(f"horizon_days={horizon_days!r}: must be a positive whole number of days")
    if cutoff + horizon_days * DAY > as_of:
        raise FeatureError(
            f"cutoff {cutoff} with horizon {horizon_days} days ends on {cutoff + horizon_days * DAY}, after "
            f"as_of {as_of}: its label window is not closed; use a cutoff on or before "
            f"{as_of - horizon_days * DAY}"
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
    FeatureError
        A ``ValueError``: when the label window is not closed at ``as_of``.
    """
    c = as_of_date(cutoff, "cutoff")
    _check_window(c, horizon_days, as_of_date(as_of))
    end = ts_literal(c + DAY)
    tx = tables.transactions
    tx_ids = tx.filter(tx.ts < end).select("customer_id").distinct()
    known = known_by(tables, end, tx_ids)
    return _label_columns(known, _window_labels(tables, c, horizon_days, config))


def rolling_cutoffs(as_of: AsOf, horizon_days: int, *, step_days: int = 30, n_cutoffs: int = 12) -> list[dt.date]:
    """Cutoffs ``as_of - horizon_days - k * step_days`` for ``k = 0 .. n_cutoffs - 1``, oldest first.

    Every cutoff's label window closes on or before ``as_of``.
    """
    day = as_of_date(as_of)
    if not isinstance(step_days, int) or step_days <= 0:
        raise FeatureError(f"step_days={step_days!r}: must be a positive whole number of days")
    if not isinstance(n_cutoffs, int) or n_cutoffs <= 0:
        raise FeatureError(f"n_cutoffs={n_cutoffs!r}: must be a positive whole number")
    if not isinstance(horizon_days, int) or horizon_days <= 0:
        raise FeatureError(f"horizon_days={horizon_days!r}: must be a positive whole number of days")
    last = day - horizon_days * DAY
    return sorted(last - k * step_days * DAY for k in range(n_cutoffs))


def training_cutoffs(
    as_of: AsOf,
    horizon_days: int,
    *,
    cutoffs: Sequence[AsOf] | None = None,
    step_days: int = 30,
    n_cutoffs: int = 12,
) -> list[dt.date]:
    """The cutoffs of :func:`build_training_frame`, sorted and without repeats, each window checked
    closed at ``as_of`` (:class:`~churnclv.features.errors.FeatureError` otherwise)."""
    day = as_of_date(as_of)
    if cutoffs is None:
        days = rolling_cutoffs(day, horizon_days, step_days=step_days, n_cutoffs=n_cutoffs)
    else:
        days = sorted({as_of_date(c, "cutoff") for c in cutoffs})
        if not days:
            raise FeatureError("cutoffs is empty: pass at least one cutoff date or leave it None")
    for c in days:
        _check_window(c, horizon_days, day)
    return days


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
    FeatureError
        A ``ValueError``: when a cutoff's label window is not closed at ``as_of``.
    """
    days = training_cutoffs(as_of, horizon_days, cutoffs=cutoffs, step_days=step_days, n_cutoffs=n_cutoffs)
    parts = []
    label_names = [f.name for f in LABELS if f.name != "cutoff"]
    for c in days:
        feats = build_features(tables, c, config=config)
        labels = _label_columns(feats.select("customer_id"), _window_labels(tables, c, horizon_days, config))
        j = feats.left_join(labels, "customer_id")
        parts.append(
            j.select(
                cutoff=date_literal(c),
                **{name: j[name] for name in feats.columns},
                **{name: j[name] for name in label_names},
            )
        )
    return parts[0].union(*parts[1:]) if len(parts) > 1 else parts[0]
