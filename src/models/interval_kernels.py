"""The draws of :class:`churnclv.models.intervals.SpendIntervals` and its compiled kernel.

:class:`Draws` holds the common random numbers (shared by every customer; :func:`common_draws`
caches them), :func:`row_draws` draws the purchase process per unique ``(frequency, recency, T)``
row with numpy (alive, purchase rate, drop-out cap or remaining life, expected count, the
Gamma-Gamma shape), and :func:`interval_quantiles`, compiled by numba, goes on for every customer of
each row: it counts the purchase days in each window, turns them into spend and CLV draws and reads
the quantiles off, without materialising the customers x draws matrices. Every float operation is
the one numpy does in ``SpendIntervals._draw_chunk`` (the reference, which ``pit`` uses), in the same
order (no fast-math, no fused multiply-add, IEEE division), and the counts are numpy's
``searchsorted`` over the same sorted arrivals, so the quantiles are bit-identical to the
reference's order statistics (``tests/models/test_intervals.py`` checks it, NaN and inf included).
"""

from __future__ import annotations

import dataclasses
import functools
import math

import numpy as np
from scipy import special

from churnclv.models import btyd_conditionals as conditional
from churnclv.models.btyd import BTYDModel
from churnclv.models.lifetimes_fitters import fitter_with_params, pareto_recency, quiet
from churnclv.models.treeshap_kernels import jit

__all__ = ["Draws", "Rows", "common_draws", "interval_quantiles", "row_draws"]

_TABLE = 512  # purchase days per window and frequency covered exactly by the draw tables


# IEEE division (x / 0 is inf or NaN, as in numpy) rather than Python's ZeroDivisionError
_jit = jit(nogil=True, error_model="numpy")
_LINEAR_STEPS = 8  # counts are mostly small: scan a few arrivals before bisecting


class Draws:
    """Common random numbers: one row per draw, shared by every customer."""

    def __init__(self, n: int, seed: int, gg_p: float) -> None:
        rng = np.random.default_rng(seed)
        self.u_alive = rng.random(n)
        self.u_drop = rng.random(n)
        self.z = rng.standard_normal((3, n))  # Wilson-Hilferty beyond the tables
        exp = rng.standard_exponential((3, n, _TABLE))
        zero = np.zeros((3, n, 1))
        # cumulative Exp(1) sums: [0] purchase arrivals, [1] lambda's shape, [2] the drop-out's Beta
        self.cum_exp = np.concatenate([zero, np.cumsum(exp, axis=2)], axis=2)
        self.base = rng.random((4, n))  # uniforms for Gamma(r), Gamma(a), Gamma(b) / Gamma(s), Gamma(q)
        order = rng.gamma(gg_p, size=(2, n, _TABLE))
        self.cum_order = np.concatenate([np.zeros((2, n, 1)), np.cumsum(order, axis=2)], axis=2)
        # arrivals offset per draw, for one searchsorted over every draw at once
        self.span = float(self.cum_exp[0, :, -1].max()) * 2.0
        self.offset = np.arange(n)[:, None] * self.span
        self.arrivals = (self.cum_exp[0] + self.offset).ravel()
        # the tables with the count first, so a customer's row of steps is one contiguous read
        self.steps_exp = np.ascontiguousarray(self.cum_exp.transpose(0, 2, 1))
        self.steps_order = np.ascontiguousarray(self.cum_order.transpose(0, 2, 1))

    def gamma_plus(
        self, base: np.ndarray, table: np.ndarray, k: np.ndarray, shape0: float, z: np.ndarray, step: float = 1.0
    ) -> np.ndarray:
        """Gamma(shape0 + step k) for integer k >= 0 (rows), every draw (columns): ``base`` plus k table steps
        (``table``: counts x draws)."""
        ki = np.minimum(k, _TABLE).astype(int)
        out: np.ndarray = base[None, :] + table[ki]
        big = k > _TABLE
        if big.any():
            shape = shape0 + step * k[big, None]
            out[big] = shape * np.maximum(1 - 1 / (9 * shape) + z[None, :] / np.sqrt(9 * shape), 1e-3) ** 3
        return out

    def count_within(self, scaled: np.ndarray) -> np.ndarray:
        """Purchase arrivals (unit rate) on or before ``scaled`` (rows x draws), capped at the table."""
        limit = np.minimum(scaled, self.cum_exp[0, :, -1][None, :] * (1 + 1e-12))
        idx = np.searchsorted(self.arrivals, (limit + self.offset.T).ravel(), side="right").reshape(scaled.shape)
        counts: np.ndarray = idx - (np.arange(scaled.shape[1]) * (_TABLE + 1))[None, :] - 1
        return np.asarray(np.clip(counts, 0, _TABLE))


@functools.lru_cache(maxsize=8)
def common_draws(n: int, seed: int, gg_p: float) -> Draws:
    """The draws of ``(n, seed, gg_p)``, made once (about 5 MB; drawing them took ~10 ms of every call,
    a one-customer HTTP request's included) and read-only, so no call can change them for the next."""
    draws = Draws(n, seed, gg_p)
    for value in vars(draws).values():
        if isinstance(value, np.ndarray):
            value.flags.writeable = False
    return draws


def _gamma_ppf(shape: float, u: np.ndarray) -> np.ndarray:
    return np.asarray(special.gammaincinv(shape, u), dtype=float)


def _beta_share(ga: np.ndarray, gb: np.ndarray, a: float, b: float, ua: np.ndarray, ub: np.ndarray) -> np.ndarray:
    """BG/NBD's drop-out probability ``ga / (ga + gb)`` of the Gamma(a) and Gamma(b + x) draws.

    With shapes far below 1 (a short history fits ``a, b ~ 1e-5``) both draws of a row with no repeat
    purchase can be below the smallest float, and 0 / 0 is NaN: a NaN cap cast to int64 is a negative
    count, read as an index far outside the draw tables. Where both are 0 the share comes from their
    logs, ``log G(k) = (log u + lgamma(k + 1)) / k``, exact as ``u`` goes to 0 (``P(k, g) ~ g^k /
    Gamma(k + 1)``): the Beta(a, b) draw, nearly 0 or 1."""
    total = ga + gb
    both = total == 0
    if not both.any():
        return np.asarray(ga / total)
    with np.errstate(divide="ignore", invalid="ignore"):
        share = ga / total
        log_a = (np.log(ua) + special.gammaln(a + 1)) / a
        log_b = (np.log(ub) + special.gammaln(b + 1)) / b
    limit = np.broadcast_to(special.expit(log_a - log_b)[None, :], share.shape)
    return np.asarray(np.where(both, limit, share))


@dataclasses.dataclass(frozen=True)
class Rows:
    """Per unique ``(frequency, recency, T)`` row (rows) and draw (columns): the purchase process."""

    alive: np.ndarray  # alive at as-of
    lam: np.ndarray  # purchase days per unit of time
    cap: np.ndarray | None  # BG/NBD: purchase days before dropping out (None under Pareto/NBD)
    life: np.ndarray | None  # Pareto/NBD: remaining life (None otherwise)
    mean_count: np.ndarray | None  # expected purchase days over the horizon, 0 when not alive (None: not asked)
    shape: np.ndarray | None  # the Gamma-Gamma posterior shape of nu (None under the fallback)


def row_draws(
    model: BTYDModel, d: Draws, x: np.ndarray, tx: np.ndarray, tt: np.ndarray, h: float, *, expected: bool = True
) -> Rows:
    """The draws of each unique row's purchase process and Gamma-Gamma shape, over horizon ``h``; the
    expected count only when ``expected`` (what only ``expected_spend`` needs)."""
    kind, params = model.model, model.params_
    if kind == "pareto":
        tx = pareto_recency(x, tx, tt)
    with quiet():
        p_alive = conditional.alive_probability(kind, fitter_with_params(kind, params), params, x, tx, tt)
    p_alive = np.clip(np.nan_to_num(p_alive, nan=1.0), 0.0, 1.0)
    alive = d.u_alive[None, :] < p_alive[:, None]
    xi = x.astype(np.int64)
    lam = d.gamma_plus(_gamma_ppf(params["r"], d.base[0]), d.steps_exp[1], xi, params["r"], d.z[0])
    lam /= (params["alpha"] + tt)[:, None]
    cap = life = None
    if kind == "pareto":
        mu = _gamma_ppf(params["s"], d.base[2])[None, :] / (params["beta"] + tt)[:, None]
        life = -np.log(d.u_drop)[None, :] / mu  # remaining life, memoryless given alive
        mean_count = lam * -np.expm1(-mu * h) / mu if expected else None
    else:
        extra = 1 if kind == "mbgnbd" else 0
        ga = _gamma_ppf(params["a"], d.base[1])[None, :]
        gb = d.gamma_plus(_gamma_ppf(params["b"], d.base[2]), d.steps_exp[2], xi + extra, params["b"], d.z[1])
        p = _beta_share(ga, gb, params["a"], params["b"], d.base[1], d.base[2])
        with np.errstate(divide="ignore", over="ignore"):  # p near 0: never drops out (inf, then the cap)
            drop_at = np.ceil(np.log(d.u_drop)[None, :] / np.log1p(-np.minimum(p, 1 - 1e-12)))
        cap = np.minimum(np.maximum(drop_at, 1.0), _TABLE).astype(np.int64)
        mean_count = None
        if expected:  # p = 0 (a Gamma(a) draw below the smallest float): never drops out, lam h
            with np.errstate(divide="ignore", invalid="ignore"):
                mean_count = np.where(p > 0, -np.expm1(-lam * p * h) / p, lam * h)
    gg = model.gg_params_
    shape = None
    if gg is not None:  # frequency is part of the row, so nu's shape is too
        shape = d.gamma_plus(_gamma_ppf(gg["q"], d.base[3]), d.steps_order[0], xi, gg["q"], d.z[2], gg["p"])
    return Rows(alive, lam, cap, life, None if mean_count is None else np.where(alive, mean_count, 0.0), shape)


@_jit
def _arrivals_upto(arrivals: np.ndarray, start: int, size: int, key: float, known: int) -> int:
    """Elements of the sorted ``arrivals[start:start + size]`` that are ``<= key`` (numpy's
    ``searchsorted(side="right")``), given that the first ``known`` are; NaN counts as above all."""
    if key != key:
        return size
    i = known
    stop = min(known + _LINEAR_STEPS, size)
    while i < stop and arrivals[start + i] <= key:
        i += 1
    if i < stop or i == size:
        return i
    lo, hi = i, size
    while lo < hi:
        mid = (lo + hi) // 2
        if arrivals[start + mid] <= key:
            lo = mid + 1
        else:
            hi = mid
    return lo


@_jit
def _minimum(a: float, b: float) -> float:
    """``np.minimum``: NaN if either is NaN."""
    if a != a or b != b:
        return math.nan
    return a if a <= b else b


@_jit
def _select(buf: np.ndarray, ranks: np.ndarray, out: np.ndarray, row: int) -> None:
    """``out[row, j]`` = the ``ranks[j]``-th smallest of ``buf`` (``np.partition``'s value: NaN last);
    ``buf`` is reordered. Three-way quickselect, since draws repeat (many exact zeros)."""
    n = buf.size
    n_nan = n_neg = n_zero = 0
    for i in range(n):
        v = buf[i]
        if v != v:
            n_nan += 1
        elif v < 0:
            n_neg += 1
        elif v == 0:
            n_zero += 1
    lo = m = 0
    if n_neg == 0:  # draws are mostly exact zeros (no purchase): select among the positive ones only
        for i in range(n):
            if buf[i] > 0:
                buf[m] = buf[i]
                m += 1
        base = n_zero
    else:  # NaNs to the end, as numpy sorts them
        for i in range(n):
            if buf[i] == buf[i]:
                buf[m], buf[i] = buf[i], buf[m]
                m += 1
        base = 0
    for j in range(ranks.size):
        if ranks[j] < base:
            out[row, j] = 0.0
            continue
        k = ranks[j] - base
        if k >= m:
            out[row, j] = math.nan
            continue
        hi = m
        while True:
            if hi - lo <= 1:
                out[row, j] = buf[k]
                break
            a, b, c = buf[lo], buf[(lo + hi) // 2], buf[hi - 1]
            pivot = max(min(a, b), min(max(a, b), c))  # median of three
            # buf[lo:lt] < pivot, buf[lt:i] == pivot, buf[gt:hi] > pivot
            lt, i, gt = lo, lo, hi
            while i < gt:
                v = buf[i]
                if v < pivot:
                    buf[lt], buf[i] = v, buf[lt]
                    lt += 1
                    i += 1
                elif v > pivot:
                    gt -= 1
                    buf[gt], buf[i] = v, buf[gt]
                else:
                    i += 1
            if k < lt:
                hi = lt
            elif k >= gt:
                lo = gt
            else:
                out[row, j] = pivot
                break
        # the next (larger) rank lies at or after k: everything before k is <= buf[k]
        lo = k


@_jit
def _mass(p: float, n_zero: int, n_pos: int, cz: int, cp: int) -> float:
    """The weight of ``cz`` of the ``n_zero`` draws without a purchase in the horizon and ``cp`` of the
    ``n_pos`` with one, when those without weigh ``p`` in all and those with ``1 - p``: a draw of 0
    weighing ``p`` stands in when no draw is without; with no draw with a purchase, those without
    weigh 1 (nothing says what a purchase would be worth)."""
    if n_pos == 0:
        return cz / n_zero
    zero = p * (cz / n_zero) if n_zero > 0 else p
    return zero + (1.0 - p) * (cp / n_pos)


@_jit
def _spend_ranks(
    buf: np.ndarray, probs: np.ndarray, p: float, is_zero: np.ndarray, ranks: np.ndarray
) -> tuple[int, int]:
    """The ranks among the spend draws ``buf`` of the weighted quantiles of :func:`_mass` (-1: the
    quantile is 0; the draws of 0 come first, the others in order); marks the draws of 0 in
    ``is_zero`` and returns their count and the others'."""
    n = buf.size
    n_zero = 0
    for d in range(n):
        is_zero[d] = buf[d] == 0
        if is_zero[d]:
            n_zero += 1
    n_pos = n - n_zero
    cp = 1
    for j in range(probs.size):
        q = probs[j]
        if _mass(p, n_zero, n_pos, n_zero, 0) >= q:
            ranks[j] = -1
            continue
        while cp < n_pos and _mass(p, n_zero, n_pos, n_zero, cp) < q:
            cp += 1
        ranks[j] = n_zero + cp - 1
    return n_zero, n_pos


@_jit
def _weighted_select(
    buf: np.ndarray,
    probs: np.ndarray,
    p: float,
    is_zero: np.ndarray,
    n_zero: int,
    n_pos: int,
    out: np.ndarray,
    row: int,
) -> None:
    """``out[row, j]``: the weighted quantile ``probs[j]`` of ``buf`` (draw ``d`` of ``is_zero[d]``
    class as :func:`_mass` weighs it), walking the draws in order (NaN last)."""
    order = np.argsort(buf)
    k = cz = cp = 0
    mass = _mass(p, n_zero, n_pos, 0, 0)  # p when a stand-in draw of 0 comes first
    for j in range(probs.size):
        q = probs[j]
        while mass < q and k < buf.size:
            if is_zero[order[k]]:
                cz += 1
            else:
                cp += 1
            mass = _mass(p, n_zero, n_pos, cz, cp)
            k += 1
        out[row, j] = 0.0 if k == 0 else buf[order[k - 1]]


@_jit
def interval_quantiles(
    alive: np.ndarray,
    lam: np.ndarray,
    cap: np.ndarray,
    life: np.ndarray,
    mean_count: np.ndarray,
    shape: np.ndarray,
    scale: np.ndarray,
    windows: np.ndarray,
    discounts: np.ndarray,
    arrivals: np.ndarray,
    offsets: np.ndarray,
    limits: np.ndarray,
    order_sums: np.ndarray,
    starts: np.ndarray,
    members: np.ndarray,
    ranks: np.ndarray,
    probs: np.ndarray,
    p_zero: np.ndarray,
    p_gg: float,
    mean_order_value: float,
    spend: np.ndarray,
    clv: np.ndarray,
    expected: np.ndarray,
) -> None:
    """Quantiles of spend, CLV and expected spend per customer; see the module docstring.

    Per unique row ``u`` and draw ``d``: ``alive``, ``lam`` (purchase rate), ``cap`` (BG/NBD's
    purchase days before drop-out; empty under Pareto/NBD) or ``life`` (Pareto/NBD's remaining life;
    empty otherwise), ``mean_count`` (expected purchase days, 0 when not alive) and ``shape`` (the
    Gamma-Gamma posterior shape; empty under the fallback). Per customer: ``scale`` (``v + m x``).
    ``members[starts[u]:starts[u + 1]]`` are row ``u``'s customers: the rows of ``spend``, ``clv``
    (empty: none) and ``expected`` (empty: none) to fill. ``windows[0]`` is the horizon, the rest the
    CLV months with their ``discounts``. ``arrivals``, ``offsets``, ``limits`` and ``order_sums`` are
    the common draws' (``Draws.arrivals``, ``offset``, capped table ends, ``cum_order[1]``).
    ``ranks`` are the quantiles' ranks among the draws (:func:`churnclv.models.intervals._ranks` of
    ``probs``). With ``p_zero`` (per customer; empty: none), e.g. the scorer's ``p_churn``, the draws
    are weighted by :func:`_mass`: those without a purchase in the horizon weigh ``p_zero`` in all,
    the others ``1 - p_zero``, for spend and CLV alike (so a draw's CLV still holds its spend).
    """
    n_rows, n_draws = lam.shape
    seg = order_sums.shape[1]
    table = seg - 1
    n_windows = windows.size if clv.shape[0] > 0 else 1
    pareto = cap.shape[0] == 0
    fallback = shape.shape[0] == 0
    with_expected = expected.shape[0] > 0
    counts = np.zeros((n_windows, n_draws), dtype=np.int64)
    buf_spend = np.empty(n_draws)
    buf_clv = np.empty(n_draws)
    buf_expected = np.empty(n_draws)
    spend_ranks = ranks.copy()
    with_zero = p_zero.shape[0] > 0
    is_zero = np.zeros(n_draws, dtype=np.bool_)
    n_zero = n_pos = 0
    for u in range(n_rows):
        for d in range(n_draws):
            if not alive[u, d]:
                for w in range(n_windows):
                    counts[w, d] = 0
                continue
            known = 0
            for w in range(n_windows):
                if w == 1:  # the horizon may be longer than the first CLV month; the months increase
                    known = 0
                scaled = lam[u, d] * (_minimum(windows[w], life[u, d]) if pareto else windows[w])
                key = _minimum(scaled, limits[d]) + offsets[d]
                known = _arrivals_upto(arrivals, d * seg, seg, key, known)
                c = min(max(known - 1, 0), table)
                counts[w, d] = c if pareto else min(c, cap[u, d])
        for j in range(starts[u], starts[u + 1]):
            i = members[j]
            for d in range(n_draws):
                if fallback:
                    buf_spend[d] = counts[0, d] * mean_order_value
                    if with_expected:
                        buf_expected[d] = mean_count[u, d] * mean_order_value
                else:
                    nu = shape[u, d] / scale[i]
                    buf_spend[d] = order_sums[d, counts[0, d]] / nu
                    if with_expected:
                        buf_expected[d] = mean_count[u, d] * (p_gg / nu)
                if n_windows > 1:
                    total_clv = 0.0
                    previous = 0.0
                    for w in range(1, n_windows):
                        c = counts[w, d]
                        total = c * mean_order_value if fallback else order_sums[d, c] / nu
                        total_clv += discounts[w - 1] * (total - previous)
                        previous = total
                    buf_clv[d] = total_clv
            if with_zero:
                n_zero, n_pos = _spend_ranks(buf_spend, probs, p_zero[i], is_zero, spend_ranks)
            _select(buf_spend, spend_ranks, spend, i)
            if n_windows > 1 and with_zero:
                _weighted_select(buf_clv, probs, p_zero[i], is_zero, n_zero, n_pos, clv, i)
            elif n_windows > 1:
                _select(buf_clv, ranks, clv, i)
            if with_expected:
                _select(buf_expected, ranks, expected, i)
