"""The promotion rule: when ``champion`` moves to the ``challenger``.

``champion`` moves to the challenger only when the challenger is not worse than the
current champion by more than a tolerance on any of the compared backtest metrics (the means of the
selected models over the folds, logged by each training run as ``selected.<metric>``). With no
champion yet, the challenger is promoted.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import mlflow

from churnclv.names import CHALLENGER, CHAMPION, MODEL_NAME
from churnclv.training.registry import RegistryError, UnknownVersionError, mlflow_client, set_alias, version_metrics
from churnclv.training.tracking import METRIC_DIRECTION, alias_version

log = logging.getLogger(__name__)

# the largest loss per metric a challenger may show against the champion: the one default of
# ``[train] promote_tolerance`` and of ``churnclv models promote``
DEFAULT_TOLERANCE: dict[str, float] = {"churn_auc": 0.005, "spend_gini": 0.01, "churn_brier": 0.005}


@dataclass(frozen=True)
class PromotionDecision:
    """Whether the challenger became the champion, why, and what was compared."""

    promoted: bool
    challenger_version: str
    champion_version: str | None
    reasons: list[str]
    # the backtest metrics compared (``selected.*`` of each version's run) and the tolerance used
    challenger_metrics: dict[str, float] = field(default_factory=dict)
    champion_metrics: dict[str, float] | None = None
    tolerance: dict[str, float] = field(default_factory=dict)

    def comparison(self) -> list[dict[str, Any]]:
        """Per tolerated metric: both values, the challenger's loss (in the metric's units) and the verdict."""
        rows = []
        for metric, tol in self.tolerance.items():
            ch = self.challenger_metrics.get(metric)
            cp = None if self.champion_metrics is None else self.champion_metrics.get(metric)
            loss = None if ch is None or cp is None else metric_loss(metric, ch, cp)
            rows.append(
                {
                    "metric": metric,
                    "challenger": ch,
                    "champion": cp,
                    "loss": loss,
                    "tolerance": tol,
                    "within_tolerance": None if loss is None else loss <= tol,
                }
            )
        return rows

    def to_dict(self) -> dict[str, Any]:
        """The decision as JSON-ready data (logged as ``promotion.json``)."""
        return {
            "promoted": self.promoted,
            "challenger_version": self.challenger_version,
            "champion_version": self.champion_version,
            "reasons": self.reasons,
            "tolerance": self.tolerance,
            "challenger_metrics": self.challenger_metrics,
            "champion_metrics": self.champion_metrics,
            "comparison": self.comparison(),
        }


def metric_loss(metric: str, challenger: float, champion: float) -> float:
    """How much worse the challenger is than the champion, in the metric's units (negative: better)."""
    return METRIC_DIRECTION.get(metric, 1) * (champion - challenger)


def compare_metrics(
    challenger: Mapping[str, float], champion: Mapping[str, float], tolerance: Mapping[str, float]
) -> list[str]:
    """Where the challenger is worse than the champion by more than the tolerance (empty: not worse).

    ``tolerance`` maps a metric to the largest allowed loss in that metric's own units.
    """
    worse = []
    for metric, tol in tolerance.items():
        if metric not in challenger or metric not in champion:
            continue
        loss = metric_loss(metric, challenger[metric], champion[metric])
        if loss > tol:
            worse.append(
                f"{metric}: challenger {challenger[metric]:.4f} vs champion {champion[metric]:.4f} "
                f"(worse by {loss:.4f} > tolerance {tol})"
            )
    return worse


def verdict(
    challenger: Mapping[str, float],
    champion: Mapping[str, float] | None,
    tolerance: Mapping[str, float],
    *,
    champion_version: str | None,
    backtested: bool,
) -> tuple[bool, list[str]]:
    """The promotion rule on the compared metrics: whether the challenger replaces the champion, and why.

    ``champion`` is None when there is no champion yet; ``backtested`` says whether the challenger was
    backtested at its own horizon (when it was not, it has nothing measured to compare).
    """
    if not backtested:
        # conservative: with nothing measured at its horizon it only fills an empty champion slot
        if champion is None:
            return True, [
                "no champion yet; note: this version is not backtested at its horizon (no metrics to compare)"
            ]
        keep = (
            f"not backtested at its horizon, so it cannot be shown to be as good as version {champion_version}: "
            "keep the champion, or train with more history or a shorter horizon"
        )
        return False, [keep]
    missing = sorted(m for m in tolerance if m not in challenger)
    if missing:
        return False, [
            f"the challenger's run has no selected.{m} metric, so it cannot be compared: retrain it, or drop "
            f"{m} from the tolerance"
            for m in missing
        ]
    if champion is None:
        return True, ["no champion yet"]
    worse = compare_metrics(challenger, champion, tolerance)
    if worse:
        return False, worse
    return True, [f"not worse than version {champion_version} beyond tolerance {dict(tolerance)}"]


def promote(
    *, tolerance: Mapping[str, float] | None = None, name: str = MODEL_NAME, challenger: str | None = None
) -> PromotionDecision:
    """Move ``champion`` to the challenger when it is not worse by more than ``tolerance``
    (default :data:`DEFAULT_TOLERANCE`; the rule: :func:`verdict`).

    The decision, both versions' compared metrics and the tolerance are logged in the challenger's
    training run (artifact ``promotion.json``, tags ``churnclv.promoted`` and
    ``churnclv.promotion.champion_version``), whether promotion runs after training or on its own.
    """
    tolerance = dict(DEFAULT_TOLERANCE if tolerance is None else tolerance)
    client = mlflow_client()
    challenger = challenger or alias_version(client, name, CHALLENGER)
    if challenger is None:
        raise RegistryError(
            f"model {name} has no '{CHALLENGER}' alias: train a model first (churnclv train --model-name {name})"
        )
    try:
        version = client.get_model_version(name, challenger)
    except mlflow.exceptions.MlflowException:
        raise UnknownVersionError(
            f"{challenger!r} is not a version of model {name} in this store (see churnclv models list)"
        ) from None
    champion = alias_version(client, name, CHAMPION)
    if champion == challenger:  # nothing to decide; the run keeps the record of its real decision
        log.debug("promotion of version %s: already the champion", challenger)
        return PromotionDecision(
            True, challenger, champion, ["challenger is already the champion"], tolerance=tolerance
        )
    ours = version_metrics(challenger, name)
    theirs = None if champion is None else version_metrics(champion, name)
    backtested = (version.tags or {}).get("backtested", "true") == "true"
    promoted, reasons = verdict(ours, theirs, tolerance, champion_version=champion, backtested=backtested)
    decision = PromotionDecision(
        promoted,
        challenger,
        champion,
        reasons,
        challenger_metrics=ours,
        champion_metrics=theirs,
        tolerance=tolerance,
    )
    # logged before the alias moves: a failure to log leaves the champion where it was
    if version.run_id:
        client.log_dict(version.run_id, decision.to_dict(), "promotion.json")
        client.set_tag(version.run_id, "churnclv.promoted", str(decision.promoted))
        if champion is not None:
            client.set_tag(version.run_id, "churnclv.promotion.champion_version", champion)
    if decision.promoted:
        set_alias(CHAMPION, challenger, name)
    log.debug("promotion of version %s: %s (%s)", challenger, decision.promoted, "; ".join(decision.reasons))
    return decision
