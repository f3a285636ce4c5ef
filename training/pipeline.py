"""Training: plan, backtest, select, refit on the latest closed cutoffs and fit the tier policy.

The steps live in their own modules: :mod:`~churnclv.training.config` (settings),
:mod:`~churnclv.training.folds` (the point-in-time layout), :mod:`~churnclv.training.backtest`,
:mod:`~churnclv.training.selection`, :mod:`~churnclv.training.result` (what a run returns),
:mod:`~churnclv.training.reports` and :mod:`~churnclv.training.mlflow_run` (MLflow logging).
"""

from __future__ import annotations

import functools
import json
import logging
import time
from collections.abc import Callable
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import pandas as pd

from churnclv.features import (
    ColumnStack,
    FeatureChunks,
    compute_features,
    compute_label_totals,
    connect,
    count_customers,
    load_tables,
    write_feature_chunks,
)
from churnclv.features.engine import compute_daily_purchases
from churnclv.features.sources import map_large_allocations, release_memory
from churnclv.models.btyd_fitting import MODEL_NAMES, BTYDConvergenceError
from churnclv.models.inputs import stable_floats
from churnclv.models.scorer import FIT_ERRORS, Scorer
from churnclv.models.seasonality import MIN_SEASON_HISTORY_DAYS, SUMMARY_COLUMNS, LevelWindow
from churnclv.readiness import assess
from churnclv.training.backtest import run_backtest, summarize_backtest, training_frame
from churnclv.training.config import KEY_METRICS, Progress, RunConfig, TrainingError
from churnclv.training.folds import TrainingPlan, plan_training, to_day
from churnclv.training.result import TrainResult
from churnclv.training.selection import (
    REFIT_FALLBACK,
    TotalsLevel,
    at_learned_level,
    select_churn_blend,
    select_models,
    select_order_value_factor,
    select_totals_level,
)

log = logging.getLogger(__name__)

__all__ = ["train"]

# what a run keeps of a snapshot read in chunks ([train] snapshot_in_memory): the columns its reports read
CHUNKED_SCORE_COLUMNS = ("customer_id", "p_churn", "expected_purchases", "expected_spend", "clv", "tier", "stage")
CHUNKED_FEATURE_COLUMNS = ("customer_id", "net_spend_365d")
EXAMPLE_ROWS = 20  # the MLflow model's input example
# a snapshot held whole is read back this many customers at a time (_whole_snapshot)
WHOLE_SNAPSHOT_READ_ROWS = 100_000


def train(
    clean: Path | str, as_of: Any, config: RunConfig | None = None, *, progress: Progress | None = None
) -> TrainResult:
    """Backtest, select, refit on the latest closed cutoffs and fit the tier policy (no MLflow).

    What the history does not support is not refused (see :func:`plan_training`); a sub-fit that
    fails is dropped with its reason (``TrainResult.dropped``); the final refit falls back
    hybrid -> gbm -> btyd per target. Training stops only when BTYD itself cannot be fitted.
    """
    config = config or RunConfig()
    say = progress or (lambda _m: None)
    as_of = to_day(as_of)
    t0 = time.perf_counter()
    tc = config.train
    readiness = assess(
        clean,
        as_of.date(),
        tc.horizon_days,
        min_history_days=tc.min_history_days,
        memory_limit=tc.memory_limit,
        config=config.features,
    )
    if readiness.errors:  # told up front, before any long step
        raise TrainingError(f"the data as of {as_of:%Y-%m-%d} cannot train any model: {readiness.errors[0]}")
    for warning in readiness.warnings:  # the full report: churnclv validate, and readiness.json in MLflow
        log.info("readiness: %s", warning)
    first_ts = pd.Timestamp(readiness.first_transaction)  # measured by the check: no second scan
    plan = plan_training(first_ts, as_of, tc)
    if plan.note:
        log.warning("%s", plan.note)  # said once: the log (the progress and the summary do not repeat it)
    n_customers = count_customers(clean, as_of.date(), memory_limit=tc.memory_limit)
    sample = tc.sample_fraction(n_customers)
    if sample is not None:
        say(
            f"backtest and LightGBM fits on a fixed sample of ~{tc.sample_customers:,} of "
            f"{n_customers:,} customers (train.sample_customers)"
        )
    train_sample = tc.backtest_fraction(n_customers) if plan.folds else None
    if train_sample is not None:
        say(
            f"backtest candidates trained on a fixed sample of ~{tc.backtest_customers:,} customers, "
            "scored on all of the sample (train.backtest_customers)"
        )
    timings: dict[str, float] = {}
    # the as-of snapshot first, written out of core: its DuckDB job is the run's largest (~2 GB of RSS
    # at 1M customers), and here the process holds little; after the backtest it ran beside the
    # training rows and the backtest's leftovers (the run's peak, 3.0-3.2 GB at 1M). Read back below.
    t1 = time.perf_counter()
    chunk_rows = tc.snapshot_chunk_rows(n_customers)
    chunks = write_feature_chunks(
        clean,
        as_of.date(),
        chunk_size=chunk_rows or WHOLE_SNAPSHOT_READ_ROWS,
        config=config.features,
        memory_limit=tc.memory_limit,
    )
    timings["snapshot_features_s"] = time.perf_counter() - t1
    dropped: list[dict[str, Any]] = []
    frame = None
    backtest = pd.DataFrame()
    last_preds: dict[str, pd.DataFrame] = {}
    fold_preds: dict[str, list[pd.DataFrame]] = {}
    label_h = plan.label_horizon_days or tc.horizon_days
    if plan.folds:
        h_bt = plan.backtest_horizon_days  # set whenever there are folds
        bt_config = config if plan.backtested or h_bt is None else config.with_horizon(h_bt)
        backtest, _, last_preds, frame = run_backtest(
            clean,
            as_of,
            bt_config,
            progress=progress,
            first_ts=first_ts,
            sample=sample,
            train_sample=train_sample,
            timings=timings,
            folds=plan.folds,
            extra_cutoffs=plan.final_cutoffs if plan.backtest_horizon_days == label_h else [],
            dropped=dropped,
            fold_preds=fold_preds,
        )
    timings["backtest_s"] = time.perf_counter() - t0 - timings["snapshot_features_s"]
    summary, eligible = summarize_backtest(backtest, plan.folds, tc.candidates)
    if plan.folds and not eligible:
        log.warning("no model candidate was scored on every fold: BTYD is chosen for every target")
    if not plan.final_cutoffs:
        eligible = []  # the learned models need a labelled cutoff of the horizon
    selected = select_models(summary, tc.candidates, eligible)
    scorer_extra: dict[str, Any] = {}
    if label_h != tc.horizon_days:
        scorer_extra["label_horizon_days"] = label_h
    # the churn blend: the BTYD weight for the selected learned model (or, when BTYD was selected,
    # for any learned candidate that beats it once blended)
    learned = [selected["churn"]] if selected["churn"] != "btyd" else [c for c in eligible if c != "btyd"]
    blend = select_churn_blend(fold_preds, learned) if eligible else None
    if blend is not None:
        selected["churn"], scorer_extra["churn_btyd_weight"] = blend.model, blend.btyd_weight
        scorer_extra["churn_recalibrate"] = blend.recalibrate
        msg = f"churn: {blend.model} with BTYD weight {blend.btyd_weight:g}" + (
            ", on BTYD's level" if blend.recalibrate else ""
        )
        log.debug("%s (backtest log loss per model@weight %s)", msg, blend.scores)
        say(msg)
    order_value = None
    if config.scorer.order_value == "backtest":
        order_value = select_order_value_factor(backtest)
        scorer_extra["order_value_factor"] = order_value.factor
        say(f"order value: {order_value}")
    # the totals' level (learned_totals = "auto"), chosen for the models the final fit ends up with
    totals_for = None
    if config.scorer.learned_totals == "auto":
        totals_for = functools.partial(_totals_level, backtest, bool(eligible), plan, label_h)
    say(f"selected: {selected}; refitting on cutoffs closed by {as_of:%Y-%m-%d}")
    if frame is None or plan.backtest_horizon_days != label_h:
        frame = training_frame(
            clean,
            as_of,
            config.with_horizon(label_h),
            plan.final_cutoffs if any(m != "btyd" for m in selected.values()) else [],
            sample,
        )
    train_rows = frame[frame["cutoff"].isin(plan.final_cutoffs)].reset_index(drop=True)
    sampled_customers = int(frame["customer_id"].nunique())
    del frame  # the backtest's frame: the final fit needs only its latest cutoffs
    release_memory()  # what the backtest's fits freed, back to the OS before the snapshot's steps
    t1 = time.perf_counter()
    snapshot: pd.DataFrame | FeatureChunks
    if chunk_rows:
        map_large_allocations()  # chunk-sized arrays given back when freed, not kept in the heap's holes
        say(
            f"the snapshot of {n_customers:,} customers is written out of core and read in chunks of "
            f"{chunk_rows:,} (above train.snapshot_in_memory)"
        )
        snapshot = chunks
    else:
        snapshot = _whole_snapshot(chunks)
    timings["snapshot_features_s"] += time.perf_counter() - t1
    t1 = time.perf_counter()
    daily = window = None
    if config.scorer.seasonality:
        daily = compute_daily_purchases(clean, as_of.date(), memory_limit=tc.memory_limit, config=config.features)
        # made when the season is fitted, and let go then (~1 GB at 10M customers)
        window = functools.partial(_level_window, clean, as_of, config, first_ts)
    scorer, selected, totals = _final_fit(
        config,
        selected,
        train_rows,
        snapshot,
        as_of,
        dropped,
        scorer_extra,
        daily=daily,
        level_window=window,
        totals_for=totals_for,
    )
    del daily, train_rows  # fitted now: not held while the snapshot is scored
    if totals is not None:
        say(f"totals: {totals}")
        if totals.level == "learned":  # the backtest's figures as the scorer ships
            backtest = at_learned_level(backtest)
            summary, _ = summarize_backtest(backtest, plan.folds, tc.candidates)
    timings["final_fit_s"] = time.perf_counter() - t1
    scorer.metadata_.update(
        {
            "training_sample": {
                "customers": n_customers,
                "fraction": sample,
                "sampled_customers": sampled_customers,
                "backtest_fraction": train_sample,
            },
            "selected": selected,
            "churn_btyd_weight": scorer.config_.churn_btyd_weight,
            "churn_recalibrate": scorer.config_.churn_recalibrate,
            "label_horizon_days": scorer.config_.label_horizon,
            "learned_totals": scorer.config_.learned_totals,
            "totals_level": None if totals is None else asdict(totals),
            "order_value": None if order_value is None else asdict(order_value),
            "backtest_means": {c: {m: float(summary.loc[c, m]) for m in KEY_METRICS} for c in summary.index},
            "backtest": plan.to_dict(),
            "dropped": dropped,
            "features": asdict(config.features),
            # the shape of the data it was trained on: scoring checks another data set against it
            "data": {
                "attributes": sorted(c.removeprefix("attr_") for c in snapshot.columns if c.startswith("attr_")),
                "events": readiness.has_events,
                "transaction_columns": list(load_tables(clean, connect()).transaction_columns),
            },
        }
    )
    say(f"scoring the {len(snapshot):,} customers known at {as_of:%Y-%m-%d}")
    t1 = time.perf_counter()
    # no reasons: the reports read tiers and values only (the reasons of 1M customers cost ~15 s);
    # result.scorer.score(result.snapshot_features) gives them
    if isinstance(snapshot, FeatureChunks):
        chunks = snapshot
        stack = ColumnStack()
        for part in scorer.score_fitted_chunks(chunks, as_of=as_of):
            stack.add(part, CHUNKED_SCORE_COLUMNS)
        scores = stack.frame()
        snapshot, example = chunks.read(CHUNKED_FEATURE_COLUMNS), chunks.head(EXAMPLE_ROWS)
        chunks.close()
    else:
        scores = scorer.score_fitted(snapshot, as_of=as_of, reasons=False)
        example = snapshot.head(EXAMPLE_ROWS)
    timings["snapshot_scores_s"] = time.perf_counter() - t1
    timings["total_s"] = time.perf_counter() - t0
    return TrainResult(
        scorer=scorer,
        backtest=backtest,
        summary=summary,
        selected=selected,
        snapshot_scores=scores,
        snapshot_features=snapshot,
        example_features=example,
        folds=plan.folds,
        fold_predictions=last_preds,
        timings=timings,
        plan=plan,
        dropped=dropped,
        readiness=readiness,
    )


def _whole_snapshot(chunks: FeatureChunks) -> pd.DataFrame:
    """The snapshot written out of core, as one frame made stable (:func:`stable_floats`) chunk by chunk:
    the fit and the scores then read it without a copy each. The peak is the frame plus a chunk; read
    at once and rounded after, the Arrow table, the frame and its rounded copy met (+1.4 GB of RSS at
    1M customers against +0.8 GB). The folder is removed once read."""
    stack = ColumnStack()
    for chunk in chunks:
        stack.add(stable_floats(chunk))
    chunks.close()
    frame = stack.frame()
    release_memory()  # the chunks' copies, back to the OS
    return frame


def _level_window(
    clean: Path | str, as_of: pd.Timestamp, config: RunConfig, first_ts: pd.Timestamp
) -> LevelWindow | None:
    """The last closed window of the horizon before as-of, when a season could be fitted at its start."""
    tc = config.train
    cutoff = as_of - pd.Timedelta(days=tc.horizon_days)
    if (cutoff - to_day(first_ts)).days + 1 < MIN_SEASON_HISTORY_DAYS:
        return None
    # the 6 of ~60 columns BTYD in operational time reads: computed alone, and held till the end
    features = compute_features(
        clean, cutoff.date(), memory_limit=tc.memory_limit, config=config.features, columns=SUMMARY_COLUMNS
    )
    totals = compute_label_totals(
        clean, cutoff.date(), tc.horizon_days, as_of=as_of.date(), config=config.features, memory_limit=tc.memory_limit
    )
    return LevelWindow(cutoff=cutoff, features=features, totals=totals)


def _totals_level(
    backtest: pd.DataFrame, eligible: bool, plan: TrainingPlan, label_h: int, choice: dict[str, str]
) -> TotalsLevel:
    """``learned_totals = "auto"`` resolved for the models ``choice`` holds: BTYD's level without a
    backtest of them at the horizon, else :func:`select_totals_level`."""
    if not eligible:
        return TotalsLevel("btyd", "no learned model was backtested on every fold", {})
    if label_h != plan.horizon_days:
        return TotalsLevel("btyd", f"labels of {label_h} days, carried to {plan.horizon_days} by BTYD", {})
    if not plan.backtested:
        return TotalsLevel("btyd", f"not backtested at {plan.horizon_days} days", {})
    return select_totals_level(backtest, choice)


def _final_fit(
    config: RunConfig,
    selected: dict[str, str],
    train_rows: pd.DataFrame,
    snapshot: pd.DataFrame,
    as_of: pd.Timestamp,
    dropped: list[dict[str, Any]],
    scorer_extra: dict[str, Any] | None = None,
    *,
    daily: pd.DataFrame | None = None,
    level_window: Callable[[], LevelWindow | None] | None = None,
    totals_for: Callable[[dict[str, str]], TotalsLevel] | None = None,
) -> tuple[Scorer, dict[str, str], TotalsLevel | None]:
    """Fit the selected models, keeping the snapshot's model outputs (:meth:`Scorer.score_fitted`); when
    that fails, step every learned target down REFIT_FALLBACK (hybrid -> gbm -> btyd) and retry,
    logging why. ``totals_for`` gives the totals' level of the models tried (the level the backtest
    showed for those very models); a season levelled on the last closed window sets it instead
    (``"season"``). Raises TrainingError when BTYD itself fails."""
    choice = dict(selected)
    while True:
        totals = None if totals_for is None else totals_for(choice)
        extra: dict[str, Any] = dict(scorer_extra or {})
        if totals is not None:
            extra["learned_totals"] = totals.level
        scorer_cfg = replace(
            config.scorer,
            churn_model=choice["churn"],
            purchases_model=choice["purchases"],
            spend_model=choice["spend"],
            **extra,
        )
        try:
            scorer = Scorer(config=scorer_cfg, tiers=config.tiers)
            scorer.fit(train_rows, snapshot, as_of=as_of, daily=daily, level_window=level_window, keep_parts=True)
            cutoff = scorer.season_levels_from
            if totals is not None and cutoff is not None:
                totals = replace(
                    totals, level="season", reason=f"levelled on the window after {cutoff}; {totals.reason}"
                )
            return scorer, choice, totals
        except FIT_ERRORS as exc:
            reason = f"{type(exc).__name__}: {exc}"
            if all(m == "btyd" for m in choice.values()):
                known = f"no model can be fitted on the {len(snapshot):,} customers known at {as_of:%Y-%m-%d}"
                btyd = MODEL_NAMES.get(scorer_cfg.btyd_model, scorer_cfg.btyd_model)
                if isinstance(exc, BTYDConvergenceError):  # there are repeat buyers; the fit runs off the edge
                    first = str(exc).split(" Tried: ", 1)[0]  # the attempts are in the log and the run's notes
                    raise TrainingError(f"{known}: {btyd} failed: {first}") from None
                raise TrainingError(
                    f"{known}: {btyd} failed ({reason}); it needs customers with repeat purchases on different "
                    "days before as-of: use a later as-of or more history (churnclv validate shows what the data "
                    "support)"
                ) from None
            fallback = {t: REFIT_FALLBACK.get(m, m) for t, m in choice.items()}
            dropped.append(
                {
                    "stage": "final",
                    "fold": None,
                    "candidate": json.dumps(choice, sort_keys=True),
                    "reason": f"{reason}; fell back to {json.dumps(fallback, sort_keys=True)}",
                }
            )
            log.warning("final fit of %s failed (%s); falling back to %s", choice, reason, fallback)
            choice = fallback
