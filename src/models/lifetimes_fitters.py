"""``lifetimes``, wrapped: imported lazily and quietly, its fitters built from saved parameters.

Every side effect of lifetimes (it resets warnings filters, prints before raising, and warns at
import) is confined to :func:`import_lifetimes` and :func:`quiet`; the BTYD modules reach lifetimes
only through this one.
"""

from __future__ import annotations

import contextlib
import io
import logging
import threading
import warnings
from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np

__all__ = [
    "GG_PARAM_NAMES",
    "PARAM_NAMES",
    "fitter_class",
    "fitter_with_params",
    "gamma_gamma_with_params",
    "import_lifetimes",
    "pareto_recency",
    "quiet",
]

logger = logging.getLogger(__name__)

#: Each transaction model's parameters, in lifetimes' order.
PARAM_NAMES: dict[str, tuple[str, ...]] = {
    "bgnbd": ("r", "alpha", "a", "b"),
    "mbgnbd": ("r", "alpha", "a", "b"),
    "pareto": ("r", "alpha", "s", "beta"),
}
#: Gamma-Gamma's parameters (``v`` is the papers' gamma).
GG_PARAM_NAMES: tuple[str, ...] = ("p", "q", "v")


_QUIET = threading.RLock()  # the blocks that swap process-wide state for lifetimes, one thread at a time


def import_lifetimes() -> Any:
    """The ``lifetimes`` package, imported without touching the caller's warnings state."""
    # lifetimes calls warnings.simplefilter at import (and pkg_resources warns): keep that out of the
    # caller's global warnings state.
    with _QUIET, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import lifetimes
        import lifetimes.utils
    return lifetimes


@contextlib.contextmanager
def quiet() -> Iterator[io.StringIO]:
    """Scope lifetimes' side effects: warnings filters, numpy FP warnings and its stdout prints.

    lifetimes prints the scipy result before raising ``ConvergenceError`` and resets warnings filters
    inside its likelihoods; both are confined to this block (stdout is captured and logged at DEBUG).
    """
    buf = io.StringIO()
    try:
        # redirect_stdout and catch_warnings swap sys.stdout and the warnings filters process-wide:
        # one block at a time (a thread's block ending inside another's would restore the other's
        # swap, leaving stdout silenced for good), which costs little: lifetimes' fits hold the GIL
        with _QUIET, warnings.catch_warnings(), np.errstate(all="ignore"), contextlib.redirect_stdout(buf):
            warnings.simplefilter("ignore")
            yield buf
    finally:
        if buf.getvalue().strip():
            logger.debug("lifetimes output: %s", buf.getvalue().strip())


def fitter_class(model: str) -> Any:
    """The lifetimes fitter class of a transaction model (``bgnbd``, ``mbgnbd`` or ``pareto``)."""
    lt = import_lifetimes()
    return {"bgnbd": lt.BetaGeoFitter, "mbgnbd": lt.ModifiedBetaGeoFitter, "pareto": lt.ParetoNBDFitter}[model]


# lifetimes' prediction methods read their parameters with ``params_[name]``: a plain dict serves
# them 10x cheaper than the pandas Series its fit leaves (this matters on the one-row HTTP path).
# Only its prediction methods are called on these fitters, never its summaries.


def fitter_with_params(model: str, params: Mapping[str, float]) -> Any:
    """A lifetimes transaction-model fitter holding ``params``, ready for its prediction methods."""
    fitter = fitter_class(model)()
    fitter.params_ = {k: float(params[k]) for k in PARAM_NAMES[model]}
    return fitter


def gamma_gamma_with_params(params: Mapping[str, float]) -> Any:
    """A lifetimes ``GammaGammaFitter`` holding ``params``, ready for its prediction methods."""
    fitter = import_lifetimes().GammaGammaFitter()
    fitter.params_ = {k: float(params[k]) for k in GG_PARAM_NAMES}
    return fitter


def pareto_recency(x: np.ndarray, tx: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Recency for lifetimes' Pareto/NBD: ``t_x`` nudged below ``T`` by 1e-9 (relative) where equal.

    Its ``A_0`` (Fader and Hardie 2005, note 009, eq. 19) is a difference of two equal terms when
    ``recency == T`` (a purchase on the as-of day): rounding makes it negative and the log NaN, which
    turns the whole likelihood NaN (a fit then stops anywhere) and P(alive) NaN. The nudge resolves
    the difference and moves no score or parameter visibly.
    """
    return np.where((x > 0) & (tx > t * (1 - 1e-9)), t * (1 - 1e-9), tx)
