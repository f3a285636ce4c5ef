"""LightGBM models for churn (calibrated classifier), expected spend and expected purchases.

The models are generic over the feature columns they are given: every column of ``X`` except the
identifiers in ``exclude`` (``customer_id``, ``cutoff``, ``as_of`` by default) is a feature
(:mod:`churnclv.models.feature_matrix` decides which, and builds the matrix LightGBM reads).
Categorical features are split natively by LightGBM (Ke et al. 2017; Fisher 1958 grouping).

Churn probabilities are calibrated on held-out customers (:mod:`churnclv.models.calibration`), and
the reasons behind a score come from :mod:`churnclv.models.explanations`. What the three models
share (training, prediction, and saving as a JSON-serializable dict of LightGBM's own model text
plus our config, no pickling) is :class:`churnclv.models.gbm_base.GBMBase`.

References
----------
Ke, G., Meng, Q., Finley, T., Wang, T., Chen, W., Ma, W., Ye, Q. and Liu, T.-Y. (2017). LightGBM: a
highly efficient gradient boosting decision tree. NeurIPS 30.
Jorgensen, B. (1987). Exponential dispersion models. JRSS B 49(2) (the Tweedie family).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np
import pandas as pd
from scipy.special import expit

from churnclv.models.calibration import IsotonicCalibrator, PlattCalibrator, calibrator_from_dict
from churnclv.models.gbm_base import DEFAULT_EXCLUDE, GBMBase, weights_of
from churnclv.models.saved_format import SavedFormatError

__all__ = [
    "GBMChurnClassifier",
    "GBMCountRegressor",
    "GBMSpendRegressor",
    "model_from_dict",
]

logger = logging.getLogger(__name__)


class GBMChurnClassifier(GBMBase):
    """Calibrated LightGBM classifier of churn (no purchase within the horizon).

    The booster is trained on most customers; the held-out customers (``calibration_fraction``)
    pick the number of boosting rounds (early stopping on log loss) and then fit the calibrator on
    the booster's raw scores. Holding out whole customers, not rows, keeps a customer's rows from
    several cutoffs on one side. We do not hold out the latest cutoff instead: that would tie the
    held-out share to the backtest design and take the freshest data from the booster; checking
    that the model holds up forward in time is the rolling-origin backtest's job.

    Parameters
    ----------
    params : dict, optional
        LightGBM parameters overriding the defaults (learning_rate 0.05, num_leaves 31,
        min_data_in_leaf 50, feature_fraction 0.9, lambda_l2 1, deterministic, force_col_wise).
        The objective is always ``binary``.
    num_boost_round : int
        Maximum number of boosting rounds.
    early_stopping_rounds : int or None
        Stop when the held-out log loss has not improved for this many rounds (None: never).
    calibration : {"isotonic", "platt"} or None
        How raw scores become probabilities. None uses the booster's sigmoid as is, and then
        trains on all rows (nothing is held out; no early stopping).
    calibration_fraction : float
        Share of customers held out for early stopping and calibration.
    categorical : list of str, optional
        Categorical feature columns. None: every string/object/category column.
    features : list of str, optional
        Feature columns. None: every column of X not in ``exclude``.
    exclude : tuple of str
        Columns never used as features (identifiers and dates).
    id_col : str
        Customer id column; held-out rows are whole customers when it is in X.
    seed : int
        Seeds the held-out split and LightGBM.

    Attributes
    ----------
    booster_ : lightgbm.Booster
    feature_names_ : list of str
    categorical_features_ : list of str
    categories_ : dict of str to list of str
        Levels of each categorical feature seen in training, in code order.
    calibrator_ : IsotonicCalibrator, PlattCalibrator or None
    fit_info_ : dict
        Row counts, best iteration and held-out Brier scores before and after calibration
        (in-sample for the calibrator, so optimistic).
    """

    _objective: ClassVar[str] = "binary"

    def __init__(
        self,
        *,
        params: dict[str, Any] | None = None,
        num_boost_round: int = 1000,
        early_stopping_rounds: int | None = 50,
        calibration: str | None = "isotonic",
        calibration_fraction: float = 0.2,
        categorical: Sequence[str] | None = None,
        features: Sequence[str] | None = None,
        exclude: Sequence[str] = DEFAULT_EXCLUDE,
        id_col: str = "customer_id",
        seed: int = 0,
    ) -> None:
        self.params = params
        self.num_boost_round = num_boost_round
        self.early_stopping_rounds = early_stopping_rounds
        self.calibration = calibration
        self.calibration_fraction = calibration_fraction
        self.categorical = categorical
        self.features = features
        self.exclude = exclude
        self.id_col = id_col
        self.seed = seed

    def fit(self, X: pd.DataFrame, y: Any, *, groups: Any = None, sample_weight: Any = None) -> GBMChurnClassifier:
        """Fit the booster and its calibrator.

        Parameters
        ----------
        X : pandas.DataFrame
            One row per customer (and cutoff), with feature columns; identifiers in ``exclude``
            are ignored as features.
        y : array-like of bool or {0, 1}
            Churned within the horizon, aligned with X by position.
        groups : array-like, optional
            Hold-out unit per row. Default: ``X[id_col]`` if present, else single rows.
        sample_weight : array-like, optional
            Non-negative row weights (used by the booster and the calibrator).

        Returns
        -------
        GBMChurnClassifier
            self, fitted.
        """
        if self.calibration not in ("isotonic", "platt", None):
            raise ValueError(f"calibration={self.calibration!r} is unknown; use 'isotonic', 'platt' or None")
        M, y_arr, w = self._prepare_fit(X, y, sample_weight)
        if not np.isin(y_arr, (0.0, 1.0)).all():
            raise ValueError("y must be churned flags (bool or 0/1); other values were found")
        if self.calibration is None:
            self.booster_ = self._train(M, y_arr, w, None, self.num_boost_round)
            self.calibrator_ = None
            self.fit_info_ = {
                "n_train": len(y_arr),
                "n_calibration": 0,
                "best_iteration": int(self.booster_.current_iteration()),
            }
            return self

        held = self._split(X, groups, self.calibration_fraction)
        for part, mask in (("training", ~held), ("calibration", held)):
            if len(np.unique(y_arr[mask])) < 2:
                raise ValueError(
                    f"the {part} part ({int(mask.sum())} rows) holds only one class of y; "
                    "pass more rows, change calibration_fraction, or set calibration=None"
                )
        M_held = M[held]
        data = [M]
        del M
        self.booster_ = self._train_held_out(data, y_arr, w, held, self.num_boost_round)
        # through _predict_matrix, like every prediction: it keeps lightgbm_threads' count and takes
        # the gate of churnclv.models.thread_gate (a bare predict() ran at all cores beside a backtest
        # fit at one thread, and LightGBM wrote past that fit's buffers)
        raw = self._predict_matrix(M_held, raw_score=True)
        cal_cls = IsotonicCalibrator if self.calibration == "isotonic" else PlattCalibrator
        self.calibrator_ = cal_cls.fit(raw, y_arr[held], weights_of(w, held))
        y_h = y_arr[held]
        self.fit_info_ = {
            "n_train": int((~held).sum()),
            "n_calibration": int(held.sum()),
            "best_iteration": int(self.booster_.current_iteration()),
            "brier_uncalibrated_heldout": float(np.mean((expit(raw) - y_h) ** 2)),
            "brier_calibrated_heldout_insample": float(np.mean((self.calibrator_.transform(raw) - y_h) ** 2)),
        }
        logger.info("GBMChurnClassifier fitted: %s", self.fit_info_)
        return self

    def decision_function(self, X: pd.DataFrame) -> np.ndarray:
        """Raw booster score (log-odds of churn, before calibration), one per row of X."""
        return self._raw(X, raw_score=True)

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        """Calibrated probability of churn within the horizon.

        Unlike scikit-learn classifiers this returns a 1-d array of P(churn), one per row of X.
        Columns are matched by name; extra columns are ignored.
        """
        raw = self.decision_function(X)
        proba: np.ndarray = (
            expit(raw) if self.calibrator_ is None else np.clip(self.calibrator_.transform(raw), 0.0, 1.0)
        )
        return proba

    def _calibrator_dict(self) -> dict[str, Any] | None:
        return None if self.calibrator_ is None else self.calibrator_.to_dict()

    def _set_calibrator(self, d: dict[str, Any] | None) -> None:
        self.calibrator_ = calibrator_from_dict(d)


class _GBMRegressorBase(GBMBase):
    """Regressor with optional early stopping on held-out customers, then a refit on all rows."""

    validation_fraction: float
    refit_full: bool

    def _check_target(self, y: np.ndarray) -> np.ndarray:
        return y

    def fit(self, X: pd.DataFrame, y: Any, *, groups: Any = None, sample_weight: Any = None) -> Any:
        """Fit the booster.

        With ``validation_fraction > 0`` the held-out customers pick the number of rounds by early
        stopping; with ``refit_full`` the booster is then retrained on all rows for that many
        rounds.

        Parameters
        ----------
        X : pandas.DataFrame
            Feature rows; identifiers in ``exclude`` are ignored as features.
        y : array-like of float
            Target over the horizon, aligned with X by position.
        groups : array-like, optional
            Hold-out unit per row. Default: ``X[id_col]`` if present, else single rows.
        sample_weight : array-like, optional
            Non-negative row weights.

        Returns
        -------
        self
        """
        M, y_arr, w = self._prepare_fit(X, y, sample_weight)
        y_arr = self._check_target(y_arr)
        info: dict[str, Any] = {"n_rows": len(y_arr)}
        rounds = self.num_boost_round
        booster = None
        if self.validation_fraction > 0:
            held = self._split(X, groups, self.validation_fraction)
            data = [M]
            if not self.refit_full:  # no second training on every row: the matrix goes once split
                del M
            booster = self._train_held_out(data, y_arr, w, held, rounds)
            rounds = int(booster.current_iteration())
            info["n_validation"] = int(held.sum())
            info["n_train"] = int((~held).sum())
        if booster is None or self.refit_full:
            booster = self._train(M, y_arr, w, None, rounds)
            info["n_train"] = len(y_arr)
        self.booster_ = booster
        info["best_iteration"] = int(self.booster_.current_iteration())
        self.fit_info_ = info
        logger.info("%s fitted: %s", type(self).__name__, info)
        return self

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        """Expected value of the target over the horizon (non-negative), one per row of X."""
        return self._raw(X)


class GBMSpendRegressor(_GBMRegressorBase):
    """LightGBM regressor of expected net spend over the horizon, Tweedie objective.

    The Tweedie family with variance power between 1 and 2 is a compound Poisson-gamma model: a
    point mass at zero (customers who buy nothing) plus a continuous positive part (Jorgensen
    1987), so one model covers the many zeros and the spend of buyers. Net spend below zero
    (returns exceeding purchases) is clipped to zero for training, as the objective requires
    non-negative targets; predictions are non-negative.

    Parameters
    ----------
    variance_power : float
        Tweedie variance power in (1, 2); near 1 is Poisson-like, near 2 gamma-like.
    validation_fraction : float
        Share of customers held out for early stopping (0: no early stopping).
    refit_full : bool
        After early stopping, retrain on all rows for the best number of rounds.
    params, num_boost_round, early_stopping_rounds, categorical, features, exclude, id_col, seed
        As in :class:`GBMChurnClassifier`.
    """

    _objective: ClassVar[str] = "tweedie"

    def __init__(
        self,
        *,
        params: dict[str, Any] | None = None,
        num_boost_round: int = 1000,
        early_stopping_rounds: int | None = 50,
        variance_power: float = 1.3,
        validation_fraction: float = 0.1,
        refit_full: bool = True,
        categorical: Sequence[str] | None = None,
        features: Sequence[str] | None = None,
        exclude: Sequence[str] = DEFAULT_EXCLUDE,
        id_col: str = "customer_id",
        seed: int = 0,
    ) -> None:
        self.params = params
        self.num_boost_round = num_boost_round
        self.early_stopping_rounds = early_stopping_rounds
        self.variance_power = variance_power
        self.validation_fraction = validation_fraction
        self.refit_full = refit_full
        self.categorical = categorical
        self.features = features
        self.exclude = exclude
        self.id_col = id_col
        self.seed = seed

    def _extra_params(self) -> dict[str, Any]:
        if not 1.0 <= self.variance_power < 2.0:
            raise ValueError(
                f"variance_power={self.variance_power} is outside [1, 2); use about 1.2-1.5 for spend with many zeros"
            )
        return {"tweedie_variance_power": self.variance_power}

    def _check_target(self, y: np.ndarray) -> np.ndarray:
        n_neg = int((y < 0).sum())
        if n_neg:
            logger.info("GBMSpendRegressor: %d negative net spends clipped to 0 for training", n_neg)
        clipped: np.ndarray = np.maximum(y, 0.0)
        return clipped


class GBMCountRegressor(_GBMRegressorBase):
    """LightGBM regressor of the expected number of purchases over the horizon, Poisson objective.

    Parameters
    ----------
    validation_fraction, refit_full
        As in :class:`GBMSpendRegressor`.
    params, num_boost_round, early_stopping_rounds, categorical, features, exclude, id_col, seed
        As in :class:`GBMChurnClassifier`.
    """

    _objective: ClassVar[str] = "poisson"

    def __init__(
        self,
        *,
        params: dict[str, Any] | None = None,
        num_boost_round: int = 1000,
        early_stopping_rounds: int | None = 50,
        validation_fraction: float = 0.1,
        refit_full: bool = True,
        categorical: Sequence[str] | None = None,
        features: Sequence[str] | None = None,
        exclude: Sequence[str] = DEFAULT_EXCLUDE,
        id_col: str = "customer_id",
        seed: int = 0,
    ) -> None:
        self.params = params
        self.num_boost_round = num_boost_round
        self.early_stopping_rounds = early_stopping_rounds
        self.validation_fraction = validation_fraction
        self.refit_full = refit_full
        self.categorical = categorical
        self.features = features
        self.exclude = exclude
        self.id_col = id_col
        self.seed = seed

    def _check_target(self, y: np.ndarray) -> np.ndarray:
        if (y < 0).any():
            raise ValueError("y (purchases) has negative counts; purchases in the horizon must be >= 0")
        return y


_MODELS: dict[str, type[GBMChurnClassifier] | type[GBMSpendRegressor] | type[GBMCountRegressor]] = {
    c.__name__: c for c in (GBMChurnClassifier, GBMSpendRegressor, GBMCountRegressor)
}


def model_from_dict(d: dict[str, Any]) -> GBMChurnClassifier | GBMSpendRegressor | GBMCountRegressor:
    """Rebuild any GBM model from its ``to_dict()`` output, dispatching on ``d["class"]``."""
    cls = _MODELS.get(str(d.get("class")))
    if cls is None:
        raise SavedFormatError(
            f"class {d.get('class')!r} is not a churnclv GBM model; expected one of {sorted(_MODELS)}"
        )
    return cls.from_dict(d)
