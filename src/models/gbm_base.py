"""What the LightGBM models share: feature handling, training, prediction and save/load.

:class:`GBMBase` turns a feature frame into the matrix LightGBM reads
(:mod:`churnclv.models.feature_matrix`), holds out whole customers for early stopping, trains
deterministic boosters and saves a fitted model as a JSON-serializable dict (LightGBM's own model
text plus our config, no pickling). The models themselves are in :mod:`churnclv.models.gbm`.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, ClassVar, Self

import lightgbm as lgb
import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator
from sklearn.utils.validation import check_is_fitted

from churnclv.models.explanations import Reason, explain
from churnclv.models.feature_matrix import (
    FeatureLayout,
    category_levels,
    check_columns,
    select_features,
    to_matrix,
)
from churnclv.models.saved_format import check_stamp
from churnclv.models.thread_gate import LIGHTGBM_CALLS

logger = logging.getLogger(__name__)

__all__ = [
    "DEFAULT_EXCLUDE",
    "PREDICT_CHUNK_ROWS",
    "SMALL_BATCH_ROWS",
    "GBMBase",
    "lightgbm_threads",
    "set_lightgbm_threads",
    "usable_cores",
    "weights_of",
]

#: Inputs with fewer rows than this predict on one thread: LightGBM's OpenMP start-up costs more
#: than it saves on a few rows (on many-core hosts, milliseconds per single-row call).
SMALL_BATCH_ROWS = 1_000

DEFAULT_EXCLUDE: tuple[str, ...] = ("customer_id", "cutoff", "as_of")

#: Rows per LightGBM prediction call: the model matrix (float64, a column per feature) of a million
#: customers is ~0.5 GB, of a slice ~0.1 GB.
PREDICT_CHUNK_ROWS = 200_000

# the threads every LightGBM call of this context uses (0: the model's own setting)
_THREADS: ContextVar[int] = ContextVar("lightgbm_threads", default=0)


def usable_cores() -> int:
    """The cores this process may run on (its CPU affinity)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def set_lightgbm_threads(n: int) -> None:
    """Every LightGBM fit and prediction of this thread (context) from now on on ``n`` threads (0: the
    model's own setting): for a worker process whose tasks all run in its main thread."""
    _THREADS.set(int(n))


@contextmanager
def lightgbm_threads(n: int) -> Iterator[None]:
    """Every LightGBM fit and prediction of this thread (context) on ``n`` threads, whatever the
    params say: what runs several fits side by side uses to keep one core each (with the default
    ``force_col_wise``, LightGBM sums each feature's histogram on one thread, so a booster is
    bit-identical on any number of threads)."""
    token = _THREADS.set(int(n))
    try:
        yield
    finally:
        _THREADS.reset(token)


#: Objectives whose start (the log of the mean label) needs a positive label sum.
_POSITIVE_SUM_OBJECTIVES = frozenset({"poisson", "tweedie"})

_FORMAT = "churnclv.models.gbm"
_FORMAT_VERSION = 1

# Defaults any caller can override through ``params``. Determinism settings are here so that the
# same data and seed give bit-identical models (LightGBM documents `deterministic` for that).
_BASE_PARAMS: dict[str, Any] = {
    "learning_rate": 0.05,
    "num_leaves": 31,
    "min_data_in_leaf": 50,
    "feature_fraction": 0.9,
    "lambda_l2": 1.0,
    "max_bin": 255,
    "deterministic": True,
    "force_col_wise": True,
    "num_threads": 0,
    "verbosity": -1,
}


class GBMBase(BaseEstimator):
    """Feature handling, training, prediction and save/load shared by the GBM models."""

    _objective: ClassVar[str] = ""

    # set by subclasses' __init__
    params: dict[str, Any] | None
    num_boost_round: int
    early_stopping_rounds: int | None
    categorical: Sequence[str] | None
    features: Sequence[str] | None
    exclude: Sequence[str]
    id_col: str
    seed: int
    # learned by fit (or read by from_dict)
    fit_info_: dict[str, Any]

    # ---- features (the layout itself lives in churnclv.models.feature_matrix) ----------------

    def _check_columns(self, X: pd.DataFrame) -> None:
        check_is_fitted(self, "booster_")
        check_columns(X, type(self).__name__, self.feature_names_)

    def _matrix(self, X: pd.DataFrame) -> np.ndarray:
        """Float matrix in ``feature_names_`` order; categorical levels become training codes."""
        return to_matrix(X, type(self).__name__, self.feature_names_, self._layout())

    def _layout(self) -> FeatureLayout:
        # Derived from feature_names_ and categories_; cached, rebuilt on demand, never saved.
        lay = self.__dict__.get("_layout_cache")
        if lay is None:
            lay = self.__dict__["_layout_cache"] = FeatureLayout.from_categories(self.feature_names_, self.categories_)
        return lay

    # ---- training ---------------------------------------------------------------------------

    def _train_params(self) -> dict[str, Any]:
        user = dict(self.params or {})
        if "objective" in user and user["objective"] != self._objective:
            raise ValueError(
                f"{type(self).__name__} trains objective={self._objective!r}; "
                f"remove objective={user['objective']!r} from params"
            )
        out = {**_BASE_PARAMS, **self._extra_params(), **user}
        out["objective"] = self._objective
        if _THREADS.get():
            out["num_threads"] = _THREADS.get()
        out.setdefault("seed", self.seed)
        return out

    def _extra_params(self) -> dict[str, Any]:
        return {}

    def _prepare_fit(
        self, X: pd.DataFrame, y: Any, sample_weight: Any
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        features, categorical = select_features(
            X,
            type(self).__name__,
            features=self.features,
            categorical=self.categorical,
            exclude=(*self.exclude, self.id_col),
        )
        y_arr = np.asarray(y, dtype=np.float64).ravel()
        if len(y_arr) != len(X):
            raise ValueError(f"X has {len(X)} rows but y has {len(y_arr)}; pass one label per row")
        if not np.all(np.isfinite(y_arr)):
            raise ValueError("y has missing or infinite values; drop those rows before fitting")
        w = None
        if sample_weight is not None:
            w = np.asarray(sample_weight, dtype=np.float64).ravel()
            if len(w) != len(X) or not np.all(np.isfinite(w)) or np.any(w < 0):
                raise ValueError("sample_weight needs one finite, non-negative weight per row of X")
        self.feature_names_ = features
        self.categorical_features_ = categorical
        self.categories_ = {c: category_levels(X[c]) for c in categorical}
        self.__dict__.pop("_layout_cache", None)
        self.n_features_in_ = len(features)
        return self._matrix(X), y_arr, w

    def _split(self, X: pd.DataFrame, groups: Any, fraction: float) -> np.ndarray:
        """Boolean mask of held-out rows: whole groups (customers by default), picked by seed."""
        if not 0.0 < fraction < 1.0:
            raise ValueError(f"the held-out fraction must be in (0, 1), got {fraction}")
        if groups is None and self.id_col in X.columns:
            groups = X[self.id_col]
        if groups is None:
            keys = np.arange(len(X))
        else:
            keys = np.asarray(groups)
            if len(keys) != len(X):
                raise ValueError(f"groups has {len(keys)} values but X has {len(X)} rows")
        uniq, inverse = np.unique(keys.astype(str) if keys.dtype == object else keys, return_inverse=True)
        rng = np.random.default_rng(self.seed)
        n_hold = round(fraction * len(uniq))
        n_hold = min(max(n_hold, 1), len(uniq) - 1)
        held = np.zeros(len(uniq), dtype=bool)
        held[rng.permutation(len(uniq))[:n_hold]] = True
        return held[inverse.ravel()]

    def _dataset(
        self, M: np.ndarray, y: np.ndarray, w: np.ndarray | None, params: dict, reference: lgb.Dataset | None = None
    ) -> lgb.Dataset:
        cat_idx = [self.feature_names_.index(c) for c in self.categorical_features_]
        return lgb.Dataset(
            M,
            label=y,
            weight=w,
            feature_name=list(self.feature_names_),
            categorical_feature=cat_idx,
            params=params,
            reference=reference,
            free_raw_data=True,
        )

    def _train(
        self,
        M: np.ndarray,
        y: np.ndarray,
        w: np.ndarray | None,
        valid: tuple[np.ndarray, np.ndarray, np.ndarray | None] | None,
        num_boost_round: int,
    ) -> lgb.Booster:
        params = self._train_params()
        if params["objective"] in _POSITIVE_SUM_OBJECTIVES and not np.any(y > 0):
            # LightGBM's Poisson and Tweedie stop on a label sum of 0 ("sum of labels is zero"). With
            # nothing but zeros to learn (a shop of free orders, a tiny cohort's quiet window) the
            # answer is 0: squared error on the zeros trains a booster predicting exactly that, which
            # saves, loads and explains as any other.
            params = {**params, "objective": "regression"}
            logger.info("%s: every label is 0; the model predicts 0", type(self).__name__)
        train_set = self._dataset(M, y, w, params)
        callbacks: list[Callable[..., Any]] = []
        valid_sets = None
        if valid is not None:
            valid_sets = [self._dataset(*valid, params=params, reference=train_set)]
            if self.early_stopping_rounds:
                callbacks.append(lgb.early_stopping(self.early_stopping_rounds, verbose=False))
        with LIGHTGBM_CALLS.calls(int(params["num_threads"])):  # the Datasets are built in here
            booster = lgb.train(
                params,
                train_set,
                num_boost_round=num_boost_round,
                valid_sets=valid_sets,
                callbacks=callbacks,
            )
            # Re-read from text: the kept model is exactly the saved one (trees after the best
            # iteration dropped), so a save/load round trip cannot change a prediction.
            return lgb.Booster(model_str=booster.model_to_string())

    def _train_held_out(
        self, data: list[np.ndarray], y: np.ndarray, w: np.ndarray | None, held: np.ndarray, num_boost_round: int
    ) -> lgb.Booster:
        """Train on the rows outside ``held``, early stopping on the rows in it. ``data`` holds the
        model matrix alone and is emptied: the matrix is freed once split, not kept through the
        training beside its two parts (~0.3 GB at 600k rows)."""
        M = data.pop()
        train, valid = M[~held], M[held]
        del M
        return self._train(
            train, y[~held], weights_of(w, ~held), (valid, y[held], weights_of(w, held)), num_boost_round
        )

    # ---- prediction -------------------------------------------------------------------------

    def _raw(self, X: pd.DataFrame, **kwargs: Any) -> np.ndarray:
        self._check_columns(X)
        n = PREDICT_CHUNK_ROWS
        if len(X) <= n:
            return self._predict_matrix(self._matrix(X), **kwargs)
        # a row's prediction is its own: slices give the same numbers with a fifth of the matrix
        return np.concatenate(
            [self._predict_matrix(self._matrix(X.iloc[i : i + n]), **kwargs) for i in range(0, len(X), n)]
        )

    def _predict_matrix(self, M: np.ndarray, **kwargs: Any) -> np.ndarray:
        # one thread for small inputs: LightGBM's default threading costs ~10 ms a call
        num_threads = _THREADS.get() or (1 if len(M) < SMALL_BATCH_ROWS else 0)
        with LIGHTGBM_CALLS.calls(num_threads):
            return np.asarray(self.booster_.predict(M, num_threads=num_threads, **kwargs))

    def has_splits(self) -> bool:
        """False when every tree is a single leaf, so every prediction is the same number: the training
        rows were too few for ``min_data_in_leaf`` (a split needs twice that many)."""
        check_is_fitted(self, "booster_")
        return bool(np.any(self.booster_.feature_importance("split")))

    def explain(self, X: pd.DataFrame, top_k: int = 3) -> list[list[Reason]]:
        """Top features pushing each row's score up, from their exact TreeSHAP contributions.

        See :func:`churnclv.models.explanations.explain` for the parameters and the values.
        """
        return explain(self, X, top_k)

    def __getstate__(self) -> dict[str, Any]:
        # caches rebuild on demand: a pickled model carries neither (the TreeSHAP tables run to MBs)
        return {k: v for k, v in self.__dict__.items() if k not in ("_shap_cache", "_layout_cache")}

    # ---- save / load ------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """JSON-serializable description of the fitted model: config, features, categories, the
        calibrator (if any) as numbers, and LightGBM's model text. Load with :meth:`from_dict`."""
        check_is_fitted(self, "booster_")
        return {
            **self._stamp(),
            "init_params": _jsonable(self.get_params(deep=False)),
            "feature_names": list(self.feature_names_),
            "categorical_features": list(self.categorical_features_),
            "categories": {c: list(v) for c, v in self.categories_.items()},
            "fit_info": _jsonable(self.fit_info_),
            "calibrator": self._calibrator_dict(),
            "booster": self.booster_.model_to_string(),
        }

    @classmethod
    def _stamp(cls) -> dict[str, object]:
        return {"format": _FORMAT, "format_version": _FORMAT_VERSION, "class": cls.__name__}

    def _calibrator_dict(self) -> dict[str, Any] | None:
        return None

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Self:
        """Rebuild a fitted model from :meth:`to_dict` output (e.g. after a JSON round trip)."""
        check_stamp(
            d,
            cls._stamp(),
            reader=f"{cls.__name__}.from_dict",
            fix="load it with churnclv.models.gbm.model_from_dict (it reads 'class') or retrain with this churnclv",
        )
        init = dict(d["init_params"])
        for key in ("categorical", "features", "exclude"):
            if isinstance(init.get(key), list):
                init[key] = tuple(init[key]) if key == "exclude" else list(init[key])
        model = cls(**init)
        model.feature_names_ = list(d["feature_names"])
        model.categorical_features_ = list(d["categorical_features"])
        model.categories_ = {c: list(v) for c, v in d["categories"].items()}
        model.n_features_in_ = len(model.feature_names_)
        model.fit_info_ = dict(d.get("fit_info") or {})
        model.booster_ = lgb.Booster(model_str=d["booster"])
        model._set_calibrator(d.get("calibrator"))
        return model

    def _set_calibrator(self, d: dict[str, Any] | None) -> None:
        pass


def weights_of(w: np.ndarray | None, mask: np.ndarray) -> np.ndarray | None:
    """The row weights of the rows in ``mask`` (None: unweighted)."""
    return None if w is None else w[mask]


def _jsonable(obj: Any) -> Any:
    """Plain JSON types: tuples become lists, numpy scalars become Python numbers."""
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.generic):
        return obj.item()
    return obj
