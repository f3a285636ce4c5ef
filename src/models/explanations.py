"""Reasons: the features pushing each customer's score up, from exact TreeSHAP contributions.

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

import logging
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol

import numpy as np
import pandas as pd

from churnclv.models.lightgbm_trees import UnsupportedModel
from churnclv.models.treeshap import FastTreeShap

if TYPE_CHECKING:
    import lightgbm as lgb

__all__ = ["ExplainableModel", "Reason", "explain", "explainer"]

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
    """One feature pushing a customer's churn score up.

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
    if top_k < 1:
        raise ValueError(f"top_k must be at least 1, got {top_k}")
    model._check_columns(X)
    M = model._matrix(X)
    k = min(top_k, len(model.feature_names_))
    fast = explainer(model)
    if fast is not None:
        order, values = fast.top_positive(M, k)  # -1 / 0.0 pad rows with fewer positive ones
    else:
        contrib = np.asarray(model._predict_matrix(M, pred_contrib=True))[:, :-1]  # last: expected value
        order = np.argsort(-contrib, axis=1, kind="stable")[:, :k]
        values = np.take_along_axis(contrib, order, axis=1)
    reasons: list[list[Reason]] = []
    cols: dict[str, np.ndarray] = {}  # only the columns some row's reasons name (one row: 3 of ~60)
    for i in range(len(M)):
        row: list[Reason] = []
        for j, c in zip(order[i].tolist(), values[i].tolist(), strict=True):
            if j < 0 or c <= 0.0:
                break
            col = model.feature_names_[j]
            if col not in cols:
                cols[col] = X[col].to_numpy()
            row.append(Reason(col, c, _plain_value(cols[col][i], col in model.categories_)))
        reasons.append(row)
    return reasons


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


def _plain_value(v: Any, categorical: bool) -> float | str | None:
    if v is None or (not isinstance(v, str) and pd.isna(v)):
        return None
    if categorical:
        return str(v)
    try:
        return float(v)
    except (TypeError, ValueError):
        return str(v)
