"""What the monitor reads from the batch output: the published partitions with their manifests, a
partition's scores and feature snapshot, and the drift reference of a model version."""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from churnclv.errors import ChurnclvError
from churnclv.names import MODEL_NAME
from churnclv.serving.model import ModelRef
from churnclv.serving.snapshots import MANIFEST_FILE, features_path, partitions, read_scores

__all__ = ["MonitorError", "Partition", "choose_reference", "published", "read_features", "read_partition_scores"]


class MonitorError(ChurnclvError, ValueError):
    """The monitor cannot run on this output folder (the message says why and the fix)."""


@dataclass(frozen=True)
class Partition:
    """A published partition and what its manifest says about the model that scored it."""

    day: dt.date
    name: str
    model_name: str
    version: str
    trained_as_of: dt.date | None
    horizon_days: int

    @property
    def window_end(self) -> dt.date:
        """``day + horizon_days``, the last day of the horizon: the outcomes are known once it is in the data."""
        return self.day + dt.timedelta(days=self.horizon_days)

    def model(self) -> dict[str, str]:
        """``{"name", "version"}``, as ``monitor.json`` names a model."""
        return {"name": self.model_name, "version": self.version}


def _partition(day: dt.date, folder: Path) -> Partition:
    try:
        manifest = json.loads((folder / MANIFEST_FILE).read_text(encoding="utf-8"))
        model: dict[str, Any] = manifest["model"]
        trained = model.get("trained_as_of")
        return Partition(
            day=day,
            name=folder.name,
            model_name=ModelRef.parse(str(model.get("uri") or "")).name or MODEL_NAME,
            version=str(model["version"]),
            trained_as_of=None if not trained else dt.date.fromisoformat(trained),
            horizon_days=int(manifest["horizon_days"]),
        )
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise MonitorError(
            f"{folder / MANIFEST_FILE}: cannot be read ({type(exc).__name__}: {exc}): run that as-of's "
            "score-batch again, or remove the partition"
        ) from None


def published(out: Path, as_of: dt.date) -> list[Partition]:
    """The partitions of ``out`` dated on or before ``as_of``, oldest first."""
    return [_partition(day, folder) for day, folder in partitions(out) if day <= as_of]


def read_partition_scores(out: Path, p: Partition, columns: list[str]) -> pd.DataFrame:
    """The columns of a partition's scores (``customer_id`` as text)."""
    return read_scores(out, p.day, columns=columns)


def read_features(out: Path, p: Partition) -> pd.DataFrame:
    """A partition's feature snapshot (the batch job wrote it beside the scores)."""
    path = features_path(out, p.day)
    try:
        return pd.read_parquet(path)
    except (OSError, ValueError) as exc:
        raise MonitorError(
            f"{path}: cannot be read ({type(exc).__name__}): run score-batch --as-of {p.day} again to rewrite it"
        ) from None


def choose_reference(parts: list[Partition], current: Partition) -> tuple[Partition, str, str]:
    """The drift reference of ``current``'s model version: the partition scored by that version on its
    training as-of (the training snapshot itself: the features the tier cut points were fitted on),
    else the version's earliest partition. Returns it, its kind and a note saying which and why.

    The model keeps no copy of its training features (scorer.json holds parameters only, the MLflow run
    its fingerprint and metrics), so the reference is read from the batch output.
    """
    same = [p for p in parts if p.model() == current.model()]
    at_training = [p for p in same if p.day == current.trained_as_of]
    if at_training:
        return at_training[0], "training_snapshot", "the features and scores at the model's training as-of"
    first = same[0]
    note = (
        f"no partition at the training as-of {current.trained_as_of}: the earliest partition scored by "
        f"{current.model_name} v{current.version} stands in for the training snapshot"
    )
    if first == current:
        note += "; it is this week's, so no drift can show until the next week"
    return first, "earliest_partition", note
