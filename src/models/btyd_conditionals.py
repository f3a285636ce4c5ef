"""The BTYD models' conditional quantities: P(alive), P(no purchase), expected purchases, discounted purchases.

Everything here is in the model's time unit and conditional on a customer's ``(x, t_x, T)``
(frequency, recency, age): ``P(alive at T)``, ``P(no purchase in (T, T+h])``, ``E[purchases in
(T, T+h]]`` and the discounted monthly purchases of the CLV (the wait to the next purchase:
:mod:`churnclv.models.next_purchase`).

Every quantity holds for every parameter set a fit can return: each is evaluated by series, closed
form or quadrature, whichever is exact for the row (lifetimes' own BG/NBD form is NaN when
``a + b < 1``, as CDNOW fits give; its Pareto/NBD forms overflow or cancel for large ``s``).

The models are the papers': BG/NBD (Fader, Hardie and Lee 2005, Marketing Science 24(2)),
Pareto/NBD (Schmittlein, Morrison and Colombo 1987, Management Science 33(1); Fader and Hardie
notes 009 and 028) and MBG/NBD (Batislam, Denizel and Filiztekin 2007, IJRM 24(3); Wagner and
Hoppe 2008, IJRM 25(3)).
"""

from __future__ import annotations

import itertools
import logging
import math
from collections.abc import Mapping
from typing import Any

import numpy as np
from scipy import integrate, special

from churnclv.models.btyd_summary import unique_rows

__all__ = [
    "DAYS_PER_MONTH",
    "alive_probability",
    "as_probability",
    "discounted_purchases",
    "expected_purchases",
    "no_purchase_probability",
]

logger = logging.getLogger(__name__)

DAYS_PER_MONTH = 365.25 / 12

# E[purchases | alive] (see _expected_purchases_if_alive): the series route needs w <= 1/2 and
# (k+1) w <= 1, where each term is at most half the previous one.
_SERIES_MAX_W = 0.5
_SERIES_MAX_TERMS = 80
# ... and is used where the closed form would lose more than ~1e-11 to cancellation (see below).
_SERIES_MIN_CANCELLATION = 1e3
# |P| / |1 - P| above this loses more than ~1e-9 (relative) to the cancellation in 1 - P.
_MAX_CANCELLATION = 1e5
# |c| = |a + beta - 1| below this: the closed form's removable singularity; average c +/- _POLE_STEP.
_POLE_GAP = 1e-9
_POLE_STEP = 1e-6
# |a - 1| <= 9e-3 is interpolated from these nodes (degree 5; within 1e-8 of quadrature in our checks).
_A_NODES = 1.0 + 3e-3 * np.array([-3.0, -2.0, -1.0, 1.0, 2.0, 3.0])
_QUAD_RTOL = 1e-10  # relative tolerance of the quadrature fallbacks
# Rounding slack allowed on probabilities before clipping to [0, 1]; more than this is a bug.
_PROB_SLACK = 1e-8


def no_purchase_probability(
    model: str,
    fitter: Any,
    params: Mapping[str, float],
    p_alive: np.ndarray,
    x: np.ndarray,
    tx: np.ndarray,
    t: np.ndarray,
    h: float,
) -> np.ndarray:
    """``P(X(T, T+h) = 0 | x, t_x, T)``: no purchase in the next ``h`` time units.

    BG/NBD and MBG/NBD: a customer alive at ``T`` buys as a Poisson process and can only drop out right
    after a purchase, so with no purchase in ``(T, T+h]`` they stay alive and
    ``P(0 | alive, lambda) = exp(-lambda h)``. Given alive, ``lambda ~ Gamma(r + x, alpha + T)``
    (the alive branch of the likelihood is ``lambda^x exp(-lambda T)`` times a function of ``p``), so
    ``P = P(alive) * ((alpha + T) / (alpha + T + h))^(r + x) + 1 - P(alive)``; the two models differ only
    in ``P(alive)``. Pareto/NBD: lifetimes' conditional pmf at n = 0 (Fader and Hardie note 028); where
    that is not a probability (its hypergeometric terms overflow or cancel, e.g. for large ``s``),
    ``1 - P(alive) int_0^h E[lambda e^(-lambda u)] E[e^(-mu u)] du`` by quadrature
    (:func:`_pareto_purchase_within`).
    """
    if model == "pareto":
        with np.errstate(all="ignore"):
            p0 = np.asarray(
                fitter.conditional_probability_of_n_purchases_up_to_time(0, h, x, tx, t), dtype=float
            ).reshape(x.shape)
        bad = np.flatnonzero(~_is_probability(p0))
        if bad.size:
            (ux, ut), _, inverse = unique_rows(x[bad], t[bad])
            within = np.array(
                [_pareto_purchase_within(params, float(xi), float(ti), h) for xi, ti in zip(ux, ut, strict=True)]
            )
            p0[bad] = 1.0 - p_alive[bad] * within[inverse]
        return p0
    r, alpha = params["r"], params["alpha"]
    survive = np.exp((r + x) * (np.log(alpha + t) - np.log(alpha + t + h)))
    no_purchase: np.ndarray = p_alive * survive + (1.0 - p_alive)
    return no_purchase


def alive_probability(
    model: str, fitter: Any, params: Mapping[str, float], x: np.ndarray, tx: np.ndarray, t: np.ndarray
) -> np.ndarray:
    """``P(alive at T | x, t_x, T)``, unclipped.

    BG/NBD: ``1 / (1 + [x > 0] a / (b + x - 1) ((alpha + T) / (alpha + t_x))^(r + x))`` (Fader, Hardie
    and Lee 2008, "Computing P(alive) Using the BG/NBD Model", brucehardie.com note 021). MBG/NBD:
    ``1 / (1 + a / (b + x) (...)^(r + x))`` (Batislam et al. 2007, eq. 5): a customer may drop out at
    the first purchase too. Both are evaluated as ``expit(-log odds)``, which cannot overflow.
    Pareto/NBD: lifetimes (Fader and Hardie 2005, note 009, eq. 18); where that is not a probability
    (its ``A_0`` is a difference of equal terms at ``t_x = T``, e.g. ``T = 0``, and its powers overflow
    for large ``s``), :func:`_pareto_p_alive_by_quadrature`.
    """
    if model == "pareto":
        with np.errstate(all="ignore"):
            p = np.asarray(fitter.conditional_probability_alive(x, tx, t), dtype=float).reshape(x.shape)
        bad = np.flatnonzero(~_is_probability(p))
        if bad.size:
            (ux, utx, ut), _, inverse = unique_rows(x[bad], tx[bad], t[bad])
            p[bad] = np.array(
                [
                    _pareto_p_alive_by_quadrature(params, float(xi), float(txi), float(ti))
                    for xi, txi, ti in zip(ux, utx, ut, strict=True)
                ]
            )[inverse]
        return p
    r, alpha, a, b = (params[k] for k in ("r", "alpha", "a", "b"))
    shift = 1.0 if model == "bgnbd" else 0.0
    log_odds_dead = (
        math.log(a) - np.log(b + np.maximum(x, shift) - shift) + (r + x) * (np.log(alpha + t) - np.log(alpha + tx))
    )
    p = special.expit(-log_odds_dead)
    return np.where(x == 0, 1.0, p) if model == "bgnbd" else p


def expected_purchases(
    model: str,
    fitter: Any,
    params: Mapping[str, float],
    x: np.ndarray,
    tx: np.ndarray,
    t: np.ndarray,
    h: float,
    p_alive: np.ndarray | None = None,
) -> np.ndarray:
    """``E[X(T, T+h) | x, t_x, T]``: expected purchases in the next ``h`` time units.

    BG/NBD and MBG/NBD: ``P(alive) * E[X(T, T+h) | alive]``, where given alive at ``T``,
    ``lambda ~ Gamma(r + x, alpha + T)`` and ``p ~ Beta(a, b + x)`` (MBG/NBD: ``Beta(a, b + x + 1)``,
    as it survived the first purchase too); see :func:`_expected_purchases_if_alive`. This is Fader,
    Hardie and Lee (2005), eq. 10 (MBG/NBD: Wagner and Hoppe 2008), evaluated without lifetimes' log of
    ``2F1(r+x, b+x; a+b+x-1; z)``, which is NaN where that function is negative (``a + b < 1``,
    ``x = 0``: CDNOW fits give such ``a, b``).

    Pareto/NBD (Fader and Hardie 2005, note 009, eq. 41):
    ``P(alive) (r+x)/(alpha+T) (beta+T)/(s-1) [1 - ((beta+T)/(beta+T+h))^(s-1)]`` with the bracket over
    ``s - 1`` as ``-expm1((s-1) log q) / (s-1)``, exact at ``s = 1`` too.

    ``p_alive`` (from :func:`alive_probability`) is computed when not given.
    """
    # The singular points (a = 1, c = 0, s = 1) are handled below: their warnings are noise.
    with np.errstate(all="ignore"):
        if p_alive is None:
            p_alive = alive_probability(model, fitter, params, x, tx, t)
        if model == "pareto":
            r, alpha, s, beta = (params[k] for k in ("r", "alpha", "s", "beta"))
            scale = beta + t
            log_q = np.log(scale) - np.log(scale + h)
            ratio = -log_q if s == 1.0 else -np.expm1((s - 1.0) * log_q) / (s - 1.0)
            e = p_alive * (r + x) / (alpha + t) * scale * ratio
        else:
            r, alpha, a, b = (params[k] for k in ("r", "alpha", "a", "b"))
            beta_p = b + x + (1.0 if model == "mbgnbd" else 0.0)
            e = p_alive * _expected_purchases_if_alive(r + x, alpha + t, beta_p, a, h)
    return np.maximum(e, 0.0)


def _expected_purchases_if_alive(k: np.ndarray, scale: np.ndarray, beta: np.ndarray, a: float, h: float) -> np.ndarray:
    """``E_alive = E_p[(1 - (A / (A + p h))^k) / p]``, ``p ~ Beta(a, beta)``, ``A = scale``.

    An alive customer buys at rate ``lambda`` and drops out after each purchase with probability
    ``p``, so buys ``(1 - exp(-lambda p h)) / p`` times in expectation over ``h``; averaging over
    ``lambda ~ Gamma(k, A)`` gives the integrand. With ``w = h / A`` and ``c = a + beta - 1`` the closed
    form is ``c / (a - 1) [1 - (1 + w)^(1-a) 2F1(c - k, a - 1; c; w / (1 + w))]`` (Euler's transform
    of Fader, Hardie and Lee 2005, eq. 10). It is exact for every ``a > 0`` but ``a = 1`` and
    ``c = 0`` are removable singularities, and ``1 - P`` cancels for small ``w``, so:

    1. where the closed form would cancel (``|P| / |1 - P| ~ |c| / (|a - 1| k w) >= 1e3``) and
       ``w <= 1/2``, ``(k + 1) w <= 1``: the series ``k w 3F2(k+1, a, 1; a+beta, 2; -w)`` (from
       ``E_alive = k int_0^w 2F1(k+1, a; a+beta; -u) du``): no singularity, no cancellation;
    2. otherwise the closed form, with ``c`` nudged off 0 symmetrically;
    3. rows where it is not finite, negative, above ``k w`` (``E[lambda] h``: E_alive can never
       exceed it) or above ``E[1/p] = c / (a - 1)`` (when ``a > 1``), or loses more than ~1e-9 to
       cancellation: when ``|a - 1| <= 9e-3``, interpolated in ``a`` from nodes 3e-3 apart (the
       closed form is accurate there); else, or if that fails too, adaptive quadrature over ``p``
       (:func:`_alive_mean_by_quadrature`) on the unique rows left, a handful in practice.
    """
    k, scale, beta = np.broadcast_arrays(*(np.asarray(v, dtype=float) for v in (k, scale, beta)))
    w = h / scale
    out = np.empty(w.shape)
    # The series where it converges and the closed form would cancel: 1 - P ~ (a - 1) k w / c there,
    # so |P| / |1 - P| ~ c / (|a - 1| k w).
    series = (
        (w <= _SERIES_MAX_W)
        & ((k + 1.0) * w <= 1.0)
        & (np.abs(a + beta - 1.0) >= _SERIES_MIN_CANCELLATION * abs(a - 1.0) * k * w)
    )
    if series.any():
        out[series] = _alive_mean_series(k[series], w[series], beta[series], a)
    rest = np.flatnonzero(~series)
    if rest.size == 0:
        return out
    kr, wr, br = k[rest], w[rest], beta[rest]
    e, ok = _alive_mean_closed(kr, wr, br, a)
    if not ok.all() and abs(a - 1.0) <= _A_NODES[-1] - 1.0:
        bad = np.flatnonzero(~ok)
        e_interp = np.zeros(bad.size)
        ok_interp = np.ones(bad.size, dtype=bool)
        for j, node in enumerate(_A_NODES):
            weight = np.prod([(a - m) / (node - m) for i, m in enumerate(_A_NODES) if i != j])
            e_node, ok_node = _alive_mean_closed(kr[bad], wr[bad], br[bad], float(node))
            e_interp += weight * e_node
            ok_interp &= ok_node
        ok_interp &= _alive_mean_plausible(e_interp, kr[bad], wr[bad], br[bad], a)
        e[bad[ok_interp]] = e_interp[ok_interp]
        ok[bad[ok_interp]] = True
    if not ok.all():
        bad = np.flatnonzero(~ok)
        (uk, uw, ub), _, inverse = unique_rows(kr[bad], wr[bad], br[bad])
        values = np.array(
            [
                _alive_mean_by_quadrature(float(ki), float(wi), float(bi), a)
                for ki, wi, bi in zip(uk, uw, ub, strict=True)
            ]
        )
        e[bad] = values[inverse]
        logger.debug("E[purchases | alive]: %d unique row(s) by quadrature (a=%g, h=%g)", uk.size, a, h)
    out[rest] = e
    return out


def _alive_mean_series(k: np.ndarray, w: np.ndarray, beta: np.ndarray, a: float) -> np.ndarray:
    """``k w 3F2(k+1, a, 1; a+beta, 2; -w)`` for ``w <= 1/2``, ``(k+1) w <= 1``.

    Term ``m + 1`` over term ``m`` is at most ``rho = w max(1, (k+1)/2) <= 1/2``, so a row needs
    ``log(1e-17) / log(rho)`` terms; rows are sorted by that, and each step only updates those that
    still need it (most rows have a small ``w`` and need a few terms).
    """
    rho = w * np.maximum(1.0, (k + 1.0) / 2.0)
    needed = np.ceil(math.log(1e-17) / np.log(np.minimum(rho, 0.5)))
    order = np.argsort(-needed, kind="stable")
    k, w, beta, needed = k[order], w[order], beta[order], needed[order]
    total = np.ones(w.shape)
    term = np.ones(w.shape)
    for m in range(min(int(needed[0]) if needed.size else 0, _SERIES_MAX_TERMS)):
        n = int(np.searchsorted(-needed, -m, side="left"))  # rows needing more than m terms
        term[:n] *= -(k[:n] + 1.0 + m) * (a + m) / ((a + beta[:n] + m) * (m + 2.0)) * w[:n]
        total[:n] += term[:n]
    out = np.empty(w.shape)
    out[order] = k * w * total
    return out


def _alive_mean_closed(k: np.ndarray, w: np.ndarray, beta: np.ndarray, a: float) -> tuple[np.ndarray, np.ndarray]:
    """The closed form of :func:`_expected_purchases_if_alive` and whether each value is usable."""
    c = a + beta - 1.0
    near_pole = np.abs(c) < _POLE_GAP
    if near_pole.any():
        e, cancel = _alive_mean_closed_raw(k, w, beta, a)
        i = np.flatnonzero(near_pole)
        hi, cancel_hi = _alive_mean_closed_raw(k[i], w[i], beta[i] + _POLE_STEP, a)
        lo, cancel_lo = _alive_mean_closed_raw(k[i], w[i], beta[i] - _POLE_STEP, a)
        e[i] = 0.5 * (hi + lo)
        cancel[i] = np.maximum(cancel_hi, cancel_lo)
    else:
        e, cancel = _alive_mean_closed_raw(k, w, beta, a)
    ok = _alive_mean_plausible(e, k, w, beta, a) & (cancel <= _MAX_CANCELLATION)
    return e, ok


def _alive_mean_closed_raw(k: np.ndarray, w: np.ndarray, beta: np.ndarray, a: float) -> tuple[np.ndarray, np.ndarray]:
    """``c / (a-1) (1 - P)`` and the cancellation factor ``|P| / |1 - P|``."""
    c = a + beta - 1.0
    log_1mz = -np.log1p(w)
    z = w / (1.0 + w)
    # Euler's transform first: it was the most accurate of the equivalent forms in our checks against
    # quadrature; the untransformed one covers the rows where its 2F1 overflows.
    p = np.exp((a - 1.0) * log_1mz) * special.hyp2f1(c - k, a - 1.0, c, z)
    bad = ~np.isfinite(p)
    if bad.any():
        p[bad] = np.exp(k[bad] * log_1mz[bad]) * special.hyp2f1(k[bad], beta[bad], c[bad], z[bad])
    e = c / (a - 1.0) * (1.0 - p)
    return e, np.abs(p) / np.abs(1.0 - p)


def _alive_mean_plausible(e: np.ndarray, k: np.ndarray, w: np.ndarray, beta: np.ndarray, a: float) -> np.ndarray:
    """Finite, >= 0, <= E[lambda] h = k w and, when a > 1, <= E[1/p] = (a + beta - 1) / (a - 1)."""
    ok: np.ndarray = np.isfinite(e) & (e >= 0.0) & (e <= k * w * (1.0 + 1e-9))
    if a > 1.0:
        ok &= e <= (a + beta - 1.0) / (a - 1.0) * (1.0 + 1e-9)
    return ok


def _alive_mean_by_quadrature(k: float, w: float, beta: float, a: float) -> float:
    """:func:`_expected_purchases_if_alive` for one row by adaptive quadrature over ``u = logit(p)``.

    In ``u`` the Beta density is ``exp(a log p + beta log(1 - p)) / B(a, beta)``: log-concave, with no
    endpoint singularity however small ``a`` or ``beta`` and no spike however large (QUADPACK's
    algebraic-weight rule loses accuracy once the exponents reach ~10, i.e. frequent buyers). The
    range is cut where the density is ``e^-60`` of its peak; breakpoints sit at the mode and at
    ``p w = 1``, where the integrand bends.
    """
    log_w = math.log(w)
    log_norm = float(special.betaln(a, beta))

    def log_density(u: float) -> float:
        return float(-a * np.logaddexp(0.0, -u) - beta * np.logaddexp(0.0, u) - log_norm)

    def integrand(u: float) -> float:
        y = math.exp(-np.logaddexp(0.0, -u) + log_w)  # p w
        per_unit = k if y < 1e-200 else -math.expm1(-k * math.log1p(y)) / y
        return w * per_unit * math.exp(log_density(u))

    mode = math.log(a / beta)
    floor = log_density(mode) - 60.0
    # Breakpoints at mode -/+ 1, 2, 4, ... up to the cut, so that every scale of the (possibly very
    # long: ~60 / a) tails gets its own panel, plus the bends p w = 1 and k p w = 1.
    points = [mode]
    for sign in (-1.0, 1.0):
        step = 1.0
        while True:
            points.append(mode + sign * step)
            if log_density(mode + sign * step) <= floor:
                break
            step *= 2.0
    lo, hi = min(points), max(points)
    points += [min(max(v, lo), hi) for v in (-log_w, -log_w - math.log(k))]
    points = sorted(set(points))
    total = 0.0
    for left, right in itertools.pairwise(points):
        total += integrate.quad(integrand, left, right, epsabs=0.0, epsrel=_QUAD_RTOL, limit=100)[0]
    return total


def _is_probability(p: np.ndarray) -> np.ndarray:
    ok: np.ndarray = np.isfinite(p) & (p >= -_PROB_SLACK) & (p <= 1 + _PROB_SLACK)
    return ok


def _integrate_decaying(f: Any, lo: float, hi: float, scale: float) -> float:
    """``int_lo^hi f`` for an ``f`` largest at ``lo`` that decays over ``scale`` (or slower).

    Panels end at ``lo + scale 2^j`` (j = -3, -2, ...): a decay that takes a tiny fraction of the
    range gets panels of its own size, so the adaptive rule cannot step over it.
    """
    edges = [lo]
    step = scale / 8.0
    while lo + step < hi:
        edges.append(lo + step)
        step *= 2.0
    edges.append(hi)
    return float(
        sum(integrate.quad(f, a, b, epsabs=0.0, epsrel=_QUAD_RTOL, limit=100)[0] for a, b in itertools.pairwise(edges))
    )


def _pareto_p_alive_by_quadrature(params: Mapping[str, float], x: float, tx: float, t: float) -> float:
    """Pareto/NBD ``P(alive | x, t_x, T) = 1 / (1 + R)`` for one row, ``R`` by quadrature.

    The likelihood's dead branch over its alive branch (Fader and Hardie 2005, note 009, eqs. 11-18):
    ``R = int_{t_x}^T s / (beta + tau) ((alpha+T)/(alpha+tau))^(r+x) ((beta+T)/(beta+tau))^s dtau``,
    integrated relative to its value at ``tau = t_x`` (the largest) so that nothing overflows.
    """
    if tx >= t:
        return 1.0
    r, alpha, s, beta = (params[k] for k in ("r", "alpha", "s", "beta"))

    def log_ratio(tau: float) -> float:
        return (r + x) * (math.log(alpha + t) - math.log(alpha + tau)) + s * (math.log(beta + t) - math.log(beta + tau))

    top = log_ratio(tx)
    decay = 1.0 / ((r + x) / (alpha + tx) + s / (beta + tx))  # 1 / slope of log_ratio at t_x
    rest = _integrate_decaying(lambda tau: s / (beta + tau) * math.exp(log_ratio(tau) - top), tx, t, decay)
    return float(special.expit(-(top + math.log(rest)))) if rest > 0 else 1.0


def _pareto_purchase_within(params: Mapping[str, float], x: float, t: float, h: float) -> float:
    """Pareto/NBD ``P(a purchase in (T, T+h] | alive at T)`` for one row, by quadrature.

    Given alive, ``lambda ~ Gamma(r+x, alpha+T)`` and ``mu ~ Gamma(s, beta+T)`` independently, and
    the next purchase comes before death and within ``h`` with probability
    ``int_0^h E[lambda e^(-lambda u)] E[e^(-mu u)] du``.
    """
    r, alpha, s, beta = (params[k] for k in ("r", "alpha", "s", "beta"))
    k, scale_l, scale_m = r + x, alpha + t, beta + t

    def density(u: float) -> float:
        return k / scale_l * math.exp(-(k + 1) * math.log1p(u / scale_l) - s * math.log1p(u / scale_m))

    decay = 1.0 / ((k + 1) / scale_l + s / scale_m)
    return min(_integrate_decaying(density, 0.0, h, decay), 1.0)


def as_probability(name: str, p: np.ndarray) -> np.ndarray:
    """``p`` clipped to [0, 1]; FloatingPointError when it is off by more than rounding."""
    if np.any(p < -_PROB_SLACK) or np.any(p > 1 + _PROB_SLACK):
        worst = float(p[(p < 0) | (p > 1)][0])
        raise FloatingPointError(
            f"BTYDModel.predict: {name} = {worst!r} is outside [0, 1]; the "
            "lifetimes closed form lost precision for these inputs."
        )
    clipped: np.ndarray = np.clip(p, 0.0, 1.0)
    return clipped


def discounted_purchases(
    model: str,
    fitter: Any,
    params: Mapping[str, float],
    x: np.ndarray,
    tx: np.ndarray,
    t: np.ndarray,
    p_alive: np.ndarray,
    unit_days: float,
    clv_months: int,
    annual_discount_rate: float,
) -> np.ndarray:
    """``sum_k E[purchases in month k] / (1 + d)^(k/12)`` over ``k = 1..clv_months``: the CLV's
    purchases, each month's discounted (months of ``365.25 / 12`` days)."""
    discounted = np.zeros(x.shape)
    previous = np.zeros(x.shape)
    for k in range(1, int(clv_months) + 1):
        horizon = k * DAYS_PER_MONTH / unit_days
        cumulative = np.maximum(expected_purchases(model, fitter, params, x, tx, t, horizon, p_alive), previous)
        discounted += (cumulative - previous) / (1.0 + annual_discount_rate) ** (k / 12)
        previous = cumulative
    return discounted
