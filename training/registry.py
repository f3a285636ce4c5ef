"""The model registry: a registered model per data set (default ``churnclv``; ``--model-name``), its
``champion`` and ``challenger`` aliases (the names: :mod:`churnclv.names`).

The promotion rule is in :mod:`churnclv.training.promotion`.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import mlflow
from mlflow.tracking import MlflowClient

from churnclv.errors import ChurnclvError
from churnclv.names import MODEL_NAME

log = logging.getLogger(__name__)


class RegistryError(ChurnclvError, ValueError):
    """The registry does not hold what was asked for (e.g. no version has the ``challenger`` alias)."""


class UnknownVersionError(RegistryError):
    """The version asked for is not a version of the registered model."""


def mlflow_client() -> MlflowClient:
    """A client of the current tracking and registry store."""
    return MlflowClient()


def tag_version(
    version: str,
    *,
    as_of: str,
    horizon_days: int,
    run_id: str,
    selected: dict[str, str],
    metrics: dict[str, float],
    backtested: bool = True,
    name: str = MODEL_NAME,
) -> None:
    """Tag a model version with what it was trained on and how it did (read by :func:`list_versions`)."""
    client = mlflow_client()
    client.set_model_version_tag(name, version, "backtested", str(backtested).lower())
    client.set_model_version_tag(name, version, "as_of", as_of)
    client.set_model_version_tag(name, version, "horizon_days", str(horizon_days))
    client.set_model_version_tag(name, version, "selected", json.dumps(selected, sort_keys=True))
    client.set_model_version_tag(name, version, "metrics", json.dumps({k: round(v, 6) for k, v in metrics.items()}))
    client.set_model_version_tag(name, version, "run_id", run_id)


def set_alias(alias: str, version: str, name: str = MODEL_NAME) -> None:
    """Point ``alias`` of the registered model at ``version``."""
    mlflow_client().set_registered_model_alias(name, alias, version)
    log.debug("alias %s -> %s version %s", alias, name, version)


def version_metrics(version: str, name: str = MODEL_NAME) -> dict[str, float]:
    """The ``selected.*`` backtest metrics of the run that produced a model version."""
    client = mlflow_client()
    mv = client.get_model_version(name, version)
    if mv.run_id is None:  # registered without a run: nothing was measured
        return {}
    run = client.get_run(mv.run_id)
    return {k.removeprefix("selected."): v for k, v in run.data.metrics.items() if k.startswith("selected.")}


def model_names() -> list[str]:
    """The registered models of the store, sorted (one per data set)."""
    return sorted(m.name for m in mlflow_client().search_registered_models())


def list_versions(name: str = MODEL_NAME) -> list[dict[str, Any]]:
    """Every version with aliases, as-of, horizon and key metrics, newest first."""
    client = mlflow_client()
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
        rows.append(
            {
                "version": int(mv.version),
                "aliases": ",".join(sorted(aliases.get(str(mv.version), []))),
                "as_of": tags.get("as_of", ""),
                "horizon_days": tags.get("horizon_days", ""),
                "selected": json.loads(tags.get("selected", "{}")),
                "backtested": tags.get("backtested", "true") == "true",
                "metrics": json.loads(tags.get("metrics", "{}")),
                "run_id": mv.run_id,
            }
        )
    return sorted(rows, key=lambda r: -r["version"])
