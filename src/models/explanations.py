"""Reasons: the features moving each customer's score most, from exact TreeSHAP contributions.

:func:`drivers` gives the features that move a row's score most either way, one per topic of the
phrase book (:mod:`churnclv.models.reason_book`), each with its signed contribution: what the
reasons say, and whether each raises or lowers the risk. :func:`explain` gives the features pushing
the score up.

The contributions are LightGBM's ``pred_contrib`` values (path-dependent TreeSHAP, Lundberg et al.
2018). :class:`churnclv.models.treeshap.FastTreeShap` computes the same values 20-50x faster (Yang
2021); models it does not support fall back to ``pred_contrib`` itself.

References
----------
Lundberg, S. M., Erion, G. G. and Lee, S.-I. (2018). Consistent individualized feature attribution
for tree ensembles. arXiv:1802.03888 (the TreeSHAP values behind ``pred_contrib``).
Yang, J. (2021). Fast TreeSHAP: accelerating SHAP value computation for trees. arXiv:2109.09847
(how :mod:`churnclv.models.treeshap` computes the same values for the reasons, 20-50x faster).
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol, overload

import numpy as np
import pandas as pd

from churnclv.models.lightgbm_trees import UnsupportedModel
from churnclv.models.reason_book import topic_of
from churnclv.models.treeshap import FastTreeShap

if TYPE_CHECKING:
    import lightgbm as lgb

__all__ = ["DriverArrays", "Drivers", "ExplainableModel", "Reason", "drivers", "explain", "explainer"]

logger = logging.getLogger(__name__)


class ExplainableModel(Protocol):
    """What :func:`explain` reads of a fitted GBM model (``churnclv.models.gbm_base.GBMBase``, whose
    module imports this one: a protocol here, not an import of the base class, keeps the two acyclic)."""

    @property
    def booster_(self) -> lgb.Booster:
        """The fitted booster."""

    @property
    def feature_names_(self) -> Sequence[str]:
        """The booster's features, in its column order."""

    @property
    def categories_(self) -> Mapping[str, Any]:
        """Each categorical feature's training levels."""

    def _check_columns(self, X: pd.DataFrame) -> None: ...

    def _matrix(self, X: pd.DataFrame) -> np.ndarray: ...

    def _predict_matrix(self, M: np.ndarray, **kwargs: Any) -> np.ndarray: ...


class Reason(NamedTuple):
    """One feature moving a customer's churn score (up when ``contribution`` is positive).

    ``contribution`` is the feature's TreeSHAP contribution to the raw (log-odds) score, so the
    contributions of one row plus the model's expected value add up to its raw score.
    """

    feature: str
    contribution: float
    value: float | str | None


def explain(model: ExplainableModel, X: pd.DataFrame, top_k: int = 3) -> list[list[Reason]]:
    """Top features pushing each row's score up, from their exact TreeSHAP contributions.

    The contributions are LightGBM's ``pred_contrib`` values (path-dependent TreeSHAP),
    computed by :class:`churnclv.models.treeshap.FastTreeShap` (equal to 1e-12, 20-50x faster);
    models it does not support (paths with more than 12 distinct features) use
    ``pred_contrib`` itself.

    Parameters
    ----------
    model : GBMChurnClassifier, GBMSpendRegressor or GBMCountRegressor
        A fitted GBM model.
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
    M = _model_matrix(model, X, top_k)
    k = min(top_k, len(model.feature_names_))
    fast = explainer(model)
    if fast is not None:
        order, values = fast.top_positive(M, k)  # -1 / 0.0 pad rows with fewer positive ones
    else:
        contrib = _pred_contrib(model, M)
        order = np.argsort(-contrib, axis=1, kind="stable")[:, :k]
        values = np.take_along_axis(contrib, order, axis=1)
    return list(_reasons(model, X, M, order, np.where(values > 0.0, values, 0.0)))


def drivers(model: ExplainableModel, X: pd.DataFrame, top_k: int = 3, *, spare: int | None = None) -> Drivers:
    """The features moving each row's score most, either way, one per topic: what its reasons say.

    Features of one topic of the phrase book say the same thing in words (e.g.
    ``days_since_last_purchase`` and ``days_since_last_purchase_rel_gap``, or the four BTYD columns):
    of each topic only the feature with the largest absolute contribution is a candidate.

    Parameters
    ----------
    model : GBMChurnClassifier, GBMSpendRegressor or GBMCountRegressor
        A fitted GBM model.
    X : pandas.DataFrame
        Rows to explain, with at least the columns in ``feature_names_``.
    top_k : int
        How many reasons the caller wants per row.
    spare : int, optional
        Candidates beyond ``top_k`` (default ``top_k``): a reason may still be dropped for its words
        (for a customer with no purchase yet, every purchase feature says only that).

    Returns
    -------
    Drivers
        A sequence of one list per row of ``X`` (built when read): up to ``top_k + spare``
        :class:`Reason` tuples of distinct topics,
        largest absolute contribution first (ties to the lower feature index); a positive
        contribution raises the raw score (the churn risk for the classifier), a negative one
        lowers it; zero contributions are left out.

    References
    ----------
    Lundberg, Erion and Lee (2018), arXiv:1802.03888; Yang (2021), arXiv:2109.09847.
    """
    M = _model_matrix(model, X, top_k)
    fast = explainer(model)
    contrib = fast.contributions(M) if fast is not None else _pred_contrib(model, M)
    strength = np.abs(contrib)
    rows = np.arange(len(M))
    for members in _topic_groups(tuple(model.feature_names_)):
        best = members[strength[:, members].argmax(axis=1)]
        keep = strength[rows, best]
        strength[:, members] = 0.0
        strength[rows, best] = keep
    k = min(top_k + (top_k if spare is None else spare), strength.shape[1])
    order = _top_columns(strength, k)
    return _reasons(model, X, M, order, np.take_along_axis(contrib, order, axis=1))


def _top_columns(strength: np.ndarray, k: int) -> np.ndarray:
    """Per row, the columns of the ``k`` largest values of ``strength`` (>= 0), largest first, ties to
    the lower column: ``k`` passes of ``argmax`` (each takes the first maximum), each marking what it
    took. For the few reasons asked of ~60 features, 6x faster than ``np.argpartition`` along rows
    (a selection per row) followed by a sort of the ``k`` (0.07-0.14 s against 0.83 s for 200k rows).
    """
    left = strength.copy()
    rows = np.arange(len(left))
    order = np.empty((len(left), k), dtype=np.intp)
    for j in range(k):
        best = left.argmax(axis=1)
        order[:, j] = best
        left[rows, best] = -1.0  # below any strength
    return order


def _model_matrix(model: ExplainableModel, X: pd.DataFrame, top_k: int) -> np.ndarray:
    if top_k < 1:
        raise ValueError(f"top_k must be at least 1, got {top_k}")
    model._check_columns(X)
    return model._matrix(X)


def _pred_contrib(model: ExplainableModel, M: np.ndarray) -> np.ndarray:
    """LightGBM's own TreeSHAP values (for a model the compiled tables do not support)."""
    return np.asarray(model._predict_matrix(M, pred_contrib=True), dtype=np.float64)[:, :-1]  # last: expected value


@functools.lru_cache(maxsize=16)
def _topic_groups(features: tuple[str, ...]) -> tuple[np.ndarray, ...]:
    """Column indices of each topic with more than one feature."""
    topics: dict[str, list[int]] = {}
    for j, name in enumerate(features):
        topics.setdefault(topic_of(name), []).append(j)
    return tuple(np.asarray(m, dtype=np.intp) for m in topics.values() if len(m) > 1)


# Reason from a tuple at C speed (Reason(*t) and Reason._make run Python code per reason)
_new_reason = functools.partial(tuple.__new__, Reason)


class DriverArrays(NamedTuple):
    """:class:`Drivers` as arrays, for writers that work column by column (row ``i``'s reasons are
    its first ``lengths[i]`` slots)."""

    names: tuple[str, ...]  # the model's features, in its column order
    feature_index: np.ndarray  # (n, k) feature index per slot (0 past a row's length)
    contributions: np.ndarray  # (n, k) float64
    numbers: np.ndarray  # (n, k) float64: the feature's value in the model matrix (NaN: missing)
    objects: np.ndarray  # (n, k) object: the Reason values (None: missing; categorical levels as strings)
    lengths: np.ndarray  # (n,) int


class Drivers(Sequence[list[Reason]]):
    """Per row of a frame, its :class:`Reason` list, built when the row is read.

    Holding a million rows' lists at once costs 4x their making in garbage collection (measured:
    1.1 s against 0.26 s per 100k rows); built and dropped row by row, they cost only their making.
    :meth:`arrays` gives the same as arrays.
    """

    __slots__ = ("_arrays", "_features", "_lengths")

    def __init__(self, arrays: DriverArrays) -> None:
        self._arrays = arrays
        self._features = np.asarray(arrays.names, dtype=object)[arrays.feature_index]
        self._lengths = arrays.lengths.tolist()

    def __len__(self) -> int:
        return len(self._lengths)

    def arrays(self) -> DriverArrays:
        """The rows' drivers as arrays."""
        return self._arrays

    @overload
    def __getitem__(self, i: int) -> list[Reason]: ...

    @overload
    def __getitem__(self, i: slice) -> list[list[Reason]]: ...

    def __getitem__(self, i: int | slice) -> list[Reason] | list[list[Reason]]:
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        k = self._lengths[i]
        row = zip(
            self._features[i, :k].tolist(),
            self._arrays.contributions[i, :k].tolist(),
            self._arrays.objects[i, :k].tolist(),
            strict=True,
        )
        return list(map(_new_reason, row))


def _reasons(model: ExplainableModel, X: pd.DataFrame, M: np.ndarray, order: np.ndarray, values: np.ndarray) -> Drivers:
    """The rows' Reason lists from the chosen feature indices and their contributions; each row
    ends at its first index below 0 or zero contribution. Numbers come from the model matrix ``M``
    (NaN: missing), categorical levels from ``X``."""
    names, categorical = model.feature_names_, model.categories_
    index = np.maximum(order, 0)
    picked = np.take_along_axis(M, index, axis=1)
    value = picked.astype(object)
    value[np.isnan(picked)] = None
    for j, col in enumerate(names):
        if col in categorical:
            rows, slots = np.nonzero(index == j)
            if len(rows):
                value[rows, slots] = [_level(v) for v in X[col].to_numpy()[rows].tolist()]
    lengths = ((order >= 0) & (values != 0.0)).cumprod(axis=1).sum(axis=1)
    return Drivers(DriverArrays(tuple(names), index, values, picked, value, lengths))


def explainer(model: ExplainableModel) -> FastTreeShap | None:
    """The booster's compiled TreeSHAP tables (:mod:`churnclv.models.treeshap`), built once per
    booster; None when the model is outside what they support (then LightGBM's ``pred_contrib``
    gives the same values, 20-50x slower)."""
    cached = model.__dict__.get("_shap_cache")
    if cached is None or cached[0] is not model.booster_:
        try:
            fast: FastTreeShap | None = FastTreeShap.from_booster(model.booster_)
        except UnsupportedModel as exc:
            logger.info("%s: reasons fall back to LightGBM's pred_contrib (%s)", type(model).__name__, exc)
            fast = None
        cached = model.__dict__["_shap_cache"] = (model.booster_, fast)
    return cached[1]


def _level(v: Any) -> str | None:
    """A categorical value as a string, None when missing."""
    if v is None or (not isinstance(v, str) and pd.isna(v)):
        return None
    return str(v)
