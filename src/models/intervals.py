"""Prediction intervals for a customer's spend over the horizon and CLV, from the BTYD posterior.

:class:`SpendIntervals` draws each customer's future from the fitted BTYD model given their history
(``frequency``, ``recency``, ``T``, ``monetary_value``) and reads quantiles off the draws:

- alive at as-of with probability ``P(alive)``; given alive, the purchase rate
  ``lambda ~ Gamma(r + x, alpha + T)`` and (BG/NBD) the drop-out probability ``p ~ Beta(a, b + x)``
  (MBG/NBD: ``Beta(a, b + x + 1)``) or (Pareto/NBD) the death rate ``mu ~ Gamma(s, beta + T)``;
- purchase days arrive as a Poisson process at rate ``lambda``; the customer drops out right after
  each purchase with probability ``p`` (BG/NBD) or dies at an ``Exp(mu)`` time (Pareto/NBD);
- the customer's mean order value is ``p_gg / nu`` with ``nu ~ Gamma(q + p_gg x, v + m x)`` (the
  Gamma-Gamma posterior, Fader, Hardie and Lee 2005, JMR 42(4); note 025), and each order is
  ``Gamma(p_gg, nu)``, so ``n`` orders sum to ``Gamma(n p_gg, nu)``; under the Gamma-Gamma fallback
  every order is the population mean order value.

Two kinds of interval come out, and they answer different questions:

- **predictive** (``spend_pXX``, ``clv_pXX``): where the customer's *realised* spend over the horizon
  (and discounted spend over ``clv_months``) will fall. This is what a CRM reads as "will spend
  between A and B", and what a holdout can check. Most customers buy nothing in a short window, so
  for them P10 = P50 = 0 (and often P90 = 0): that is the honest answer, not a defect.
- **expected value** (``expected_spend_pXX``): where the customer's *expected* spend (the mean of
  the above given their latent rate, drop-out and order value) lies, given their history: the
  uncertainty about the customer, not about their luck. Only a world with a known truth can check it.

The scorer's churn model is not BTYD's, so its ``p_churn`` (no purchase within the horizon) and BTYD's
share of draws without a purchase disagree. ``p_zero`` (:meth:`SpendIntervals.quantiles`,
:func:`with_intervals` passes ``p_churn``) weights the draws so that they agree: the draws without a
purchase in the horizon weigh ``p_zero`` in all and the others ``1 - p_zero``, for the spend and the
CLV alike, so ``spend_p50`` is 0 exactly when ``p_churn >= 0.5`` and a draw's CLV still holds its
spend. Expected-spend quantiles are not weighted.

Coverage is checked with :meth:`SpendIntervals.pit` (randomised PIT, which the atom at 0 does not
lift) and closed-interval coverage, in ``bench/intervals.py``.

Draws use common random numbers from a fixed seed, shared by every customer: a customer's interval
depends on their own history only, never on who else is in the frame or the chunk (batch and HTTP
give the same numbers). Gamma shapes that grow with an integer count (``r + x``, ``q + p_gg x``,
``n p_gg``) are built from tables of cumulative draws, so no per-customer random state is needed.

Customers are scored on their unique ``(frequency, recency, T)`` rows for the purchase process; the
monetary part is per customer. Cost: about ``n_draws`` x customers x a few operations.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
from sklearn.exceptions import NotFittedError

from churnclv.models import btyd_conditionals as conditional
from churnclv.models.btyd import BTYDModel
from churnclv.models.btyd_spend import capped
from churnclv.models.btyd_summary import never_bought_age, unique_rows, validate_summary
from churnclv.models.interval_kernels import Draws, common_draws, interval_quantiles, row_draws
from churnclv.models.saved_format import SavedFormatError, check_stamp

__all__ = [
    "INTERVAL_COLUMNS",
    "PROBS",
    "SCALE_RANGE",
    "SpendIntervals",
    "amount_scale",
    "fit_intervals",
    "with_intervals",
]

PROBS: tuple[float, ...] = (0.1, 0.5, 0.9)
# What predict() returns, besides customer_id (predictive intervals of realised spend and CLV).
INTERVAL_COLUMNS: tuple[str, ...] = tuple(f"{t}_p{round(100 * q)}" for t in ("spend", "clv") for q in PROBS)
_STAMP = {"format": "churnclv.models.intervals.SpendIntervals", "version": 1}
_CHUNK = 10_000  # customers (unique rows) per block: memory is chunk x n_draws floats per array


class SpendIntervals:
    """Predictive intervals of spend over the horizon and CLV per customer (see the module docstring).

    Parameters
    ----------
    n_draws : int, default 200
        Draws per customer. The quantiles' Monte Carlo error is about ``sqrt(q (1 - q) / n_draws)``
        in probability (0.02 at P10 with 200).
    seed : int, default 0
        Seed of the common random numbers.

    Attributes
    ----------
    btyd_ : BTYDModel
        The BTYD model the draws come from (the scorer's, fitted at as-of).
    horizon_days_, clv_months_, annual_discount_rate_ : float, int, float
        The window, and CLV's months and discount rate.
    """

    btyd_: BTYDModel
    horizon_days_: float
    clv_months_: int
    annual_discount_rate_: float

    def __init__(self, *, n_draws: int = 200, seed: int = 0) -> None:
        self.n_draws = n_draws
        self.seed = seed

    # ------------------------------------------------------------------ fit

    def fit(
        self,
        btyd: BTYDModel,
        *,
        horizon_days: float,
        clv_months: int = 12,
        annual_discount_rate: float = 0.10,
    ) -> SpendIntervals:
        """Take the fitted BTYD model (point in time: fitted on data up to as-of) and the windows.

        Parameters
        ----------
        btyd : BTYDModel
            Fitted at as-of (the scorer's ``btyd_``).
        horizon_days, clv_months, annual_discount_rate
            As in :meth:`BTYDModel.predict`.
        """
        if not (isinstance(self.n_draws, int) and self.n_draws >= 20):
            raise ValueError(f"SpendIntervals: n_draws={self.n_draws!r} must be an integer >= 20.")
        if not (isinstance(self.seed, int) and self.seed >= 0):
            raise ValueError(f"SpendIntervals: seed={self.seed!r} must be an integer >= 0.")
        if not hasattr(btyd, "params_"):
            raise NotFittedError("SpendIntervals.fit: btyd is not fitted; fit the BTYDModel first.")
        self.btyd_ = btyd
        self.horizon_days_ = float(horizon_days)
        self.clv_months_ = int(clv_months)
        self.annual_discount_rate_ = float(annual_discount_rate)
        return self

    # ------------------------------------------------------------------ predict

    def _check_fitted(self) -> None:
        if not hasattr(self, "btyd_"):
            raise NotFittedError("This SpendIntervals is not fitted yet: call fit(btyd, ...) or from_dict().")

    def quantiles(
        self,
        features: pd.DataFrame,
        probs: Sequence[float] = PROBS,
        *,
        clv: bool = True,
        expected: bool = True,
        p_zero: np.ndarray | pd.Series | None = None,
    ) -> pd.DataFrame:
        """Quantiles of realised spend (and CLV) and of expected spend, per customer.

        Returns, in row order,
        ``spend_pXX``, ``clv_pXX`` (when ``clv``) and ``expected_spend_pXX`` (when ``expected``) for each
        ``XX`` in ``probs``.

        ``p_zero`` (one probability per row, e.g. the scorer's ``p_churn``): the spend's chance of being
        0 (no purchase within the horizon) in place of BTYD's own share ``z`` of draws without one: the
        draws are weighted (those without weigh ``p_zero`` in all, the others ``1 - p_zero``), so
        ``spend_pXX`` is 0 when ``XX / 100 <= p_zero``, else about BTYD's quantile at level ``z + (1 -
        z) (q - p_zero) / (1 - p_zero)``; ``clv_pXX`` are the weighted quantiles of the same draws'
        CLV. Expected-spend quantiles are not weighted.
        """
        self._check_fitted()
        probs = tuple(float(p) for p in probs)
        if any(not 0 < p < 1 for p in probs) or list(probs) != sorted(probs):
            raise ValueError(f"SpendIntervals.quantiles: probs={probs} must be increasing, each in (0, 1).")
        zero = _zero_share(p_zero, len(features), "quantiles")
        out = self._draw(self.btyd_, features, probs=probs, clv=clv, expected=expected, p_zero=zero)
        data: dict[str, Any] = {}
        for target, q in out.items():
            for i, p in enumerate(probs):
                data[f"{target}_p{round(100 * p)}"] = q[:, i]
        return pd.DataFrame(data, index=features.index)

    def predict(self, features: pd.DataFrame) -> pd.DataFrame:
        """``spend_p10, spend_p50, spend_p90, clv_p10, clv_p50, clv_p90`` (:data:`INTERVAL_COLUMNS`)."""
        return self.quantiles(features, PROBS, expected=False)[list(INTERVAL_COLUMNS)]

    def pit(
        self,
        features: pd.DataFrame,
        spend: np.ndarray | pd.Series,
        *,
        p_zero: np.ndarray | pd.Series | None = None,
        scale: np.ndarray | None = None,
    ) -> np.ndarray:
        """Randomised PIT of the realised ``spend`` under the predictive draws.

        ``F(y-) + V (F(y) - F(y-))`` with ``V ~ U(0, 1)`` from the seed (Czado, Gneiting and Held
        2009, Biometrics 65(4)): uniform when the model is right, atoms (no purchase: spend 0)
        included. The share with ``|PIT - 1/2| <= L / 2`` is the coverage a level-``L`` interval
        would have without the atom at 0 lifting it (a closed interval ``[0, 0]`` covers every 0).
        With ``p_zero`` as in :meth:`quantiles`: ``F(y) = p_zero + (1 - p_zero) G(y)`` for ``y >= 0``,
        ``G`` the CDF of the positive draws (1 where there are none). With ``scale`` (per row,
        :func:`amount_scale`), the draws' amounts are multiplied by it, as :func:`with_intervals` does.
        """
        self._check_fitted()
        y = np.asarray(spend, dtype=float)
        if y.shape != (len(features),):
            raise ValueError(f"SpendIntervals.pit: spend has shape {y.shape}; expected one value per row of features")
        zero = _zero_share(p_zero, len(features), "pit")
        if scale is not None:
            y = y / np.asarray(scale, dtype=float)  # F_scaled(y) = F(y / scale)
        f, r, t, m, unit = self._columns(self.btyd_, features)
        gg = self.btyd_.gg_params_
        draws = common_draws(self.n_draws, self.seed, float(gg["p"]) if gg else 1.0)
        h = self.horizon_days_ / unit
        out = np.empty(len(y))
        for start in range(0, len(y), _CHUNK):
            sl = slice(start, start + _CHUNK)
            part = self._draw_chunk(self.btyd_, draws, f[sl], r[sl], t[sl], m[sl], [h], [], h)["spend"]
            below, at = _cdf(part, y[sl], None if zero is None else zero[sl])
            out[sl] = below + np.random.default_rng([self.seed, start]).random(part.shape[0]) * (at - below)
        return out

    @staticmethod
    def _columns(model: BTYDModel, frame: pd.DataFrame) -> tuple[Any, ...]:
        """frequency, recency and T in the model's unit, monetary value (>= 0), and the unit in days."""
        cols = validate_summary(frame, "SpendIntervals")
        never = cols["never"]
        unit = float(model.time_unit_days)
        f = np.where(never, 0.0, cols["frequency"])
        r = np.where(never, 0.0, cols["recency"]) / unit
        t = np.where(never, never_bought_age(frame, never), cols["T"]) / unit
        m = np.where(never, 0.0, capped(cols["monetary_value"], getattr(model, "monetary_cap_", None)))
        return f, r, t, m, unit

    def _windows(self, unit: float, clv: bool) -> tuple[list[float], list[float]]:
        """The horizon then (with ``clv``) each CLV month's end, in the model's unit; the months' discounts."""
        windows = [self.horizon_days_ / unit]
        discounts: list[float] = []
        if clv:
            month = conditional.DAYS_PER_MONTH / unit
            windows += [k * month for k in range(1, self.clv_months_ + 1)]
            discounts = [(1 + self.annual_discount_rate_) ** (-k / 12) for k in range(1, self.clv_months_ + 1)]
        return windows, discounts

    def _draw(
        self,
        model: BTYDModel,
        frame: pd.DataFrame,
        *,
        probs: Sequence[float],
        clv: bool,
        expected: bool,
        p_zero: np.ndarray | None = None,
    ) -> dict[str, np.ndarray]:
        """The quantiles, by the compiled kernel over unique ``(frequency, recency, T)`` rows (equal to
        :func:`_order_stats` of :meth:`_draw_chunk`'s draws, bit for bit, ``p_zero`` included)."""
        f, r, t, m, unit = self._columns(model, frame)
        gg = model.gg_params_
        d = common_draws(self.n_draws, self.seed, float(gg["p"]) if gg else 1.0)
        windows, discounts = self._windows(unit, clv)
        (x, tx, tt), _, inverse = unique_rows(f, r, t)
        members = np.argsort(inverse, kind="stable")
        starts = np.concatenate([[0], np.cumsum(np.bincount(inverse, minlength=x.size))])
        ranks = np.asarray(_ranks(self.n_draws, probs), dtype=np.int64)
        empty = np.empty((0, len(probs)))
        out = {"spend": np.empty((len(f), len(probs)))}
        out["clv"] = np.empty((len(f), len(probs))) if clv else empty
        out["expected_spend"] = np.empty((len(f), len(probs))) if expected else empty
        scale = np.ascontiguousarray(gg["v"] + m * f) if gg else np.empty(0)
        for start in range(0, x.size, _CHUNK):
            sl = slice(start, start + _CHUNK)
            rows = row_draws(model, d, x[sl], tx[sl], tt[sl], windows[0], expected=expected)
            first, last = starts[start], starts[min(start + _CHUNK, x.size)]
            interval_quantiles(
                rows.alive,
                rows.lam,
                np.empty((0, 0), dtype=np.int64) if rows.cap is None else rows.cap,
                np.empty((0, 0)) if rows.life is None else rows.life,
                np.empty((0, 0)) if rows.mean_count is None else rows.mean_count,
                np.empty((0, 0)) if rows.shape is None else rows.shape,
                scale,
                np.asarray(windows, dtype=float),
                np.asarray(discounts, dtype=float),
                d.arrivals,
                np.ascontiguousarray(d.offset[:, 0]),
                d.cum_exp[0, :, -1] * (1 + 1e-12),
                np.ascontiguousarray(d.cum_order[1]),
                starts[start : start + _CHUNK + 1] - first,
                members[first:last],
                ranks,
                np.asarray(probs, dtype=float),
                np.empty(0) if p_zero is None else p_zero,
                float(gg["p"]) if gg else 0.0,
                float(model.mean_order_value_) if gg is None else 0.0,
                out["spend"],
                out["clv"],
                out["expected_spend"],
            )
        return {k: v for k, v in out.items() if k == "spend" or (clv if k == "clv" else expected)}

    def _draw_chunk(
        self,
        model: BTYDModel,
        d: Draws,
        f: np.ndarray,
        r: np.ndarray,
        t: np.ndarray,
        m: np.ndarray,
        windows: list[float],
        discounts: list[float],
        h: float,
    ) -> dict[str, np.ndarray]:
        """Every draw of every customer (rows) of ``spend``, ``expected_spend`` and (with ``discounts``)
        ``clv``: what :meth:`pit` reads, and the reference the compiled :meth:`_draw` equals."""
        (x, tx, tt), _, inverse = unique_rows(f, r, t)
        rows = row_draws(model, d, x, tx, tt, h)
        alive, lam, life, cap = rows.alive, rows.lam, rows.life, rows.cap

        def counts_within(w: float) -> np.ndarray:
            c = d.count_within(lam * (w if life is None else np.minimum(w, life)))
            return np.asarray(np.where(alive, c if cap is None else np.minimum(c, cap), 0)[inverse])

        gg = model.gg_params_
        if gg is None or rows.shape is None:  # the fallback: every order is the mean order value

            def value(c: np.ndarray) -> np.ndarray:
                return c * model.mean_order_value_

            mean_value: Any = model.mean_order_value_
        else:
            nu = rows.shape[inverse] / (gg["v"] + m * f)[:, None]
            draw = np.arange(d.u_alive.size)[None, :]

            def value(c: np.ndarray) -> np.ndarray:
                return np.asarray(d.cum_order[1][draw, c] / nu)

            mean_value = gg["p"] / nu
        assert rows.mean_count is not None  # asked for by default
        res = {"spend": value(counts_within(windows[0])), "expected_spend": rows.mean_count[inverse] * mean_value}
        if discounts:
            clv = np.zeros_like(res["spend"])
            previous: Any = 0.0
            for w, disc in zip(windows[1:], discounts, strict=True):
                total = value(counts_within(w))
                clv += disc * (total - previous)
                previous = total
            res["clv"] = clv
        return res

    # ------------------------------------------------------------------ persistence

    def to_dict(self) -> dict[str, Any]:
        """Settings, the BTYD model and the windows as a JSON-serialisable dict (no pickles)."""
        fitted = None
        if hasattr(self, "btyd_"):
            fitted = {
                "btyd": self.btyd_.to_dict(),
                "horizon_days": self.horizon_days_,
                "clv_months": self.clv_months_,
                "annual_discount_rate": self.annual_discount_rate_,
            }
        init = {"n_draws": self.n_draws, "seed": self.seed}
        return {**_STAMP, "init": init, "fitted": fitted}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SpendIntervals:
        """Rebuild from :meth:`to_dict` output (possibly through JSON)."""
        check_stamp(data, _STAMP, reader="SpendIntervals.from_dict", fix="pass the output of SpendIntervals.to_dict().")
        try:
            est = cls(**dict(data["init"]))
        except TypeError as exc:
            raise SavedFormatError(
                f"SpendIntervals.from_dict: field 'init' holds an unknown setting ({exc}); expected n_draws, seed."
            ) from exc
        fitted = data.get("fitted")
        if fitted is None:
            return est
        est.btyd_ = BTYDModel.from_dict(fitted["btyd"])
        est.horizon_days_ = float(fitted["horizon_days"])
        est.clv_months_ = int(fitted["clv_months"])
        est.annual_discount_rate_ = float(fitted["annual_discount_rate"])
        return est


def fit_intervals(btyd: BTYDModel, config: Any, settings: Mapping[str, Any] | None = None) -> SpendIntervals:
    """A :class:`SpendIntervals` with ``settings`` (``n_draws``, ``seed``; default: the defaults) fitted on
    ``btyd`` at the scorer config's ``horizon_days``, ``clv_months`` and ``annual_discount_rate``
    (reads no data: what a scorer saves is the settings, and it rebuilds them at load)."""
    return SpendIntervals(**dict(settings or {})).fit(
        btyd,
        horizon_days=config.horizon_days,
        clv_months=config.clv_months,
        annual_discount_rate=config.annual_discount_rate,
    )


def with_intervals(
    scores: pd.DataFrame,
    intervals: SpendIntervals,
    features: pd.DataFrame,
    *,
    clv: bool,
    scale: np.ndarray | None = None,
) -> pd.DataFrame:
    """``scores`` with :data:`INTERVAL_COLUMNS` inserted after its ``clv`` column, row by row of
    ``features`` (same length and order); the ``clv_pXX`` columns are NaN (null in the outputs) when
    not ``clv`` (they cost about 8x the spend intervals), and 0 with a CLV of 0 months. The spend's
    chance of being 0 is ``scores["p_churn"]`` (no purchase within the horizon), so the intervals
    agree with it: ``spend_p50`` is 0 exactly when ``p_churn >= 0.5``. ``scale`` (per row,
    :func:`amount_scale`) multiplies every amount, so the draws' mean is the scores' expected spend."""
    q = intervals.quantiles(
        features, PROBS, clv=clv and intervals.clv_months_ > 0, expected=False, p_zero=scores["p_churn"]
    )
    fill = 0.0 if clv else np.nan
    factor = np.ones(len(q)) if scale is None else np.asarray(scale, dtype=float)
    extra = pd.DataFrame(
        {c: q[c].to_numpy() * factor if c in q.columns else np.full(len(q), fill) for c in INTERVAL_COLUMNS},
        index=scores.index,
    )
    at = scores.columns.get_loc("clv") + 1
    return pd.concat([scores.iloc[:, :at], extra, scores.iloc[:, at:]], axis=1)


SCALE_RANGE = (0.1, 10.0)  # the amount scale's bounds: BTYD and the learned spend never disagree more


def amount_scale(
    expected_spend: np.ndarray, p_churn: np.ndarray, btyd_spend: np.ndarray, btyd_p_churn: np.ndarray
) -> np.ndarray:
    """Per customer, the factor on the draws' amounts that makes the mean of the draws weighted to
    ``p_churn`` the scorer's ``expected_spend``: BTYD's spend given a purchase is
    ``btyd_spend / (1 - btyd_p_churn)``, the weighted draws' mean ``(1 - p_churn)`` times that. Within
    :data:`SCALE_RANGE`; 1 where BTYD expects no purchase or no spend (nothing to scale)."""
    expected = np.asarray(expected_spend, dtype=float)
    buy = 1.0 - np.asarray(btyd_p_churn, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        base = (1.0 - np.asarray(p_churn, dtype=float)) * np.asarray(btyd_spend, dtype=float) / buy
        factor = expected / base
    ok = (buy > 1e-9) & (base > 0) & np.isfinite(factor) & (expected > 0)
    return np.asarray(np.clip(np.where(ok, factor, 1.0), *SCALE_RANGE))


def _ranks(n: int, probs: Sequence[float]) -> list[int]:
    """The empirical quantiles' ranks among ``n`` draws (inverted CDF: the ceil(p n)-th smallest, from 0)."""
    return [min(max(math.ceil(p * n), 1), n) - 1 for p in probs]


def _order_stats(
    values: np.ndarray, probs: Sequence[float], p_zero: np.ndarray | None = None, is_zero: np.ndarray | None = None
) -> np.ndarray:
    """Per row, the empirical quantiles of :func:`_ranks` (the reference :meth:`SpendIntervals._draw` equals).
    With ``p_zero`` (per row), the weighted quantiles of the kernel's ``_mass``: the draws of ``is_zero``
    (default: ``values == 0``; the spend's for CLV) weigh ``p_zero`` in all, the others ``1 - p_zero``."""
    if p_zero is None:
        ranks = _ranks(values.shape[1], probs)
        part = np.partition(values, sorted(set(ranks)), axis=1)
        return part[:, ranks]
    n = values.shape[1]
    is_zero = values == 0 if is_zero is None else is_zero
    order = np.argsort(values, axis=1, kind="stable")
    ordered = np.take_along_axis(values, order, axis=1)
    first = np.take_along_axis(is_zero, order, axis=1)
    start = np.zeros((len(values), 1), dtype=np.int64)
    cz = np.concatenate([start, np.cumsum(first, axis=1)], axis=1)  # after 0, 1, ..., n draws
    cp = np.concatenate([start, np.cumsum(~first, axis=1)], axis=1)
    n_zero = is_zero.sum(axis=1)[:, None]
    n_pos = n - n_zero
    p = np.asarray(p_zero, dtype=float)[:, None]
    with np.errstate(divide="ignore", invalid="ignore"):
        zero = np.where(n_zero > 0, p * (cz / n_zero), p)
        mass = np.where(n_pos == 0, cz / n_zero, zero + (1.0 - p) * (cp / n_pos))
    out = np.empty((len(values), len(probs)))
    for j, q in enumerate(probs):
        reached = mass >= q
        k = np.where(reached.any(axis=1), reached.argmax(axis=1), n)
        out[:, j] = np.where(k == 0, 0.0, ordered[np.arange(len(values)), np.maximum(k - 1, 0)])
    return out


def _zero_share(p_zero: np.ndarray | pd.Series | None, rows: int, method: str) -> np.ndarray | None:
    """``p_zero`` as a float array of one probability per row (None stays None), or a ValueError."""
    if p_zero is None:
        return None
    out = np.ascontiguousarray(np.asarray(p_zero, dtype=float))
    if out.shape != (rows,):
        raise ValueError(f"SpendIntervals.{method}: p_zero has shape {out.shape}; expected one value per row")
    if not np.all((out >= 0) & (out <= 1)):  # NaN fails too
        raise ValueError(f"SpendIntervals.{method}: p_zero must be a probability in [0, 1] on every row")
    return out


def _cdf(part: np.ndarray, y: np.ndarray, p_zero: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """``F(y-)`` and ``F(y)`` per row of the draws ``part`` (rows x draws), with ``p_zero`` as in
    :meth:`SpendIntervals.pit`."""
    if p_zero is None:
        return (part < y[:, None]).mean(axis=1), (part <= y[:, None]).mean(axis=1)
    positive = part > 0
    n_pos = positive.sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        g_below = np.where(n_pos > 0, (positive & (part < y[:, None])).sum(axis=1) / n_pos, 1.0)
        g_at = np.where(n_pos > 0, (positive & (part <= y[:, None])).sum(axis=1) / n_pos, 1.0)
    below = np.where(y > 0, p_zero + (1 - p_zero) * g_below, 0.0)
    at = np.where(y > 0, p_zero + (1 - p_zero) * g_at, np.where(y == 0, p_zero, 0.0))
    return below, at
