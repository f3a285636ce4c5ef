"""Qini and uplift curves: how well a score ranks customers by the effect of a contact.

Customers of both arms are ranked by the score, highest first. At the top ``k`` (Radcliffe 2007,
"Using control groups to target on predicted lift"):

- the Qini value is ``Y_t(k) - Y_c(k) * N_t(k) / N_c(k)``: the outcome the treated of the top ``k``
  gained over what the controls of the top ``k`` scaled to as many customers would have had;
- the uplift is ``Y_t(k) / N_t(k) - Y_c(k) / N_c(k)``, the measured effect per customer there.

A random ranking gives the straight line from 0 to the Qini value of the whole population; the Qini
coefficient is the mean gap between the curve and that line, per customer of the population.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = ["policy_profit", "qini_coefficient", "qini_curve", "uplift_at_k"]


def _ranked(outcome: np.ndarray, treated: np.ndarray, score: np.ndarray) -> tuple[np.ndarray, ...]:
    y, t, s = (np.asarray(v) for v in (outcome, treated, score))
    order = np.argsort(-s.astype(float), kind="stable")
    y, t = y[order].astype(float), t[order].astype(bool)
    n_t, n_c = np.cumsum(t), np.cumsum(~t)
    y_t, y_c = np.cumsum(np.where(t, y, 0.0)), np.cumsum(np.where(t, 0.0, y))
    return n_t, n_c, y_t, y_c


def qini_curve(outcome: np.ndarray, treated: np.ndarray, score: np.ndarray, n_points: int = 100) -> pd.DataFrame:
    """The Qini and uplift curves at ``n_points`` shares of the population ranked by ``score``.

    Returns
    -------
    pandas.DataFrame
        ``share`` (of customers taken), ``customers``, ``qini`` (incremental outcome, in the unit of
        ``outcome``), ``random`` (the random ranking's line) and ``uplift`` (per customer; NaN while
        an arm is empty).
    """
    n_t, n_c, y_t, y_c = _ranked(outcome, treated, score)
    n = n_t.size
    if n == 0:
        return pd.DataFrame(columns=["share", "customers", "qini", "random", "uplift"])
    k = np.unique(np.ceil(np.linspace(0, 1, n_points + 1)[1:] * n).astype(int)) - 1
    with np.errstate(divide="ignore", invalid="ignore"):
        qini = y_t[k] - np.where(n_c[k] > 0, y_c[k] * n_t[k] / n_c[k], 0.0)
        uplift = np.where((n_t[k] > 0) & (n_c[k] > 0), y_t[k] / n_t[k] - y_c[k] / n_c[k], np.nan)
    share = (k + 1) / n
    return pd.DataFrame(
        {
            "share": np.r_[0.0, share],
            "customers": np.r_[0, k + 1],
            "qini": np.r_[0.0, qini],
            "random": np.r_[0.0, share * qini[-1]],
            "uplift": np.r_[np.nan, uplift],
        }
    )


def qini_coefficient(outcome: np.ndarray, treated: np.ndarray, score: np.ndarray, n_points: int = 100) -> float:
    """The mean gap between the Qini curve and the random line, per customer of the population
    (0: no better than random; in the unit of ``outcome``)."""
    curve = qini_curve(outcome, treated, score, n_points)
    if curve.empty:
        return float("nan")
    n = curve["customers"].iloc[-1]
    return float((curve["qini"] - curve["random"]).iloc[1:].mean() / n)


def uplift_at_k(outcome: np.ndarray, treated: np.ndarray, score: np.ndarray, k: float) -> float:
    """The measured uplift per customer among the top ``k`` share (0 < k <= 1) ranked by ``score``."""
    if not 0 < k <= 1:
        raise ValueError(f"k={k!r}: must be a share in (0, 1], e.g. 0.3 for the top 30 %")
    n_t, n_c, y_t, y_c = _ranked(outcome, treated, score)
    if n_t.size == 0:
        return float("nan")
    i = int(np.ceil(k * n_t.size)) - 1
    if n_t[i] == 0 or n_c[i] == 0:
        return float("nan")
    return float(y_t[i] / n_t[i] - y_c[i] / n_c[i])


def policy_profit(
    outcome: np.ndarray, treated: np.ndarray, contact: np.ndarray, cost: np.ndarray, *, margin: float = 1.0
) -> float:
    """What contacting the customers flagged ``contact`` would have earned, measured on a campaign with a holdout.

    Among the flagged customers, the treated arm against the holdout: ``n x margin x (mean outcome of
    the treated - mean outcome of the controls) - their cost`` (a difference of means, each arm
    standing for all ``n`` flagged customers). 0 when nobody is flagged; NaN when the flagged
    customers lack an arm.
    """
    y, t, c = (np.asarray(v) for v in (outcome, treated, contact))
    t, c = t.astype(bool), c.astype(bool)
    n = int(c.sum())
    if n == 0:
        return 0.0
    if not (t & c).any() or not (~t & c).any():
        return float("nan")
    y = y.astype(float)
    gain = y[t & c].mean() - y[~t & c].mean()
    return float(n * margin * gain - np.asarray(cost, dtype=float)[c].sum())
