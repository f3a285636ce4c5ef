"""What :func:`churnclv.training.pipeline.train` returns: the fitted scorer and everything the run showed."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from churnclv.models.scorer import Scorer
from churnclv.readiness_report import Readiness
from churnclv.training.folds import Fold, TrainingPlan

__all__ = ["TrainResult"]


@dataclass
class TrainResult:
    """A training run: the fitted scorer, the backtest and selection, the snapshot and what was left out."""

    scorer: Scorer
    backtest: pd.DataFrame  # one row per (fold, candidate) with every metric
    summary: pd.DataFrame  # mean metrics per candidate
    selected: dict[str, str]
    # every customer known at as-of, without reasons; a snapshot read in chunks ([train] snapshot_in_memory)
    # keeps the columns the reports read (training.pipeline.CHUNKED_SCORE_COLUMNS)
    snapshot_scores: pd.DataFrame
    # features as of the training as-of (the tiers' population); in chunks, customer_id and net_spend_365d
    snapshot_features: pd.DataFrame
    folds: list[Fold]
    fold_predictions: dict[str, pd.DataFrame]  # last fold: labels + predictions per candidate
    timings: dict[str, float]
    plan: TrainingPlan | None = None
    # sub-fits that failed and were left out: {"stage", "fold", "candidate", "reason"}
    dropped: list[dict[str, Any]] = field(default_factory=list)
    readiness: Readiness | None = None  # what the data supported, checked before training
    example_features: pd.DataFrame | None = None  # the first snapshot rows, every column (MLflow's input example)
    run_id: str | None = None
    model_version: str | None = None
    promotion: dict[str, Any] | None = None
    # where the run went (set by train_and_log): the registered model, the experiment, the artifacts
    model_name: str | None = None
    experiment: str | None = None
    artifact_uri: str | None = None
