"""Fitting the BTYD models with lifetimes: on compressed summaries, warm-started, retried.

The transaction model (BG/NBD, Pareto/NBD or MBG/NBD) and Gamma-Gamma are fitted by lifetimes on
the unique rows of the customer summary with their counts as weights: the same likelihood, so the
same parameters, in a fraction of the time. From 20,000 unique rows on, the optimizer starts from a
fit on a coarsened copy of the data. A transaction-model fit that fails is retried from other
starting points and then at larger penalizers before giving up (:func:`fit_counts`).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from churnclv.errors import ChurnclvError
from churnclv.models.btyd_summary import unique_rows
from churnclv.models.fit_memo import memo
from churnclv.models.lifetimes_fitters import (
    GG_PARAM_NAMES,
    PARAM_NAMES,
    fitter_class,
    import_lifetimes,
    pareto_recency,
    quiet,
)

__all__ = [
    "BTYDConvergenceError",
    "fit_counts",
    "fit_gamma_gamma",
    "fit_purchases",
    "log_likelihood_counts",
    "log_likelihood_gamma_gamma",
]

logger = logging.getLogger(__name__)

# Below this many unique rows a plain lifetimes fit is already fast; above it a warm start from a
# coarsened copy of the data saves most BFGS iterations (see _warm_start_counts).
_WARM_START_MIN_ROWS = 20_000
_WARM_START_GRID = 40  # coarse time grid: T.max() / 40
_WARM_START_LOG_M_STEP = 0.02  # coarse Gamma-Gamma grid on log(monetary_value)
_PARETO_MAXITER = 20_000
_LIFETIMES_TOL = 1e-7  # lifetimes' default optimizer tolerance
_PARAM_RANGE = (1e-6, 1e6)  # fitted parameters outside this are degenerate
# Transaction-model fit fallbacks (see fit_counts): fixed alternative starts (r, alpha, a, b) or
# (r, alpha, s, beta) in lifetimes' internal time unit, T.max(): one near published CDNOW fits (Fader,
# Hardie and Lee 2005; alpha ~ 4.4 weeks of a 39-week T.max), one flatter. Then larger penalizers,
# each tried when above the user's.
_ALTERNATIVE_STARTS: dict[str, tuple[tuple[str, tuple[float, ...]], ...]] = {
    "bgnbd": (("typical", (0.25, 0.1, 0.8, 2.5)), ("flat", (1.0, 1.0, 2.0, 10.0))),
    "mbgnbd": (("typical", (0.5, 0.1, 0.8, 1.5)), ("flat", (1.0, 1.0, 2.0, 10.0))),
    "pareto": (("typical", (0.55, 0.25, 0.6, 0.3)), ("flat", (2.0, 1.0, 2.0, 2.0))),
}
# 1.0: a shop where nobody has visibly dropped out yet (purchases spread to the end of the data) sends
# BG/NBD's a to 0 (5.5e-15 at 0.1 on a data zoo shop of 600 customers); at 1.0 it stays at the edge,
# a = 2e-4, p_alive 0.98 on average, and scores.
_FALLBACK_PENALIZERS = (1e-4, 1e-3, 1e-2, 0.1, 1.0)
MODEL_NAMES = {"bgnbd": "BG/NBD", "pareto": "Pareto/NBD", "mbgnbd": "MBG/NBD"}  # for messages


class BTYDConvergenceError(ChurnclvError, RuntimeError):
    """A BTYD fit did not converge or gave degenerate (non-finite, ~0 or huge) parameters."""


@memo
def fit_purchases(
    model: str,
    f: np.ndarray,
    r: np.ndarray,
    t: np.ndarray,
    *,
    compress: bool,
    penalizer: float,
    tol: float,
    where: str,
) -> tuple[dict[str, float], float, list[str], int]:
    """Fit the transaction model on the customers with a purchase (times in the model's unit).

    Returns the parameters, the log-likelihood, the notes of :func:`fit_counts` and the number of
    unique ``(frequency, recency, T)`` rows. ``compress`` fits on those unique rows with their counts
    as weights; ``where`` names the caller in errors.
    """
    (ux, utx, utt), uw, _ = unique_rows(f, r, t)
    n_params = len(PARAM_NAMES[model])
    if ux.size < n_params:
        raise BTYDConvergenceError(
            f"{where}: only {ux.size} distinct (frequency, recency, T) row(s) "
            f"among {f.size} customers: {n_params} {model} parameters cannot be identified "
            "from fewer distinct histories, and no starting point or penalizer changes that; "
            "fit on more customers."
        )
    if compress:
        x, tx, tt, w = ux, utx, utt, uw
    else:
        x, tx, tt, w = f, r, t, np.ones(f.size)
    if model == "pareto":
        # A first purchase on the as-of day (T = 0) has likelihood 1 under any parameters, and
        # lifetimes' Pareto/NBD A_0 is NaN there (log of 0 - 0), which stalls Nelder-Mead: such
        # rows carry no information and are left out of its fit.
        keep = tt > 0
        x, tx, tt, w = x[keep], pareto_recency(x, tx, tt)[keep], tt[keep], w[keep]
    params, log_likelihood, notes = fit_counts(model, x, tx, tt, w if compress else None, penalizer, tol)
    return params, log_likelihood, notes, int(ux.size)


def log_likelihood_counts(
    model: str, params: Mapping[str, float], x: np.ndarray, tx: np.ndarray, t: np.ndarray, w: np.ndarray
) -> float:
    """Total (not per-customer), unpenalized log-likelihood in the model's time unit.

    lifetimes reports the mean, penalized likelihood in its internal rescaled time, which differs from
    the papers' figure by ``sum(x) * log(scale)``; the papers' figure is what we report.
    """
    cls = fitter_class(model)
    p = np.array([params[k] for k in PARAM_NAMES[model]], dtype=float)
    with quiet():
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
    (xc, txc, tc), wc, _ = unique_rows(x, np.round(tx / step) * step, np.round(t / step) * step, weights=w)
    if model == "pareto":
        txc = pareto_recency(xc, txc, tc)
    cls = fitter_class(model)
    with quiet():
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


def fit_counts(
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
    for pen, label, planned in attempts:
        start = planned
        if isinstance(planned, str):  # "warm"
            skip = (import_lifetimes().utils.ConvergenceError, ValueError, FloatingPointError, np.linalg.LinAlgError)
            try:
                start = _warm_start_counts(model, x, tx, t, np.asarray(w), pen)
            except skip as exc:
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
        f"BTYDModel: every {MODEL_NAMES.get(model, model)} fit failed on {x.size} rows, from every start "
        f"and at penalizers up to {max(penalizer, *_FALLBACK_PENALIZERS):g}, so there are no parameters to "
        "score with: the histories do not identify the model (too short, or too few customers seen to "
        "lapse). Use a later as-of date or more history (churnclv validate shows what the data "
        f"support). Tried: {tried}."
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
    cls = fitter_class(model)
    lt = import_lifetimes()
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
        with quiet():
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
    params = {k: float(fitter.params_[k]) for k in PARAM_NAMES[model]}
    # Nelder-Mead (Pareto/NBD) never reports failure; a parameter run off to 0 or infinity is how an
    # unidentified model shows, and its closed forms then overflow at scoring time.
    if not all(math.isfinite(v) and _PARAM_RANGE[0] < v < _PARAM_RANGE[1] for v in params.values()):
        shown = {k: float(f"{v:.4g}") for k, v in params.items()}
        raise BTYDConvergenceError(f"gave degenerate parameters {shown} (each must lie in {_PARAM_RANGE})")
    log_likelihood = log_likelihood_counts(model, params, x, tx, t, np.ones(x.size) if w is None else w)
    if not math.isfinite(log_likelihood):
        shown = {k: float(f"{v:.4g}") for k, v in params.items()}
        raise BTYDConvergenceError(f"gave a non-finite log-likelihood at {shown}")
    return params, log_likelihood


def fit_gamma_gamma(
    x: np.ndarray, m: np.ndarray, w: np.ndarray | None, penalizer: float, tol: float
) -> dict[str, float]:
    """Fit Gamma-Gamma with lifetimes; raise BTYDConvergenceError when unusable."""
    lt = import_lifetimes()
    kwargs: dict[str, Any] = {"tol": tol}
    if w is not None:
        kwargs["weights"] = w
        if x.size >= _WARM_START_MIN_ROWS:
            step = _WARM_START_LOG_M_STEP
            (xc, mc), wc, _ = unique_rows(x, np.exp(np.round(np.log(m) / step) * step), weights=w)
            try:
                with quiet():
                    coarse = lt.GammaGammaFitter(penalizer_coef=penalizer).fit(xc, mc, weights=wc, tol=1e-6)
                kwargs["initial_params"] = np.log(coarse.params_.to_numpy(dtype=float))
                inv = _pd_inverse(getattr(coarse, "_hessian_", None))
                if inv is not None:
                    kwargs["hess_inv0"] = inv
            except (lt.utils.ConvergenceError, ValueError, np.linalg.LinAlgError) as exc:
                logger.debug("Gamma-Gamma warm start skipped: %s", exc)
    try:
        with quiet():
            try:
                fitter = lt.GammaGammaFitter(penalizer_coef=penalizer).fit(x, m, **kwargs)
            except lt.utils.ConvergenceError:
                if kwargs["tol"] >= _LIFETIMES_TOL:
                    raise
                kwargs["tol"] = _LIFETIMES_TOL  # see fit_counts
                fitter = lt.GammaGammaFitter(penalizer_coef=penalizer).fit(x, m, **kwargs)
    except (lt.utils.ConvergenceError, np.linalg.LinAlgError) as exc:
        raise BTYDConvergenceError(f"Gamma-Gamma fit did not converge ({type(exc).__name__})") from exc
    params = {k: float(fitter.params_[k]) for k in GG_PARAM_NAMES}
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


def log_likelihood_gamma_gamma(params: Mapping[str, float], x: np.ndarray, m: np.ndarray, w: np.ndarray) -> float:
    """Total (not per-customer), unpenalized Gamma-Gamma log-likelihood of weighted rows."""
    gg = import_lifetimes().GammaGammaFitter
    p = np.log([params[k] for k in GG_PARAM_NAMES])
    with quiet():
        return float(-gg._negative_log_likelihood(p, x, m, w, 0.0) * w.sum())
