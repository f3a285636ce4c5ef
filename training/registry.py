"""The model registry: the ``churnclv`` model, its ``champion`` and ``challenger`` aliases, promotion.

Promotion rule: ``champion`` moves to the challenger only when the challenger is not worse than the
current champion by more than a tolerance on any of the compared backtest metrics (the means of the
selected models over the folds, logged by each training run as ``selected.<metric>``). With no
champion yet, the challenger is promoted.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import mlflow
from mlflow.tracking import MlflowClient

from churnclv.training.tracking import MODEL_NAME, PromotionDecision, alias_version, compare_metrics

log = logging.getLogger(__name__)

DEFAULT_TOLERANCE = {"churn_auc": 0.005, "spend_gini": 0.01, "churn_brier": 0.005}


class UnknownVersionError(ValueError):
    """The version asked for is not a version of the registered model."""


def _client() -> MlflowClient:
    return MlflowClient()


def tag_version(version: str, *, as_of: str, horizon_days: int, run_id: str, selected: dict[str, str],
                metrics: dict[str, float], backtested: bool = True, name: str = MODEL_NAME) -> None:
    client = _client()
    client.set_model_version_tag(name, version, "backtested", str(backtested).lower())
    client.set_model_version_tag(name, version, "as_of", as_of)
    client.set_model_version_tag(name, version, "horizon_days", str(horizon_days))
    client.set_model_version_tag(name, version, "selected", json.dumps(selected, sort_keys=True))
    client.set_model_version_tag(name, version, "metrics", json.dumps({k: round(v, 6) for k, v in metrics.items()}))
    client.set_model_version_tag(name, version, "run_id", run_id)


def set_alias(alias: str, version: str, name: str = MODEL_NAME) -> None:
    _client().set_registered_model_alias(name, alias, version)
    log.info("alias %s -> %s version %s", alias, name, version)


def version_metrics(version: str, name: str = MODEL_NAME) -> dict[str, float]:
    """The ``selected.*`` backtest metrics of the run that produced a model version."""
    client = _client()
    mv = client.get_model_version(name, version)
    run = client.get_run(mv.run_id)
    return {k.removeprefix("selected."): v for k, v in run.data.metrics.items() if k.startswith("selected.")}


def promote(*, tolerance: dict[str, float] | None = None, name: str = MODEL_NAME,
            challenger: str | None = None) -> PromotionDecision:
    """Move ``champion`` to the challenger when it is not worse by more than ``tolerance``.

    The decision, both versions' compared metrics and the tolerance are logged in the challenger's
    training run (artifact ``promotion.json``, tags ``churnclv.promoted`` and
    ``churnclv.promotion.champion_version``), whether promotion runs after training or on its own.
    """
    tolerance = dict(DEFAULT_TOLERANCE if tolerance is None else tolerance)
    client = _client()
    challenger = challenger or alias_version(client, name, "challenger")
    if challenger is None:
        raise ValueError(f"model {name} has no 'challenger' alias: train a model first (churnclv train)")
    try:
        run_id = client.get_model_version(name, challenger).run_id
    except mlflow.exceptions.MlflowException:
        raise UnknownVersionError(f"{challenger!r} is not a version of model {name} in this store "
                                  "(see churnclv models list)") from None
    champion = alias_version(client, name, "champion")
    if champion == challenger:  # nothing to decide; the run keeps the record of its real decision
        decision = PromotionDecision(True, challenger, champion, ["challenger is already the champion"],
                                     tolerance=tolerance)
        log.info("promotion of version %s: already the champion", challenger)
        return decision
    ours = version_metrics(challenger, name)
    theirs = None if champion is None else version_metrics(champion, name)
    known = {"challenger_metrics": ours, "champion_metrics": theirs, "tolerance": tolerance}
    missing = sorted(m for m in tolerance if m not in ours)
    backtested = client.get_model_version(name, challenger).tags.get("backtested", "true") == "true"
    if not backtested:
        # conservative: with nothing measured at its horizon it only fills an empty champion slot
        if champion is None:
            decision = PromotionDecision(True, challenger, None, [
                "no champion yet; note: this version is not backtested at its horizon (no metrics to compare)"],
                **known)
        else:
            decision = PromotionDecision(False, challenger, champion, [
                f"not backtested at its horizon, so it cannot be shown to be as good as version {champion}: "
                "keep the champion, or train with more history or a shorter horizon"], **known)
    elif missing:
        decision = PromotionDecision(
            False, challenger, champion,
            [f"the challenger's run has no selected.{m} metric, so it cannot be compared: retrain it, or drop "
             f"{m} from the tolerance" for m in missing], **known)
    elif champion is None:
        decision = PromotionDecision(True, challenger, None, ["no champion yet"], **known)
    else:
        worse = compare_metrics(ours, theirs, tolerance)
        if worse:
            decision = PromotionDecision(False, challenger, champion, worse, **known)
        else:
            decision = PromotionDecision(True, challenger, champion,
                                         [f"not worse than version {champion} beyond tolerance {tolerance}"], **known)
    # logged before the alias moves: a failure to log leaves the champion where it was
    if run_id:
        client.log_dict(run_id, decision.to_dict(), "promotion.json")
        client.set_tag(run_id, "churnclv.promoted", str(decision.promoted))
        if champion is not None:
            client.set_tag(run_id, "churnclv.promotion.champion_version", champion)
    if decision.promoted:
        set_alias("champion", challenger, name)
    log.info("promotion of version %s: %s (%s)", challenger, decision.promoted, "; ".join(decision.reasons))
    return decision


def list_versions(name: str = MODEL_NAME) -> list[dict[str, Any]]:
    """Every version with aliases, as-of, horizon and key metrics, newest first."""
    client = _client()
    try:
        model = client.get_registered_model(name)
    except mlflow.exceptions.MlflowException:
        return []
    aliases: dict[str, list[str]] = {}
    for alias, version in (model.aliases or {}).items():
        aliases.setdefault(str(version), []).append(alias)
    rows = []
    for mv in client.search_model_versions(f"name='{name}'"):
        tags = mv.tags or {}
        rows.append({
            "version": int(mv.version),
            "aliases": ",".join(sorted(aliases.get(str(mv.version), []))),
            "as_of": tags.get("as_of", ""),
            "horizon_days": tags.get("horizon_days", ""),
            "selected": json.loads(tags.get("selected", "{}")),
            "backtested": tags.get("backtested", "true") == "true",
            "metrics": json.loads(tags.get("metrics", "{}")),
            "run_id": mv.run_id,
        })
    return sorted(rows, key=lambda r: -r["version"])
