"""The features of a past campaign's as-of, as ``churnclv campaign fit-targeting`` joins them: never of another day.

In order: ``--features`` (its as-of, the ``dt=D`` folder it is or lies in or its one ``as_of`` column,
must be the scores'); else the batch's feature snapshot beside the scores partition (its manifest
names it, ``OUT/features/dt=D``); else computed from the data with the feature configuration of the
model that scored the partition when its registry is reachable, else with the run configuration's
``[features]``. The source is said in the command's output: features of another day would let the
uplift model learn from what was not known at the campaign (or from stale values).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from churnclv.campaigns.errors import CampaignError
from churnclv.training.campaign_inputs import partition_day, partition_manifest, read_table

__all__ = ["campaign_features"]


def _as_of(path: Path, frame: pd.DataFrame) -> Any:
    """The as-of of a features file or folder: its ``dt=D`` folder, else its one ``as_of`` value (None: unknown)."""
    day = partition_day(path)
    if day is not None:
        return pd.Timestamp(day)
    if "as_of" in frame.columns:
        days = pd.to_datetime(frame["as_of"]).dt.normalize().unique()
        if len(days) == 1:
            return pd.Timestamp(days[0])
    return None


def _read_of_day(path: Path, day: pd.Timestamp, what: str) -> pd.DataFrame:
    """The features at ``path``, refused unless they are known to be of ``day``."""
    frame = read_table(path, "features")
    found = _as_of(path, frame)
    if found is None:
        raise CampaignError(
            f"{what} {path}: its as-of is not known (no dt=YYYY-MM-DD folder in its path, no single as_of column), so "
            f"it cannot be checked against the scores' {day.date()}; fix: pass the batch's OUT/features/dt="
            f"{day.date()}, or leave --features out to compute them"
        )
    if found.normalize() != day.normalize():
        raise CampaignError(
            f"{what} {path}: features as of {found.date()}, but the scores are of {day.date()} (features of another "
            f"day would teach the uplift model what was not known at the campaign); fix: pass OUT/features/dt="
            f"{day.date()}, or leave --features out"
        )
    return frame.drop(columns=["as_of"], errors="ignore")


def _model_feature_config(manifest: dict[str, Any], tracking_uri: str | None) -> tuple[Any, str | None]:
    """The feature configuration of the model that scored a partition, and None; or None and why not."""
    from churnclv.training.tracking import tracking_uri as resolve

    resolved = str((manifest.get("model") or {}).get("resolved_uri") or "")
    parts = resolved.removeprefix("models:/").split("/")
    if not resolved.startswith("models:/") or len(parts) != 2:
        return None, "the partition names no registered model version"
    uri = resolve(tracking_uri)
    if uri.startswith("sqlite:///") and not Path(uri.removeprefix("sqlite:///")).is_file():
        return None, "the tracking store is not here (pass --tracking-uri)"
    import mlflow
    from mlflow.exceptions import MlflowException

    from churnclv.errors import ChurnclvError
    from churnclv.training.registry import load_scorer

    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    try:
        return load_scorer(parts[1], parts[0]).feature_config(), None
    except (MlflowException, ChurnclvError, OSError, ValueError) as exc:
        return None, f"model {parts[0]} version {parts[1]} cannot be loaded ({type(exc).__name__})"


def campaign_features(
    given: Path | None,
    scores: Path,
    day: pd.Timestamp,
    clean: Any,
    config_path: Path | None,
    tracking_uri: str | None,
) -> tuple[pd.DataFrame, str]:
    """The features of the campaign whose scores are at ``scores`` (of as-of ``day``), and where they came from
    (see the module docstring)."""
    if given is not None:
        return _read_of_day(given, day, "--features"), f"from {given}"
    found = partition_manifest(scores)
    manifest = found[1] if found is not None else None
    if found is not None:
        snapshot = found[0] / str((manifest or {}).get("outputs", {}).get("features", ""))
        if snapshot.is_file():
            return _read_of_day(snapshot, day, "the batch's feature snapshot"), f"the batch's snapshot {snapshot}"
    from churnclv.config_schema import read_run_config
    from churnclv.features import compute_features
    from churnclv.features.config import parse_features

    config: Any = None
    why: str | None = "the scores are no batch partition with a manifest"
    if manifest is not None:
        config, why = _model_feature_config(manifest, tracking_uri)
    if config is not None:
        model = (manifest or {}).get("model") or {}
        source = f"computed with the feature config of {model.get('resolved_uri')} (no snapshot beside the scores)"
    else:
        config = parse_features(read_run_config(config_path).get("features", {}))
        source = f"computed with the config's [features] (no snapshot beside the scores; the model's config: {why})"
    return compute_features(clean, day, config=config), source
