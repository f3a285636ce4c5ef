"""BTYD ("buy till you die") models wrapping ``lifetimes``: purchases, churn, spend and CLV.

:class:`BTYDModel` fits one transaction model -- BG/NBD (default), Pareto/NBD or MBG/NBD -- and a
Gamma-Gamma spend model on the per-customer summary the feature job builds, and scores every customer
for a horizon of ``H`` days: ``p_alive``, ``p_churn``, ``expected_purchases``, ``expected_order_value``,
``expected_spend``, ``clv`` and ``expected_next_purchase_days``.

Input contract (one row per customer, lifetimes' conventions, all times in **days**):

- ``frequency``: number of repeat purchase days (purchase days after the first one);
- ``recency``: days from the first to the last purchase day (0 when ``frequency == 0``);
- ``T``: days from the first purchase to the as-of date;
- ``monetary_value``: mean net spend of the repeat purchase days (0 when ``frequency == 0``).

A customer who never bought (a sign-up) has ``frequency``, ``recency`` and ``T`` all NaN. Such rows are
left out of the fit and are scored as a brand-new customer whose first purchase is on the as-of date
(``frequency = recency = T = 0``): the population prior, which is what the models say about someone with
no history.

Churn is ``P(no purchase in (as_of, as_of + H])`` under the fitted model, never ``1 - P(alive)``: BG/NBD
gives ``P(alive) = 1`` to every one-time buyer, so ``1 - P(alive)`` ranks them as the safest customers.

Every score holds for every parameter set a fit can return: the conditional expectations are evaluated
by series, closed form or quadrature, whichever is exact for the row (lifetimes' own BG/NBD form is NaN
when ``a + b < 1``, as CDNOW fits give), and a transaction-model fit that fails is retried from other
starting points and then at larger penalizers before giving up (``fit_notes_`` says what was used).

The models are the papers' (lifetimes implements them; we only wrap the fitters):

- BG/NBD: Fader, Hardie and Lee (2005), "Counting Your Customers the Easy Way: An Alternative to the
  Pareto/NBD Model", Marketing Science 24(2), 275-284.
- Pareto/NBD: Schmittlein, Morrison and Colombo (1987), "Counting Your Customers: Who Are They and What
  Will They Do Next?", Management Science 33(1), 1-24; conditional pmf from Fader and Hardie (2006),
  "Deriving the Conditional PMF of the Pareto/NBD Model" (brucehardie.com note 028).
- MBG/NBD: Batislam, Denizel and Filiztekin (2007), "Empirical validation and comparison of models for
  customer base analysis", IJRM 24(3), 201-209; Wagner and Hoppe (2008), "Erratum on the MBG/NBD
  Model", IJRM 25(3), 225-226.
- Gamma-Gamma: Fader, Hardie and Lee (2005), "RFM and CLV: Using Iso-Value Curves for Customer Base
  Analysis", JMR 42(4), 415-430; Fader and Hardie (2013), "The Gamma-Gamma Model of Monetary Value"
  (brucehardie.com note 025).
"""

from __future__ import annotations

import contextlib
import io
import itertools
import logging
import math
import time
import warnings
from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np
import pandas as pd
from scipy import integrate, special
from sklearn.base import BaseEstimator
from sklearn.exceptions import NotFittedError

__all__ = [
    "MODELS",
    "PREDICTION_COLUMNS",
    "REQUIRED_COLUMNS",
    "BTYDConvergenceError",
    "BTYDModel",
    "NotFittedError",
]

logger = logging.getLogger(__name__)

MODELS: tuple[str, ...] = ("bgnbd", "pareto", "mbgnbd")
REQUIRED_COLUMNS: tuple[str, ...] = ("frequency", "recency", "T", "monetary_value")
PREDICTION_COLUMNS: tuple[str, ...] = (
    "p_alive",
    "p_churn",
    "expected_purchases",
    "expected_order_value",
    "expected_spend",
    "clv",
    "expected_next_purchase_days",
)

DAYS_PER_MONTH = 365.25 / 12
# Beyond this the "next purchase" is not a useful date: report NaN instead.
MAX_NEXT_PURCHASE_DAYS = 36525.0

_FORMAT = "churnclv.models.btyd.BTYDModel"
_FORMAT_VERSION = 1
_PARAM_NAMES = {
    "bgnbd": ("r", "alpha", "a", "b"),
    "mbgnbd": ("r", "alpha", "a", "b"),
    "pareto": ("r", "alpha", "s", "beta"),
}
_GG_PARAM_NAMES = ("p", "q", "v")
# Below this many unique rows a plain lifetimes fit is already fast; above it a warm start from a
# coarsened copy of the data saves most BFGS iterations (see _warm_start_counts).
_WARM_START_MIN_ROWS = 20_000
_WARM_START_GRID = 40  # coarse time grid: T.max() / 40
_WARM_START_LOG_M_STEP = 0.02  # coarse Gamma-Gamma grid on log(monetary_value)
_PARETO_MAXITER = 20_000
_LIFETIMES_TOL = 1e-7  # lifetimes' default optimizer tolerance
_PARAM_RANGE = (1e-6, 1e6)  # fitted parameters outside this are degenerate
# Transaction-model fit fallbacks (see _fit_counts): fixed alternative starts (r, alpha, a, b) or
# (r, alpha, s, beta) in lifetimes' internal time unit, T.max(): one near published CDNOW fits (Fader,
# Hardie and Lee 2005; alpha ~ 4.4 weeks of a 39-week T.max), one flatter. Then larger penalizers,
# each tried when above the user's.
_ALTERNATIVE_STARTS: dict[str, tuple[tuple[str, tuple[float, ...]], ...]] = {
    "bgnbd": (("typical", (0.25, 0.1, 0.8, 2.5)), ("flat", (1.0, 1.0, 2.0, 10.0))),
    "mbgnbd": (("typical", (0.5, 0.1, 0.8, 1.5)), ("flat", (1.0, 1.0, 2.0, 10.0))),
    "pareto": (("typical", (0.55, 0.25, 0.6, 0.3)), ("flat", (2.0, 1.0, 2.0, 2.0))),
}
_FALLBACK_PENALIZERS = (1e-4, 1e-3, 1e-2, 0.1)
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
# Grid for the Pareto/NBD median waiting time (no closed form there): log-spaced, in days.
_NEXT_PURCHASE_GRID_DAYS = np.geomspace(0.01, MAX_NEXT_PURCHASE_DAYS, 121)
# Rounding slack allowed on probabilities before clipping to [0, 1]; more than this is a bug.
_PROB_SLACK = 1e-8


class BTYDConvergenceError(RuntimeError):
    """A BTYD fit did not converge or gave degenerate (non-finite, ~0 or huge) parameters."""


# --------------------------------------------------------------------------------------------------
# lifetimes access: imported lazily and quietly
# --------------------------------------------------------------------------------------------------


def _lifetimes() -> Any:
    # lifetimes calls warnings.simplefilter at import (and pkg_resources warns): keep that out of the
    # caller's global warnings state.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import lifetimes
        import lifetimes.utils
    return lifetimes


@contextlib.contextmanager
def _quiet() -> Iterator[io.StringIO]:
    """Scope lifetimes' side effects: warnings filters, numpy FP warnings and its stdout prints.

    lifetimes prints the scipy result before raising ``ConvergenceError`` and resets warnings filters
    inside its likelihoods; both are confined to this block (stdout is captured and logged at DEBUG).
    """
    buf = io.StringIO()
    try:
        # redirect_stdout swaps sys.stdout process-wide for the block: acceptable for a batch fit,
        # and the only way to keep lifetimes' print off the caller's stdout.
        with warnings.catch_warnings(), np.errstate(all="ignore"), contextlib.redirect_stdout(buf):
            warnings.simplefilter("ignore")
            yield buf
    finally:
        if buf.getvalue().strip():
            logger.debug("lifetimes output: %s", buf.getvalue().strip())


def _fitter_class(model: str) -> Any:
    lt = _lifetimes()
    return {"bgnbd": lt.BetaGeoFitter, "mbgnbd": lt.ModifiedBetaGeoFitter, "pareto": lt.ParetoNBDFitter}[model]


# lifetimes' prediction methods read their parameters with ``params_[name]``: a plain dict serves
# them 10x cheaper than the pandas Series its fit leaves (this matters on the one-row HTTP path).
# Only its prediction methods are called on these fitters, never its summaries.


def _fitter_with_params(model: str, params: Mapping[str, float]) -> Any:
    fitter = _fitter_class(model)()
    fitter.params_ = {k: float(params[k]) for k in _PARAM_NAMES[model]}
    return fitter


def _gg_with_params(params: Mapping[str, float]) -> Any:
    fitter = _lifetimes().GammaGammaFitter()
    fitter.params_ = {k: float(params[k]) for k in _GG_PARAM_NAMES}
    return fitter


# --------------------------------------------------------------------------------------------------
# input checks and compression
# --------------------------------------------------------------------------------------------------


def _validate_frame(frame: Any, where: str) -> dict[str, np.ndarray]:
    """Check the summary contract; return float arrays plus the mask of never-purchased rows."""
    if not isinstance(frame, pd.DataFrame):
        raise TypeError(
            f"{where}: expected a pandas DataFrame with columns {list(REQUIRED_COLUMNS)}, got {type(frame).__name__}."
        )
    missing = [c for c in REQUIRED_COLUMNS if c not in frame.columns]
    if missing:
        raise ValueError(
            f"{where}: frame is missing required column(s) {missing}; expected "
            f"{list(REQUIRED_COLUMNS)} in days, one row per customer, as built by the "
            "feature job (lifetimes' summary conventions)."
        )
    cols: dict[str, np.ndarray] = {}
    for c in REQUIRED_COLUMNS:
        try:
            cols[c] = pd.to_numeric(frame[c]).to_numpy(dtype=float, na_value=np.nan)
        except (TypeError, ValueError) as exc:
            raise TypeError(
                f"{where}: column {c!r} must be numeric (dtype {frame[c].dtype}); "
                "cast it to float before fitting or scoring."
            ) from exc
    f, r, t, m = (cols[c] for c in REQUIRED_COLUMNS)

    def fail(column: str, bad: np.ndarray, rule: str, fix: str) -> None:
        if bad.any():
            first = frame.index[int(np.flatnonzero(bad)[0])]
            raise ValueError(
                f"{where}: column {column!r} breaks the rule '{rule}' in {int(bad.sum())} "
                f"row(s) (first at index {first!r}); {fix}"
            )

    nan_frt = np.isnan(f) | np.isnan(r) | np.isnan(t)
    fail(
        "frequency/recency/T",
        nan_frt & ~(np.isnan(f) & np.isnan(r) & np.isnan(t)),
        "all three are NaN (never purchased) or none is",
        "rebuild the summary so a customer without purchases has all three NaN.",
    )
    for c, v in (("frequency", f), ("recency", r), ("T", t), ("monetary_value", m)):
        fail(c, np.isinf(v), "finite", "replace infinite values.")
    ok = ~nan_frt
    fail(
        "frequency",
        ok & ((f < 0) | (f != np.floor(f))),
        "a non-negative integer",
        "frequency counts repeat purchase days.",
    )
    fail("recency", ok & (r < 0), "recency >= 0", "recency is days from first to last purchase.")
    fail("recency", ok & (r > t), "recency <= T", "T is days from first purchase to as-of.")
    fail(
        "recency",
        ok & (f == 0) & (r != 0),
        "recency == 0 when frequency == 0",
        "a customer without repeat purchases has recency 0.",
    )
    fail(
        "monetary_value",
        ok & (f > 0) & np.isnan(m),
        "not NaN when frequency > 0",
        "monetary_value is the mean net spend of repeat purchase days.",
    )
    # No repeat purchase means no spend information: the contract's 0 (or NaN) is treated alike.
    m = np.where(ok & (f > 0), m, 0.0)
    return {"frequency": f, "recency": r, "T": t, "monetary_value": m, "never": nan_frt}


_SMALL_ROWS = 256


def _small_inverse(columns: tuple[np.ndarray, ...]) -> np.ndarray:
    """Group numbers in first-seen order (as ``groupby(sort=False).ngroup()``) for a few rows."""
    seen: dict[tuple[float, ...], int] = {}
    # key on the bit patterns (+0.0 turns -0.0 into 0.0, which pandas groups together)
    keys = zip(*((np.asarray(c, dtype=np.float64) + 0.0).view(np.int64).tolist() for c in columns))
    return np.fromiter((seen.setdefault(k, len(seen)) for k in keys), dtype=np.int64, count=columns[0].size)


def _unique_rows(
    *columns: np.ndarray, weights: np.ndarray | None = None
) -> tuple[list[np.ndarray], np.ndarray, np.ndarray]:
    """Unique rows of ``columns`` (first-seen order), their summed weights and the inverse map."""
    if columns[0].size <= _SMALL_ROWS:  # a pandas groupby costs ~0.7 ms whatever the size
        inverse = _small_inverse(columns)
    else:
        key = pd.DataFrame({str(i): c for i, c in enumerate(columns)})
        inverse = key.groupby(list(key.columns), sort=False).ngroup().to_numpy()
    n = int(inverse.max()) + 1 if inverse.size else 0
    first = np.full(n, -1, dtype=np.int64)
    # reversed assignment leaves the first occurrence of each group
    first[inverse[::-1]] = np.arange(inverse.size)[::-1]
    w = np.ones(inverse.size) if weights is None else np.asarray(weights, dtype=float)
    counts = np.bincount(inverse, weights=w, minlength=n)
    return [c[first] for c in columns], counts, inverse


# --------------------------------------------------------------------------------------------------
# fitting
# --------------------------------------------------------------------------------------------------


def _pareto_recency(x: np.ndarray, tx: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Recency for lifetimes' Pareto/NBD: ``t_x`` nudged below ``T`` by 1e-9 (relative) where equal.

    Its ``A_0`` (Fader and Hardie 2005, note 009, eq. 19) is a difference of two equal terms when
    ``recency == T`` (a purchase on the as-of day): rounding makes it negative and the log NaN, which
    turns the whole likelihood NaN (a fit then stops anywhere) and P(alive) NaN. The nudge resolves
    the difference and moves no score or parameter visibly.
    """
    return np.where((x > 0) & (tx > t * (1 - 1e-9)), t * (1 - 1e-9), tx)


def _log_likelihood_counts(
    model: str, params: Mapping[str, float], x: np.ndarray, tx: np.ndarray, t: np.ndarray, w: np.ndarray
) -> float:
    """Total (not per-customer), unpenalized log-likelihood in the model's time unit.

    lifetimes reports the mean, penalized likelihood in its internal rescaled time, which differs from
    the papers' figure by ``sum(x) * log(scale)``; the papers' figure is what we report.
    """
    cls = _fitter_class(model)
    p = np.array([params[k] for k in _PARAM_NAMES[model]], dtype=float)
    with _quiet():
        if model == "pareto":
            return float(np.sum(w * cls._conditional_log_likelihood(p, x, tx, t)))
        return float(-cls._negative_log_likelihood(np.log(p), x, tx, t, w, 0.0) * w.sum())


def _warm_start_counts(
    model: str, x: np.ndarray, tx: np.ndarray, t: np.ndarray, w: np.ndarray, penalizer: float
) -> dict[str, Any]:
    """Initial parameters (and BFGS inverse Hessian) from a fit on a time-coarsened copy of the data.

    Rounding recency and T to ``T.max() / 40`` shrinks the unique rows ~25x; its optimum is within a
    few percent of the real one, so the real fit needs a handful of Newton-like steps instead of ~30.
    The final fit still runs on the exact data to the requested tolerance: only the start changes.
    """
    step = float(t.max()) / _WARM_START_GRID
    (xc, txc, tc), wc, _ = _unique_rows(x, np.round(tx / step) * step, np.round(t / step) * step, weights=w)
    if model == "pareto":
        txc = _pareto_recency(xc, txc, tc)
    cls = _fitter_class(model)
    with _quiet():
        kwargs: dict[str, Any] = {"weights": wc}
        if model == "pareto":
            kwargs.update(initial_params=np.ones(4), tol=1e-6, maxiter=_PARETO_MAXITER)
        coarse = cls(penalizer_coef=penalizer).fit(xc, txc, tc, **kwargs)
    params = coarse.params_.astype(float)
    # lifetimes optimises in time rescaled by 1 / T.max(); its start must be in that scale.
    scale = 1.0 / float(t.max())
    if model == "pareto":
        return {"initial_params": np.array([params["r"], params["alpha"] * scale, params["s"], params["beta"] * scale])}
    start = np.log([params["r"], params["alpha"] * scale, params["a"], params["b"]])
    out: dict[str, Any] = {"initial_params": start}
    inv = _pd_inverse(getattr(coarse, "_hessian_", None))
    if inv is not None:
        out["hess_inv0"] = inv
    return out


def _pd_inverse(hessian: Any) -> np.ndarray | None:
    """Symmetric positive-definite inverse of ``hessian``, or None if there is none."""
    if hessian is None:
        return None
    h = np.asarray(hessian, dtype=float)
    h = (h + h.T) / 2
    try:
        np.linalg.cholesky(h)
        inv = np.linalg.inv(h)
    except np.linalg.LinAlgError:
        return None
    inv = (inv + inv.T) / 2
    return inv if np.all(np.isfinite(inv)) else None


def _fit_counts(
    model: str, x: np.ndarray, tx: np.ndarray, t: np.ndarray, w: np.ndarray | None, penalizer: float, tol: float
) -> tuple[dict[str, float], float, list[str]]:
    """Fit the transaction model, retrying before giving up; return params, log-likelihood and notes.

    Attempts, in order, each accepted only with finite parameters inside ``_PARAM_RANGE`` and a finite
    log-likelihood:

    1. at ``penalizer`` from a warm start (from 20,000 unique rows on, see :func:`_warm_start_counts`);
    2. at ``penalizer`` from lifetimes' default start (Pareto/NBD: ones, its random start pinned);
    3. at ``penalizer`` from each of ``_ALTERNATIVE_STARTS``;
    4. from lifetimes' default start at each of ``_FALLBACK_PENALIZERS`` larger than ``penalizer``.

    The notes (empty when the first attempt worked) say what failed and what was used; the caller
    logs them. Raises BTYDConvergenceError, naming every attempt, when all fail.
    """
    attempts: list[tuple[float, str, Any]] = []
    if w is not None and x.size >= _WARM_START_MIN_ROWS:
        attempts.append((penalizer, "a warm start", "warm"))
    attempts.append((penalizer, "lifetimes' default start", None))
    for label, values in _ALTERNATIVE_STARTS[model]:
        # lifetimes optimises log(params) for BG/MBG, the params themselves for Pareto/NBD
        initial = np.array(values) if model == "pareto" else np.log(values)
        attempts.append((penalizer, f"the {label} start", initial))
    attempts += [(p, "lifetimes' default start", None) for p in _FALLBACK_PENALIZERS if p > penalizer]

    failed: list[str] = []
    for pen, label, start in attempts:
        if isinstance(start, str):  # "warm"
            try:
                start = _warm_start_counts(model, x, tx, t, np.asarray(w), pen)
            except (_lifetimes().utils.ConvergenceError, ValueError, FloatingPointError, np.linalg.LinAlgError) as exc:
                # the coarse fit only saves time: the default start comes next anyway
                logger.debug("warm start skipped: %s", exc)
                continue
        try:
            params, log_likelihood = _fit_counts_once(model, x, tx, t, w, pen, tol, start)
        except BTYDConvergenceError as exc:
            failed.append(f"{model} at penalizer {pen:g} from {label} {exc}")
            logger.debug("%s", failed[-1])
            continue
        notes = []
        if failed:
            notes.append(f"{'; '.join(failed)}; fitted at penalizer {pen:g} from {label}")
        return params, log_likelihood, notes
    tried = "; ".join(failed)
    raise BTYDConvergenceError(
        f"BTYDModel: every {model} fit failed on {x.size} rows, so there are no parameters to score "
        f"with. Tried: {tried}. More customers, or a later as-of date (longer histories with more "
        "repeat purchases), would identify the model; a penalizer above "
        f"{max(penalizer, *_FALLBACK_PENALIZERS):g} or another model is the alternative."
    )


def _fit_counts_once(
    model: str,
    x: np.ndarray,
    tx: np.ndarray,
    t: np.ndarray,
    w: np.ndarray | None,
    penalizer: float,
    tol: float,
    start: Mapping[str, Any] | np.ndarray | None,
) -> tuple[dict[str, float], float]:
    """One lifetimes fit from ``start``; raise BTYDConvergenceError (short reason) when unusable."""
    cls = _fitter_class(model)
    lt = _lifetimes()
    kwargs: dict[str, Any] = {"tol": tol}
    if w is not None:
        kwargs["weights"] = w
    if model == "pareto":
        # lifetimes draws the Nelder-Mead start from the global numpy RNG: pin it for reproducibility.
        kwargs.update(initial_params=np.ones(4), maxiter=_PARETO_MAXITER)
    if isinstance(start, Mapping):
        kwargs.update(start)
    elif start is not None:
        kwargs["initial_params"] = start
    try:
        with _quiet():
            try:
                fitter = cls(penalizer_coef=penalizer).fit(x, tx, t, **kwargs)
            except lt.utils.ConvergenceError:
                if kwargs["tol"] >= _LIFETIMES_TOL:
                    raise
                # BFGS stops with "precision loss" when tol sits at the objective's rounding noise:
                # that is convergence in all but name, so retry at lifetimes' own default.
                logger.debug("%s fit at tol=%g stopped early; retrying at tol=%g", model, kwargs["tol"], _LIFETIMES_TOL)
                kwargs["tol"] = _LIFETIMES_TOL
                fitter = cls(penalizer_coef=penalizer).fit(x, tx, t, **kwargs)
    except (lt.utils.ConvergenceError, np.linalg.LinAlgError) as exc:
        raise BTYDConvergenceError(f"did not converge ({type(exc).__name__})") from exc
    params = {k: float(fitter.params_[k]) for k in _PARAM_NAMES[model]}
    # Nelder-Mead (Pareto/NBD) never reports failure; a parameter run off to 0 or infinity is how an
    # unidentified model shows, and its closed forms then overflow at scoring time.
    if not all(math.isfinite(v) and _PARAM_RANGE[0] < v < _PARAM_RANGE[1] for v in params.values()):
        shown = {k: float(f"{v:.4g}") for k, v in params.items()}
        raise BTYDConvergenceError(f"gave degenerate parameters {shown} (each must lie in {_PARAM_RANGE})")
    log_likelihood = _log_likelihood_counts(model, params, x, tx, t, np.ones(x.size) if w is None else w)
    if not math.isfinite(log_likelihood):
        shown = {k: float(f"{v:.4g}") for k, v in params.items()}
        raise BTYDConvergenceError(f"gave a non-finite log-likelihood at {shown}")
    return params, log_likelihood


def _fit_spend(x: np.ndarray, m: np.ndarray, w: np.ndarray | None, penalizer: float, tol: float) -> dict[str, float]:
    """Fit Gamma-Gamma with lifetimes; raise BTYDConvergenceError when unusable."""
    lt = _lifetimes()
    kwargs: dict[str, Any] = {"tol": tol}
    if w is not None:
        kwargs["weights"] = w
        if x.size >= _WARM_START_MIN_ROWS:
            step = _WARM_START_LOG_M_STEP
            (xc, mc), wc, _ = _unique_rows(x, np.exp(np.round(np.log(m) / step) * step), weights=w)
            try:
                with _quiet():
                    coarse = lt.GammaGammaFitter(penalizer_coef=penalizer).fit(xc, mc, weights=wc, tol=1e-6)
                kwargs["initial_params"] = np.log(coarse.params_.to_numpy(dtype=float))
                inv = _pd_inverse(getattr(coarse, "_hessian_", None))
                if inv is not None:
                    kwargs["hess_inv0"] = inv
            except (lt.utils.ConvergenceError, ValueError, np.linalg.LinAlgError) as exc:
                logger.debug("Gamma-Gamma warm start skipped: %s", exc)
    try:
        with _quiet():
            try:
                fitter = lt.GammaGammaFitter(penalizer_coef=penalizer).fit(x, m, **kwargs)
            except lt.utils.ConvergenceError:
                if kwargs["tol"] >= _LIFETIMES_TOL:
                    raise
                kwargs["tol"] = _LIFETIMES_TOL  # see _fit_counts
                fitter = lt.GammaGammaFitter(penalizer_coef=penalizer).fit(x, m, **kwargs)
    except (lt.utils.ConvergenceError, np.linalg.LinAlgError) as exc:
        raise BTYDConvergenceError(f"Gamma-Gamma fit did not converge ({type(exc).__name__})") from exc
    params = {k: float(fitter.params_[k]) for k in _GG_PARAM_NAMES}
    if not all(math.isfinite(v) and _PARAM_RANGE[0] < v < _PARAM_RANGE[1] for v in params.values()):
        raise BTYDConvergenceError(
            f"Gamma-Gamma fit gave degenerate parameters {params} (each must lie in {_PARAM_RANGE})"
        )
    if params["q"] <= 1:
        raise BTYDConvergenceError(
            f"Gamma-Gamma fit gave q = {params['q']:.4g} <= 1, for which the "
            "population mean order value p*v/(q-1) is undefined"
        )
    return params


def _log_likelihood_spend(params: Mapping[str, float], x: np.ndarray, m: np.ndarray, w: np.ndarray) -> float:
    gg = _lifetimes().GammaGammaFitter
    p = np.log([params[k] for k in _GG_PARAM_NAMES])
    with _quiet():
        return float(-gg._negative_log_likelihood(p, x, m, w, 0.0) * w.sum())


# --------------------------------------------------------------------------------------------------
# conditional quantities (model time units)
# --------------------------------------------------------------------------------------------------


def _p_no_purchase(
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
            (ux, ut), _, inverse = _unique_rows(x[bad], t[bad])
            within = np.array([_pareto_purchase_within(params, float(xi), float(ti), h) for xi, ti in zip(ux, ut)])
            p0[bad] = 1.0 - p_alive[bad] * within[inverse]
        return p0
    r, alpha = params["r"], params["alpha"]
    survive = np.exp((r + x) * (np.log(alpha + t) - np.log(alpha + t + h)))
    return p_alive * survive + (1.0 - p_alive)


def _p_alive(
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
            (ux, utx, ut), _, inverse = _unique_rows(x[bad], tx[bad], t[bad])
            p[bad] = np.array(
                [
                    _pareto_p_alive_by_quadrature(params, float(xi), float(txi), float(ti))
                    for xi, txi, ti in zip(ux, utx, ut)
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


def _expected_purchases(
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

    ``p_alive`` (from :func:`_p_alive`) is computed when not given.
    """
    # The singular points (a = 1, c = 0, s = 1) are handled below: their warnings are noise.
    with np.errstate(all="ignore"):
        if p_alive is None:
            p_alive = _p_alive(model, fitter, params, x, tx, t)
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
        (uk, uw, ub), _, inverse = _unique_rows(kr[bad], wr[bad], br[bad])
        values = np.array(
            [_alive_mean_by_quadrature(float(ki), float(wi), float(bi), a) for ki, wi, bi in zip(uk, uw, ub)]
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
    ok = np.isfinite(e) & (e >= 0.0) & (e <= k * w * (1.0 + 1e-9))
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
        return -a * np.logaddexp(0.0, -u) - beta * np.logaddexp(0.0, u) - log_norm

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


def _median_next_purchase(
    model: str,
    fitter: Any,
    params: Mapping[str, float],
    p_alive: np.ndarray,
    x: np.ndarray,
    tx: np.ndarray,
    t: np.ndarray,
    unit_days: float,
) -> np.ndarray:
    """Median waiting time (days) to the next purchase: smallest ``h`` with ``P(no purchase) <= 1/2``.

    NaN when that never happens within ``MAX_NEXT_PURCHASE_DAYS`` (the customer more likely than not
    never buys again). BG/MBG: solved in closed form from :func:`_p_no_purchase`. Pareto/NBD: the
    conditional pmf is evaluated on a log-spaced grid and interpolated (relative error well below 1%).
    """
    out = np.full(x.shape, np.nan)
    live = p_alive > 0.5  # P(no purchase ever) >= 1 - P(alive) under all three models
    if model != "pareto":
        r, alpha = params["r"], params["alpha"]
        pa = p_alive[live]
        h = (alpha + t[live]) * np.expm1(np.log(pa / (pa - 0.5)) / (r + x[live]))
        out[live] = h * unit_days
    else:
        idx = np.flatnonzero(live)
        prev_h, prev_p = np.zeros(idx.size), np.ones(idx.size)
        for h_days in _NEXT_PURCHASE_GRID_DAYS:
            if idx.size == 0:
                break
            p0 = _p_no_purchase(model, fitter, params, p_alive[idx], x[idx], tx[idx], t[idx], h_days / unit_days)
            hit = p0 <= 0.5
            if hit.any():
                lo_h, lo_p, hi_p = prev_h[hit], prev_p[hit], p0[hit]
                frac = np.clip((lo_p - 0.5) / np.maximum(lo_p - hi_p, 1e-300), 0.0, 1.0)
                # linear in log(h) between grid points; linear in h from h = 0 to the first point
                safe_lo = np.where(lo_h > 0, lo_h, h_days)
                in_log = np.exp(np.log(safe_lo) + frac * (np.log(h_days) - np.log(safe_lo)))
                out[idx[hit]] = np.where(lo_h > 0, in_log, frac * h_days)
            idx, prev_p = idx[~hit], p0[~hit]
            prev_h = np.full(idx.size, h_days)
    out[out > MAX_NEXT_PURCHASE_DAYS] = np.nan
    return out


def _is_probability(p: np.ndarray) -> np.ndarray:
    return np.isfinite(p) & (p >= -_PROB_SLACK) & (p <= 1 + _PROB_SLACK)


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
    return sum(
        integrate.quad(f, a, b, epsabs=0.0, epsrel=_QUAD_RTOL, limit=100)[0] for a, b in itertools.pairwise(edges)
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


def _as_probability(name: str, p: np.ndarray) -> np.ndarray:
    if np.any(p < -_PROB_SLACK) or np.any(p > 1 + _PROB_SLACK):
        worst = float(p[(p < 0) | (p > 1)][0])
        raise FloatingPointError(
            f"BTYDModel.predict: {name} = {worst!r} is outside [0, 1]; the "
            "lifetimes closed form lost precision for these inputs."
        )
    return np.clip(p, 0.0, 1.0)


# --------------------------------------------------------------------------------------------------
# the estimator
# --------------------------------------------------------------------------------------------------


class BTYDModel(BaseEstimator):
    """BG/NBD, Pareto/NBD or MBG/NBD purchases plus Gamma-Gamma spend, wrapping ``lifetimes``.

    Parameters
    ----------
    model : {"bgnbd", "pareto", "mbgnbd"}, default "bgnbd"
        Transaction model: BG/NBD (Fader, Hardie and Lee 2005), Pareto/NBD (Schmittlein, Morrison and
        Colombo 1987) or MBG/NBD (Batislam, Denizel and Filiztekin 2007).
    penalizer : float, default 0.0
        lifetimes' ``penalizer_coef`` for the transaction model (L2 on its parameters, in lifetimes'
        internal time scale). A fit that fails at it is retried at larger ones (see :meth:`fit`).
    gg_penalizer : float, default 0.0
        lifetimes' ``penalizer_coef`` for Gamma-Gamma.
    time_unit_days : float, default 1.0
        The model's time unit in days (7 for weeks). Inputs and outputs stay in days; only the
        parameters (``alpha``, ``beta``) and ``log_likelihood_`` are in this unit.
    compress : bool, default True
        Fit on the unique ``(frequency, recency, T)`` rows (and unique ``(frequency, monetary_value)``
        rows for Gamma-Gamma) with counts as lifetimes ``weights``: the same likelihood, so the same
        parameters, in a fraction of the time. From 20,000 unique rows on, the optimizer also starts
        from a fit on a time-coarsened copy of the data (same optimum, fewer iterations). False fits
        lifetimes on every customer from its default start (the reference).
    tol : float, default 1e-8
        Optimizer tolerance passed to lifetimes. Tighter than its 1e-7 default, so compressed and
        uncompressed fits land on the same optimum to ~1e-8 rather than ~1e-6. When BFGS stops on
        rounding noise ("precision loss") at this tolerance the fit is retried at 1e-7.
    gg_min_repeat_buyers : int, default 20
        Fewer repeat buyers with positive ``monetary_value`` than this and Gamma-Gamma is not fitted:
        every customer's expected order value is the population mean order value instead
        (``gg_fallback_`` says why). The same fallback applies when Gamma-Gamma fails to converge or
        gives ``q <= 1``.

    Attributes
    ----------
    params_ : dict[str, float]
        Transaction-model parameters (``r, alpha, a, b`` or ``r, alpha, s, beta``; rates per
        ``time_unit_days``).
    log_likelihood_ : float
        Total log-likelihood of the transaction model at ``params_`` (unpenalized, model time unit):
        the figure the papers report.
    gg_params_ : dict[str, float] or None
        Gamma-Gamma ``p, q, v`` (``v`` is the papers' gamma), None when the fallback is in use.
    gg_log_likelihood_ : float or None
        Total Gamma-Gamma log-likelihood.
    mean_order_value_ : float
        Population mean order value: mean net spend per repeat purchase day over repeat buyers.
    gg_fallback_ : str or None
        Why Gamma-Gamma is not used, or None.
    n_customers_, n_unique_rows_, n_repeat_buyers_ : int
        Customers fitted on (with at least one purchase), unique ``(frequency, recency, T)`` rows, and
        repeat buyers with positive monetary value.
    fit_notes_ : list[str]
        What the transaction-model fit had to fall back on (another starting point, a larger
        penalizer), empty when the first attempt worked; each is also logged as a warning.
    fit_seconds_ : dict[str, float]
        Wall time of the fit's stages: ``purchases`` (compression + transaction model) and ``spend``
        (not saved by :meth:`to_dict`).

    Notes
    -----
    Customers with no purchase at all (``frequency``, ``recency``, ``T`` NaN) are not fitted on and are
    scored as if their first purchase were on the as-of date (``frequency = recency = T = 0``).
    """

    def __init__(
        self,
        *,
        model: str = "bgnbd",
        penalizer: float = 0.0,
        gg_penalizer: float = 0.0,
        time_unit_days: float = 1.0,
        compress: bool = True,
        tol: float = 1e-8,
        gg_min_repeat_buyers: int = 20,
    ) -> None:
        self.model = model
        self.penalizer = penalizer
        self.gg_penalizer = gg_penalizer
        self.time_unit_days = time_unit_days
        self.compress = compress
        self.tol = tol
        self.gg_min_repeat_buyers = gg_min_repeat_buyers

    # -- fit ------------------------------------------------------------------------------------

    def _check_settings(self) -> None:
        name = type(self).__name__
        if self.model not in MODELS:
            raise ValueError(f"{name}: model={self.model!r} is not one of {list(MODELS)}.")
        for field in ("penalizer", "gg_penalizer"):
            v = getattr(self, field)
            if not (isinstance(v, (int, float)) and math.isfinite(v) and v >= 0):
                raise ValueError(f"{name}: {field}={v!r} must be a finite number >= 0.")
        if not (
            isinstance(self.time_unit_days, (int, float))
            and math.isfinite(self.time_unit_days)
            and self.time_unit_days > 0
        ):
            raise ValueError(f"{name}: time_unit_days={self.time_unit_days!r} must be > 0 (1 for days, 7 for weeks).")
        if not (isinstance(self.tol, (int, float)) and 0 < self.tol < 1):
            raise ValueError(f"{name}: tol={self.tol!r} must be in (0, 1).")
        if not (isinstance(self.gg_min_repeat_buyers, (int, np.integer)) and self.gg_min_repeat_buyers >= 1):
            raise ValueError(f"{name}: gg_min_repeat_buyers={self.gg_min_repeat_buyers!r} must be an integer >= 1.")

    def fit(self, frame: pd.DataFrame, y: None = None) -> BTYDModel:
        """Fit the transaction model and Gamma-Gamma on a customer summary.

        Parameters
        ----------
        frame : pandas.DataFrame
            One row per customer with ``frequency``, ``recency``, ``T``, ``monetary_value`` in days
            (see the module docstring). Never-purchased rows (NaN) are ignored.
        y : None
            Unused; present for scikit-learn compatibility.

        Returns
        -------
        BTYDModel
            ``self``, fitted.

        Raises
        ------
        ValueError
            When the frame breaks the summary contract or holds no customer with a purchase.
        BTYDConvergenceError
            When every attempt at the transaction model (see Notes) fails to converge or gives
            unusable parameters, or when fewer distinct histories than parameters make it
            unidentifiable.

        Notes
        -----
        A transaction-model fit that raises lifetimes' ``ConvergenceError``, gives parameters outside
        ``(1e-6, 1e6)`` or a non-finite log-likelihood is retried from lifetimes' default start (when
        a warm start was used), then from two fixed starts, then at penalizers 1e-4, 1e-3, 1e-2 and
        0.1 (those above ``penalizer``); ``fit_notes_`` records what was used.
        """
        self._check_settings()
        cols = _validate_frame(frame, f"{type(self).__name__}.fit")
        bought = ~cols["never"]
        if not bought.any():
            raise ValueError(
                f"{type(self).__name__}.fit: no customer with a purchase (frequency, "
                "recency and T are NaN in every row); there is nothing to fit."
            )
        unit = float(self.time_unit_days)
        f = cols["frequency"][bought]
        r = cols["recency"][bought] / unit
        t = cols["T"][bought] / unit
        m = cols["monetary_value"][bought]
        if t.max() <= 0:
            raise ValueError(
                f"{type(self).__name__}.fit: column 'T' is 0 for every customer (all "
                "first purchases on the as-of date); fit at a later as-of date."
            )

        started = time.perf_counter()
        (ux, utx, utt), uw, _ = _unique_rows(f, r, t)
        n_params = len(_PARAM_NAMES[self.model])
        if ux.size < n_params:
            raise BTYDConvergenceError(
                f"{type(self).__name__}.fit: only {ux.size} distinct (frequency, recency, T) row(s) "
                f"among {f.size} customers: {n_params} {self.model} parameters cannot be identified "
                "from fewer distinct histories, and no starting point or penalizer changes that; "
                "fit on more customers."
            )
        if self.compress:
            x, tx, tt, w = ux, utx, utt, uw
        else:
            x, tx, tt, w = f, r, t, np.ones(f.size)
        if self.model == "pareto":
            # A first purchase on the as-of day (T = 0) has likelihood 1 under any parameters, and
            # lifetimes' Pareto/NBD A_0 is NaN there (log of 0 - 0), which stalls Nelder-Mead: such
            # rows carry no information and are left out of its fit.
            keep = tt > 0
            x, tx, tt, w = x[keep], _pareto_recency(x, tx, tt)[keep], tt[keep], w[keep]
        params, log_likelihood, notes = _fit_counts(
            self.model, x, tx, tt, w if self.compress else None, float(self.penalizer), float(self.tol)
        )
        for note in notes:
            logger.warning("BTYD fit fallback used: %s", note)
        purchases_s = time.perf_counter() - started

        started = time.perf_counter()
        repeat = (f > 0) & (m > 0)
        n_repeat = int(repeat.sum())
        if n_repeat == 0:
            raise ValueError(
                f"{type(self).__name__}.fit: no repeat buyer with monetary_value > 0, "
                "so there is no spend to learn from; monetary_value must be the mean net "
                "spend of repeat purchase days."
            )
        fx, fm = f[repeat], m[repeat]
        mean_order_value = float(np.sum(fx * fm) / np.sum(fx))
        gg_params: dict[str, float] | None = None
        gg_ll: float | None = None
        fallback: str | None = None
        if n_repeat < self.gg_min_repeat_buyers:
            fallback = (
                f"only {n_repeat} repeat buyers with monetary_value > 0 "
                f"(gg_min_repeat_buyers={self.gg_min_repeat_buyers})"
            )
        else:
            if self.compress:
                (gx, gm), gw, _ = _unique_rows(fx, fm)
            else:
                gx, gm, gw = fx, fm, None
            try:
                gg_params = _fit_spend(gx, gm, gw, float(self.gg_penalizer), float(self.tol))
                gg_ll = _log_likelihood_spend(gg_params, gx, gm, np.ones(gx.size) if gw is None else gw)
            except BTYDConvergenceError as exc:
                gg_params, fallback = None, str(exc)
        if fallback is not None:
            logger.warning(
                "Gamma-Gamma not used, expected order value is the population mean %.4g: %s", mean_order_value, fallback
            )
        spend_s = time.perf_counter() - started

        self.params_ = params
        self.log_likelihood_ = log_likelihood
        self.gg_params_ = gg_params
        self.gg_log_likelihood_ = gg_ll
        self.mean_order_value_ = mean_order_value
        self.gg_fallback_ = fallback
        self.n_customers_ = int(f.size)
        self.n_unique_rows_ = int(ux.size)
        self.fit_notes_ = notes
        self.n_repeat_buyers_ = n_repeat
        self.fit_seconds_ = {"purchases": purchases_s, "spend": spend_s}
        logger.info(
            "fitted %s on %d customers (%d unique rows) in %.2fs: %s, log-likelihood %.2f",
            self.model,
            self.n_customers_,
            self.n_unique_rows_,
            purchases_s,
            params,
            log_likelihood,
        )
        return self

    # -- predict --------------------------------------------------------------------------------

    def _check_fitted(self) -> None:
        if not hasattr(self, "params_"):
            raise NotFittedError(
                f"This {type(self).__name__} instance is not fitted yet: call 'fit' "
                "with a customer summary (or load one with "
                f"{type(self).__name__}.from_dict) before 'predict'."
            )

    def expected_order_value(self, frame: pd.DataFrame) -> pd.Series:
        """Gamma-Gamma conditional expected value of a future purchase day, per customer.

        ``E[M | x, m] = (p x / (p x + q - 1)) m + (1 - p x / (p x + q - 1)) p v / (q - 1)``
        (Fader, Hardie and Lee 2005, JMR; note 025, eq. 5). Customers without repeat purchases get the
        population mean; a non-positive ``monetary_value`` (net returns) is taken as 0 before the
        weighting. Under the fallback every customer gets ``mean_order_value_``.

        Parameters
        ----------
        frame : pandas.DataFrame
            Customer summary (see the module docstring).

        Returns
        -------
        pandas.Series
            Indexed like ``frame``.
        """
        self._check_fitted()
        cols = _validate_frame(frame, f"{type(self).__name__}.expected_order_value")
        values = self._order_value(cols)
        return pd.Series(values, index=frame.index, name="expected_order_value")

    def _order_value(self, cols: Mapping[str, np.ndarray]) -> np.ndarray:
        n = cols["frequency"].size
        if self.gg_params_ is None:
            return np.full(n, self.mean_order_value_)
        f = np.where(cols["never"], 0.0, cols["frequency"])
        m = np.maximum(cols["monetary_value"], 0.0)
        with _quiet():
            v = _gg_with_params(self.gg_params_).conditional_expected_average_profit(f, m)
        return np.asarray(v, dtype=float)

    def predict(
        self, frame: pd.DataFrame, horizon_days: float, *, clv_months: int = 12, annual_discount_rate: float = 0.10
    ) -> pd.DataFrame:
        """Score every customer for the next ``horizon_days`` days.

        Parameters
        ----------
        frame : pandas.DataFrame
            Customer summary as in :meth:`fit` (never-purchased rows are scored as new customers).
        horizon_days : float
            Horizon ``H`` in days, > 0.
        clv_months : int, default 12
            CLV horizon in months of ``365.25 / 12`` days.
        annual_discount_rate : float, default 0.10
            Discount rate per year; month ``k``'s spend is discounted by ``(1 + d)^(k / 12)``.

        Returns
        -------
        pandas.DataFrame
            Same index and row order as ``frame`` (``customer_id`` first when ``frame`` has it), with:

            - ``p_alive``: P(alive at as-of | history);
            - ``p_churn``: P(no purchase in (as-of, as-of + H] | history);
            - ``expected_purchases``: E[purchase days in (as-of, as-of + H] | history];
            - ``expected_order_value``: Gamma-Gamma E[value of a purchase day | spend history];
            - ``expected_spend``: ``expected_purchases * expected_order_value``;
            - ``clv``: ``sum_k E[purchases in month k] * expected_order_value / (1 + d)^(k/12)``
              over ``k = 1..clv_months``;
            - ``expected_next_purchase_days``: median days from as-of to the next purchase under the
              conditional model (smallest ``h`` with P(no purchase in h) <= 1/2), NaN when the
              customer is more likely than not never to buy again. Add it to the as-of date for a date.

        Raises
        ------
        sklearn.exceptions.NotFittedError
            Before :meth:`fit` (or :meth:`from_dict`).
        FloatingPointError
            If any score comes out non-finite (scores are never silently NaN).
        """
        self._check_fitted()
        name = type(self).__name__
        if not (
            isinstance(horizon_days, (int, float, np.integer, np.floating))
            and math.isfinite(horizon_days)
            and horizon_days > 0
        ):
            raise ValueError(f"{name}.predict: horizon_days={horizon_days!r} must be a finite number of days > 0.")
        if not (isinstance(clv_months, (int, np.integer)) and clv_months >= 0):
            raise ValueError(f"{name}.predict: clv_months={clv_months!r} must be an integer >= 0.")
        if not (
            isinstance(annual_discount_rate, (int, float, np.integer, np.floating))
            and math.isfinite(annual_discount_rate)
            and annual_discount_rate > -1
        ):
            raise ValueError(
                f"{name}.predict: annual_discount_rate={annual_discount_rate!r} must be "
                "a finite number > -1 (0.10 for 10% a year)."
            )
        cols = _validate_frame(frame, f"{name}.predict")
        unit = float(self.time_unit_days)
        never = cols["never"]
        f = np.where(never, 0.0, cols["frequency"])
        r = np.where(never, 0.0, cols["recency"]) / unit
        t = np.where(never, 0.0, cols["T"]) / unit
        (x, tx, tt), _, inverse = _unique_rows(f, r, t)

        model, params = self.model, self.params_
        if model == "pareto":
            tx = _pareto_recency(x, tx, tt)
        fitter = _fitter_with_params(model, params)
        with _quiet():
            p_alive = _as_probability("p_alive", _p_alive(model, fitter, params, x, tx, tt))
            p_churn = _as_probability(
                "p_churn", _p_no_purchase(model, fitter, params, p_alive, x, tx, tt, float(horizon_days) / unit)
            )

            def expected(days: float) -> np.ndarray:
                return _expected_purchases(model, fitter, params, x, tx, tt, days / unit, p_alive)

            purchases = expected(float(horizon_days))
            discounted = np.zeros(x.shape)
            previous = np.zeros(x.shape)
            for k in range(1, int(clv_months) + 1):
                cumulative = np.maximum(expected(k * DAYS_PER_MONTH), previous)
                discounted += (cumulative - previous) / (1.0 + annual_discount_rate) ** (k / 12)
                previous = cumulative
            next_days = _median_next_purchase(model, fitter, params, p_alive, x, tx, tt, unit)

        value = self._order_value(cols)
        purchases_all = purchases[inverse]
        data: dict[str, Any] = {}
        if "customer_id" in frame.columns:
            data["customer_id"] = frame["customer_id"].to_numpy()
        data.update(
            p_alive=p_alive[inverse],
            p_churn=p_churn[inverse],
            expected_purchases=purchases_all,
            expected_order_value=value,
            expected_spend=purchases_all * value,
            clv=discounted[inverse] * value,
            expected_next_purchase_days=next_days[inverse],
        )
        out = pd.DataFrame(data, index=frame.index)  # one construction: cheap for one row too
        for c in PREDICTION_COLUMNS[:-1]:
            bad = ~np.isfinite(np.asarray(data[c], dtype=float))
            if bad.any():
                i = int(np.flatnonzero(bad)[0])
                raise FloatingPointError(
                    f"{name}.predict: {c} is not finite for {int(bad.sum())} customer(s) (first at "
                    f"index {frame.index[i]!r}: frequency={f[i]}, recency={r[i] * unit}, "
                    f"T={t[i] * unit}); the {model} closed forms overflowed with params {params}."
                )
        return out

    # -- persistence ----------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """Settings and learned parameters as a JSON-serialisable dict (no pickling).

        Returns
        -------
        dict
            ``{"format", "version", "init", "fitted"}``; ``fitted`` is None before :meth:`fit`.
        """
        init = {k: (v.item() if isinstance(v, np.generic) else v) for k, v in self.get_params().items()}
        fitted: dict[str, Any] | None = None
        if hasattr(self, "params_"):
            fitted = {
                "params": {k: float(v) for k, v in self.params_.items()},
                "log_likelihood": float(self.log_likelihood_),
                "gg_params": None if self.gg_params_ is None else {k: float(v) for k, v in self.gg_params_.items()},
                "gg_log_likelihood": None if self.gg_log_likelihood_ is None else float(self.gg_log_likelihood_),
                "mean_order_value": float(self.mean_order_value_),
                "gg_fallback": self.gg_fallback_,
                "n_customers": int(self.n_customers_),
                "n_unique_rows": int(self.n_unique_rows_),
                "n_repeat_buyers": int(self.n_repeat_buyers_),
                "fit_notes": [str(n) for n in self.fit_notes_],
            }
        return {"format": _FORMAT, "version": _FORMAT_VERSION, "init": init, "fitted": fitted}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> BTYDModel:
        """Rebuild an estimator from :meth:`to_dict` output.

        Parameters
        ----------
        data : Mapping
            As returned by :meth:`to_dict` (possibly through JSON).

        Returns
        -------
        BTYDModel
            Fitted when ``data["fitted"]`` is not None.
        """
        if not isinstance(data, Mapping) or data.get("format") != _FORMAT:
            raise ValueError(
                f"{cls.__name__}.from_dict: field 'format' must be {_FORMAT!r}; pass the "
                f"output of {cls.__name__}.to_dict()."
            )
        if data.get("version") != _FORMAT_VERSION:
            raise ValueError(
                f"{cls.__name__}.from_dict: field 'version' is {data.get('version')!r}, "
                f"this code reads version {_FORMAT_VERSION}."
            )
        try:
            est = cls(**dict(data["init"]))
        except TypeError as exc:
            raise ValueError(
                f"{cls.__name__}.from_dict: field 'init' holds an unknown setting "
                f"({exc}); expected keys of {cls.__name__}().get_params()."
            ) from exc
        est._check_settings()
        fitted = data.get("fitted")
        if fitted is None:
            return est
        names = _PARAM_NAMES[est.model]
        params = dict(fitted["params"])
        if sorted(params) != sorted(names):
            raise ValueError(
                f"{cls.__name__}.from_dict: field 'fitted.params' must have keys "
                f"{list(names)} for model {est.model!r}, got {sorted(params)}."
            )
        gg = fitted.get("gg_params")
        if gg is not None and sorted(gg) != sorted(_GG_PARAM_NAMES):
            raise ValueError(
                f"{cls.__name__}.from_dict: field 'fitted.gg_params' must have keys "
                f"{list(_GG_PARAM_NAMES)}, got {sorted(gg)}."
            )
        est.params_ = {k: float(params[k]) for k in names}
        est.log_likelihood_ = float(fitted["log_likelihood"])
        est.gg_params_ = None if gg is None else {k: float(gg[k]) for k in _GG_PARAM_NAMES}
        gg_ll = fitted.get("gg_log_likelihood")
        est.gg_log_likelihood_ = None if gg_ll is None else float(gg_ll)
        est.mean_order_value_ = float(fitted["mean_order_value"])
        est.gg_fallback_ = fitted.get("gg_fallback")
        est.n_customers_ = int(fitted["n_customers"])
        est.n_unique_rows_ = int(fitted["n_unique_rows"])
        est.n_repeat_buyers_ = int(fitted["n_repeat_buyers"])
        est.fit_notes_ = [str(n) for n in fitted.get("fit_notes", [])]  # optional: absent before
        return est
