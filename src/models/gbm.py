"""LightGBM models for churn (calibrated classifier), expected spend and expected purchases.

The models are generic over the feature columns they are given: every column of ``X`` except the
identifiers in ``exclude`` (``customer_id``, ``cutoff``, ``as_of`` by default) is a feature. Numeric,
nullable-numeric and boolean columns are numeric features (nulls are missing values, which LightGBM
routes natively); string, object-of-strings and pandas ``category`` columns are categorical features.

Categorical features are split natively by LightGBM (Ke et al. 2017; Fisher 1958 grouping). The
levels seen in training are stored in ``categories_`` and every frame is mapped onto exactly those
levels, so one customer scored alone gets the same codes as in a batch; an unseen level is treated
as missing, never an error.

Churn probabilities are calibrated on held-out customers with isotonic regression (Zadrozny and
Elkan 2002) or Platt scaling (Platt 1999). The calibrator is stored as plain numbers, and the whole
model saves as a JSON-serializable dict (LightGBM's own model text plus our config): no pickling.

References
----------
Ke, G., Meng, Q., Finley, T., Wang, T., Chen, W., Ma, W., Ye, Q. and Liu, T.-Y. (2017). LightGBM: a
highly efficient gradient boosting decision tree. NeurIPS 30.
Platt, J. (1999). Probabilistic outputs for support vector machines and comparisons to regularized
likelihood methods. In Advances in Large Margin Classifiers, MIT Press.
Zadrozny, B. and Elkan, C. (2002). Transforming classifier scores into accurate multiclass
probability estimates. KDD 2002.
Lundberg, S. M., Erion, G. G. and Lee, S.-I. (2018). Consistent individualized feature attribution
for tree ensembles. arXiv:1802.03888 (the TreeSHAP values behind ``pred_contrib``).
Yang, J. (2021). Fast TreeSHAP: accelerating SHAP value computation for trees. arXiv:2109.09847
(how :mod:`churnclv.models.treeshap` computes the same values for the reasons, 20-50x faster).
Jorgensen, B. (1987). Exponential dispersion models. JRSS B 49(2) (the Tweedie family).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, ClassVar, NamedTuple, Sequence

import lightgbm as lgb
import numpy as np
import pandas as pd
from scipy.optimize import minimize
from scipy.special import expit

from churnclv.models.treeshap import FastTreeShap, UnsupportedModel
from sklearn.base import BaseEstimator
from sklearn.isotonic import IsotonicRegression
from sklearn.utils.validation import check_is_fitted

__all__ = [
    "GBMChurnClassifier",
    "GBMCountRegressor",
    "GBMSpendRegressor",
    "IsotonicCalibrator",
    "PlattCalibrator",
    "Reason",
    "SMALL_BATCH_ROWS",
    "model_from_dict",
]

logger = logging.getLogger(__name__)

#: Inputs with fewer rows than this predict on one thread: LightGBM's OpenMP start-up costs more
#: than it saves on a few rows (on many-core hosts, milliseconds per single-row call).
SMALL_BATCH_ROWS = 1_000

# Up to this many rows, features are read row-wise (see _GBMBase._matrix_rows).
_ROW_PATH_MAX_ROWS = 64

DEFAULT_EXCLUDE: tuple[str, ...] = ("customer_id", "cutoff", "as_of")

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


@dataclass(frozen=True)
class _Layout:
    numeric_names: list[str]
    numeric_j: list[int]
    categorical_names: list[str]
    categorical_j: list[int]
    lookups: dict[str, dict[str, float]]
    indexes: dict[str, pd.Index]


class Reason(NamedTuple):
    """One feature pushing a customer's churn score up.

    ``contribution`` is the feature's TreeSHAP contribution to the raw (log-odds) score, so the
    contributions of one row plus the model's expected value add up to its raw score.
    """

    feature: str
    contribution: float
    value: float | str | None


# --------------------------------------------------------------------------------------------------
# calibrators: plain numbers, no sklearn objects kept after fit


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
    def fit(
        cls, raw: np.ndarray, y: np.ndarray, sample_weight: np.ndarray | None = None
    ) -> IsotonicCalibrator:
        iso = IsotonicRegression(y_min=0.0, y_max=1.0, increasing=True, out_of_bounds="clip")
        iso.fit(raw, y, sample_weight=sample_weight)
        return cls(
            x=np.asarray(iso.X_thresholds_, dtype=np.float64),
            y=np.asarray(iso.y_thresholds_, dtype=np.float64),
        )

    def transform(self, raw: np.ndarray) -> np.ndarray:
        return np.interp(raw, self.x, self.y)

    def to_dict(self) -> dict[str, Any]:
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
    def fit(
        cls, raw: np.ndarray, y: np.ndarray, sample_weight: np.ndarray | None = None
    ) -> PlattCalibrator:
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
            loss, x0=np.array([1.0, 0.0]), jac=True, method="L-BFGS-B",
            bounds=[(0.0, None), (None, None)],
        )
        return cls(a=float(res.x[0]), b=float(res.x[1]))

    def transform(self, raw: np.ndarray) -> np.ndarray:
        return expit(self.a * raw + self.b)

    def to_dict(self) -> dict[str, Any]:
        return {"method": self.method, "a": self.a, "b": self.b}


def _calibrator_from_dict(d: dict[str, Any] | None) -> IsotonicCalibrator | PlattCalibrator | None:
    if d is None:
        return None
    if d["method"] == "isotonic":
        return IsotonicCalibrator(
            x=np.asarray(d["x"], dtype=np.float64), y=np.asarray(d["y"], dtype=np.float64)
        )
    if d["method"] == "platt":
        return PlattCalibrator(a=float(d["a"]), b=float(d["b"]))
    raise ValueError(f"calibrator method {d['method']!r} is unknown; expected 'isotonic' or 'platt'")


# --------------------------------------------------------------------------------------------------
# shared machinery


class _GBMBase(BaseEstimator):
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

    # ---- features ---------------------------------------------------------------------------

    def _select_features(self, X: pd.DataFrame) -> tuple[list[str], list[str]]:
        """Decide which columns are features and which of those are categorical."""
        name = type(self).__name__
        if not isinstance(X, pd.DataFrame):
            raise TypeError(
                f"{name}.fit expects X as a pandas DataFrame with named feature columns, "
                f"got {type(X).__name__}"
            )
        exclude = set(self.exclude) | {self.id_col}
        if self.features is not None:
            features = list(self.features)
            missing = [c for c in features if c not in X.columns]
            if missing:
                raise ValueError(
                    f"X is missing columns {missing} listed in {name}(features=...); "
                    "add them to X or remove them from features"
                )
        else:
            features = [c for c in X.columns if c not in exclude]
        not_str = [c for c in features if not isinstance(c, str)]
        if not_str:
            raise TypeError(
                f"feature column names must be strings (they are saved as JSON), got {not_str}; "
                "rename them, e.g. X.columns = X.columns.map(str)"
            )
        if len(set(features)) != len(features):
            dup = sorted({c for c in features if features.count(c) > 1})
            raise ValueError(f"X has duplicated feature columns {dup}; give each column one name")
        if not features:
            raise ValueError(
                f"X has no feature columns: every column is in exclude={sorted(exclude)}; "
                "pass at least one numeric or categorical feature"
            )
        explicit = None if self.categorical is None else list(self.categorical)
        if explicit is not None:
            unknown = [c for c in explicit if c not in features]
            if unknown:
                raise ValueError(
                    f"categorical columns {unknown} are not features of X; "
                    "add them to X or remove them from categorical"
                )
        categorical: list[str] = []
        for col in features:
            kind = _column_kind(X[col])
            if kind == "datetime":
                raise TypeError(
                    f"column {col!r} has dtype {X[col].dtype}, which {name} cannot use as a "
                    "feature; turn it into a number (e.g. days since as_of) or add it to exclude"
                )
            if explicit is not None:
                if col in explicit:
                    categorical.append(col)
                elif kind == "categorical":
                    raise TypeError(
                        f"column {col!r} holds strings but is not in categorical={explicit}; "
                        "add it to categorical, convert it to numbers, or add it to exclude"
                    )
            elif kind == "categorical":
                categorical.append(col)
        return features, categorical

    def _check_columns(self, X: pd.DataFrame) -> None:
        check_is_fitted(self, "booster_")
        name = type(self).__name__
        if not isinstance(X, pd.DataFrame):
            raise TypeError(
                f"{name} expects X as a pandas DataFrame with the columns {self.feature_names_}, "
                f"got {type(X).__name__}"
            )
        missing = [c for c in self.feature_names_ if c not in X.columns]
        if missing:
            raise ValueError(
                f"X is missing columns {missing} that {name} was fitted with; "
                f"pass every column in feature_names_ (extra columns are ignored)"
            )
        if not X.columns.is_unique:
            dup = sorted({str(c) for c in X.columns[X.columns.duplicated()]})
            raise ValueError(f"X has duplicated columns {dup}; give each column one name")

    def _matrix(self, X: pd.DataFrame) -> np.ndarray:
        """Float matrix in ``feature_names_`` order; categorical levels become training codes."""
        if len(X) <= _ROW_PATH_MAX_ROWS:
            out = self._matrix_rows(X)
            if out is not None:
                return out
        lay = self._layout()
        out = np.empty((len(X), len(self.feature_names_)), dtype=np.float64, order="F")
        for j, col in enumerate(self.feature_names_):
            s = X[col]
            if col in lay.lookups:
                out[:, j] = _category_codes(s, lay.indexes[col])
            else:
                try:
                    out[:, j] = s.to_numpy(dtype=np.float64, na_value=np.nan)
                except (TypeError, ValueError) as exc:
                    raise TypeError(
                        f"column {col!r} must be numeric (it was numeric when "
                        f"{type(self).__name__} was fitted) but has dtype {s.dtype} with "
                        f"values that are not numbers; convert it with pd.to_numeric"
                    ) from exc
        return out

    def _matrix_rows(self, X: pd.DataFrame) -> np.ndarray | None:
        """Same matrix as the column path for a few rows, built from one object array.

        Pulling ~30 Series out of a one-row frame costs ~0.5 ms, 25x the prediction itself;
        one ``to_numpy`` of the frame costs ~20 us. Returns None when a value needs the column
        path (which also raises the clear error for text in a numeric column).
        """
        lay = self._layout()
        pos = {c: i for i, c in enumerate(X.columns)}
        obj = X.to_numpy(dtype=object)
        out = np.empty((len(X), len(self.feature_names_)), dtype=np.float64)
        if lay.numeric_j:
            vals = obj[:, [pos[c] for c in lay.numeric_names]]
            vals[pd.isna(vals)] = np.nan
            try:
                out[:, lay.numeric_j] = vals.astype(np.float64)
            except (TypeError, ValueError):
                return None
        for j, col in zip(lay.categorical_j, lay.categorical_names):
            lookup = lay.lookups[col]
            out[:, j] = [
                np.nan if _is_missing(v) else lookup.get(str(v), np.nan)
                for v in obj[:, pos[col]]
            ]
        return out

    def _layout(self) -> _Layout:
        # Derived from feature_names_ and categories_; cached, rebuilt on demand, never saved.
        lay = self.__dict__.get("_layout_cache")
        if lay is None:
            cats = self.categories_
            names = self.feature_names_
            lay = self.__dict__["_layout_cache"] = _Layout(
                numeric_names=[c for c in names if c not in cats],
                numeric_j=[j for j, c in enumerate(names) if c not in cats],
                categorical_names=[c for c in names if c in cats],
                categorical_j=[j for j, c in enumerate(names) if c in cats],
                lookups={c: {v: float(i) for i, v in enumerate(cats[c])} for c in cats},
                indexes={c: pd.Index(cats[c], dtype=object) for c in cats},
            )
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
        out.setdefault("seed", self.seed)
        return out

    def _extra_params(self) -> dict[str, Any]:
        return {}

    def _prepare_fit(
        self, X: pd.DataFrame, y: Any, sample_weight: Any
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        features, categorical = self._select_features(X)
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
        self.categories_ = {c: _category_levels(X[c]) for c in categorical}
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
        uniq, inverse = np.unique(keys.astype(str) if keys.dtype == object else keys,
                                  return_inverse=True)
        rng = np.random.default_rng(self.seed)
        n_hold = int(round(fraction * len(uniq)))
        n_hold = min(max(n_hold, 1), len(uniq) - 1)
        held = np.zeros(len(uniq), dtype=bool)
        held[rng.permutation(len(uniq))[:n_hold]] = True
        return held[inverse.ravel()]

    def _dataset(self, M: np.ndarray, y: np.ndarray, w: np.ndarray | None, params: dict,
                 reference: lgb.Dataset | None = None) -> lgb.Dataset:
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
        train_set = self._dataset(M, y, w, params)
        callbacks = []
        valid_sets = None
        if valid is not None:
            valid_sets = [self._dataset(*valid, params=params, reference=train_set)]
            if self.early_stopping_rounds:
                callbacks.append(lgb.early_stopping(self.early_stopping_rounds, verbose=False))
        booster = lgb.train(
            params, train_set, num_boost_round=num_boost_round, valid_sets=valid_sets,
            callbacks=callbacks,
        )
        # Re-read from text: the kept model is exactly the saved one (trees after the best
        # iteration dropped), so a save/load round trip cannot change a prediction.
        return lgb.Booster(model_str=booster.model_to_string())

    # ---- prediction -------------------------------------------------------------------------

    def _raw(self, X: pd.DataFrame, **kwargs: Any) -> np.ndarray:
        self._check_columns(X)
        return self._predict_matrix(self._matrix(X), **kwargs)

    def _predict_matrix(self, M: np.ndarray, **kwargs: Any) -> np.ndarray:
        # one thread for small inputs: LightGBM's default threading costs ~10 ms a call
        num_threads = 1 if len(M) < SMALL_BATCH_ROWS else 0
        return self.booster_.predict(M, num_threads=num_threads, **kwargs)

    def explain(self, X: pd.DataFrame, top_k: int = 3) -> list[list[Reason]]:
        """Top features pushing each row's score up, from their exact TreeSHAP contributions.

        The contributions are LightGBM's ``pred_contrib`` values (path-dependent TreeSHAP),
        computed by :class:`churnclv.models.treeshap.FastTreeShap` (equal to 1e-12, 20-50x faster);
        models it does not support (paths with more than 12 distinct features) use
        ``pred_contrib`` itself.

        Parameters
        ----------
        X : pandas.DataFrame
            Rows to explain, with at least the columns in ``feature_names_``.
        top_k : int
            How many features to return per row at most.

        Returns
        -------
        list of list of Reason
            One list per row of ``X``, in row order: up to ``top_k`` :class:`Reason` tuples
            ``(feature, contribution, value)`` with a strictly positive contribution to the raw
            score (log-odds of churn for the classifier, log of the mean for the regressors),
            largest first. A row with no positive contribution gets an empty list. ``value`` is
            the row's value in ``X`` (``None`` when missing; categorical levels as strings).

        References
        ----------
        Lundberg, Erion and Lee (2018), arXiv:1802.03888; Yang (2021), arXiv:2109.09847.
        """
        if top_k < 1:
            raise ValueError(f"top_k must be at least 1, got {top_k}")
        self._check_columns(X)
        M = self._matrix(X)
        k = min(top_k, len(self.feature_names_))
        fast = self._explainer()
        if fast is not None:
            order, values = fast.top_positive(M, k)  # -1 / 0.0 pad rows with fewer positive ones
        else:
            contrib = np.asarray(self._predict_matrix(M, pred_contrib=True))[:, :-1]  # last: expected value
            order = np.argsort(-contrib, axis=1, kind="stable")[:, :k]
            values = np.take_along_axis(contrib, order, axis=1)
        reasons: list[list[Reason]] = []
        cols: dict[str, np.ndarray] = {}  # only the columns some row's reasons name (one row: 3 of ~60)
        for i in range(len(M)):
            row: list[Reason] = []
            for j, c in zip(order[i].tolist(), values[i].tolist()):
                if j < 0 or c <= 0.0:
                    break
                col = self.feature_names_[j]
                if col not in cols:
                    cols[col] = X[col].to_numpy()
                row.append(Reason(col, c, _plain_value(cols[col][i], col in self.categories_)))
            reasons.append(row)
        return reasons

    def __getstate__(self) -> dict[str, Any]:
        # caches rebuild on demand: a pickled model carries neither (the TreeSHAP tables run to MBs)
        return {k: v for k, v in self.__dict__.items() if k not in ("_shap_cache", "_layout_cache")}

    def _explainer(self) -> FastTreeShap | None:
        """The booster's compiled TreeSHAP tables (:mod:`churnclv.models.treeshap`), built once per
        booster; None when the model is outside what they support (then LightGBM's ``pred_contrib``
        gives the same values, 20-50x slower)."""
        cached = self.__dict__.get("_shap_cache")
        if cached is None or cached[0] is not self.booster_:
            try:
                fast: FastTreeShap | None = FastTreeShap.from_booster(self.booster_)
            except UnsupportedModel as exc:
                logger.info("%s: reasons fall back to LightGBM's pred_contrib (%s)", type(self).__name__, exc)
                fast = None
            cached = self.__dict__["_shap_cache"] = (self.booster_, fast)
        return cached[1]

    # ---- save / load ------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """JSON-serializable description of the fitted model: config, features, categories, the
        calibrator (if any) as numbers, and LightGBM's model text. Load with :meth:`from_dict`."""
        check_is_fitted(self, "booster_")
        return {
            "format": _FORMAT,
            "format_version": _FORMAT_VERSION,
            "class": type(self).__name__,
            "init_params": _jsonable(self.get_params(deep=False)),
            "feature_names": list(self.feature_names_),
            "categorical_features": list(self.categorical_features_),
            "categories": {c: list(v) for c, v in self.categories_.items()},
            "fit_info": _jsonable(self.fit_info_),
            "calibrator": self._calibrator_dict(),
            "booster": self.booster_.model_to_string(),
        }

    def _calibrator_dict(self) -> dict[str, Any] | None:
        return None

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Any:
        """Rebuild a fitted model from :meth:`to_dict` output (e.g. after a JSON round trip)."""
        if d.get("format") != _FORMAT or d.get("class") != cls.__name__:
            raise ValueError(
                f"this dict holds format={d.get('format')!r} class={d.get('class')!r}; "
                f"{cls.__name__}.from_dict needs format={_FORMAT!r} class={cls.__name__!r} "
                "(use churnclv.models.gbm.model_from_dict to dispatch on the class)"
            )
        if d.get("format_version") != _FORMAT_VERSION:
            raise ValueError(
                f"format_version {d.get('format_version')} is not supported by this churnclv "
                f"(expects {_FORMAT_VERSION}); retrain or load with a matching churnclv"
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


# --------------------------------------------------------------------------------------------------
# the models


class GBMChurnClassifier(_GBMBase):
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

    def fit(
        self, X: pd.DataFrame, y: Any, *, groups: Any = None, sample_weight: Any = None
    ) -> GBMChurnClassifier:
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
            raise ValueError(
                f"calibration={self.calibration!r} is unknown; use 'isotonic', 'platt' or None"
            )
        M, y_arr, w = self._prepare_fit(X, y, sample_weight)
        if not np.isin(y_arr, (0.0, 1.0)).all():
            raise ValueError("y must be churned flags (bool or 0/1); other values were found")
        if self.calibration is None:
            self.booster_ = self._train(M, y_arr, w, None, self.num_boost_round)
            self.calibrator_ = None
            self.fit_info_ = {"n_train": int(len(y_arr)), "n_calibration": 0,
                              "best_iteration": int(self.booster_.current_iteration())}
            return self

        held = self._split(X, groups, self.calibration_fraction)
        for part, mask in (("training", ~held), ("calibration", held)):
            if len(np.unique(y_arr[mask])) < 2:
                raise ValueError(
                    f"the {part} part ({int(mask.sum())} rows) holds only one class of y; "
                    "pass more rows, change calibration_fraction, or set calibration=None"
                )
        sub = (lambda a, m: None if a is None else a[m])  # noqa: E731
        self.booster_ = self._train(
            M[~held], y_arr[~held], sub(w, ~held), (M[held], y_arr[held], sub(w, held)),
            self.num_boost_round,
        )
        raw = self.booster_.predict(M[held], raw_score=True)
        cal_cls = IsotonicCalibrator if self.calibration == "isotonic" else PlattCalibrator
        self.calibrator_ = cal_cls.fit(raw, y_arr[held], sub(w, held))
        y_h = y_arr[held]
        self.fit_info_ = {
            "n_train": int((~held).sum()),
            "n_calibration": int(held.sum()),
            "best_iteration": int(self.booster_.current_iteration()),
            "brier_uncalibrated_heldout": float(np.mean((expit(raw) - y_h) ** 2)),
            "brier_calibrated_heldout_insample": float(
                np.mean((self.calibrator_.transform(raw) - y_h) ** 2)
            ),
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
        if self.calibrator_ is None:
            return expit(raw)
        return np.clip(self.calibrator_.transform(raw), 0.0, 1.0)

    def _calibrator_dict(self) -> dict[str, Any] | None:
        return None if self.calibrator_ is None else self.calibrator_.to_dict()

    def _set_calibrator(self, d: dict[str, Any] | None) -> None:
        self.calibrator_ = _calibrator_from_dict(d)


class _GBMRegressorBase(_GBMBase):
    """Regressor with optional early stopping on held-out customers, then a refit on all rows."""

    validation_fraction: float
    refit_full: bool

    def _check_target(self, y: np.ndarray) -> np.ndarray:
        return y

    def fit(
        self, X: pd.DataFrame, y: Any, *, groups: Any = None, sample_weight: Any = None
    ) -> Any:
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
        info: dict[str, Any] = {"n_rows": int(len(y_arr))}
        rounds = self.num_boost_round
        booster = None
        if self.validation_fraction > 0:
            held = self._split(X, groups, self.validation_fraction)
            sub = (lambda a, m: None if a is None else a[m])  # noqa: E731
            booster = self._train(
                M[~held], y_arr[~held], sub(w, ~held), (M[held], y_arr[held], sub(w, held)), rounds
            )
            rounds = int(booster.current_iteration())
            info["n_validation"] = int(held.sum())
            info["n_train"] = int((~held).sum())
        if booster is None or self.refit_full:
            booster = self._train(M, y_arr, w, None, rounds)
            info["n_train"] = int(len(y_arr))
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
                f"variance_power={self.variance_power} is outside [1, 2); "
                "use about 1.2-1.5 for spend with many zeros"
            )
        return {"tweedie_variance_power": self.variance_power}

    def _check_target(self, y: np.ndarray) -> np.ndarray:
        n_neg = int((y < 0).sum())
        if n_neg:
            logger.info("GBMSpendRegressor: %d negative net spends clipped to 0 for training", n_neg)
        return np.maximum(y, 0.0)


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
            raise ValueError(
                "y (purchases) has negative counts; purchases in the horizon must be >= 0"
            )
        return y


_MODELS: dict[str, type[_GBMBase]] = {
    c.__name__: c for c in (GBMChurnClassifier, GBMSpendRegressor, GBMCountRegressor)
}


def model_from_dict(d: dict[str, Any]) -> GBMChurnClassifier | GBMSpendRegressor | GBMCountRegressor:
    """Rebuild any GBM model from its ``to_dict()`` output, dispatching on ``d["class"]``."""
    cls = _MODELS.get(str(d.get("class")))
    if cls is None:
        raise ValueError(
            f"class {d.get('class')!r} is not a churnclv GBM model; expected one of {sorted(_MODELS)}"
        )
    return cls.from_dict(d)


# --------------------------------------------------------------------------------------------------
# helpers


def _column_kind(s: pd.Series) -> str:
    """'numeric', 'categorical' or 'datetime' for a feature column."""
    dtype = s.dtype
    if isinstance(dtype, pd.CategoricalDtype):
        return "categorical"
    if pd.api.types.is_bool_dtype(dtype) or pd.api.types.is_numeric_dtype(dtype):
        return "numeric"
    if pd.api.types.is_datetime64_any_dtype(dtype) or pd.api.types.is_timedelta64_dtype(dtype):
        return "datetime"
    if pd.api.types.is_string_dtype(dtype) or pd.api.types.is_object_dtype(dtype):
        inferred = pd.api.types.infer_dtype(s, skipna=True)
        if inferred in ("integer", "floating", "mixed-integer-float", "boolean", "decimal", "empty"):
            return "numeric"
        if inferred in ("datetime", "datetime64", "date", "timedelta", "time"):
            return "datetime"
        return "categorical"
    return "categorical"


def _as_strings(s: pd.Series) -> pd.Series:
    # One canonical text form for levels in fit and predict, so 'north' and a category 'north'
    # (or 3 and '3') map to the same code; nulls stay null.
    return s.astype("string")


def _category_levels(s: pd.Series) -> list[str]:
    return sorted(_as_strings(s).dropna().unique().tolist())


def _category_codes(s: pd.Series, levels: pd.Index) -> np.ndarray:
    codes = levels.get_indexer(_as_strings(s).to_numpy(dtype=object, na_value=None))
    out = codes.astype(np.float64)
    out[codes < 0] = np.nan  # unseen level or null: missing, as LightGBM treats it
    return out


def _is_missing(v: Any) -> bool:
    if v is None or v is pd.NA or v is pd.NaT:
        return True
    return isinstance(v, (float, np.floating)) and bool(np.isnan(v))


def _plain_value(v: Any, categorical: bool) -> float | str | None:
    if v is None or (not isinstance(v, str) and pd.isna(v)):
        return None
    if categorical:
        return str(v)
    try:
        return float(v)
    except (TypeError, ValueError):
        return str(v)


def _jsonable(obj: Any) -> Any:
    """Plain JSON types: tuples become lists, numpy scalars become Python numbers."""
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.generic):
        return obj.item()
    return obj
