"""The champion and the challenger measured on the same out-of-time windows, for the promotion gate.

The challenger, trained as of D, was backtested on folds with cutoffs e_k: fold k's model (fitted
on cutoffs whose windows close by e_k) scored the customers known at e_k, labels in
``(e_k, e_k + H]``. The champion was trained as of D_old on data up to D_old. On every fold with
``e_k >= D_old`` the champion has seen nothing after e_k either, so its saved scorer, fed the
features as of e_k, is scored on the fold's customers and labels: both models are then measured on
identical rows, out of time. Comparing the challenger's recent folds with the numbers logged when
the champion was trained (older folds) is not like with like: after a change in behaviour the
recent windows are harder for every model, and the stale champion kept its calm-period numbers.

When no fold has ``e_k >= D_old`` (the champion is younger than about H days before D), there is
no such window and the gate falls back to the logged backtest means, and says so.
"""

from __future__ import annotations

import logging
import math
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from mlflow.exceptions import MlflowException

from churnclv.errors import ChurnclvError
from churnclv.metrics import all_metrics
from churnclv.models.scorer import FIT_ERRORS, Scorer
from churnclv.names import MODEL_NAME
from churnclv.redaction import redact_text
from churnclv.training.backtest import training_frame
from churnclv.training.config import LABEL_FRAME_COLUMNS, RunConfig
from churnclv.training.folds import to_day
from churnclv.training.registry import load_scorer, mlflow_client

log = logging.getLogger(__name__)

__all__ = ["Basis", "FoldWindow", "common_folds", "compare_on_common_window", "fold_frames", "paired_means"]

# the backtest table every training run logs (training.reports writes it into the run's report/)
BACKTEST_TABLE = "report/backtest.csv"
LABELS = tuple(c for c in LABEL_FRAME_COLUMNS if c not in ("customer_id", "cutoff"))
# the metrics of a target's model, by prefix (as the selected.* means are built)
TARGET_PREFIX = {"churn": "churn_", "purchases": "purchases_", "spend": "spend_"}
# what can go wrong while evaluating the champion on the window: the gate then falls back, and says why
_EVALUATION_ERRORS: tuple[type[Exception], ...] = (ChurnclvError, MlflowException, OSError, *FIT_ERRORS)


@dataclass(frozen=True)
class FoldWindow:
    """One backtest fold of the challenger: its index, its cutoff e_k and how many customers it evaluated."""

    index: int
    eval_cutoff: pd.Timestamp
    customers: int


def common_folds(folds: Sequence[FoldWindow], champion_as_of: Any) -> list[FoldWindow]:
    """The folds on which the champion is out of time: cutoff e_k on or after the champion's as-of
    D_old (it saw data up to D_old <= e_k; the fold's labels lie in ``(e_k, e_k + H]``). Empty: none."""
    d_old = to_day(champion_as_of)
    return sorted((f for f in folds if to_day(f.eval_cutoff) >= d_old), key=lambda f: f.index)


@dataclass(frozen=True)
class Basis:
    """What the gate compared: the same window (per-fold metrics of both, and their means over the
    common folds) or, when there is none, the logged backtest means (``reason`` says why)."""

    same_window: bool
    reason: str = ""
    folds: list[dict[str, Any]] = field(default_factory=list)
    challenger: dict[str, float] = field(default_factory=dict)
    champion: dict[str, float] = field(default_factory=dict)

    @property
    def text(self) -> str:
        """One line: ``same window: folds e_k, ...`` or ``logged backtests (no common window: ...)``."""
        if self.same_window:
            cutoffs = ", ".join(str(f["eval_cutoff"]) for f in self.folds)
            rows = sum(int(f["customers"]) for f in self.folds)
            return f"same window: folds {cutoffs} ({rows:,} customer rows; {self.reason})"
        return f"logged backtests (no common window: {self.reason})"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (part of ``promotion.json``)."""
        return {"same_window": self.same_window, "text": self.text, "reason": self.reason, "folds": self.folds}


def logged_basis(reason: str) -> Basis:
    """The fallback: the logged backtest means are compared, for ``reason``."""
    return Basis(same_window=False, reason=reason)


def compare_on_common_window(
    data: Path | str,
    *,
    challenger: str,
    champion: str,
    name: str = MODEL_NAME,
    memory_limit: str | None = None,
) -> Basis:
    """Evaluate the champion's saved scorer on the challenger's backtest folds with ``e_k >= D_old``
    (see the module docstring) and pair it with the challenger's fold metrics on those folds.

    ``data`` is the clean folder the challenger was trained on (rows after its as-of do not matter).
    Never raises for a champion that cannot be evaluated: the basis falls back to the logged
    backtests, with the reason.
    """
    try:
        return _compare(data, challenger=challenger, champion=champion, name=name, memory_limit=memory_limit)
    except _EVALUATION_ERRORS as exc:
        detail = redact_text(str(exc))[:300]
        reason = f"the champion could not be scored on the challenger's folds ({type(exc).__name__}: {detail})"
        log.warning("promotion: %s; comparing the logged backtests", reason)
        return logged_basis(reason)


def _compare(data: Path | str, *, challenger: str, champion: str, name: str, memory_limit: str | None) -> Basis:
    ours, theirs = load_scorer(challenger, name), load_scorer(champion, name)
    d_new, d_old = ours.metadata_.get("as_of"), theirs.metadata_.get("as_of")
    if d_new is None or d_old is None:
        return logged_basis("a version's scorer does not record its training as-of")
    backtest = backtest_table(challenger, name)
    folds = fold_windows(backtest)
    horizon = int(ours.config_.horizon_days)
    if int(theirs.config_.horizon_days) != horizon:
        return logged_basis(
            f"the champion predicts {theirs.config_.horizon_days} days ahead, the challenger {horizon}: "
            "their windows differ"
        )
    common = common_folds(folds, d_old)
    if not common:
        latest = max((f.eval_cutoff for f in folds), default=None)
        latest_text = "no fold" if latest is None else f"the latest fold's cutoff is {latest:%Y-%m-%d}"
        return logged_basis(
            f"the champion was trained as of {d_old} and {latest_text}; a fold on which it is out of time needs "
            f"a cutoff on or after {d_old}, so a champion trained at least {horizon} days before the challenger"
        )
    sample = (ours.metadata_.get("training_sample") or {}).get("fraction")
    cutoffs = [f.eval_cutoff for f in common]
    frames = fold_frames(data, d_new, cutoffs, ours, horizon=horizon, sample=sample, memory_limit=memory_limit)
    for f in common:
        if len(frames[f.eval_cutoff]) != f.customers:
            return logged_basis(
                f"the data differ from the challenger's training data: fold {f.index} ({f.eval_cutoff:%Y-%m-%d}) "
                f"has {len(frames[f.eval_cutoff]):,} customers now and had {f.customers:,} in its backtest"
            )
    champion_features = frames
    if theirs.feature_config() != ours.feature_config():  # features as the champion computes them
        champion_features = fold_frames(
            data, d_new, cutoffs, theirs, horizon=horizon, sample=sample, memory_limit=memory_limit
        )
    selected = dict(ours.metadata_.get("selected") or {})
    rows = []
    for f in common:
        labels = frames[f.eval_cutoff]
        features = champion_features[f.eval_cutoff]
        if not labels["customer_id"].equals(features["customer_id"]):
            return logged_basis("the champion's features and the fold's labels hold different customers")
        scores = theirs.score(features.drop(columns=list(LABELS)), as_of=f.eval_cutoff, reasons=False)
        rows.append(
            {
                "fold": f.index,
                "eval_cutoff": f"{f.eval_cutoff:%Y-%m-%d}",
                "customers": len(labels),
                "churned": int(labels["churned"].sum()),
                "challenger": selected_fold_metrics(backtest, selected, f.index),
                "champion": _finite(all_metrics(labels, scores)),
            }
        )
    challenger_means, champion_means = paired_means(rows)
    log.info("promotion: version %s against champion %s on the folds %s", challenger, champion, cutoffs)
    return Basis(
        same_window=True,
        reason=f"champion trained as of {d_old}, challenger as of {d_new}, horizon {horizon} days",
        folds=rows,
        challenger=challenger_means,
        champion=champion_means,
    )


def backtest_table(version: str, name: str = MODEL_NAME) -> pd.DataFrame:
    """The backtest table (one row per fold and candidate) logged by the run of a model version."""
    client = mlflow_client()
    run_id = client.get_model_version(name, version).run_id
    if run_id is None:
        raise ChurnclvError(f"version {version} of model {name} has no training run: no backtest to compare on")
    with tempfile.TemporaryDirectory() as tmp:
        return pd.read_csv(client.download_artifacts(run_id, BACKTEST_TABLE, tmp))


def fold_windows(backtest: pd.DataFrame) -> list[FoldWindow]:
    """The folds of a backtest table: index, cutoff e_k and customers evaluated."""
    if backtest.empty:
        return []
    folds = backtest.groupby("fold").agg(eval_cutoff=("eval_cutoff", "first"), customers=("n_eval", "first"))
    return [FoldWindow(int(k), to_day(row.eval_cutoff), int(row.customers)) for k, row in folds.iterrows()]


def fold_frames(
    data: Path | str,
    as_of: Any,
    cutoffs: Sequence[pd.Timestamp],
    scorer: Scorer,
    *,
    horizon: int,
    sample: float | None,
    memory_limit: str | None = None,
) -> dict[pd.Timestamp, pd.DataFrame]:
    """Features (as ``scorer`` computes them) and labels of the backtest's fold rows at ``cutoffs``:
    the frame the backtest evaluated on (:func:`churnclv.training.backtest.training_frame`, the same
    as-of, horizon and customer sample), one frame per cutoff sorted by ``customer_id``."""
    config = RunConfig(features=scorer.feature_config()).with_horizon(horizon)
    config = replace(config, train=replace(config.train, memory_limit=memory_limit))
    frame = training_frame(data, to_day(as_of), config, sorted(cutoffs), sample)
    return {c: frame[frame["cutoff"] == c].reset_index(drop=True) for c in cutoffs}


def selected_fold_metrics(backtest: pd.DataFrame, selected: Mapping[str, str], fold: int) -> dict[str, float]:
    """One fold's metrics of the selected model per target (churn_* of the churn model, ...)."""
    out: dict[str, float] = {}
    for target, candidate in selected.items():
        rows = backtest[(backtest["candidate"] == candidate) & (backtest["fold"] == fold)]
        if rows.empty:
            continue
        for metric, value in rows.iloc[0].items():
            if str(metric).startswith(TARGET_PREFIX[target]):
                out[str(metric)] = float(value)
    return _finite(out)


def paired_means(rows: Sequence[Mapping[str, Any]]) -> tuple[dict[str, float], dict[str, float]]:
    """Each metric's mean over the folds where both models have it (a fold without churners has no
    AUC): the challenger's means and the champion's, over the same folds."""
    names = sorted({m for r in rows for m in r["challenger"] if m in r["champion"]})
    means: tuple[dict[str, float], dict[str, float]] = ({}, {})
    for m in names:
        both = [r for r in rows if m in r["challenger"] and m in r["champion"]]
        means[0][m] = float(np.mean([r["challenger"][m] for r in both]))
        means[1][m] = float(np.mean([r["champion"][m] for r in both]))
    return means


def _finite(metrics: Mapping[str, float]) -> dict[str, float]:
    return {k: float(v) for k, v in metrics.items() if v is not None and math.isfinite(float(v))}
