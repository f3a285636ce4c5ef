"""Drift between the model's reference (its training snapshot) and this week's features and scores.

Each column's drift is its population stability index, ``PSI = sum((c - r) ln(c / r))`` over bins,
with ``r`` and ``c`` the reference's and this week's shares of a bin (floored at :data:`FLOOR` so an
empty bin stays finite). A numeric column with more distinct values than bins is cut at the
reference's quantiles (so each bin holds about ``1/bins`` of the reference); a column with few values, a
text or a boolean one is compared category by category (this week's categories unknown to the reference
in one bin); missing values are a bin of their own. The PSI is a size of the shift, not a test: on
a base of thousands every p-value is tiny, while a PSI over 0.25 means the same on 1,000 or 1,000,000
customers. Continuous columns also get the two-sample Kolmogorov-Smirnov statistic (the largest gap
between the two distribution functions), for reading, not for the thresholds.

Why hand-written and not Evidently: the report needs these few numbers as JSON, with the binning fixed
and stated here (a threshold means little if the bins move with a library release). Evidently 0.7.23
would add about 30 packages to the install (``pip install --dry-run``: a web server, litestar, with
uvloop and websockets; plotly; nltk; statsmodels; Faker; iterative-telemetry, which reports usage
unless turned off) for a PSI that is a dozen lines of numpy, and a KS statistic scipy already has.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection
from typing import Any

import numpy as np
import pandas as pd
from scipy.stats import ks_2samp

__all__ = ["FLOOR", "column_drift", "drift_report", "psi", "unseen_share"]

FLOOR = 1e-4  # the smallest share a bin counts with (an empty bin would make the PSI infinite)
SCORE_COLUMNS = ("p_churn", "clv", "expected_spend", "growth_score")
_NULL = "(missing)"
_OTHER = "(unseen category)"


def psi(reference: np.ndarray, current: np.ndarray) -> float:
    """The PSI of two vectors of bin shares (each summing to 1), each share floored at :data:`FLOOR`."""
    r = np.maximum(np.asarray(reference, dtype=float), FLOOR)
    c = np.maximum(np.asarray(current, dtype=float), FLOOR)
    return float(np.sum((c - r) * np.log(c / r)))


def _shares(codes: np.ndarray, n_bins: int) -> np.ndarray:
    counts = np.bincount(codes, minlength=n_bins).astype(float)
    shares: np.ndarray = counts / max(counts.sum(), 1.0)
    return shares


def _categorical(ref: pd.Series, cur: pd.Series) -> tuple[np.ndarray, np.ndarray, list[str]]:
    r = ref.astype("string").fillna(_NULL)
    c = cur.astype("string").fillna(_NULL)
    cats = sorted(set(r.unique()))
    index = {v: i for i, v in enumerate(cats)}
    other = len(cats)
    rc = r.map(index).to_numpy(dtype=int)
    cc = c.map(lambda v: index.get(v, other)).to_numpy(dtype=int)
    return _shares(rc, other + 1), _shares(cc, other + 1), [*cats, _OTHER]


def _numeric(ref: pd.Series, cur: pd.Series, bins: int) -> tuple[np.ndarray, np.ndarray, list[float]]:
    r = pd.to_numeric(ref, errors="coerce").to_numpy(dtype=float)
    c = pd.to_numeric(cur, errors="coerce").to_numpy(dtype=float)
    rv = r[np.isfinite(r)]
    edges = np.unique(np.quantile(rv, np.arange(1, bins) / bins)) if len(rv) else np.array([])
    n = len(edges) + 2  # the value bins, then the missing values' bin

    def codes(x: np.ndarray) -> np.ndarray:
        out = np.full(len(x), n - 1)
        ok = np.isfinite(x)
        out[ok] = np.searchsorted(edges, x[ok], side="left")
        return out

    return _shares(codes(r), n), _shares(codes(c), n), edges.tolist()


def column_drift(ref: pd.Series, cur: pd.Series, bins: int = 10) -> dict[str, Any]:
    """The drift of one column: ``kind`` (``numeric``: quantile bins; ``categorical``), ``psi``, the
    ``ks`` statistic (continuous columns, else None), each side's missing share and mean (numeric)."""
    numeric = pd.api.types.is_numeric_dtype(ref) and not pd.api.types.is_bool_dtype(ref)
    distinct = ref.dropna().nunique()
    row: dict[str, Any] = {"column": str(ref.name), "kind": "numeric" if numeric and distinct > bins else "categorical"}
    if row["kind"] == "numeric":
        r_sh, c_sh, _ = _numeric(ref, cur, bins)
        rv = pd.to_numeric(ref, errors="coerce").dropna().to_numpy(dtype=float)
        cv = pd.to_numeric(cur, errors="coerce").dropna().to_numpy(dtype=float)
        row["ks"] = float(ks_2samp(rv, cv, method="asymp").statistic) if len(rv) and len(cv) else None
    else:
        r_sh, c_sh, _ = _categorical(ref, cur)
        row["ks"] = None
    row["psi"] = psi(r_sh, c_sh)
    row["reference_missing"] = float(ref.isna().mean()) if len(ref) else None
    row["current_missing"] = float(cur.isna().mean()) if len(cur) else None
    if numeric:
        row["reference_mean"] = float(ref.mean()) if ref.notna().any() else None
        row["current_mean"] = float(cur.mean()) if cur.notna().any() else None
    return row


def _mix(ref: pd.Series, cur: pd.Series) -> dict[str, Any]:
    r_sh, c_sh, cats = _categorical(ref, cur)
    keep = [i for i, (a, b) in enumerate(zip(r_sh, c_sh, strict=True)) if a or b]
    return {
        "psi": psi(r_sh, c_sh) if len(ref) and len(cur) else None,
        "shares": [{"value": cats[i], "reference": float(r_sh[i]), "current": float(c_sh[i])} for i in keep],
    }


def unseen_share(
    current: pd.DataFrame, day: dt.date, trained_as_of: dt.date | None, reference_ids: pd.Series
) -> float | None:
    """The share of this week's customers (features as of ``day``) unknown when the model was trained:
    first seen after ``trained_as_of`` (``tenure_days`` below ``day - trained_as_of``); without a training
    as-of or the tenure column, the share absent from the reference (``reference_ids``)."""
    if not len(current):
        return None
    if trained_as_of is not None and "tenure_days" in current.columns:
        gap = (day - trained_as_of).days
        return float((current["tenure_days"].to_numpy(dtype=float) < gap).mean())
    return float((~current["customer_id"].isin(set(reference_ids))).mean())


def drift_report(
    reference_features: pd.DataFrame,
    current_features: pd.DataFrame,
    reference_scores: pd.DataFrame,
    current_scores: pd.DataFrame,
    *,
    day: dt.date,
    trained_as_of: dt.date | None,
    bins: int = 10,
    ignore: Collection[str] = (),
) -> dict[str, Any]:
    """The drift of this week (features and scores as of ``day``) against the reference: ``features`` and
    ``scores`` (one :func:`column_drift` each, features sorted by PSI, largest first, each ``ignored`` when
    in ``ignore``), ``max_feature`` and ``max_feature_psi`` (the largest PSI of a feature not ignored, as
    the thresholds judge them: ``[monitor] drift_ignore``), ``tier_mix`` and ``action_mix`` (shares and PSI)
    and ``unseen_share`` (:func:`unseen_share`)."""
    features = [
        column_drift(reference_features[c], current_features[c], bins) | {"ignored": c in ignore}
        for c in reference_features.columns
        if c != "customer_id" and c in current_features.columns
    ]
    features.sort(key=lambda r: -r["psi"])
    top = next((r for r in features if not r["ignored"]), None)  # sorted: the first counted is the largest
    scores = [
        column_drift(reference_scores[c], current_scores[c], bins)
        for c in SCORE_COLUMNS
        if c in reference_scores.columns and c in current_scores.columns
    ]
    mixes = {
        f"{c}_mix": _mix(reference_scores[c], current_scores[c])
        for c in ("tier", "action")
        if c in reference_scores.columns and c in current_scores.columns
    }
    return {
        "customers": {"reference": len(reference_features), "current": len(current_features)},
        "features": features,
        "scores": scores,
        "tier_mix": mixes.get("tier_mix", {"psi": None, "shares": []}),
        "action_mix": mixes.get("action_mix", {"psi": None, "shares": []}),
        "max_feature": None if top is None else top["column"],
        "max_feature_psi": None if top is None else top["psi"],
        "unseen_share": unseen_share(current_features, day, trained_as_of, reference_features["customer_id"]),
    }
