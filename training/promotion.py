"""The promotion rule: when ``champion`` moves to the ``challenger``.

``champion`` moves to the challenger only when the challenger is not worse than the current champion
by more than a tolerance on any of the compared metrics. With no champion yet, the challenger is
promoted. What is compared (the basis, recorded in the decision):

- **same window**, when the data are given (``churnclv train`` gives them) and some of the
  challenger's backtest folds start on or after the champion's as-of: on those folds, the
  challenger's fold models and the champion's saved scorer, on identical customers and labels
  (:mod:`churnclv.training.promotion_window`);
- otherwise **logged backtests**: the means of the selected models over each version's own folds,
  logged by each training run as ``selected.<metric>`` (older folds for the champion).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import mlflow

from churnclv.names import CHALLENGER, CHAMPION, MODEL_NAME
from churnclv.training.promotion_tolerance import DEFAULT_TOLERANCE
from churnclv.training.promotion_window import Basis, compare_on_common_window, logged_basis
from churnclv.training.registry import RegistryError, UnknownVersionError, mlflow_client, set_alias, version_metrics
from churnclv.training.tracking import METRIC_DIRECTION, alias_version

log = logging.getLogger(__name__)

__all__ = ["DEFAULT_TOLERANCE", "PromotionDecision", "compare_metrics", "metric_loss", "promote", "verdict"]


@dataclass(frozen=True)
class PromotionDecision:
    """Whether the challenger became the champion, why, and what was compared."""

    promoted: bool
    challenger_version: str
    champion_version: str | None
    reasons: list[str]
    # the metrics compared (on the basis below) and the tolerance used
    challenger_metrics: dict[str, float] = field(default_factory=dict)
    champion_metrics: dict[str, float] | None = None
    tolerance: dict[str, float] = field(default_factory=dict)
    # what was compared: the same window or the logged backtests (None: nothing was, e.g. no champion)
    basis: Basis | None = None
    # each version's logged ``selected.*`` backtest means, whatever the basis
    logged: dict[str, dict[str, float] | None] = field(default_factory=dict)

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
            "basis": None if self.basis is None else self.basis.text,
            "window": None if self.basis is None else self.basis.to_dict(),
            "logged_metrics": self.logged,
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
    if missing and champion is None:  # like a version without a backtest: it fills the empty slot
        note = (
            f"no champion yet; note: the backtest measured no {', '.join(missing)} for this version's models "
            "(their fits failed on the folds, or the folds' windows held nothing to measure it on; "
            "training_notes.json in its run says why)"
        )
        return True, [note]
    if champion is None:
        return True, ["no champion yet"]
    # a metric neither version has (a shop whose windows never hold any spend) cannot tell them apart
    unmeasured = [m for m in missing if m in champion]
    if unmeasured:
        return False, [
            f"the challenger's run has no selected.{m} metric, so it cannot be compared: retrain it, or drop "
            f"{m} from the tolerance"
            for m in unmeasured
        ]
    worse = compare_metrics(challenger, champion, tolerance)
    if worse:
        return False, worse
    compared = {m: t for m, t in tolerance.items() if m not in missing}
    reasons = [f"not worse than version {champion_version} beyond tolerance {compared}"]
    if missing:
        reasons.append(f"neither version measured {', '.join(missing)}")
    return True, reasons


def promote(
    *,
    tolerance: Mapping[str, float] | None = None,
    name: str = MODEL_NAME,
    challenger: str | None = None,
    data: Path | str | None = None,
    memory_limit: str | None = None,
) -> PromotionDecision:
    """Move ``champion`` to the challenger when it is not worse by more than ``tolerance``
    (default :data:`DEFAULT_TOLERANCE`; the rule: :func:`verdict`).

    With ``data`` (the clean folder the challenger was trained on), both are compared on the same
    out-of-time window when there is one (:func:`~churnclv.training.promotion_window.
    compare_on_common_window`); without, or when there is none, on the logged backtest means. The
    decision, its basis, both versions' compared metrics and the tolerance are logged in the
    challenger's training run (artifact ``promotion.json``, tags ``churnclv.promoted``,
    ``churnclv.promotion.basis`` and ``churnclv.promotion.champion_version``), whether promotion
    runs after training or on its own.
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
    elsewhere = (
        None if champion is None else other_data(client.get_model_version(name, champion).run_id, version.run_id)
    )
    basis = None
    if champion is not None and backtested and elsewhere is None:
        basis = choose_basis(
            data, tolerance, challenger=challenger, champion=champion, name=name, memory_limit=memory_limit
        )
    compared = (basis.challenger, basis.champion) if basis is not None and basis.same_window else (ours, theirs)
    if elsewhere is not None:
        why = (
            f"version {champion}, the champion, was trained on other data ({elsewhere}): their metrics do not "
            "compare; one registered model per data set keeps them apart (churnclv train --model-name NAME)"
        )
        promoted, reasons = False, [why]
    else:
        promoted, reasons = verdict(*compared, tolerance, champion_version=champion, backtested=backtested)
    decision = PromotionDecision(
        promoted,
        challenger,
        champion,
        reasons + ([] if basis is None else [f"basis: {basis.text}"]),
        challenger_metrics=compared[0],
        champion_metrics=compared[1],
        tolerance=tolerance,
        basis=basis,
        logged={"challenger": ours, "champion": theirs},
    )
    # logged before the alias moves: a failure to log leaves the champion where it was
    if version.run_id:
        client.log_dict(version.run_id, decision.to_dict(), "promotion.json")
        client.set_tag(version.run_id, "churnclv.promoted", str(decision.promoted))
        if basis is not None:
            client.set_tag(version.run_id, "churnclv.promotion.basis", "same_window" if basis.same_window else "logged")
        if champion is not None:
            client.set_tag(version.run_id, "churnclv.promotion.champion_version", champion)
    if decision.promoted:
        set_alias(CHAMPION, challenger, name)
    log.debug("promotion of version %s: %s (%s)", challenger, decision.promoted, "; ".join(decision.reasons))
    return decision


def other_data(champion_run: str | None, challenger_run: str | None) -> str | None:
    """Why the two runs were not trained on one data set, else None: their transactions' time ranges
    (``data_fingerprint.json``) do not overlap, as CDNOW's 1997-1998 and a shop of 2025 do. A data set
    that grows, or keeps a rolling window, overlaps its earlier self; None also when a run lacks its
    fingerprint (nothing to tell)."""
    spans = []
    for run_id in (champion_run, challenger_run):
        if not run_id:
            return None
        try:
            tx = mlflow.artifacts.load_dict(f"runs:/{run_id}/data_fingerprint.json").get("transactions") or {}
        except Exception:  # noqa: BLE001 - a run logged without it (older versions, tests): nothing to compare
            return None
        if not (tx.get("ts_min") and tx.get("ts_max")):
            return None
        spans.append((str(tx["ts_min"])[:10], str(tx["ts_max"])[:10]))
    (a_min, a_max), (b_min, b_max) = spans
    if a_max < b_min or b_max < a_min:
        return f"transactions {a_min} to {a_max}; this version's {b_min} to {b_max}"
    return None


def choose_basis(
    data: Path | str | None,
    tolerance: Mapping[str, float],
    *,
    challenger: str,
    champion: str,
    name: str,
    memory_limit: str | None = None,
) -> Basis:
    """The same window when the data are given and it measures every tolerated metric for both;
    otherwise the logged backtests, with the reason."""
    if data is None:
        return logged_basis("no data given to score the champion on the challenger's folds")
    basis = compare_on_common_window(
        data, challenger=challenger, champion=champion, name=name, memory_limit=memory_limit
    )
    undefined = sorted(
        m for m in tolerance if basis.same_window and (m not in basis.challenger or m not in basis.champion)
    )
    if undefined:
        return logged_basis(f"{', '.join(undefined)} undefined on the common folds ({basis.text})")
    return basis
