"""The rolling-origin backtest: the training frame, every candidate fitted and scored on every fold."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from churnclv.features import compute_training_frame
from churnclv.features.inputs import in_sample_ids
from churnclv.metrics import all_metrics, order_value_metrics, purchases_metrics, spend_metrics
from churnclv.models.baselines import RecencyBaseline, RFMBaseline
from churnclv.models.gbm_base import lightgbm_threads, usable_cores
from churnclv.models.inputs import stable_floats
from churnclv.models.scorer import FIT_ERRORS, Scorer
from churnclv.models.scorer_config import ScorerConfig
from churnclv.training.config import (
    BASELINES,
    KEY_METRICS,
    LABEL_FRAME_COLUMNS,
    MODEL_CANDIDATES,
    Progress,
    RunConfig,
    TrainingError,
)
from churnclv.training.folds import Fold, plan_folds, to_day
from churnclv.training.progress import BacktestProgress, format_seconds
from churnclv.training.selection import AGG_NOISE, OWN_LEVEL, TOTALS

log = logging.getLogger(__name__)


LEARNED = ("hybrid", "gbm")  # the candidates that fit LightGBM: most of a backtest's time


@dataclass(frozen=True)
class _Fitted:
    """One candidate on one fold: its predictions and metrics, or why it failed."""

    pred: pd.DataFrame | None
    metrics: dict[str, float]
    error: str | None
    seconds: float


def _candidate_scorer(name: str, base: ScorerConfig) -> Scorer:
    if name == "pareto":
        cfg = replace(base, churn_model="btyd", purchases_model="btyd", spend_model="btyd", btyd_model="pareto")
    else:
        cfg = replace(base, churn_model=name, purchases_model=name, spend_model=name)
    return Scorer(config=cfg, tiers=False)


def evaluate_candidate(name: str, train: pd.DataFrame, evaluation: pd.DataFrame, base: ScorerConfig) -> pd.DataFrame:
    """Fit one candidate on ``train`` and predict the evaluation rows (features as of their cutoff)."""
    if name in BASELINES:
        model = RecencyBaseline() if name == "recency" else RFMBaseline()
        return model.fit(stable_floats(train)).predict(stable_floats(evaluation)).reset_index(drop=True)
    scorer = _candidate_scorer(name, base).fit(train, evaluation)
    if name not in LEARNED or base.learned_totals != "auto":
        return scorer.score(evaluation, reasons=False)
    pred, own = scorer.score_with_own_level(evaluation)  # both levels, for select_totals_level
    for target in TOTALS:
        pred[f"expected_{target}{OWN_LEVEL}"] = own[f"expected_{target}"].to_numpy()
    return pred


def _own_level_metrics(evaluation: pd.DataFrame, pred: pd.DataFrame) -> dict[str, float]:
    """A learned candidate's purchases and spend metrics at its own level (``*_own_level``), from its
    ``expected_*_own_level`` columns, taken out of ``pred``, and how far chance alone moves each
    realised total (``*_agg_noise_pct``, :func:`total_noise_pct`); none without them."""
    own = {t: pred.pop(f"expected_{t}{OWN_LEVEL}") for t in TOTALS if f"expected_{t}{OWN_LEVEL}" in pred.columns}
    if len(own) < len(TOTALS):
        return {}
    metrics = {
        **purchases_metrics(evaluation["purchases"], own["purchases"]),
        **spend_metrics(evaluation["spend"], own["spend"]),
    }
    noise = {f"{t}{AGG_NOISE}": total_noise_pct(evaluation[t], pred[f"expected_{t}"], own[t]) for t in TOTALS}
    return {**{f"{k}{OWN_LEVEL}": v for k, v in metrics.items()}, **noise}


def total_noise_pct(realised: pd.Series, *predictions: pd.Series) -> float:
    """The standard error of a realised total, in % of it: the square root of the customers' summed
    squared residuals around what a model expects of them (the smaller of the models': a model's
    own misses add to the spread), over the total. 500 CDNOW customers: about 27 % on 90 days'
    spend (13 % on purchases), where 300 subscribers show 5-6 %; a window's total is that uncertain
    before any shock of the month."""
    y = realised.to_numpy(dtype=float)
    total = float(y.sum())
    if not total > 0:
        return float("nan")
    spread = min(float(np.sum((y - p.to_numpy(dtype=float)) ** 2)) for p in predictions)
    return 100.0 * float(np.sqrt(spread)) / total


def run_backtest(
    clean: Path | str,
    as_of: Any,
    config: RunConfig,
    *,
    progress: Progress | None = None,
    first_ts: pd.Timestamp | None = None,
    sample: float | None = None,
    train_sample: float | None = None,
    timings: dict[str, float] | None = None,
    folds: list[Fold] | None = None,
    extra_cutoffs: Sequence[pd.Timestamp] = (),
    dropped: list[dict[str, Any]] | None = None,
    fold_preds: dict[str, list[pd.DataFrame]] | None = None,
) -> tuple[pd.DataFrame, list[Fold], dict[str, pd.DataFrame], pd.DataFrame]:
    """Evaluate every candidate on every fold. Returns (backtest rows, folds, last-fold predictions,
    the training frame of all cutoffs). ``first_ts`` (the first transaction) is read when not given;
    ``folds`` default to :func:`plan_folds` at the config's horizon; ``extra_cutoffs`` join the
    training frame (the final refit's); ``sample`` (a fraction of customers, see
    :func:`churnclv.features.sample_customers`) restricts the training frame to a fixed sample;
    ``train_sample`` (a smaller fraction of the base) restricts each fold's training rows to a fixed
    sample of that sample, the evaluation rows staying the frame's (``[train] backtest_customers``);
    ``timings`` receives the seconds of each step. A candidate that fails on a fold (no
    convergence, non-finite output, too few rows) is left out of that fold: its reason goes to
    ``dropped`` and the log, and the other candidates go on. ``fold_preds`` receives, per model
    candidate, one frame per fold (``fold, customer_id, churned, p_churn``): what the churn blend is
    chosen on (:func:`churnclv.training.selection.select_churn_blend`)."""
    timings = {} if timings is None else timings
    dropped = [] if dropped is None else dropped
    say = progress or (lambda _m: None)
    tc = config.train
    as_of = to_day(as_of)
    first_ts = first_transaction_ts(clean) if first_ts is None else first_ts
    folds = plan_folds(first_ts, as_of, tc) if folds is None else folds
    if not folds:
        raise TrainingError(
            f"no backtest fold fits: the data start {first_ts:%Y-%m-%d} and as-of {as_of:%Y-%m-%d} leave no "
            f"cutoff with {tc.min_history_days} days of history whose {tc.horizon_days}-day label window closes "
            "by as-of; use a later as-of or a shorter horizon"
        )
    if len(folds) < tc.n_folds:
        msg = f"only {len(folds)} of {tc.n_folds} backtest folds fit in the history; evaluating on {len(folds)}"
        log.warning(msg)
    cutoffs = sorted({c for f in folds for c in f.train_cutoffs} | {f.eval_cutoff for f in folds} | set(extra_cutoffs))
    say(f"features and labels at {len(cutoffs)} cutoffs")
    started = time.perf_counter()
    frame = training_frame(clean, as_of, config, cutoffs, sample)
    timings["training_frame_s"] = time.perf_counter() - started
    models_started = time.perf_counter()
    rows, last_preds = [], {}
    workers = min(tc.backtest_workers or usable_cores(), len(tc.candidates))
    # the candidates train on the same fixed customers on every fold (nested in the frame's sample)
    trains = None if train_sample is None else in_sample_ids(frame["customer_id"].to_numpy(), train_sample)

    def train_rows(fold: Fold) -> pd.Series:
        rows = frame["cutoff"].isin(fold.train_cutoffs)
        return rows if trains is None else rows & trains

    fits = BacktestProgress({f.index: int(train_rows(f).sum()) for f in folds}, tc.candidates, workers=workers)

    def fit(fold: Fold, name: str, train: pd.DataFrame, evaluation: pd.DataFrame) -> _Fitted:
        say(f"fold {fold.index}/{len(folds)}: {name} ({fits.status()})")
        started = time.perf_counter()
        fits.start(fold.index, name)
        try:
            with lightgbm_threads(1 if workers > 1 else 0):  # side by side: one core each
                pred = evaluate_candidate(name, train, evaluation, config.scorer)
        except FIT_ERRORS as exc:
            fits.finish(fold.index, name)
            return _Fitted(None, {}, f"{type(exc).__name__}: {exc}", 0.0)
        metrics = {
            **all_metrics(evaluation, pred),
            **order_value_metrics(evaluation, pred),
            **_own_level_metrics(evaluation, pred),
        }
        fits.finish(fold.index, name)
        return _Fitted(pred, metrics, None, time.perf_counter() - started)

    # the learned candidates first: the others fit beside them (their order in the output is the config's)
    order = sorted(tc.candidates, key=lambda c: c not in LEARNED)
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="backtest") as pool:
        for fold in folds:
            train = frame[train_rows(fold)].reset_index(drop=True)
            evaluation = frame[frame["cutoff"] == fold.eval_cutoff].reset_index(drop=True)
            running = {name: pool.submit(fit, fold, name, train, evaluation) for name in order}
            for name in tc.candidates:
                done = running[name].result()
                if done.pred is None:
                    dropped.append({"stage": "backtest", "fold": fold.index, "candidate": name, "reason": done.error})
                    log.warning("fold %d: %s dropped: %s", fold.index, name, done.error)  # said once: the log
                    continue
                pred = done.pred
                if fold_preds is not None and name in MODEL_CANDIDATES:
                    fold_preds.setdefault(name, []).append(
                        pd.DataFrame(
                            {
                                "fold": fold.index,
                                "customer_id": evaluation["customer_id"].to_numpy(),
                                "churned": evaluation["churned"].to_numpy(dtype=bool),
                                "p_churn": pred["p_churn"].to_numpy(dtype=float),
                            }
                        )
                    )
                rows.append(
                    {
                        "fold": fold.index,
                        "eval_cutoff": fold.eval_cutoff.date(),
                        "candidate": name,
                        "n_train": len(train),
                        "n_eval": len(evaluation),
                        "seconds": round(done.seconds, 2),
                        **done.metrics,
                    }
                )
                if fold is folds[-1]:
                    last_preds[name] = pd.concat(
                        [
                            evaluation[["customer_id", "frequency", "churned", "purchases", "spend"]],
                            pred.drop(columns="customer_id", errors="ignore"),
                        ],
                        axis=1,
                    )
    timings["backtest_models_s"] = time.perf_counter() - models_started
    say(f"backtest done: {fits.total} fits in {format_seconds(timings['backtest_models_s'])}")
    return pd.DataFrame(rows), folds, last_preds, frame


def training_frame(
    clean: Path | str, as_of: pd.Timestamp, config: RunConfig, cutoffs: list[pd.Timestamp], sample: float | None
) -> pd.DataFrame:
    """Features and labels at ``cutoffs`` (the config's horizon), with floats the models read."""
    if not cutoffs:
        return pd.DataFrame(
            {c: pd.Series(dtype="object" if c == "customer_id" else "float64") for c in LABEL_FRAME_COLUMNS}
        ).assign(cutoff=pd.Series(dtype="datetime64[ns]"))
    frame = compute_training_frame(
        clean,
        as_of,
        config.train.horizon_days,
        cutoffs=[c.date() for c in cutoffs],
        sample=sample,
        memory_limit=config.train.memory_limit,
        config=config.features,
    )
    frame["cutoff"] = pd.to_datetime(frame["cutoff"])
    return stable_floats(frame)  # labels too: realized spend ties decide the Spearman ranks


def summarize_backtest(
    backtest: pd.DataFrame, folds: list[Fold], candidates: tuple[str, ...]
) -> tuple[pd.DataFrame, list[str]]:
    """Mean metrics per candidate over its folds, and the model candidates eligible for selection:
    those scored on every fold (a mean over fewer folds would not compare like with like)."""
    if backtest.empty:
        return pd.DataFrame(columns=list(KEY_METRICS)), []
    metric_cols = [c for c in backtest.columns if c.startswith(("churn_", "purchases_", "spend_"))]
    grouped = backtest.groupby("candidate")
    summary = grouped[metric_cols].mean()
    summary = summary.loc[[c for c in candidates if c in summary.index]]
    n_folds = grouped["fold"].nunique()
    eligible = [c for c in MODEL_CANDIDATES if c in candidates and c in summary.index and n_folds[c] == len(folds)]
    return summary, eligible


def first_transaction_ts(clean: Path | str) -> pd.Timestamp:
    """The time of the first transaction in a clean folder."""
    from churnclv.features import connect, load_tables

    con = connect()
    tx = load_tables(clean, con).transactions
    return pd.Timestamp(con.to_pyarrow(tx.ts.min()).as_py())
