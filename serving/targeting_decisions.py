"""A saved targeting's contact decisions, one definition for the batch job and the HTTP service.

A targeting (``churnclv campaign fit-targeting``, read by :func:`churnclv.campaigns.targeting_files.load_targeting`)
decides per customer from the scores (the row's ``action``, and the chosen value column) or from the
features (its uplift model):

- ``expected_incremental_revenue``: the chosen candidate's expected revenue uplift of a contact (currency);
- ``expected_profit``: ``margin x expected_incremental_revenue - cost of the row's action``;
- ``contact``: ``expected_profit > 0``, and never for an action that is no contact nor for a customer the
  campaign holds out (the holdout is applied by the caller: it is the campaign's, not the targeting's);
- ``targeting``: the targeting's id.

:class:`Targeting` reads the folder and runs the checks both paths share: against the model (horizon,
action costs and contact flags) and against the features the path computes (what its uplift model reads).
The batch job writes the decisions into its part files (:mod:`churnclv.serving.batch_targeting`), the
service into every answer (:mod:`churnclv.serving.service`, :mod:`churnclv.serving.score_table`).
"""

from __future__ import annotations

import math
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from churnclv.campaigns.candidates import UPLIFT_MODEL, VALUE_COLUMNS
from churnclv.campaigns.errors import CampaignError
from churnclv.campaigns.targeting_files import SavedTargeting, load_targeting
from churnclv.errors import ChurnclvError
from churnclv.serving.model import LoadedModel
from churnclv.serving.schemas import CustomerError, CustomerScore

__all__ = [
    "TARGETING_COLUMNS",
    "TARGETING_SCHEMA",
    "Decisions",
    "Targeting",
    "TargetingError",
    "answer_scores",
    "decide_answers",
    "set_decision",
]

#: The columns a targeting adds after the scores' own (:data:`~churnclv.serving.snapshots.OUTPUT_SCHEMA`),
#: in this order in the part files and in the HTTP answer.
TARGETING_SCHEMA = pa.schema(
    [
        pa.field("contact", pa.bool_()),
        pa.field("expected_incremental_revenue", pa.float64()),
        pa.field("expected_profit", pa.float64()),
        pa.field("targeting", pa.string()),
    ]
)
TARGETING_COLUMNS = tuple(TARGETING_SCHEMA.names)
_FIT = "churnclv campaign fit-targeting"


class TargetingError(ChurnclvError, ValueError):
    """A targeting that cannot be read, or that the model or the features cannot serve; the message names
    the folder, the rule and the fix."""


@dataclass(frozen=True)
class Decisions:
    """A targeting's decision per row, in the rows' order, before the campaign's holdout.

    ``chosen``: contact unless held out (positive expected profit, an action that is a contact).
    """

    expected_incremental_revenue: np.ndarray
    expected_profit: np.ndarray
    chosen: np.ndarray


@dataclass(frozen=True)
class Targeting:
    """A saved targeting read for scoring, with how the user named it (``option``, for the messages)."""

    saved: SavedTargeting
    option: str = "--targeting"

    @classmethod
    def load(cls, folder: str | Path, option: str = "--targeting") -> Targeting:
        """The targeting saved in ``folder``.

        Raises
        ------
        TargetingError
            The folder holds no targeting, or a damaged or edited one, or one of another format version.
        """
        try:
            return cls(load_targeting(Path(folder)), option)
        except CampaignError as exc:
            raise TargetingError(f"{option}: {exc}") from None

    @property
    def id(self) -> str:
        """The targeting's id, the ``targeting`` column."""
        return self.saved.id

    @property
    def feature_names(self) -> tuple[str, ...]:
        """The features its decisions read (none for a value column)."""
        t = self.saved.targeting
        return tuple(t.feature_names_) if t.chosen_ == UPLIFT_MODEL else ()

    @property
    def _where(self) -> str:
        return f"{self.option} {self.saved.folder}"

    def check_model(self, model: LoadedModel) -> None:
        """Refuse a chosen value column the scores do not carry as a number, a model of another horizon than
        the one that scored the campaigns, or a model whose playbook writes an action the targeting has no
        cost for, another cost for, or contacts though the playbook says it is no contact (a model trained
        before actions had ``contact`` marks none: the targeting's own marks decide)."""
        t = self.saved.targeting
        where = self._where
        if t.chosen_ != UPLIFT_MODEL and t.chosen_ not in VALUE_COLUMNS:
            raise TargetingError(
                f"{where}: its candidate {t.chosen_!r} is not a value column the batch writes {list(VALUE_COLUMNS)}; "
                f"fix: fit it with one of those ({_FIT} --candidate ...)"
            )
        fitted_on = t.scores_model_.get("horizon_days")
        if fitted_on is not None and int(fitted_on) != model.horizon_days:
            raise TargetingError(
                f"{where}: fitted on scores of a model with a {fitted_on}-day horizon, but model "
                f"{model.resolved_uri} predicts over {model.horizon_days} days (its {t.chosen_} is on another "
                f"scale); fix: score with a model of a {fitted_on}-day horizon, or fit the targeting again on "
                f"campaigns scored by this one ({_FIT})"
            )
        tiers = model.scorer.tiers_
        if tiers is None:
            raise TargetingError(
                f"{where}: model {model.resolved_uri} has no tier policy, so its scores "
                f"carry no action to cost; fix: score with a model trained with tiers, or drop {self.option}"
            )
        playbook = tiers.tier_config.playbook
        fix = (
            f"fix: fit the targeting again with the --config whose [tiers] playbook the model was trained with ({_FIT})"
        )
        unknown = sorted(set(playbook.costs) - set(t.costs_))
        if unknown:
            raise TargetingError(
                f"{where}: no cost for {len(unknown)} action(s) the model's playbook writes, e.g. {unknown[0][:60]!r}; "
                f"{fix}"
            )
        for action, cost in sorted(playbook.costs.items()):
            if not math.isclose(cost, t.costs_[action], rel_tol=1e-9, abs_tol=1e-12):
                raise TargetingError(
                    f"{where}: action {action[:60]!r} costs {cost:g} in the model's playbook but {t.costs_[action]:g} "
                    f"in the targeting's fit (its expected profits and its choice used that cost); {fix}, or train "
                    "the model with the targeting's costs"
                )
        contacted = sorted(playbook.no_contact - set(t.no_contact_))
        if contacted:
            raise TargetingError(
                f"{where}: the model's playbook marks {contacted[0][:60]!r} as no contact (contact = false) but the "
                f"targeting was fitted to contact it; {fix}"
            )

    def check_features(self, names: Collection[str], what: str, outcome: str) -> None:
        """Refuse features (their column ``names``: ``what``, e.g. "the feature snapshot (dt=...)") that lack
        one the uplift model reads; ``outcome`` says what the refusal leaves undone."""
        have = set(names)
        missing = [n for n in self.feature_names if n not in have]
        if missing:
            raise TargetingError(
                f"{self._where}: {what} lacks {len(missing)} of the {len(self.feature_names)} features its uplift "
                f"model reads, e.g. {missing[:5]} (the data has no such table or attribute, or the model computes "
                f"features otherwise); {outcome}; fix: fit the targeting on campaigns of this data set ({_FIT} "
                "--features OUT/features/dt=D), or choose a value candidate (--candidate expected_spend)"
            )

    def decide(self, features: pd.DataFrame | None, scores: pd.DataFrame) -> Decisions:
        """The decisions for the rows of ``scores`` (``action`` and the chosen value column) and ``features``
        (the same rows in the same order; None or any frame when no feature is read), row by row (a customer
        may appear twice).

        Raises
        ------
        TargetingError
            The targeting cannot decide on these rows (e.g. an action without a cost).
        """
        t = self.saved.targeting
        rows = len(scores)
        try:
            uplift = np.asarray(
                t.expected_uplift(features if features is not None and self.feature_names else scores, scores),
                dtype=float,
            )
            # the rows' positions stand for their customers: the answer keeps the rows' order, duplicates included
            decided = t.decisions(np.arange(rows), uplift, scores["action"].to_numpy())
        except CampaignError as exc:
            raise TargetingError(f"{self._where}: {exc}") from None
        order = decided["customer_id"].to_numpy().astype(np.int64)
        profit = np.empty(rows, dtype=float)
        chosen = np.empty(rows, dtype=bool)
        profit[order] = decided["expected_profit"].to_numpy(float)
        chosen[order] = decided["contact"].to_numpy(bool)
        return Decisions(uplift, profit, chosen)

    def doc(self) -> dict[str, Any]:
        """What the manifest and ``/model_info`` record of the targeting itself."""
        t = self.saved.targeting
        return {
            "id": self.id,
            "chosen": t.chosen_,
            "margin": t.margin,
            "campaigns": list(t.campaigns_["campaign"]),
        }


def answer_scores(answers: Sequence[CustomerScore], value: str | None) -> pd.DataFrame:
    """The scores a decision reads (``action``, and the chosen ``value`` column if any) of HTTP answers."""
    frame = pd.DataFrame({"action": [a.action for a in answers]})
    if value is not None:
        frame[value] = np.asarray([getattr(a, value) for a in answers], dtype=float)
    return frame


def set_decision(answer: CustomerScore, targeting_id: str, uplift: float, profit: float, chosen: bool) -> None:
    """The four fields on one answer; ``contact`` before the campaign's holdout, which
    :meth:`~churnclv.serving.campaign_arms.CampaignArms.apply` then clears for a control."""
    answer.contact = chosen
    answer.expected_incremental_revenue = uplift
    answer.expected_profit = profit
    answer.targeting = targeting_id


def decide_answers(
    targeting: Targeting, answers: Sequence[CustomerScore | CustomerError], features: pd.DataFrame | None
) -> None:
    """Set the targeting's decision on every score of ``answers`` (errors are left alone); ``features``: one row
    per score, in their order (None when the targeting reads none)."""
    scores = [a for a in answers if isinstance(a, CustomerScore)]
    if not scores:
        return
    frame = answer_scores(scores, None if targeting.feature_names else targeting.saved.targeting.chosen_)
    decided = targeting.decide(features, frame)
    for i, answer in enumerate(scores):
        set_decision(
            answer,
            targeting.id,
            float(decided.expected_incremental_revenue[i]),
            float(decided.expected_profit[i]),
            bool(decided.chosen[i]),
        )
