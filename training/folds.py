"""Backtest folds and the training plan: which cutoffs each fold and the final refit read.

Point in time: training as of D reads only cutoffs whose label window ``(c, c + H]`` ends on or
before D, and fold k's models see only cutoffs whose windows close by fold k's evaluation cutoff.

Backtest layout (H = horizon, s = step)::

    evaluation cutoffs  e_K = D - H,  e_(K-1) = e_K - s, ...
    fold k trains on    cutoffs c <= e_k - H (the latest ``train_cutoffs`` of them, every s days)
    fold k evaluates on customers known at e_k, labels in (e_k, e_k + H]
    final model         trains on cutoffs c <= D - H, BTYD and tiers on the snapshot at D
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import pandas as pd

from churnclv.readiness_rules import MIN_BACKTEST_HORIZON_DAYS
from churnclv.training.config import TrainConfig


@dataclass
class Fold:
    """One backtest fold: models fitted on ``train_cutoffs``, evaluated at ``eval_cutoff``."""

    index: int
    eval_cutoff: pd.Timestamp
    train_cutoffs: list[pd.Timestamp]


def to_day(x: Any) -> pd.Timestamp:
    """The calendar day of ``x`` (midnight)."""
    return pd.Timestamp(x).normalize()


def plan_folds(first_ts: pd.Timestamp, as_of: pd.Timestamp, config: TrainConfig) -> list[Fold]:
    """The backtest folds that fit in the history (latest first in time order of evaluation)."""
    H = pd.Timedelta(days=config.horizon_days)
    earliest = to_day(first_ts) + pd.Timedelta(days=config.min_history_days)
    folds: list[Fold] = []
    for k in range(config.n_folds):
        e = to_day(as_of) - H - pd.Timedelta(days=k * config.fold_step_days)
        latest_train = e - H
        cutoffs = [latest_train - pd.Timedelta(days=j * config.cutoff_step_days) for j in range(config.train_cutoffs)]
        cutoffs = sorted(c for c in cutoffs if c >= earliest)
        if e < earliest or not cutoffs:
            break
        folds.append(Fold(index=0, eval_cutoff=e, train_cutoffs=cutoffs))
    folds.reverse()
    for i, f in enumerate(folds):
        f.index = i + 1
    return folds


def final_train_cutoffs(first_ts: pd.Timestamp, as_of: pd.Timestamp, config: TrainConfig) -> list[pd.Timestamp]:
    """The labelled cutoffs the final refit reads: label windows closed by as-of, with enough history."""
    H = pd.Timedelta(days=config.horizon_days)
    earliest = to_day(first_ts) + pd.Timedelta(days=config.min_history_days)
    latest = to_day(as_of) - H
    cutoffs = [latest - pd.Timedelta(days=j * config.cutoff_step_days) for j in range(config.train_cutoffs)]
    return sorted(c for c in cutoffs if c >= earliest)


@dataclass
class TrainingPlan:
    """What a training run can do with the history it has (see :func:`plan_training`)."""

    horizon_days: int
    backtest_horizon_days: int | None  # None: no backtest at all
    folds: list[Fold]
    final_cutoffs: list[pd.Timestamp]  # labelled cutoffs (of label_horizon_days) for the learned models
    note: str | None = None  # why the run is not backtested at its horizon
    # the horizon of the learned models' labels when too few windows of horizon_days close (None: horizon_days)
    label_horizon_days: int | None = None

    @property
    def backtested(self) -> bool:
        """Whether the models were compared on a backtest at the run's own horizon."""
        return self.backtest_horizon_days == self.horizon_days

    def to_dict(self) -> dict[str, Any]:
        """The plan as JSON-ready data (stored in the model's metadata)."""
        return {
            "horizon_days": self.horizon_days,
            "backtest_horizon_days": self.backtest_horizon_days,
            "backtested": self.backtested,
            "folds": len(self.folds),
            "final_cutoffs": [str(c.date()) for c in self.final_cutoffs],
            "label_horizon_days": self.label_horizon_days,
            "note": self.note,
        }


def longest_backtest_horizon(first_ts: pd.Timestamp, as_of: pd.Timestamp, config: TrainConfig) -> int | None:
    """The longest horizon for which one backtest fold fits (None below MIN_BACKTEST_HORIZON_DAYS).

    A fold at horizon h needs a training cutoff ``as_of - 2h`` with ``min_history_days`` before it."""
    earliest = to_day(first_ts) + pd.Timedelta(days=config.min_history_days)
    h = (to_day(as_of) - earliest).days // 2
    return h if h >= MIN_BACKTEST_HORIZON_DAYS else None


def plan_training(first_ts: pd.Timestamp, as_of: pd.Timestamp, config: TrainConfig) -> TrainingPlan:
    """Decide what can be trained: never refuse what the history supports.

    - Backtest folds fit at the horizon: the usual run (backtest, select, refit).
    - They do not: the models are chosen on a backtest at the longest horizon that fits (at least
      MIN_BACKTEST_HORIZON_DAYS). The learned models are trained on the labelled cutoffs of the
      horizon when there are at least ``min_label_cutoffs`` of them; otherwise, when the backtest's
      horizon has more labelled cutoffs, on those (``label_horizon_days``), and their outputs are
      carried to the horizon by BTYD (see :class:`~churnclv.models.scorer_config.ScorerConfig`): one
      or two cutoffs, all in the earliest part of the history, taught less than more cutoffs of a
      shorter horizon. With no such backtest, BTYD is chosen for every target.
    - No label window of any horizon closes by as-of: BTYD (which needs no labels) for every target.
    Every run that is not backtested at its own horizon carries a note saying so.
    """
    H = config.horizon_days
    folds = plan_folds(first_ts, as_of, config)
    final = final_train_cutoffs(first_ts, as_of, config)
    if folds:
        return TrainingPlan(H, H, folds, final)
    history = (to_day(as_of) - to_day(first_ts)).days
    needs = f"a backtest at {H} days needs {config.min_history_days + 2 * H} days of history, the data have {history}"
    h_bt = longest_backtest_horizon(first_ts, as_of, config)
    no_label = TrainingPlan(
        H,
        None,
        [],
        [],
        (
            f"not backtested at {H} days ({needs}) and no {H}-day label window closes by as-of after "
            f"{config.min_history_days} days of history: BG/NBD + Gamma-Gamma (no labels needed) scores every "
            "target"
        ),
    )
    if h_bt is None and not final:
        return no_label
    if h_bt is None:
        return TrainingPlan(
            H,
            None,
            [],
            final,
            (
                f"not backtested ({needs}; no backtest of even {MIN_BACKTEST_HORIZON_DAYS} days fits): BG/NBD + "
                "Gamma-Gamma scores every target"
            ),
        )
    short = replace(config, horizon_days=h_bt)
    folds = plan_folds(first_ts, as_of, short)
    if len(final) < config.min_label_cutoffs and h_bt < H:
        short_final = final_train_cutoffs(first_ts, as_of, short)
        if len(short_final) > len(final):
            return TrainingPlan(
                H,
                h_bt,
                folds,
                short_final,
                (
                    f"not backtested at {H} days ({needs}) and {len(final)} {H}-day label window(s) close by "
                    f"as-of: learned models trained on {len(short_final)} labelled cutoff(s) of {h_bt} days, "
                    f"carried to {H} days by BTYD; models chosen on a {h_bt}-day backtest"
                ),
                label_horizon_days=h_bt,
            )
    if not final:
        return no_label
    return TrainingPlan(
        H,
        h_bt,
        folds,
        final,
        (
            f"not backtested at {H} days ({needs}): models chosen on a {h_bt}-day backtest; learned models trained "
            f"on {len(final)} labelled cutoff(s) of {H} days"
        ),
    )
