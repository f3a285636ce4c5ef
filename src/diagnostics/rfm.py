"""RFM tables with your own cut points: each customer's recency, frequency and monetary scores, and
the segments they form.

- R: days since the last purchase day (``days_since_last_purchase``); fewer days score higher;
- F: purchase days (``n_purchase_days``);
- M: net spend (``net_spend``), returns included.

Cut points are the upper edges of the groups, in ascending order (``recency_cuts=(30, 90, 180)`` gives
``<= 30``, ``31-90``, ``91-180`` and ``> 180`` days), or a whole number of groups split at the data's
quantiles. Scores run from 1 (worst) to the number of groups (best); a customer with no purchase yet
(a sign-up) scores 0 on all three. What to look for: in :func:`rfm_segments` with ``labels``, churn
falling and holdout spend rising steadily with R and F; a segment that breaks the pattern is where a
model can beat the RFM rule.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.axes import Axes

from churnclv.diagnostics.inputs import DiagnosticsError, require_columns
from churnclv.plotting import _axes

__all__ = ["RFM_COLUMNS", "plot_rfm", "rfm_segments", "rfm_table"]

#: The feature columns behind R, F and M.
RFM_COLUMNS = {"recency_days": "days_since_last_purchase", "frequency": "n_purchase_days", "monetary": "net_spend"}

Cuts = int | Sequence[float]


def _scores(values: np.ndarray, cuts: Cuts, name: str, higher_is_better: bool) -> tuple[np.ndarray, np.ndarray]:
    """Scores 1..k (0 for NaN) and the cut points used."""
    bought = ~np.isnan(values)
    edges: np.ndarray
    if isinstance(cuts, (int, np.integer)) and not isinstance(cuts, bool):
        if cuts < 1:
            raise DiagnosticsError(f"{name}={cuts!r}: a number of groups must be >= 1, e.g. 5 for quintiles.")
        inner = np.linspace(0, 1, int(cuts) + 1)[1:-1]
        edges = np.unique(np.quantile(values[bought], inner)) if bought.any() else np.empty(0)
    else:
        edges = np.asarray(cuts, dtype=float)
        if edges.ndim != 1 or not np.isfinite(edges).all() or (np.diff(edges) <= 0).any():
            raise DiagnosticsError(
                f"{name}={cuts!r}: cut points must be finite and strictly ascending, e.g. (30, 90, 180)."
            )
    group = np.searchsorted(edges, values, side="left") + 1  # right-closed: (cut[i-1], cut[i]] -> i + 1
    score = edges.size + 2 - group if not higher_is_better else group
    return np.where(bought, score, 0).astype(np.int64), edges


def rfm_table(
    features: pd.DataFrame,
    *,
    recency_cuts: Cuts = 5,
    frequency_cuts: Cuts = 5,
    monetary_cuts: Cuts = 5,
) -> pd.DataFrame:
    """One row per customer with R, F and M and their scores.

    Parameters
    ----------
    features : pandas.DataFrame
        The feature frame (:func:`churnclv.features.compute_features`): ``customer_id`` and the
        columns of :data:`RFM_COLUMNS`.
    recency_cuts, frequency_cuts, monetary_cuts : int or sequence of float
        Ascending upper edges of the groups (days, purchase days, currency), or a number of groups
        cut at the quantiles of the customers with a purchase (default: quintiles).

    Returns
    -------
    pandas.DataFrame
        ``customer_id``, ``recency_days``, ``frequency``, ``monetary``, the scores ``R``, ``F``, ``M``
        and ``rfm`` (``"545"``). The cut points used are in ``attrs["cuts"]``.
    """
    frame = require_columns(
        features,
        ("customer_id", *RFM_COLUMNS.values()),
        "rfm_table",
        "pass the feature frame of churnclv.features.compute_features.",
    )
    out = pd.DataFrame({"customer_id": frame["customer_id"].to_numpy()})
    for name, col in RFM_COLUMNS.items():
        out[name] = pd.to_numeric(frame[col]).to_numpy(dtype=float, na_value=np.nan)
    # a customer who never bought has no recency (NaN), 0 purchase days and 0 spend: all three score 0
    never = np.isnan(out["recency_days"].to_numpy())
    cuts = {}
    for score, name, given, higher in (
        ("R", "recency", recency_cuts, False),
        ("F", "frequency", frequency_cuts, True),
        ("M", "monetary", monetary_cuts, True),
    ):
        column = "recency_days" if score == "R" else name
        values = np.where(never, np.nan, out[column].to_numpy())
        out[score], cuts[score] = _scores(values, given, f"{name}_cuts", higher)
    out["rfm"] = out["R"].astype(str) + out["F"].astype(str) + out["M"].astype(str)
    out.attrs["cuts"] = {k: v.tolist() for k, v in cuts.items()}
    return out


def rfm_segments(table: pd.DataFrame, *, by: Sequence[str] = ("R", "F"), labels: Any = None) -> pd.DataFrame:
    """Customers and their means per RFM segment, with what they did next when ``labels`` are given.

    Parameters
    ----------
    table : pandas.DataFrame
        :func:`rfm_table` output.
    by : sequence of {"R", "F", "M"}, default ("R", "F")
        The scores that make a segment.
    labels : pandas.DataFrame, optional
        ``customer_id``, ``churned`` and ``spend`` of the window after as-of
        (:func:`churnclv.features.compute_labels`): adds ``churn_rate`` and ``mean_spend`` per segment.

    Returns
    -------
    pandas.DataFrame
        One row per segment present: the ``by`` scores, ``customers``, ``customer_share``, the means of
        ``recency_days``, ``frequency`` and ``monetary``, and with labels ``churn_rate``, ``mean_spend``.
    """
    keys = list(by)
    if not keys or any(k not in ("R", "F", "M") for k in keys):
        raise DiagnosticsError(f"by={by!r} must name one or more of 'R', 'F', 'M'.")
    data = require_columns(table, ("customer_id", *keys), "rfm_segments", "pass the output of rfm_table.")
    aggs = {
        "customers": ("customer_id", "size"),
        "recency_days": ("recency_days", "mean"),
        "frequency": ("frequency", "mean"),
        "monetary": ("monetary", "mean"),
    }
    if labels is not None:
        labs = require_columns(
            labels,
            ("customer_id", "churned", "spend"),
            "rfm_segments: labels",
            "pass churnclv.features.compute_labels.",
        )
        data = data.merge(
            labs[["customer_id", "churned", "spend"]].astype({"customer_id": data["customer_id"].dtype}),
            on="customer_id",
            how="left",
            validate="one_to_one",
        )
        if data["churned"].isna().any():
            raise DiagnosticsError(
                f"rfm_segments: labels hold no row for {int(data['churned'].isna().sum())} customer(s) of the table; "
                "compute the labels at the features' as-of date."
            )
        data["churned"] = data["churned"].astype(float)
        aggs |= {"churn_rate": ("churned", "mean"), "mean_spend": ("spend", "mean")}
    out = data.groupby(keys).agg(**aggs).reset_index()
    out.insert(len(keys) + 1, "customer_share", out["customers"] / len(data))
    return out


def plot_rfm(table: pd.DataFrame, *, value: str = "customers", labels: Any = None, ax: Axes | None = None) -> Axes:
    """Heat map of R (rows, best on top) against F (columns) from :func:`rfm_segments`.

    ``value`` is any column of :func:`rfm_segments` (``customers``, ``monetary``, ``churn_rate`` with
    ``labels``, ...); the image array is that column pivoted (empty cells masked). Sign-ups (score 0)
    are left out.
    """
    segments = rfm_segments(table, by=("R", "F"), labels=labels)
    if value not in segments.columns[2:]:
        raise DiagnosticsError(f"value={value!r} is not one of {list(segments.columns[2:])}.")
    segments = segments[(segments["R"] > 0) & (segments["F"] > 0)]
    matrix = segments.pivot_table(index="R", columns="F", values=value, aggfunc="first", dropna=False)
    matrix = matrix.sort_index(ascending=False)
    values = matrix.to_numpy(dtype=float)
    ax = _axes(ax, (6.0, 4.5))
    image = ax.imshow(np.ma.masked_invalid(values), cmap="viridis", aspect="auto")
    for i, j in zip(*np.nonzero(np.isfinite(values)), strict=True):
        text = f"{values[i, j]:.0%}" if value in ("customer_share", "churn_rate") else f"{values[i, j]:,.3g}"
        ax.text(j, i, text, ha="center", va="center", fontsize=7, color="white")
    ax.set_xticks(range(values.shape[1]), [str(c) for c in matrix.columns])
    ax.set_yticks(range(values.shape[0]), [str(r) for r in matrix.index])
    ax.set(xlabel="F score (more purchase days ->)", ylabel="R score (more recent ->)", title=f"RFM: {value}")
    ax.figure.colorbar(image, ax=ax, shrink=0.8, label=value)
    return ax
