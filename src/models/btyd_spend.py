"""Spend in the BTYD models: the Gamma-Gamma stage of a fit and the expected order value it gives.

Gamma-Gamma (Fader, Hardie and Lee 2005, "RFM and CLV: Using Iso-Value Curves for Customer Base
Analysis", JMR 42(4), 415-430; Fader and Hardie 2013, "The Gamma-Gamma Model of Monetary Value",
brucehardie.com note 025) is fitted on the repeat buyers with a positive ``monetary_value``. With
too few of them, or a fit that fails, every customer's expected order value is the population mean
order value instead, and the fallback says why.

Mean order values above :func:`monetary_cap` are taken as the cap, in the fit and in every
prediction: one customer with a one-off order a thousand times the usual would otherwise expect
millions in the next weeks, and through the totals the learned models are scaled to, raise every
other customer's expected spend and CLV with it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from churnclv.models.btyd_fitting import BTYDConvergenceError, fit_gamma_gamma, log_likelihood_gamma_gamma
from churnclv.models.btyd_summary import unique_rows
from churnclv.models.fit_memo import memo
from churnclv.models.lifetimes_fitters import gamma_gamma_with_params, quiet

__all__ = ["CAP_IQR", "CAP_MIN_RATIO", "SpendFit", "capped", "fit_spend", "monetary_cap", "order_value"]

#: The cap on a customer's mean order value: Tukey's far-out fence on its log over the repeat
#: buyers, Q3 + CAP_IQR x IQR, and at least CAP_MIN_RATIO x Q3 (where most order values are equal,
#: as in a subscription shop, the IQR is 0)
CAP_IQR = 3.0
CAP_MIN_RATIO = 10.0
_CAP_MIN_BUYERS = 4  # fewer repeat buyers with a positive mean order value: no cap


@dataclass(frozen=True)
class SpendFit:
    """What the spend stage of a fit learned (see :func:`fit_spend`)."""

    params: dict[str, float] | None  # Gamma-Gamma p, q, v; None under the fallback
    log_likelihood: float | None
    mean_order_value: float  # mean net spend per repeat purchase day over repeat buyers
    fallback: str | None  # why Gamma-Gamma is not used, or None
    n_repeat_buyers: int  # with a positive monetary_value


def monetary_cap(f: np.ndarray, m: np.ndarray) -> float | None:
    """The cap on mean order values (:data:`CAP_IQR`) from the repeat buyers (``f > 0``) with ``m > 0``;
    None with fewer than 4 of them."""
    values = m[(f > 0) & (m > 0) & np.isfinite(m)]
    if values.size < _CAP_MIN_BUYERS:
        return None
    q1, q3 = np.quantile(np.log(values), [0.25, 0.75])
    return float(np.exp(q3 + max(CAP_IQR * (q3 - q1), np.log(CAP_MIN_RATIO))))


@memo
def fit_spend(
    f: np.ndarray,
    m: np.ndarray,
    *,
    compress: bool,
    penalizer: float,
    tol: float,
    min_repeat_buyers: int,
    where: str,
) -> SpendFit:
    """Fit Gamma-Gamma on the repeat buyers of ``frequency`` ``f`` and ``monetary_value`` ``m``.

    ``compress`` fits on the unique ``(frequency, monetary_value)`` rows with their counts as
    weights. Fewer than ``min_repeat_buyers`` repeat buyers with ``m > 0``, a fit that does not
    converge or one with ``q <= 1`` leave ``params`` None and say why in ``fallback``; ``where``
    names the caller in the fallback's reason. Without any repeat buyer with ``m > 0`` (purchases
    without spend: ``zero_amount_is_purchase`` on free items) the mean order value is 0.
    """
    repeat = (f > 0) & (m > 0)
    n_repeat = int(repeat.sum())
    if n_repeat == 0:  # purchases without spend (zero_amount_is_purchase, free items): nothing to expect
        return SpendFit(None, None, 0.0, f"{where}: no repeat buyer with monetary_value > 0: every order value is 0", 0)
    fx, fm = f[repeat], m[repeat]
    mean_order_value = float(np.sum(fx * fm) / np.sum(fx))
    params: dict[str, float] | None = None
    log_likelihood: float | None = None
    fallback: str | None = None
    if n_repeat < min_repeat_buyers:
        fallback = f"only {n_repeat} repeat buyers with monetary_value > 0 (gg_min_repeat_buyers={min_repeat_buyers})"
    else:
        gw: np.ndarray | None
        if compress:
            (gx, gm), gw, _ = unique_rows(fx, fm)
        else:
            gx, gm, gw = fx, fm, None
        try:
            params = fit_gamma_gamma(gx, gm, gw, penalizer, tol)
            log_likelihood = log_likelihood_gamma_gamma(params, gx, gm, np.ones(gx.size) if gw is None else gw)
        except BTYDConvergenceError as exc:
            params, fallback = None, str(exc)
    return SpendFit(params, log_likelihood, mean_order_value, fallback, n_repeat)


def order_value(
    params: Mapping[str, float] | None,
    mean_order_value: float,
    cols: Mapping[str, np.ndarray],
    cap: float | None = None,
) -> np.ndarray:
    """Gamma-Gamma conditional expected value of a future purchase day, per customer.

    ``E[M | x, m] = (p x / (p x + q - 1)) m + (1 - p x / (p x + q - 1)) p v / (q - 1)``
    (Fader, Hardie and Lee 2005, JMR; note 025, eq. 5). Customers without repeat purchases get the
    population mean; a non-positive ``monetary_value`` (net returns) is taken as 0 before the
    weighting, and one above ``cap`` (:func:`monetary_cap`) as ``cap``. Under the fallback (``params``
    None) every customer gets ``mean_order_value``.
    ``cols`` is a checked summary (:func:`churnclv.models.btyd_summary.validate_summary`).
    """
    n = cols["frequency"].size
    if params is None:
        return np.full(n, mean_order_value)
    f = np.where(cols["never"], 0.0, cols["frequency"])
    m = capped(cols["monetary_value"], cap)
    with quiet():
        v = gamma_gamma_with_params(params).conditional_expected_average_profit(f, m)
    return np.asarray(v, dtype=float)


def capped(m: np.ndarray, cap: float | None) -> np.ndarray:
    """Mean order values as the spend models read them: at least 0 (net returns) and at most ``cap``."""
    out: np.ndarray = np.maximum(m, 0.0)
    return out if cap is None else np.asarray(np.minimum(out, cap))
