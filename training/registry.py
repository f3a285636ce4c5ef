"""The model registry: a registered model per data set (default ``churnclv``; ``--model-name``), its
``champion`` and ``challenger`` aliases (the names: :mod:`churnclv.names`).

The promotion rule is in :mod:`churnclv.training.promotion`.
"""

from __future__ import annotations

import json
import logging
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import mlflow
from mlflow.tracking import MlflowClient

from churnclv.errors import ChurnclvError
from churnclv.names import MODEL_NAME, SCORER_ARTIFACT

if TYPE_CHECKING:
    from churnclv.models.scorer import Scorer

log = logging.getLogger(__name__)


class RegistryError(ChurnclvError, ValueError):
    """The registry does not hold what was asked for (e.g. no version has the ``challenger`` alias)."""


class UnknownVersionError(RegistryError):
    """The version asked for is not a version of the registered model."""


def mlflow_client() -> MlflowClient:
    """A client of the current tracking and registry store."""
    return MlflowClient()


def version_tags(
    *,
    as_of: str,
    horizon_days: int,
    run_id: str,
    selected: dict[str, str],
    metrics: dict[str, float],
    backtested: bool = True,
) -> dict[str, str]:
    """The tags of a model version: what it was trained on and how it did (read by :func:`list_versions`)."""
    return {
        "backtested": str(backtested).lower(),
        "as_of": as_of,
        "horizon_days": str(horizon_days),
        "selected": json.dumps(selected, sort_keys=True),
        "metrics": json.dumps({k: round(v, 6) for k, v in metrics.items()}),
        "run_id": run_id,
    }


def register_version(model_uri: str, tags: dict[str, str], name: str = MODEL_NAME) -> str:
    """Register ``model_uri`` as a new version of ``name`` with ``tags``, in one write: a process killed
    right after it leaves a version that says what it was trained on (the weekly job then promotes it
    instead of training again); tagged afterwards, it left an untagged version and a second training."""
    mv = mlflow.register_model(model_uri, name, tags=tags)
    return str(mv.version)


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


def load_scorer(version: str, name: str = MODEL_NAME) -> Scorer:
    """The saved scorer of a model version, read from the registry (what the version scores with).

    Downloads the version's MLflow model into a temporary folder and reads the scorer artifact its
    ``MLmodel`` names (as :mod:`churnclv.training.mlflow_run` logged it); :meth:`Scorer.load` holds
    every part in memory, so the folder goes when it returns.
    """
    from mlflow.models import Model

    # here, not at the top: the model code costs ~2 s to import and `models list` never needs it
    from churnclv.models.scorer import Scorer

    client = mlflow_client()
    source = client.get_model_version_download_uri(name, version)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(mlflow.artifacts.download_artifacts(artifact_uri=source, dst_path=tmp))
        artifacts = (Model.load(str(folder)).flavors.get("python_function") or {}).get("artifacts") or {}
        relative = (artifacts.get(SCORER_ARTIFACT) or {}).get("path")
        if not relative:
            raise RegistryError(
                f"version {version} of model {name} is not a churnclv model (its MLmodel names no "
                f"{SCORER_ARTIFACT!r} artifact): register models with churnclv train"
            )
        return Scorer.load(folder / str(relative))


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
