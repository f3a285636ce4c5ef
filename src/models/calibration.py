"""Calibrators: map a booster's raw score to a probability, stored as plain numbers.

Isotonic regression (Zadrozny and Elkan 2002) or Platt scaling (Platt 1999), fitted on held-out raw
scores; no sklearn objects are kept after fit, so a calibrator saves as a JSON-serializable dict.

References
----------
Platt, J. (1999). Probabilistic outputs for support vector machines and comparisons to regularized
likelihood methods. In Advances in Large Margin Classifiers, MIT Press.
Zadrozny, B. and Elkan, C. (2002). Transforming classifier scores into accurate multiclass
probability estimates. KDD 2002.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
from scipy.optimize import minimize
from scipy.special import expit
from sklearn.isotonic import IsotonicRegression

from churnclv.models.saved_format import SavedFormatError

__all__ = ["IsotonicCalibrator", "PlattCalibrator", "calibrator_from_dict"]


@dataclass(frozen=True)
class IsotonicCalibrator:
    """Piecewise-linear, non-decreasing map from raw score to probability.

    ``x`` (raw-score thresholds, increasing) and ``y`` (probabilities, non-decreasing) are the
    breakpoints of a fitted :class:`sklearn.isotonic.IsotonicRegression`; scores outside ``x`` are
    clipped to its ends, as with ``out_of_bounds="clip"``.
    """

    x: np.ndarray
    y: np.ndarray
    method: ClassVar[str] = "isotonic"

    @classmethod
    def fit(cls, raw: np.ndarray, y: np.ndarray, sample_weight: np.ndarray | None = None) -> IsotonicCalibrator:
        """Fit on held-out raw scores and their 0/1 labels (optionally weighted)."""
        iso = IsotonicRegression(y_min=0.0, y_max=1.0, increasing=True, out_of_bounds="clip")
        iso.fit(raw, y, sample_weight=sample_weight)
        return cls(
            x=np.asarray(iso.X_thresholds_, dtype=np.float64),
            y=np.asarray(iso.y_thresholds_, dtype=np.float64),
        )

    def transform(self, raw: np.ndarray) -> np.ndarray:
        """Probabilities of raw scores."""
        p: np.ndarray = np.interp(raw, self.x, self.y)
        return p

    def to_dict(self) -> dict[str, Any]:
        """The breakpoints as JSON numbers (:func:`calibrator_from_dict` reads them back)."""
        return {"method": self.method, "x": self.x.tolist(), "y": self.y.tolist()}


@dataclass(frozen=True)
class PlattCalibrator:
    """Logistic map ``p = 1 / (1 + exp(-(a * raw + b)))`` fitted on held-out raw scores (Platt 1999).

    The slope is constrained to ``a >= 0`` so that, like the isotonic map, it never reverses the
    booster's ranking.
    """

    a: float
    b: float
    method: ClassVar[str] = "platt"

    @classmethod
    def fit(cls, raw: np.ndarray, y: np.ndarray, sample_weight: np.ndarray | None = None) -> PlattCalibrator:
        """Fit on held-out raw scores and their 0/1 labels (optionally weighted)."""
        w = np.ones_like(raw) if sample_weight is None else np.asarray(sample_weight, np.float64)
        n_pos = float(w[y == 1].sum())
        n_neg = float(w[y == 0].sum())
        # Platt's smoothed targets keep a and b finite when the scores separate the classes.
        t = np.where(y == 1, (n_pos + 1.0) / (n_pos + 2.0), 1.0 / (n_neg + 2.0))

        def loss(ab: np.ndarray) -> tuple[float, np.ndarray]:
            z = ab[0] * raw + ab[1]
            # log(1 + exp(z)) - t z, written stably
            val = float(np.sum(w * (np.logaddexp(0.0, z) - t * z)))
            g = w * (expit(z) - t)
            return val, np.array([np.sum(g * raw), np.sum(g)])

        # a >= 0: calibration may flatten the booster's ranking, never reverse it
        res = minimize(
            loss,
            x0=np.array([1.0, 0.0]),
            jac=True,
            method="L-BFGS-B",
            bounds=[(0.0, None), (None, None)],
        )
        return cls(a=float(res.x[0]), b=float(res.x[1]))

    def transform(self, raw: np.ndarray) -> np.ndarray:
        """Probabilities of raw scores."""
        p: np.ndarray = expit(self.a * raw + self.b)
        return p

    def to_dict(self) -> dict[str, Any]:
        """Slope and intercept as JSON numbers (:func:`calibrator_from_dict` reads them back)."""
        return {"method": self.method, "a": self.a, "b": self.b}


def calibrator_from_dict(d: dict[str, Any] | None) -> IsotonicCalibrator | PlattCalibrator | None:
    """Rebuild a calibrator from its ``to_dict()`` output; None stays None (no calibrator)."""
    if d is None:
        return None
    if d["method"] == "isotonic":
        return IsotonicCalibrator(x=np.asarray(d["x"], dtype=np.float64), y=np.asarray(d["y"], dtype=np.float64))
    if d["method"] == "platt":
        return PlattCalibrator(a=float(d["a"]), b=float(d["b"]))
    raise SavedFormatError(f"calibrator method {d['method']!r} is unknown; expected 'isotonic' or 'platt'")
