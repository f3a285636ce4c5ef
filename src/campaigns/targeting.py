"""Whom to contact: expected incremental revenue minus the action's cost, chosen on held-out campaigns.

Every candidate turns a customer into an expected incremental revenue over the campaign's window
(margin times it, minus the cost of the scores' action, is the expected profit; contact when it is
positive and the action is a contact, :func:`~churnclv.campaigns.uplift.contact_decisions`; customers
whose action is no contact, ``contact = false`` in the playbook, are never contacted nor learned from).
The candidates are :mod:`churnclv.campaigns.candidates`'s, the past campaigns
:mod:`churnclv.campaigns.past_campaign`'s:

- ``uplift_model``: the :class:`~churnclv.campaigns.uplift.UpliftModel` (X-learner) on the features,
  fitted on the pooled past campaigns;
- a **scaled value** column of the scores (``expected_spend``, ``clv_at_risk``, ...): the effect is
  taken as proportional to it, ``rho x value``, with ``rho`` the measured revenue uplift of the past
  campaigns over their mean value (pooled over campaigns, weighted by size). One number learnt from
  thousands of customers: biased where the effect is not proportional, but with little variance.

The choice between them follows the backtest discipline of the other models: leave one past campaign
out (with a single campaign: three folds of its customers), fit each candidate on the rest, decide on
the held-out campaign by expected profit, and measure what that decision earned there against the
campaign's own holdout (:func:`~churnclv.campaigns.qini.policy_profit`). The first candidate is the
default; a later one replaces it only when its held-out profit is higher by more than two standard
errors of the difference (``min_gain_se``; one-sided, a false switch about 2 % of the time), so list
the simpler ones first: a holdout of a few thousand customers measures profit with a wide error, and
a noisy winner is no evidence. The chosen candidate is refitted on
every campaign. Measured on generated campaigns (``bench/uplift.py``), the X-learner's own
predictions are too noisy on a few thousand customers per campaign: it contacted most of the base
whatever the truth, and ranked no better than ``clv_at_risk``.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator
from sklearn.utils.validation import check_is_fitted

from churnclv.campaigns.candidates import CANDIDATES, UPLIFT_MODEL, check_candidates
from churnclv.campaigns.errors import CampaignError
from churnclv.campaigns.past_campaign import PastCampaign, provenance
from churnclv.campaigns.qini import policy_profit, qini_coefficient
from churnclv.campaigns.uplift import UpliftModel, action_costs, contact_decisions
from churnclv.models.inputs import model_input, stable_floats

__all__ = ["CANDIDATES", "FORMAT_VERSION", "UPLIFT_MODEL", "CampaignTargeting", "PastCampaign", "policy_table"]

_FORMAT = "churnclv.targeting"
#: The version of :meth:`CampaignTargeting.to_dict`'s layout; another one is refused on load (1: before the
#: outcome window, the scoring model and the actions that are no contact were recorded).
FORMAT_VERSION = 2
_BACKTEST = {"candidate": "str", "held_out": "str", "customers": "int64", "contacts": "int64", "profit": "float"}
_BACKTEST |= {"qini": "float", "profit_se": "float"}
_COMPARISONS = {"candidate": "str", "against": "str", "gain": "float", "gain_se": "float", "switched": "bool"}
_CAMPAIGNS = {"campaign": "str", "customers": "int64", "treated": "int64", "controls": "int64"}
_FOLDS = 3  # customer folds when a single campaign is given


def _folds(
    campaigns: Sequence[PastCampaign], seed: int, no_contact: Collection[str]
) -> tuple[pd.DataFrame, np.ndarray]:
    """The pooled customers and a fold per row: the campaign, or (one campaign) a random third of it. Customers
    whose action is no contact are left out: no decision contacts them, so they teach nothing about one."""
    pooled = pd.concat([c.customers for c in campaigns], ignore_index=True)
    if len(campaigns) > 1:
        fold = np.repeat(np.arange(len(campaigns)), [len(c.customers) for c in campaigns])
    else:
        fold = np.random.default_rng(seed).permutation(len(pooled)) % _FOLDS
    keep = ~pooled["action"].isin(list(no_contact)).to_numpy()
    if not keep.any():
        raise CampaignError(
            "every customer's action is no contact (contact = false); fix: learn from campaigns that contacted some"
        )
    return pooled[keep].reset_index(drop=True), fold[keep]


class CampaignTargeting(BaseEstimator):
    """Contact or not per customer by expected profit, with the candidate chosen on held-out campaigns.

    Parameters
    ----------
    candidates : sequence of str
        :data:`UPLIFT_MODEL` and value columns of the scores (see the module docstring), simplest first.
    margin : float
        The share of revenue that is profit.
    uplift_params : mapping, optional
        Keyword arguments of the :class:`~churnclv.campaigns.uplift.UpliftModel`.
    min_gain_se : float
        A later candidate replaces the one chosen so far only when its held-out profit is higher by more
        than this many standard errors of the difference (0: the largest held-out profit wins).
    seed : int
        Seed of the uplift models and of the folds of a single campaign.

    Attributes
    ----------
    chosen_, fitted_ : the chosen candidate and its fit (a value column's scale, or the uplift model)
    costs_, no_contact_ : the cost per action text and the actions that are no contact, as fitted with
    horizon_days_ : the outcome window the uplift was measured over (None: unknown)
    scores_model_ : ``horizon_days`` of the model that scored the campaigns (the value columns' horizon;
        None: unknown) and ``models``, each campaign's model name and version
    """

    def __init__(
        self,
        *,
        candidates: Sequence[str] = CANDIDATES,
        margin: float = 1.0,
        uplift_params: Mapping[str, Any] | None = None,
        min_gain_se: float = 2.0,
        seed: int = 0,
    ) -> None:
        self.candidates = candidates
        self.margin = margin
        self.uplift_params = uplift_params
        self.min_gain_se = min_gain_se
        self.seed = seed

    def _fit_candidate(self, name: str, rows: pd.DataFrame, fold: np.ndarray, features: Sequence[str]) -> Any:
        """A fitted candidate: an :class:`UpliftModel`, or the scale ``rho`` of a value column."""
        if name == UPLIFT_MODEL:
            model = UpliftModel(**{"seed": self.seed, **(self.uplift_params or {})})
            return model.fit(rows[list(features)], rows["treated"].to_numpy(), rows["outcome"].to_numpy())
        gain = value = 0.0
        for _, part in rows.groupby(fold):
            t = part["treated"].to_numpy()
            if t.all() or not t.any():
                continue
            y = part["outcome"].to_numpy()
            gain += len(part) * (y[t].mean() - y[~t].mean())
            value += float(part[name].astype(float).sum())
        return gain / value if value > 0 else 0.0

    def _predict_candidate(self, name: str, fitted: Any, frame: pd.DataFrame, features: Sequence[str]) -> np.ndarray:
        if name == UPLIFT_MODEL:
            out: np.ndarray = fitted.predict(frame[list(features)])
            return out
        scaled: np.ndarray = float(fitted) * frame[name].to_numpy(float)
        return scaled

    def fit(
        self, campaigns: Sequence[PastCampaign], costs: Mapping[str, float], no_contact: Collection[str] = ()
    ) -> CampaignTargeting:
        """Backtest every candidate on held-out campaigns, choose one, refit it on all of them.

        ``costs`` is the cost of one contact per action text (the playbook's); ``no_contact`` the texts of
        the actions that are no contact (:attr:`churnclv.models.playbook.Playbook.no_contact`): their
        customers are never contacted, whatever their expected profit, and are left out of the learning.
        """
        names = self._check(campaigns)
        features = campaigns[0].feature_names
        window, scores_model = provenance(campaigns)
        pooled, fold = _folds(campaigns, self.seed, no_contact)
        cost = action_costs(pooled["action"], costs)
        contact = {name: np.zeros(len(pooled), dtype=bool) for name in names}
        terms = self._profit_terms(pooled, fold, cost)
        rows = []
        for held in np.unique(fold):
            at = fold == held
            train, test = pooled[~at], pooled[at]
            t, y, c = test["treated"].to_numpy(), test["outcome"].to_numpy(), cost[at]
            label = campaigns[held].name if len(campaigns) > 1 else f"{campaigns[0].name} fold {held + 1}"
            for name in names:
                fitted = self._fit_candidate(name, train, fold[~at], features)
                profit = self.margin * self._predict_candidate(name, fitted, test, features) - c
                contact[name][at] = profit > 0
                rows.append(
                    {
                        "candidate": name,
                        "held_out": label,
                        "customers": len(test),
                        "contacts": int((profit > 0).sum()),
                        "profit": policy_profit(y, t, profit > 0, c, margin=self.margin),
                        "qini": qini_coefficient(y, t, profit),
                        "profit_se": float(np.sqrt(np.sum(terms[at][profit > 0] ** 2))),
                    }
                )
        self.backtest_ = pd.DataFrame(rows)
        self.chosen_, self.comparisons_ = self._choose(names, contact, terms)
        self.feature_names_ = tuple(features)
        self.costs_ = {str(k): float(v) for k, v in costs.items()}
        self.no_contact_ = tuple(sorted(str(a) for a in no_contact))
        self.horizon_days_, self.scores_model_ = window, scores_model
        self.campaigns_ = pd.DataFrame(
            [(c.name, len(c.customers), int(c.customers["treated"].sum())) for c in campaigns],
            columns=["campaign", "customers", "treated"],
        ).assign(controls=lambda f: f["customers"] - f["treated"])
        self.fitted_ = self._fit_candidate(self.chosen_, pooled, fold, features)
        return self

    def _check(self, campaigns: Sequence[PastCampaign]) -> list[str]:
        if not campaigns:
            raise CampaignError("no past campaign given; fix: pass at least one campaign with a holdout")
        names = check_candidates(self.candidates)
        features = campaigns[0].feature_names
        for c in campaigns:
            missing = [n for n in (*names, *features) if n != UPLIFT_MODEL and n not in c.customers.columns]
            if missing:
                raise CampaignError(
                    f"campaign {c.name!r} is missing columns {missing[:5]}; fix: pass the same scores' value "
                    "columns and features for every campaign, or drop those candidates"
                )
            for n in names:
                if n != UPLIFT_MODEL and not pd.api.types.is_numeric_dtype(c.customers[n]):
                    raise CampaignError(f"campaign {c.name!r}: value column {n!r} is not numbers; fix: pass its scores")
                if n != UPLIFT_MODEL and c.customers[n].isna().any():
                    raise CampaignError(
                        f"campaign {c.name!r}: value column {n!r} has {int(c.customers[n].isna().sum()):,} missing "
                        "values; fix: pass the scores as the batch wrote them, or drop that candidate"
                    )
        return names

    def _profit_terms(self, pooled: pd.DataFrame, fold: np.ndarray, cost: np.ndarray) -> np.ndarray:
        """Each customer's inverse-propensity term of a policy's profit on their held-out campaign:
        ``margin x y x (t / e - (1 - t) / (1 - e)) - cost``, ``e`` the campaign's treated share."""
        t, y = pooled["treated"].to_numpy(), pooled["outcome"].to_numpy(float)
        share = pd.Series(t).groupby(fold).transform("mean").to_numpy()
        with np.errstate(divide="ignore", invalid="ignore"):
            term = self.margin * y * np.where(t, 1 / share, -1 / (1 - share)) - cost
        return np.where(np.isfinite(term), term, 0.0)

    def _choose(
        self, names: list[str], contact: Mapping[str, np.ndarray], terms: np.ndarray
    ) -> tuple[str, pd.DataFrame]:
        """The first candidate, replaced by a later one only when its held-out profit is higher by more
        than ``min_gain_se`` standard errors of the difference. The error is that of the inverse-propensity
        sum over the customers the two policies treat differently, with each term's square as its variance
        (conservative)."""
        profit = self.backtest_.groupby("candidate", sort=False)["profit"].sum()
        chosen, rows = names[0], []
        for name in names[1:]:
            differ = contact[name] != contact[chosen]
            gain = float(profit[name] - profit[chosen])
            se = float(np.sqrt(np.sum(terms[differ] ** 2)))
            switch = bool(gain > self.min_gain_se * se)
            rows.append({"candidate": name, "against": chosen, "gain": gain, "gain_se": se, "switched": switch})
            chosen = name if switch else chosen
        return chosen, pd.DataFrame(rows, columns=list(_COMPARISONS))

    def summary(self) -> pd.DataFrame:
        """Per candidate: customers and contacts over the held-out campaigns, the profit measured there
        (in total, with its standard error, and per customer), the mean Qini coefficient of its expected
        profit, and the chosen one. The error is the inverse-propensity one of :meth:`_choose`, over the
        customers the candidate contacts."""
        check_is_fitted(self, "chosen_")
        g = self.backtest_.groupby("candidate", sort=False)
        out = g[["customers", "contacts", "profit"]].sum().join(g["qini"].mean()).reset_index()
        out["profit_se"] = np.sqrt(g["profit_se"].apply(lambda se: float(np.sum(se**2))).to_numpy())
        out["profit_per_customer"] = out["profit"] / out["customers"]
        out["chosen"] = out["candidate"] == self.chosen_
        return out

    def expected_uplift(self, features: pd.DataFrame, scores: pd.DataFrame) -> np.ndarray:
        """The chosen candidate's expected incremental revenue per customer (features and scores: same rows)."""
        check_is_fitted(self, "chosen_")
        if len(features) != len(scores):
            raise CampaignError(f"features have {len(features)} rows and scores {len(scores)}; fix: the same customers")
        if self.chosen_ == UPLIFT_MODEL:
            # floats at 1e-6, as every model reads them: the batch's raw snapshot and the service's rounded one agree
            stable = stable_floats(model_input(features))
            return self._predict_candidate(self.chosen_, self.fitted_, stable, self.feature_names_)
        if self.chosen_ not in scores.columns:
            raise CampaignError(f"scores are missing column {self.chosen_!r}; fix: pass the scorer's full output")
        return self._predict_candidate(self.chosen_, self.fitted_, scores, ())

    def decide(
        self, features: pd.DataFrame, scores: pd.DataFrame, costs: Mapping[str, float] | None = None
    ) -> pd.DataFrame:
        """Contact or not per customer of ``scores`` (:func:`~churnclv.campaigns.uplift.contact_decisions`,
        ranked by expected profit, with the margin of this targeting; ``costs``: default the ones it was
        fitted with, ``costs_``; a customer whose action is no contact, ``no_contact_``, never is)."""
        uplift = self.expected_uplift(features, scores)
        return self.decisions(scores["customer_id"], uplift, scores["action"], costs)

    def decisions(
        self, customer_id: Any, uplift: Any, action: Any, costs: Mapping[str, float] | None = None
    ) -> pd.DataFrame:
        """:meth:`decide` from the expected uplift (:meth:`expected_uplift`) already computed."""
        check_is_fitted(self, "chosen_")
        chosen = self.costs_ if costs is None else costs
        return contact_decisions(customer_id, uplift, action, chosen, margin=self.margin, no_contact=self.no_contact_)

    def to_dict(self) -> dict[str, Any]:
        """The fitted targeting as plain data (JSON): the parameters, the choice and its backtest, the costs,
        and the fitted candidate (the scale of a value column, or the uplift model with its boosters as
        LightGBM model text). :func:`churnclv.campaigns.targeting_files.save_targeting` writes it."""
        check_is_fitted(self, "chosen_")
        fitted = self.fitted_.to_dict() if self.chosen_ == UPLIFT_MODEL else float(self.fitted_)
        return {
            "format": _FORMAT,
            "format_version": FORMAT_VERSION,
            "params": {
                "candidates": list(self.candidates),
                "margin": float(self.margin),
                "uplift_params": dict(self.uplift_params or {}),
                "min_gain_se": float(self.min_gain_se),
                "seed": int(self.seed),
            },
            "chosen": self.chosen_,
            "contact_rule": "margin x expected_incremental_revenue - cost of the action > 0",
            "feature_names": list(self.feature_names_),
            "costs": dict(self.costs_),
            "no_contact": list(self.no_contact_),
            "horizon_days": self.horizon_days_,
            "scores_model": self.scores_model_,
            "campaigns": _records(self.campaigns_),
            "backtest": _records(self.backtest_),
            "comparisons": _records(self.comparisons_),
            "fitted": fitted,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> CampaignTargeting:
        """The targeting :meth:`to_dict` wrote (a :class:`CampaignError` for another format or version)."""
        if d.get("format") != _FORMAT or d.get("format_version") != FORMAT_VERSION:
            raise CampaignError(
                f"not a targeting of format {_FORMAT} version {FORMAT_VERSION} (got {d.get('format')!r} version "
                f"{d.get('format_version')!r}); fix: fit it again with this version (churnclv campaign fit-targeting)"
            )
        p = d["params"]
        targeting = cls(
            candidates=tuple(p["candidates"]),
            margin=float(p["margin"]),
            uplift_params=dict(p["uplift_params"]) or None,
            min_gain_se=float(p["min_gain_se"]),
            seed=int(p["seed"]),
        )
        targeting.chosen_ = str(d["chosen"])
        targeting.feature_names_ = tuple(str(n) for n in d["feature_names"])
        targeting.costs_ = {str(k): float(v) for k, v in d["costs"].items()}
        targeting.no_contact_ = tuple(str(a) for a in d["no_contact"])
        targeting.horizon_days_ = None if d["horizon_days"] is None else int(d["horizon_days"])
        targeting.scores_model_ = dict(d["scores_model"])
        targeting.campaigns_ = _frame(d["campaigns"], _CAMPAIGNS)
        targeting.backtest_ = _frame(d["backtest"], _BACKTEST)
        targeting.comparisons_ = _frame(d["comparisons"], _COMPARISONS)
        fitted = d["fitted"]
        targeting.fitted_ = UpliftModel.from_dict(fitted) if targeting.chosen_ == UPLIFT_MODEL else float(fitted)
        return targeting


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """Rows as JSON-safe dicts, every bit of each number kept (NaN as None, numpy scalars as Python's)."""

    def plain(v: Any) -> Any:
        v = v.item() if isinstance(v, np.generic) else v
        return None if isinstance(v, float) and not np.isfinite(v) else v

    return [{k: plain(v) for k, v in row.items()} for row in frame.to_dict(orient="records")]


def _frame(records: Any, dtypes: Mapping[str, str]) -> pd.DataFrame:
    """:func:`_records` read back, with the columns' types (None as NaN)."""
    frame = pd.DataFrame(list(records), columns=list(dtypes))
    return frame.astype({k: (float if v == "float" else v) for k, v in dtypes.items()})


def policy_table(true_effect: Any, cost: Any, policies: Mapping[str, Any], *, margin: float = 1.0) -> pd.DataFrame:
    """Contact rules judged on the truth of a generated campaign (each customer's true expected effect
    on revenue, :mod:`churnclv.generator.campaign`), against the true optimum (contact exactly the
    customers whose true profit is positive).

    Returns one row per policy (in the given order): ``contacts``, ``true_profit`` (``margin x true
    effect - cost`` summed over the contacted) and ``share_of_optimum``.
    """
    profit = margin * np.asarray(true_effect, dtype=float) - np.asarray(cost, dtype=float)
    best = float(profit[profit > 0].sum())
    rows = []
    for name, contact in policies.items():
        mask = np.asarray(contact, dtype=bool)
        if mask.shape != profit.shape:
            raise CampaignError(
                f"policy {name!r} flags {mask.size} customers, not {profit.size}; fix: one per customer"
            )
        gained = float(profit[mask].sum())
        rows.append({"policy": name, "contacts": int(mask.sum()), "true_profit": gained})
    out = pd.DataFrame(rows)
    out["share_of_optimum"] = out["true_profit"] / best if best > 0 else np.nan
    return out
