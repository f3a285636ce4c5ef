"""Holdout purchases by calibration frequency: lifetimes' ``plot_calibration_purchases_vs_holdout_purchases``.

Customers are grouped by how many repeat purchase days they had up to the as-of date (``frequency``,
the last group holding ``max_frequency`` and more); for each group, the mean purchase days realised in
the holdout (the label window after as-of) next to the mean a model predicted. A model that tracks
the actual line in every group explains the heavy and the light buyers alike; the usual failure is a
model that is right on average but over-predicts the one-time buyers and under-predicts the heavy ones.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.axes import Axes

from churnclv.diagnostics.inputs import DiagnosticsError, as_btyd, require_columns, unit_days
from churnclv.plotting import _axes

__all__ = ["holdout_by_frequency", "plot_holdout_by_frequency"]

_FEATURES_FIX = "pass the feature frame at the as-of date (churnclv.features.compute_features)."
_LABELS_FIX = "pass the labels of the window after the as-of date (churnclv.features.compute_labels)."


def holdout_by_frequency(
    features: pd.DataFrame,
    labels: pd.DataFrame,
    *,
    model: Any = None,
    horizon: float | None = None,
    time_unit: str = "days",
    predicted: Mapping[str, Any] | None = None,
    max_frequency: int = 7,
) -> pd.DataFrame:
    """Mean holdout purchase days per calibration frequency, actual against predicted.

    Parameters
    ----------
    features : pandas.DataFrame
        ``customer_id`` and ``frequency`` at the as-of date (plus the BTYD summary when ``model`` is
        given). Customers who never bought (``frequency`` NaN) are left out: they have no frequency.
    labels : pandas.DataFrame
        ``customer_id`` and ``purchases`` (purchase days in the holdout), e.g. from
        :func:`churnclv.features.compute_labels`; every customer of ``features`` needs a row.
    model : BTYDModel or Scorer, optional
        A fitted BTYD model (or a scorer, whose ``btyd_`` is used): its conditional expected purchases
        over ``horizon`` become the column ``predicted``.
    horizon : float, optional
        Length of the holdout in ``time_unit``; required with ``model``.
    time_unit : {"days", "weeks"}
        Unit of ``horizon``.
    predicted : mapping of str to array-like, optional
        Other predictions of holdout purchases, one column each, aligned with the rows of ``features``
        (e.g. ``{"gbm": scores["expected_purchases"]}``).
    max_frequency : int, default 7
        The last group holds every customer with this frequency or more.

    Returns
    -------
    pandas.DataFrame
        One row per frequency ``0..max_frequency`` with customers: ``frequency``, ``group`` (``"7+"``
        for the last), ``customers``, ``actual`` (mean holdout purchase days), then one column of mean
        predictions per model (``predicted`` for ``model``).
    """
    if not isinstance(max_frequency, (int, np.integer)) or max_frequency < 0:
        raise DiagnosticsError(f"max_frequency={max_frequency!r} must be an integer >= 0, e.g. 7.")
    feats = require_columns(features, ("customer_id", "frequency"), "holdout_by_frequency: features", _FEATURES_FIX)
    labs = require_columns(labels, ("customer_id", "purchases"), "holdout_by_frequency: labels", _LABELS_FIX)
    columns: dict[str, np.ndarray] = {}
    if model is not None:
        if horizon is None or not horizon > 0:
            raise DiagnosticsError(f"holdout_by_frequency: horizon={horizon!r} must be > 0 {time_unit} with model=.")
        days = float(horizon) * unit_days(time_unit)
        columns["predicted"] = as_btyd(model).predict(feats, days)["expected_purchases"].to_numpy(dtype=float)
    for name, values in (predicted or {}).items():
        v = np.asarray(values, dtype=float).ravel()
        if v.size != len(feats):
            raise DiagnosticsError(
                f"holdout_by_frequency: predicted[{name!r}] has {v.size} values for {len(feats)} rows of features; "
                "align each prediction with the rows of features."
            )
        columns[str(name)] = v
    if not columns:
        raise DiagnosticsError("holdout_by_frequency: nothing to compare; pass model= (with horizon=) or predicted=.")
    actual = feats[["customer_id"]].merge(
        labs[["customer_id", "purchases"]].astype({"customer_id": feats["customer_id"].dtype}),
        on="customer_id",
        how="left",
        validate="one_to_one",
    )["purchases"]
    frequency = pd.to_numeric(feats["frequency"]).to_numpy(dtype=float)
    bought = ~np.isnan(frequency)
    missing = int((bought & actual.isna().to_numpy()).sum())
    if missing:
        raise DiagnosticsError(
            f"holdout_by_frequency: labels hold no row for {missing} customer(s) of features; {_LABELS_FIX}"
        )
    group = np.minimum(frequency[bought], max_frequency).astype(int)
    frame = pd.DataFrame({"frequency": group, "actual": actual.to_numpy(dtype=float)[bought]})
    for name, v in columns.items():
        frame[name] = v[bought]
    out = frame.groupby("frequency").agg(customers=("actual", "size"), **{c: (c, "mean") for c in frame.columns[1:]})
    out = out.reset_index()
    out.insert(1, "group", [f"{f}+" if f == max_frequency else str(f) for f in out["frequency"]])
    return out


def plot_holdout_by_frequency(
    features: pd.DataFrame,
    labels: pd.DataFrame,
    *,
    model: Any = None,
    horizon: float | None = None,
    time_unit: str = "days",
    predicted: Mapping[str, Any] | None = None,
    max_frequency: int = 7,
    ax: Axes | None = None,
) -> Axes:
    """Mean holdout purchases per calibration frequency: the actual line and one line per model.

    Takes the arguments of :func:`holdout_by_frequency` and draws its table: line 0 is ``actual``, the
    next lines the predictions in column order (x: the frequency groups).
    """
    table = holdout_by_frequency(
        features,
        labels,
        model=model,
        horizon=horizon,
        time_unit=time_unit,
        predicted=predicted,
        max_frequency=max_frequency,
    )
    ax = _axes(ax)
    x = table["frequency"].to_numpy()
    ax.plot(x, table["actual"].to_numpy(), marker="o", color="black", label="actual")
    for name in table.columns[4:]:
        ax.plot(x, table[name].to_numpy(), marker="s", linestyle="--", label=name)
    ax.set_xticks(x, table["group"].tolist())
    ax.set(
        xlabel="repeat purchase days up to as-of (frequency)",
        ylabel="mean purchase days in the holdout",
        title="holdout purchases by frequency",
    )
    ax.legend(fontsize="small")
    return ax
