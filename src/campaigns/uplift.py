"""Who responds to a contact: T- and X-learners with LightGBM, and the contact decision by expected profit.

Learned from past campaigns with holdouts (features as of the campaign's as-of, the arm, the outcome
over the window after it), evaluated on other campaigns with Qini and uplift@k
(:mod:`churnclv.campaigns.qini`). The learners (Kuenzel, Sekhon, Bickel and Yu 2019, "Metalearners for
estimating heterogeneous treatment effects using machine learning", PNAS):

- **T-learner**: one outcome model per arm, ``mu1(x) - mu0(x)``;
- **X-learner** (default): each arm's outcomes are set against the other arm's model (``D1 = Y1 -
  mu0(X1)``, ``D0 = mu1(X0) - Y0``), one effect model is fitted per arm and they are blended as
  ``e tau0(x) + (1 - e) tau1(x)`` with ``e`` the treated share; it suits a small holdout, whose
  model it leans on least.

The outcome models are :class:`~churnclv.models.gbm.GBMSpendRegressor` (Tweedie, for revenue) and the
effect models an L2 LightGBM regressor; all persist as JSON plus LightGBM model text. causalml has these
learners too, but installing it pulls xgboost with a 350 MB CUDA library, shap, statsmodels and
black: two small learners on our own GBM are cheaper to own than that.

On a few thousand customers per campaign the learners' predictions are noisy (``bench/uplift.py``):
decide with :class:`churnclv.campaigns.targeting.CampaignTargeting`, which backtests the X-learner
against simpler candidates on held-out campaigns, rather than with its raw predictions.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator
from sklearn.utils.validation import check_is_fitted

from churnclv.campaigns.errors import CampaignError
from churnclv.campaigns.qini import qini_coefficient, uplift_at_k
from churnclv.models.gbm import GBMCountRegressor, GBMSpendRegressor

__all__ = ["LEARNERS", "GBMEffectRegressor", "UpliftModel", "action_costs", "contact_decisions", "evaluate_uplift"]

LEARNERS = ("t", "x")
_FORMAT = "churnclv.uplift/1"
MIN_ARM = 20  # fewer customers in an arm than this cannot train an outcome model
_PARAMS: dict[str, Any] = {"num_leaves": 15, "learning_rate": 0.05, "min_data_in_leaf": 40}


class GBMEffectRegressor(GBMCountRegressor):
    """LightGBM regressor of a signed effect (squared error): the X-learner's effect models."""

    _objective: ClassVar[str] = "regression"

    def _check_target(self, y: np.ndarray) -> np.ndarray:
        return y


class UpliftModel(BaseEstimator):
    """T- or X-learner of the effect of a contact on an outcome (e.g. revenue over the horizon).

    Parameters
    ----------
    learner : {"x", "t"}
        The meta-learner.
    num_boost_round : int
        Most boosting rounds per model (early stopping on 10 % of the customers picks fewer).
    params : mapping, optional
        LightGBM parameters of every model (default: 15 leaves, rate 0.05, 40 rows per leaf).
    seed : int
        Seed of every model.
    """

    def __init__(
        self,
        *,
        learner: str = "x",
        num_boost_round: int = 400,
        params: Mapping[str, Any] | None = None,
        seed: int = 0,
    ) -> None:
        self.learner = learner
        self.num_boost_round = num_boost_round
        self.params = params
        self.seed = seed

    def _gbm(self, cls: type[GBMCountRegressor] | type[GBMSpendRegressor]) -> Any:
        params = {**_PARAMS, **(self.params or {})}
        return cls(params=params, num_boost_round=self.num_boost_round, seed=self.seed)

    def fit(self, X: pd.DataFrame, treated: Any, y: Any) -> UpliftModel:
        """Fit on one row per customer: features ``X``, the arm ``treated`` (bool) and the outcome ``y``."""
        if self.learner not in LEARNERS:
            raise CampaignError(f"learner {self.learner!r}: must be one of {list(LEARNERS)}; fix: learner='x'")
        t = np.asarray(treated, dtype=bool)
        y_arr = np.asarray(y, dtype=float)
        if len(t) != len(X) or len(y_arr) != len(X):
            raise CampaignError(f"X has {len(X)} rows, treated {len(t)} and y {len(y_arr)}; fix: one of each per row")
        if min(t.sum(), (~t).sum()) < MIN_ARM:
            raise CampaignError(
                f"the arms have {int(t.sum())} treated and {int((~t).sum())} control customers; an uplift model "
                f"needs at least {MIN_ARM} in each: fix: pool more campaigns or hold out a larger share"
            )
        X = X.reset_index(drop=True)
        mu0 = self._gbm(GBMSpendRegressor).fit(X[~t], y_arr[~t])
        mu1 = self._gbm(GBMSpendRegressor).fit(X[t], y_arr[t])
        self.treated_share_ = float(t.mean())
        self.models_ = {"mu0": mu0, "mu1": mu1}
        if self.learner == "x":
            d1 = y_arr[t] - mu0.predict(X[t])
            d0 = mu1.predict(X[~t]) - y_arr[~t]
            self.models_["tau1"] = self._gbm(GBMEffectRegressor).fit(X[t], d1)
            self.models_["tau0"] = self._gbm(GBMEffectRegressor).fit(X[~t], d0)
        return self

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        """The expected effect of a contact on the outcome, per row of ``X``."""
        check_is_fitted(self, "models_")
        m = self.models_
        if self.learner == "t":
            out: np.ndarray = m["mu1"].predict(X) - m["mu0"].predict(X)
            return out
        e = self.treated_share_
        blended: np.ndarray = e * m["tau0"].predict(X) + (1 - e) * m["tau1"].predict(X)
        return blended

    def to_dict(self) -> dict[str, Any]:
        """As plain data (JSON), the boosters as LightGBM model text."""
        check_is_fitted(self, "models_")
        return {
            "format": _FORMAT,
            "learner": self.learner,
            "num_boost_round": self.num_boost_round,
            "params": dict(self.params or {}),
            "seed": self.seed,
            "treated_share": self.treated_share_,
            "models": {name: model.to_dict() for name, model in self.models_.items()},
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> UpliftModel:
        """The model :meth:`to_dict` wrote."""
        if d.get("format") != _FORMAT:
            raise CampaignError(f"not an uplift model of format {_FORMAT} (got {d.get('format')!r}); fix: refit it")
        model = cls(learner=d["learner"], num_boost_round=d["num_boost_round"], params=d["params"], seed=d["seed"])
        model.treated_share_ = float(d["treated_share"])
        kinds = {
            "mu0": GBMSpendRegressor,
            "mu1": GBMSpendRegressor,
            "tau0": GBMEffectRegressor,
            "tau1": GBMEffectRegressor,
        }
        model.models_ = {name: kinds[name].from_dict(m) for name, m in d["models"].items()}
        return model

    def save(self, path: Path | str) -> Path:
        """Write ``to_dict()`` as one JSON file."""
        path = Path(path)
        path.write_text(json.dumps(self.to_dict()), encoding="utf-8")
        return path

    @classmethod
    def load(cls, path: Path | str) -> UpliftModel:
        """Read a file :meth:`save` wrote."""
        return cls.from_dict(json.loads(Path(path).read_text(encoding="utf-8")))


def evaluate_uplift(
    predicted: Any, treated: Any, outcome: Any, *, k: Sequence[float] = (0.1, 0.2, 0.3)
) -> dict[str, float]:
    """Qini coefficient and uplift@k of a ranking on a campaign it was not fitted on."""
    out = {"qini": qini_coefficient(outcome, treated, predicted)}
    for share in k:
        out[f"uplift_at_{round(share * 100)}"] = uplift_at_k(outcome, treated, predicted, share)
    return out


def action_costs(action: Any, costs: Mapping[str, float]) -> np.ndarray:
    """The cost of one contact per row of ``action`` (texts); an action without a cost in ``costs`` is a
    :class:`CampaignError` naming it."""
    action = pd.Series(np.asarray(action).astype(str))
    cost = action.map(dict(costs))
    if cost.isna().any():
        unknown = sorted(action[cost.isna()].unique())[:5]
        raise CampaignError(f"no cost for actions {unknown}; fix: give every action a cost in [playbook.actions]")
    out: np.ndarray = cost.to_numpy(float)
    return out


def contact_decisions(
    customer_id: Any,
    uplift: Any,
    action: Any,
    costs: Mapping[str, float],
    *,
    margin: float = 1.0,
    no_contact: Collection[str] = (),
) -> pd.DataFrame:
    """Contact or not, per customer, by expected profit: ``margin x uplift - cost of the action``.

    Returns ``customer_id``, ``action``, ``incremental_value`` (margin x expected uplift in revenue),
    ``cost``, ``expected_profit``, ``contact`` (profit > 0, and never for an action in ``no_contact``,
    the texts of the actions that are no contact: a cost of 0 is free, not "do not contact") and
    ``rank`` (1 = most profitable contact; the customers not contacted after them), sorted by rank. An
    action without a cost in ``costs`` is a :class:`CampaignError` naming it.
    """
    frame = pd.DataFrame({"customer_id": np.asarray(customer_id).astype(str), "action": np.asarray(action).astype(str)})
    frame["incremental_value"] = margin * np.asarray(uplift, dtype=float)
    frame["cost"] = action_costs(frame["action"], costs)
    frame["expected_profit"] = frame["incremental_value"] - frame["cost"]
    frame["contact"] = (frame["expected_profit"] > 0) & ~frame["action"].isin(list(no_contact))
    frame = frame.sort_values(["contact", "expected_profit"], ascending=False, kind="stable").reset_index(drop=True)
    frame["rank"] = np.arange(1, len(frame) + 1)
    return frame
