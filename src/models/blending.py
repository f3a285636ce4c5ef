"""Log-odds arithmetic for churn probabilities (the blend of a learned model with BTYD and its
recalibration, Platt scaling against soft labels) and the factors that carry totals."""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.optimize import minimize
from scipy.special import expit as _scipy_expit

__all__ = [
    "blend_logodds",
    "churn_probability",
    "clv_fallback_ratio",
    "clv_from_spend",
    "coherent_totals",
    "expit",
    "floored_total_factor",
    "logit",
    "row_ratio",
    "soft_platt",
    "total_factor",
]

P_CLIP = 1e-6  # probabilities are clipped to [1e-6, 1 - 1e-6] before taking log-odds
CLV_MIN_SPEND = 1e-9  # below this BTYD spend, a customer's CLV profile is the fitted median
SOFT_PLATT_ROWS = 200_000  # rows the recalibration reads at most (an even spread of the input)


def logit(p: np.ndarray) -> np.ndarray:
    """Log-odds of ``p``, clipped to [P_CLIP, 1 - P_CLIP] first."""
    q = np.clip(np.asarray(p, dtype=float), P_CLIP, 1.0 - P_CLIP)
    return np.asarray(np.log(q) - np.log1p(-q), dtype=float)


def expit(s: np.ndarray) -> np.ndarray:
    """The logistic function, as floats."""
    return np.asarray(_scipy_expit(s), dtype=float)


def blend_logodds(p_learned: np.ndarray, p_btyd: np.ndarray, btyd_weight: float) -> np.ndarray:
    """``(1 - w) logit(p_learned) + w logit(p_btyd)``; the learned log-odds alone when ``w <= 0``."""
    s = logit(p_learned)
    return s if btyd_weight <= 0 else (1.0 - btyd_weight) * s + btyd_weight * logit(p_btyd)


def churn_probability(
    p_learned: np.ndarray, p_btyd: np.ndarray, btyd_weight: float, calibration: tuple[float, float] | None
) -> np.ndarray:
    """P(churn) from the learned model's: blended with BTYD's log-odds (weight ``btyd_weight``), then
    recalibrated ``expit(a + b s)`` when ``calibration = (a, b)``; unchanged when neither applies."""
    if btyd_weight <= 0 and calibration is None:
        return np.asarray(p_learned, dtype=float)
    s = blend_logodds(p_learned, p_btyd, btyd_weight)
    return expit(s if calibration is None else calibration[0] + calibration[1] * s)


def total_factor(predicted: np.ndarray, want: np.ndarray) -> float | None:
    """The factor making ``sum(predicted)`` equal ``sum(want)``; None when either total is not a finite number > 0."""
    total, target = float(np.sum(predicted)), float(np.sum(want))
    if total > 0 and target > 0 and np.isfinite(total) and np.isfinite(target):
        return target / total
    return None


def coherent_totals(
    purchases: np.ndarray, spend: np.ndarray, p_churn: np.ndarray, horizon_days: int
) -> tuple[np.ndarray, np.ndarray]:
    """Expected purchases held to what the churn probability allows, and spend with them.

    A count of purchase days in ``horizon_days`` days is at least the chance it is not 0 and at most
    ``horizon_days`` times it: ``1 - p <= E[N] <= H (1 - p)``. The churn, purchases and spend models
    can be three models (866 of 3,000 customers of a generated world broke the lower bound; on CDNOW
    with churn by BTYD and purchases by the hybrid model, a customer at p_churn 1.000000 expected 0.40
    purchases). Where the upper bound binds, spend is scaled down with the purchases (the same value
    per purchase); the lower bound leaves spend as it is (a purchase more likely than the purchases
    model thought says nothing of its value).
    """
    alive = 1.0 - p_churn
    capped = np.minimum(purchases, float(horizon_days) * alive)
    # where the cap binds, spend keeps its value per purchase (0 purchases expected: no spend either)
    scale = np.divide(capped, purchases, out=np.ones_like(capped), where=capped < purchases)
    return np.maximum(capped, alive), spend * scale


def floored_total_factor(predicted: np.ndarray, want: np.ndarray, floor: np.ndarray) -> float | None:
    """The factor ``f`` making ``sum(max(f predicted, floor))`` equal ``sum(want)`` (the total after the
    floor each row's value is held to); the plain :func:`total_factor` when the floor alone reaches
    the total or there is no floor; None as it says."""
    plain = total_factor(predicted, want)
    if plain is None or not np.any(floor > 0):
        return plain
    target = float(np.sum(want))
    if float(np.sum(floor)) >= target:
        return plain
    lo, hi = 0.0, plain  # sum(max(f x, floor)) >= sum(f x): the factor is at most the plain one

    def total(f: float) -> float:
        return float(np.sum(np.maximum(f * predicted, floor)))

    for _ in range(60):  # bisection to ~1e-18 of the plain factor
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if total(mid) < target else (lo, mid)
    return hi


def clv_fallback_ratio(bt_clv: np.ndarray, bt_spend: np.ndarray, default: float) -> float:
    """Median CLV per unit of horizon spend over the training snapshot (fitted, so a customer's CLV
    never depends on who else is in the frame being scored); ``default`` when BTYD expects no spend."""
    ok = bt_spend > CLV_MIN_SPEND
    return float(np.median(bt_clv[ok] / bt_spend[ok])) if ok.any() else default


def clv_from_spend(bt_clv: np.ndarray, bt_spend: np.ndarray, spend: np.ndarray, fallback: float) -> np.ndarray:
    """Discounted CLV with a learned spend model: BTYD gives each customer's time profile (CLV per
    unit of horizon spend) and the learned model the level, ``clv = spend * (btyd_clv / btyd_spend)``;
    where BTYD expects (almost) no spend, ``fallback`` (:func:`clv_fallback_ratio`) is the profile."""
    ok = bt_spend > CLV_MIN_SPEND
    ratio = np.full_like(bt_clv, fallback)
    ratio[ok] = bt_clv[ok] / bt_spend[ok]
    clv: np.ndarray = spend * ratio
    return clv


def row_ratio(num: pd.Series, den: pd.Series) -> np.ndarray:
    """``num / den`` per row, 1 where ``den`` is not > 0."""
    n, d = num.to_numpy(dtype=float), den.to_numpy(dtype=float)
    out: np.ndarray = np.ones_like(d)
    ok = d > 0
    out[ok] = n[ok] / d[ok]
    return out


def soft_platt(s: np.ndarray, target: np.ndarray) -> tuple[float, float]:
    """``(a, b)`` minimising the cross-entropy of ``expit(a + b s)`` against the probabilities
    ``target`` (Platt scaling with soft labels). Falls back to the identity when it cannot fit."""
    s = np.asarray(s, dtype=float)
    t = np.clip(np.asarray(target, dtype=float), 0.0, 1.0)
    if s.size > SOFT_PLATT_ROWS:
        idx = np.linspace(0, s.size - 1, SOFT_PLATT_ROWS).astype(np.int64)
        s, t = s[idx], t[idx]
    ok = np.isfinite(s) & np.isfinite(t)
    s, t = s[ok], t[ok]
    if s.size < 2 or np.ptp(s) == 0:
        return (0.0, 1.0)
    mu, sd = float(s.mean()), float(s.std())
    z = (s - mu) / sd

    def loss(ab: np.ndarray) -> tuple[float, np.ndarray]:
        u = ab[0] + ab[1] * z
        # cross-entropy in a stable form: log(1 + e^u) - t u
        val = np.logaddexp(0.0, u) - t * u
        g = expit(u) - t
        return float(val.mean()), np.array([g.mean(), (g * z).mean()])

    res = minimize(loss, np.array([0.0, 1.0]), jac=True, method="BFGS")
    if not np.all(np.isfinite(res.x)):
        return (0.0, 1.0)
    a, b = float(res.x[0]), float(res.x[1])
    # back to the scale of s: a + b (s - mu) / sd
    return (a - b * mu / sd, b / sd)
