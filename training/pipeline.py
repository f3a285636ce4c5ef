"""Training: rolling-origin backtests, model selection, the final refit, MLflow logging and registry.

Point in time: training as of D reads only cutoffs whose label window ``(c, c + H]`` ends on or
before D, and fold k's models see only cutoffs whose windows close by fold k's evaluation cutoff.

Backtest layout (H = horizon, s = step)::

    evaluation cutoffs  e_K = D - H,  e_(K-1) = e_K - s, ...
    fold k trains on    cutoffs c <= e_k - H (the latest ``train_cutoffs`` of them, every s days)
    fold k evaluates on customers known at e_k, labels in (e_k, e_k + H]
    final model         trains on cutoffs c <= D - H, BTYD and tiers on the snapshot at D
"""

from __future__ import annotations

import json
import logging
import tempfile
import time
import tomllib
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from churnclv.config import ConfigError
from churnclv.config_schema import parse_section
from churnclv.features import FeatureConfig, compute_features, compute_training_frame, count_customers
from churnclv.metrics import all_metrics
from churnclv.models.baselines import RecencyBaseline, RFMBaseline
from churnclv.models.scorer import FIT_ERRORS, Scorer, ScorerConfig, model_input, stable_floats
from churnclv.readiness import MIN_BACKTEST_HORIZON_DAYS, Readiness, assess
from churnclv.models.tiers import plot_tier_mix, tier_report

log = logging.getLogger(__name__)

MODEL_CANDIDATES = ("btyd", "gbm", "hybrid")  # what the scorer can hold
BASELINES = ("recency", "rfm")
ALL_CANDIDATES = (*BASELINES, "btyd", "pareto", "gbm", "hybrid")
# the selection rule: per target, the candidate with the best mean of this metric over the folds;
# ties go to the simpler model (order of MODEL_CANDIDATES)
SELECTION = {"churn": ("churn_auc", 1), "purchases": ("purchases_mae", -1), "spend": ("spend_gini", 1)}
MIN_SAMPLE_CUSTOMERS = 100
# the final refit falls back one step at a time when the selected model cannot be fitted
REFIT_FALLBACK = {"hybrid": "gbm", "gbm": "btyd"}
LABEL_FRAME_COLUMNS = ("customer_id", "cutoff", "churned", "purchases", "spend")
KEY_METRICS = ("churn_auc", "churn_brier", "churn_ece", "purchases_mae", "spend_gini", "spend_top_decile_capture")


class TrainingError(ValueError):
    """Training cannot run as asked (e.g. no backtest fold fits in the history)."""


@dataclass(frozen=True)
class TrainConfig:
    """Backtest, selection and promotion settings (TOML section ``[train]``)."""

    horizon_days: int = 90
    n_folds: int = 3
    fold_step_days: int = 30
    train_cutoffs: int = 12  # a year of monthly cutoffs: every season in the training labels
    cutoff_step_days: int = 30
    min_history_days: int = 60  # a cutoff needs this much data before it
    # the backtest and the LightGBM fits read a fixed hash sample of about this many customers
    # (0: everyone); BTYD, the tier policy and the snapshot scores always use the whole base
    sample_customers: int = 50_000
    candidates: tuple[str, ...] = ("recency", "rfm", "btyd", "gbm", "hybrid")
    # promotion: the largest loss per metric the challenger may show against the champion
    promote_tolerance: dict[str, float] = field(
        default_factory=lambda: {"churn_auc": 0.005, "spend_gini": 0.01, "churn_brier": 0.005}
    )
    memory_limit: str | None = None

    def __post_init__(self) -> None:
        bad = [c for c in self.candidates if c not in ALL_CANDIDATES]
        if bad:
            raise TrainingError(f"train.candidates: unknown {bad}; choose from {list(ALL_CANDIDATES)}")
        if not any(c in MODEL_CANDIDATES for c in self.candidates):
            raise TrainingError(f"train.candidates must include one of {list(MODEL_CANDIDATES)}")
        from churnclv.training.tracking import METRIC_DIRECTION

        unknown = sorted(set(self.promote_tolerance) - set(METRIC_DIRECTION))
        if unknown:
            raise TrainingError(f"train.promote_tolerance: unknown metrics {unknown}; "
                                f"choose from {sorted(METRIC_DIRECTION)}")
        for name in ("horizon_days", "n_folds", "fold_step_days", "train_cutoffs", "cutoff_step_days"):
            if getattr(self, name) < 1:
                raise TrainingError(f"train.{name} must be >= 1 (got {getattr(self, name)})")
        if self.sample_customers < 0 or 0 < self.sample_customers < MIN_SAMPLE_CUSTOMERS:
            raise TrainingError(f"train.sample_customers must be 0 (every customer) or at least "
                                f"{MIN_SAMPLE_CUSTOMERS} (got {self.sample_customers}): too few customers leave "
                                "folds without churners or buyers")

    def sample_fraction(self, n_customers: int) -> float | None:
        """The share of customers the training frame reads (None: all of them)."""
        if not self.sample_customers or n_customers <= self.sample_customers:
            return None
        return self.sample_customers / n_customers


@dataclass(frozen=True)
class RunConfig:
    """Everything a training run is configured by; read from one TOML file."""

    train: TrainConfig = TrainConfig()
    scorer: ScorerConfig = ScorerConfig()
    tiers: dict[str, Any] | None = None
    # data conventions and windows (``[features]``); stored in the model, so batch and HTTP use them too
    features: FeatureConfig = FeatureConfig()

    def __post_init__(self) -> None:
        # one horizon: the scorer predicts over the horizon the labels were built for
        if self.scorer.horizon_days != self.train.horizon_days:
            object.__setattr__(self, "scorer", replace(self.scorer, horizon_days=self.train.horizon_days))

    @classmethod
    def load(cls, path: Path | str | None, *, horizon_days: int | None = None) -> RunConfig:
        raw: dict[str, Any] = {}
        if path is not None:
            try:
                raw = tomllib.loads(Path(path).read_text(encoding="utf-8"))
            except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
                raise TrainingError(f"config {path}: {exc}: fix the file (TOML, UTF-8)") from None
        unknown = set(raw) - {"train", "scorer", "tiers", "features"}
        if unknown:
            raise TrainingError(f"config {path}: unknown sections {sorted(unknown)}; use [train], [scorer], [tiers], "
                                "[features]")
        try:  # types first (key, rule, fix), then each dataclass's own rules
            train_raw = parse_section(TrainConfig, raw.get("train", {}), "train")
            if horizon_days is not None:
                train_raw["horizon_days"] = horizon_days
            train = TrainConfig(**train_raw)
            scorer = ScorerConfig.from_dict({**raw.get("scorer", {}), "horizon_days": train.horizon_days})
        except ConfigError as exc:
            raise TrainingError(f"config: {exc}") from None
        except (TypeError, ValueError) as exc:
            raise TrainingError(f"config [scorer]: {exc}") from None
        tiers = raw.get("tiers")
        if tiers is not None:  # checked now, not after the backtest, with the key, the rule and the fix
            from churnclv.models.tiers import parse_tier_config

            try:
                parse_tier_config(tiers)
            except ConfigError as exc:
                raise TrainingError(f"config [tiers]: {exc}") from None
        return cls(train=train, scorer=scorer, tiers=tiers, features=parse_features(raw.get("features", {})))

    def to_dict(self) -> dict[str, Any]:
        return {"train": asdict(self.train), "scorer": asdict(self.scorer), "tiers": self.tiers,
                "features": asdict(self.features)}

    def with_horizon(self, horizon_days: int) -> RunConfig:
        """The same configuration at another horizon (labels and predictions)."""
        return replace(self, train=replace(self.train, horizon_days=horizon_days),
                       scorer=replace(self.scorer, horizon_days=horizon_days))


def parse_features(raw: dict[str, Any]) -> FeatureConfig:
    """The ``[features]`` section: keys of :class:`churnclv.features.FeatureConfig`, e.g.
    ``zero_amount_is_purchase = true`` (count lines of amount 0 as purchases, as lifetimes does)."""
    try:
        return FeatureConfig(**parse_section(FeatureConfig, raw, "features"))
    except ConfigError as exc:
        raise TrainingError(f"config: {exc}") from None
    except (TypeError, ValueError) as exc:
        raise TrainingError(f"config [features]: {exc}") from None


@dataclass
class Fold:
    index: int
    eval_cutoff: pd.Timestamp
    train_cutoffs: list[pd.Timestamp]


@dataclass
class TrainResult:
    scorer: Scorer
    backtest: pd.DataFrame  # one row per (fold, candidate) with every metric
    summary: pd.DataFrame  # mean metrics per candidate
    selected: dict[str, str]
    snapshot_scores: pd.DataFrame  # every customer known at as-of, without reasons
    snapshot_features: pd.DataFrame  # features as of the training as-of (the tiers' population)
    folds: list[Fold]
    fold_predictions: dict[str, pd.DataFrame]  # last fold: labels + predictions per candidate
    timings: dict[str, float]
    plan: TrainingPlan | None = None
    # sub-fits that failed and were left out: {"stage", "fold", "candidate", "reason"}
    dropped: list[dict[str, Any]] = field(default_factory=list)
    readiness: Readiness | None = None  # what the data supported, checked before training
    run_id: str | None = None
    model_version: str | None = None
    promotion: dict[str, Any] | None = None


Progress = Callable[[str], None]


def _day(x: Any) -> pd.Timestamp:
    return pd.Timestamp(x).normalize()


def plan_folds(first_ts: pd.Timestamp, as_of: pd.Timestamp, config: TrainConfig) -> list[Fold]:
    """The backtest folds that fit in the history (latest first in time order of evaluation)."""
    H = pd.Timedelta(days=config.horizon_days)
    earliest = _day(first_ts) + pd.Timedelta(days=config.min_history_days)
    folds: list[Fold] = []
    for k in range(config.n_folds):
        e = _day(as_of) - H - pd.Timedelta(days=k * config.fold_step_days)
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
    H = pd.Timedelta(days=config.horizon_days)
    earliest = _day(first_ts) + pd.Timedelta(days=config.min_history_days)
    latest = _day(as_of) - H
    cutoffs = [latest - pd.Timedelta(days=j * config.cutoff_step_days) for j in range(config.train_cutoffs)]
    return sorted(c for c in cutoffs if c >= earliest)


@dataclass
class TrainingPlan:
    """What a training run can do with the history it has (see :func:`plan_training`)."""

    horizon_days: int
    backtest_horizon_days: int | None  # None: no backtest at all
    folds: list[Fold]
    final_cutoffs: list[pd.Timestamp]  # labelled cutoffs of the horizon for the learned models
    note: str | None = None  # why the run is not backtested at its horizon

    @property
    def backtested(self) -> bool:
        """Whether the models were compared on a backtest at the run's own horizon."""
        return self.backtest_horizon_days == self.horizon_days

    def to_dict(self) -> dict[str, Any]:
        return {"horizon_days": self.horizon_days, "backtest_horizon_days": self.backtest_horizon_days,
                "backtested": self.backtested, "folds": len(self.folds),
                "final_cutoffs": [str(c.date()) for c in self.final_cutoffs], "note": self.note}


def longest_backtest_horizon(first_ts: pd.Timestamp, as_of: pd.Timestamp, config: TrainConfig) -> int | None:
    """The longest horizon for which one backtest fold fits (None below MIN_BACKTEST_HORIZON_DAYS).

    A fold at horizon h needs a training cutoff ``as_of - 2h`` with ``min_history_days`` before it."""
    earliest = _day(first_ts) + pd.Timedelta(days=config.min_history_days)
    h = (_day(as_of) - earliest).days // 2
    return h if h >= MIN_BACKTEST_HORIZON_DAYS else None


def plan_training(first_ts: pd.Timestamp, as_of: pd.Timestamp, config: TrainConfig) -> TrainingPlan:
    """Decide what can be trained: never refuse what the history supports.

    - Backtest folds fit at the horizon: the usual run (backtest, select, refit).
    - They do not, but a labelled cutoff does: the models are chosen on a backtest at the longest
      horizon that fits (at least MIN_BACKTEST_HORIZON_DAYS), the learned models are trained on the
      labelled cutoffs of the real horizon; with no such backtest, BTYD is chosen for every target.
    - No label window of the horizon closes by as-of: BTYD (which needs no labels) for every target.
    Every run that is not backtested at its own horizon carries a note saying so.
    """
    H = config.horizon_days
    folds = plan_folds(first_ts, as_of, config)
    final = final_train_cutoffs(first_ts, as_of, config)
    if folds:
        return TrainingPlan(H, H, folds, final)
    history = (_day(as_of) - _day(first_ts)).days
    needs = f"a backtest at {H} days needs {config.min_history_days + 2 * H} days of history, the data have {history}"
    if not final:
        return TrainingPlan(H, None, [], [], (
            f"not backtested at {H} days ({needs}) and no {H}-day label window closes by as-of after "
            f"{config.min_history_days} days of history: BG/NBD + Gamma-Gamma (no labels needed) scores every target"))
    h_bt = longest_backtest_horizon(first_ts, as_of, config)
    if h_bt is None:
        return TrainingPlan(H, None, [], final, (
            f"not backtested ({needs}; no backtest of even {MIN_BACKTEST_HORIZON_DAYS} days fits): BG/NBD + "
            "Gamma-Gamma scores every target"))
    folds = plan_folds(first_ts, as_of, replace(config, horizon_days=h_bt))
    return TrainingPlan(H, h_bt, folds, final, (
        f"not backtested at {H} days ({needs}): models chosen on a {h_bt}-day backtest; learned models trained "
        f"on {len(final)} labelled cutoff(s) of {H} days"))


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
    return scorer.score(evaluation, reasons=False)


def _select(summary: pd.DataFrame, candidates: tuple[str, ...], eligible: list[str] | None = None) -> dict[str, str]:
    """Per target the best candidate (ties to the simpler); BTYD everywhere when none is eligible."""
    if eligible is None:
        eligible = [c for c in MODEL_CANDIDATES if c in candidates and c in summary.index]
    if not eligible:
        return dict.fromkeys(SELECTION, "btyd")
    selected = {}
    for target, (metric, sign) in SELECTION.items():
        # an undefined metric (e.g. AUC on a fold without churners) never wins
        values = summary.loc[eligible, metric].astype(float).fillna(-np.inf * sign)
        best = max(eligible, key=lambda c: (sign * values[c], -eligible.index(c)))
        # ties within 1e-9 go to the simpler model
        for c in eligible:
            if abs(values[c] - values[best]) <= 1e-9:
                best = c
                break
        selected[target] = best
    return selected


def run_backtest(clean: Path | str, as_of: Any, config: RunConfig, *, progress: Progress | None = None,
                 first_ts: pd.Timestamp | None = None, sample: float | None = None,
                 timings: dict[str, float] | None = None, folds: list[Fold] | None = None,
                 extra_cutoffs: list[pd.Timestamp] = (), dropped: list[dict[str, Any]] | None = None,
                 ) -> tuple[pd.DataFrame, list[Fold], dict[str, pd.DataFrame], pd.DataFrame]:
    """Evaluate every candidate on every fold. Returns (backtest rows, folds, last-fold predictions,
    the training frame of all cutoffs). ``first_ts`` (the first transaction) is read when not given;
    ``folds`` default to :func:`plan_folds` at the config's horizon; ``extra_cutoffs`` join the
    training frame (the final refit's); ``sample`` (a fraction of customers, see
    :func:`churnclv.features.sample_customers`) restricts the training frame to a fixed sample;
    ``timings`` receives the seconds of each step. A candidate that fails on a fold (no
    convergence, non-finite output, too few rows) is left out of that fold: its reason goes to
    ``dropped`` and the log, and the other candidates go on."""
    timings = {} if timings is None else timings
    dropped = [] if dropped is None else dropped
    say = progress or (lambda _m: None)
    tc = config.train
    as_of = _day(as_of)
    first_ts = _first_ts(clean) if first_ts is None else first_ts
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
    frame = _training_frame(clean, as_of, config, cutoffs, sample)
    timings["training_frame_s"] = time.perf_counter() - started
    models_started = time.perf_counter()
    rows, last_preds = [], {}
    for fold in folds:
        train = frame[frame["cutoff"].isin(fold.train_cutoffs)].reset_index(drop=True)
        evaluation = frame[frame["cutoff"] == fold.eval_cutoff].reset_index(drop=True)
        for name in tc.candidates:
            say(f"fold {fold.index}/{len(folds)}: {name}")
            started = time.perf_counter()
            try:
                pred = evaluate_candidate(name, train, evaluation, config.scorer)
            except FIT_ERRORS as exc:
                reason = f"{type(exc).__name__}: {exc}"
                dropped.append({"stage": "backtest", "fold": fold.index, "candidate": name, "reason": reason})
                log.warning("fold %d: %s dropped: %s", fold.index, name, reason)
                say(f"fold {fold.index}/{len(folds)}: {name} dropped ({reason})")
                continue
            metrics = all_metrics(evaluation, pred)
            rows.append({"fold": fold.index, "eval_cutoff": fold.eval_cutoff.date(), "candidate": name,
                         "n_train": len(train), "n_eval": len(evaluation),
                         "seconds": round(time.perf_counter() - started, 2), **metrics})
            if fold is folds[-1]:
                last_preds[name] = pd.concat(
                    [evaluation[["customer_id", "churned", "purchases", "spend"]], pred.drop(columns="customer_id", errors="ignore")],
                    axis=1)
    timings["backtest_models_s"] = time.perf_counter() - models_started
    return pd.DataFrame(rows), folds, last_preds, frame


def _training_frame(clean: Path | str, as_of: pd.Timestamp, config: RunConfig, cutoffs: list[pd.Timestamp],
                    sample: float | None) -> pd.DataFrame:
    """Features and labels at ``cutoffs`` (the config's horizon), with floats the models read."""
    if not cutoffs:
        return pd.DataFrame({c: pd.Series(dtype="object" if c == "customer_id" else "float64")
                             for c in LABEL_FRAME_COLUMNS}).assign(cutoff=pd.Series(dtype="datetime64[ns]"))
    frame = compute_training_frame(clean, as_of, config.train.horizon_days, cutoffs=[c.date() for c in cutoffs],
                                   sample=sample, memory_limit=config.train.memory_limit, config=config.features)
    frame["cutoff"] = pd.to_datetime(frame["cutoff"])
    return stable_floats(frame)  # labels too: realized spend ties decide the Spearman ranks


def summarize_backtest(backtest: pd.DataFrame, folds: list[Fold], candidates: tuple[str, ...]
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


def _first_ts(clean: Path | str) -> pd.Timestamp:
    from churnclv.features import connect, load_tables

    con = connect()
    tx = load_tables(clean, con).transactions
    return pd.Timestamp(con.to_pyarrow(tx.ts.min()).as_py())


def train(clean: Path | str, as_of: Any, config: RunConfig | None = None, *, progress: Progress | None = None
          ) -> TrainResult:
    """Backtest, select, refit on the latest closed cutoffs and fit the tier policy (no MLflow).

    What the history does not support is not refused (see :func:`plan_training`); a sub-fit that
    fails is dropped with its reason (``TrainResult.dropped``); the final refit falls back
    hybrid -> gbm -> btyd per target. Training stops only when BTYD itself cannot be fitted.
    """
    config = config or RunConfig()
    say = progress or (lambda _m: None)
    as_of = _day(as_of)
    t0 = time.perf_counter()
    tc = config.train
    readiness = assess(clean, as_of.date(), tc.horizon_days, min_history_days=tc.min_history_days,
                       memory_limit=tc.memory_limit, config=config.features)
    if readiness.errors:  # told up front, before any long step
        raise TrainingError(f"the data as of {as_of:%Y-%m-%d} cannot train any model: {readiness.errors[0]}")
    for warning in readiness.warnings:  # the full report: churnclv validate, and readiness.json in MLflow
        log.info("readiness: %s", warning)
    first_ts = _first_ts(clean)
    plan = plan_training(first_ts, as_of, tc)
    if plan.note:
        log.warning("%s", plan.note)
        say(plan.note)
    n_customers = count_customers(clean, as_of.date(), memory_limit=tc.memory_limit)
    sample = tc.sample_fraction(n_customers)
    if sample is not None:
        say(f"backtest and LightGBM fits on a fixed sample of ~{tc.sample_customers:,} of "
            f"{n_customers:,} customers (train.sample_customers)")
    timings: dict[str, float] = {}
    dropped: list[dict[str, Any]] = []
    frame = None
    backtest, last_preds = pd.DataFrame(), {}
    if plan.folds:
        bt_config = config if plan.backtested else config.with_horizon(plan.backtest_horizon_days)
        backtest, _, last_preds, frame = run_backtest(
            clean, as_of, bt_config, progress=progress, first_ts=first_ts, sample=sample, timings=timings,
            folds=plan.folds, extra_cutoffs=plan.final_cutoffs if plan.backtested else [], dropped=dropped)
    timings["backtest_s"] = time.perf_counter() - t0
    summary, eligible = summarize_backtest(backtest, plan.folds, tc.candidates)
    if plan.folds and not eligible:
        say("no model candidate was scored on every fold: BTYD is chosen for every target")
    if not plan.final_cutoffs:
        eligible = []  # the learned models need a labelled cutoff of the horizon
    selected = _select(summary, tc.candidates, eligible)
    say(f"selected: {selected}; refitting on cutoffs closed by {as_of:%Y-%m-%d}")
    if frame is None or not plan.backtested:
        frame = _training_frame(clean, as_of, config, plan.final_cutoffs if any(
            m != "btyd" for m in selected.values()) else [], sample)
    train_rows = frame[frame["cutoff"].isin(plan.final_cutoffs)].reset_index(drop=True)
    sampled_customers = int(frame["customer_id"].nunique())
    del frame  # the backtest's frame: the final fit needs only its latest cutoffs
    t1 = time.perf_counter()
    snapshot = compute_features(clean, as_of.date(), memory_limit=tc.memory_limit, config=config.features)
    timings["snapshot_features_s"] = time.perf_counter() - t1
    t1 = time.perf_counter()
    scorer, selected = _final_fit(config, selected, train_rows, snapshot, as_of, dropped, say)
    timings["final_fit_s"] = time.perf_counter() - t1
    scorer.metadata_.update({
        "training_sample": {"customers": n_customers, "fraction": sample,
                            "sampled_customers": sampled_customers},
        "selected": selected,
        "backtest_means": {c: {m: float(summary.loc[c, m]) for m in KEY_METRICS} for c in summary.index},
        "backtest": plan.to_dict(),
        "dropped": dropped,
        "features": asdict(config.features),
    })
    say(f"scoring the {len(snapshot):,} customers known at {as_of:%Y-%m-%d}")
    t1 = time.perf_counter()
    # no reasons: the reports read tiers and values only (the reasons of 1M customers cost ~20 s);
    # result.scorer.score(result.snapshot_features) gives them
    scores = scorer.score(snapshot, reasons=False)
    timings["snapshot_scores_s"] = time.perf_counter() - t1
    timings["total_s"] = time.perf_counter() - t0
    return TrainResult(
        scorer=scorer, backtest=backtest, summary=summary, selected=selected, snapshot_scores=scores,
        snapshot_features=snapshot, folds=plan.folds, fold_predictions=last_preds, timings=timings, plan=plan,
        dropped=dropped, readiness=readiness,
    )


def _final_fit(config: RunConfig, selected: dict[str, str], train_rows: pd.DataFrame, snapshot: pd.DataFrame,
               as_of: pd.Timestamp, dropped: list[dict[str, Any]], say: Progress) -> tuple[Scorer, dict[str, str]]:
    """Fit the selected models; when that fails, step every learned target down REFIT_FALLBACK
    (hybrid -> gbm -> btyd) and retry, logging why. Raises TrainingError when BTYD itself fails."""
    choice = dict(selected)
    while True:
        scorer_cfg = replace(config.scorer, churn_model=choice["churn"], purchases_model=choice["purchases"],
                             spend_model=choice["spend"])
        try:
            return Scorer(config=scorer_cfg, tiers=config.tiers).fit(train_rows, snapshot, as_of=as_of), choice
        except FIT_ERRORS as exc:
            reason = f"{type(exc).__name__}: {exc}"
            if all(m == "btyd" for m in choice.values()):
                raise TrainingError(
                    f"no model can be fitted on the {len(snapshot):,} customers known at {as_of:%Y-%m-%d}: BG/NBD "
                    f"failed ({reason}); it needs customers with repeat purchases on different days before "
                    "as-of: use a later as-of or more history (churnclv validate shows what the data support)"
                ) from None
            fallback = {t: REFIT_FALLBACK.get(m, m) for t, m in choice.items()}
            dropped.append({"stage": "final", "fold": None, "candidate": json.dumps(choice, sort_keys=True),
                            "reason": f"{reason}; fell back to {json.dumps(fallback, sort_keys=True)}"})
            log.warning("final fit of %s failed (%s); falling back to %s", choice, reason, fallback)
            say(f"final fit of {choice} failed ({reason}); falling back to {fallback}")
            choice = fallback


# --------------------------------------------------------------------------- reporting


def format_summary(result: TrainResult) -> str:
    """The backtest summary as a fixed-width table (mean over folds), marking the selected models."""
    cols = ["churn_auc", "churn_pr_auc", "churn_brier", "churn_ece", "purchases_mae", "spend_gini",
            "spend_spearman", "spend_top_decile_capture", "spend_agg_pct_error"]
    short = {"churn_auc": "AUC", "churn_pr_auc": "PR-AUC", "churn_brier": "Brier", "churn_ece": "ECE",
             "purchases_mae": "purch MAE", "spend_gini": "Gini", "spend_spearman": "Spearman",
             "spend_top_decile_capture": "top10%", "spend_agg_pct_error": "agg err %"}
    header = f"{'candidate':<10}" + "".join(f"{short[c]:>11}" for c in cols) + "  selected for"
    lines = [header, "-" * len(header)]
    if result.summary.empty:
        lines.append(f"(no backtest) selected: {result.selected}")
    for cand, row in result.summary.iterrows():
        chosen = ",".join(t for t, c in result.selected.items() if c == cand)
        lines.append(f"{cand:<10}" + "".join(f"{row[c]:>11.4f}" for c in cols) + f"  {chosen}")
    return "\n".join(lines)


def format_notes(result: TrainResult) -> list[str]:
    """One line each: the run's backtest status and every sub-fit left out, with its reason."""
    lines = []
    if result.plan is not None and result.plan.note:
        lines.append(result.plan.note)
    for d in result.dropped:
        where = f"fold {d['fold']}: " if d.get("fold") is not None else f"{d['stage']}: "
        lines.append(f"dropped {where}{d['candidate']}: {d['reason']}")
    lines += [f"note: {n}" for n in result.scorer.metadata_.get("fit_notes", [])]
    return lines


def write_artifacts(result: TrainResult, out: Path) -> dict[str, Path]:
    """Plots (calibration, gain, importance, tier mix) and tables of a run, into ``out``."""
    from churnclv import plotting

    out.mkdir(parents=True, exist_ok=True)
    paths: dict[str, Path] = {}
    preds = result.fold_predictions
    chosen = [c for c in preds if c in set(result.selected.values())]
    shown = list(dict.fromkeys(chosen + [c for c in ("btyd", "recency") if c in preds]))
    if shown:  # a run without a backtest has no held-out predictions to plot
        paths["calibration"] = plotting.save(plotting.plot_calibration(
            {c: (preds[c]["churned"].to_numpy(), preds[c]["p_churn"].to_numpy()) for c in shown}),
            out / "calibration.png")
        paths["gain_churn"] = plotting.save(plotting.plot_gain(
            {c: (preds[c]["churned"].to_numpy(), preds[c]["p_churn"].to_numpy()) for c in shown}),
            out / "gain_churn.png")
        paths["gain_spend"] = plotting.save(plotting.plot_gain(
            {c: (preds[c]["spend"].clip(lower=0).to_numpy(), preds[c]["expected_spend"].to_numpy()) for c in shown}),
            out / "gain_spend.png")
    importance = result.scorer.feature_importance("churn")
    if importance:
        paths["importance"] = plotting.save(plotting.plot_importance(importance), out / "feature_importance.png")
    # realized revenue per tier next to predicted CLV: the snapshot's net spend of the last 365 days
    past = result.snapshot_features.set_index("customer_id")["net_spend_365d"]
    scores = result.snapshot_scores.assign(net_spend_365d=result.snapshot_scores["customer_id"].map(past).to_numpy())
    report = tier_report(scores, tiers=list(result.scorer.tiers_.tier_names), spend_col="net_spend_365d")
    paths["tier_mix"] = plotting.save(plot_tier_mix(report.summary), out / "tier_mix.png")
    report.summary.to_csv(out / "tier_summary.csv", index=False)
    paths["tier_summary"] = out / "tier_summary.csv"
    result.backtest.to_csv(out / "backtest.csv", index=False)
    paths["backtest"] = out / "backtest.csv"
    result.summary.to_csv(out / "backtest_summary.csv")
    paths["backtest_summary"] = out / "backtest_summary.csv"
    return paths


# --------------------------------------------------------------------------- MLflow


def train_and_log(
    clean: Path | str,
    as_of: Any,
    config: RunConfig | None = None,
    *,
    tracking_uri: str | None = None,
    promote: bool = True,
    progress: Progress | None = None,
    data_fingerprint: dict[str, Any] | None = None,
) -> TrainResult:
    """:func:`train`, then log everything to MLflow, register the model and move ``challenger``
    to it; with ``promote``, run the promotion check (see :mod:`churnclv.training.registry`)."""
    import mlflow
    from mlflow.models import infer_signature

    from churnclv.training import registry, tracking

    config = config or RunConfig()
    say = progress or (lambda _m: None)
    tracking.configure(tracking_uri)
    as_of = _day(as_of)
    with mlflow.start_run(run_name=f"train as of {as_of:%Y-%m-%d}") as run:
        mlflow.set_tags({"churnclv.as_of": str(as_of.date()), "churnclv.horizon_days": config.train.horizon_days,
                         "mlflow.source.git.commit": tracking.code_version(), "churnclv.code_version": tracking.code_version()})
        mlflow.log_params(_flat_params(config.to_dict()))
        mlflow.log_param("as_of", str(as_of.date()))
        result = train(clean, as_of, config, progress=progress)
        result.run_id = run.info.run_id
        say("logging to MLflow")
        t_log = time.perf_counter()
        sample = result.scorer.metadata_["training_sample"]
        mlflow.log_params({"data.customers": sample["customers"], "train.sample_fraction": sample["fraction"],
                           "train.sampled_customers": sample["sampled_customers"]})
        fingerprint = data_fingerprint or clean_fingerprint(clean, config.train.memory_limit)
        mlflow.log_dict(fingerprint, "data_fingerprint.json")
        for table, fp in fingerprint.items():
            mlflow.log_param(f"data.{table}.rows", fp.get("rows"))
            mlflow.log_param(f"data.{table}.sha256", fp.get("sha256_16"))
        for _, row in result.backtest.iterrows():
            for metric in [c for c in row.index if c.startswith(("churn_", "purchases_", "spend_"))]:
                if np.isfinite(row[metric]):
                    mlflow.log_metric(f"{row['candidate']}.{metric}", float(row[metric]), step=int(row["fold"]))
        for cand, row in result.summary.iterrows():
            for metric, value in row.items():
                if np.isfinite(value):
                    mlflow.log_metric(f"mean.{cand}.{metric}", float(value))
        selected_metrics = selected_means(result)
        mlflow.log_metrics(selected_metrics)
        mlflow.log_dict(result.selected, "selected.json")
        plan = result.plan.to_dict() if result.plan is not None else {}
        if result.readiness is not None:
            mlflow.log_dict(result.readiness.to_dict(), "readiness.json")
        mlflow.log_dict({"plan": plan, "dropped": result.dropped,
                         "fit_notes": result.scorer.metadata_.get("fit_notes", [])}, "training_notes.json")
        mlflow.set_tags({"churnclv.backtested": str(plan.get("backtested", True)).lower(),
                         "churnclv.backtest_horizon_days": str(plan.get("backtest_horizon_days")),
                         "churnclv.dropped_subfits": str(len(result.dropped))})
        if plan.get("note"):
            mlflow.set_tag("churnclv.backtest_note", plan["note"][:5000])
        mlflow.log_metrics({f"timing.{k}": v for k, v in result.timings.items()})
        with tempfile.TemporaryDirectory() as tmp:
            art = write_artifacts(result, Path(tmp) / "report")
            for p in art.values():
                mlflow.log_artifact(str(p), artifact_path="report")
            scorer_dir = result.scorer.save(Path(tmp) / "scorer")
            example = model_input(result.snapshot_features.head(20))
            out = result.scorer.score(example)
            out["reasons"] = out["reasons"].map("; ".join)
            with warnings.catch_warnings():
                # integer outputs (tier_level) are never missing; MLflow's hint about them is noise here
                warnings.filterwarnings("ignore", message="Hint: Inferred schema contains integer")
                signature = infer_signature(example, out, params={"reasons": True})
            say("registering the model")
            info = mlflow.pyfunc.log_model(
                name="model",
                python_model=str(Path(__file__).with_name("model_code.py")),
                artifacts={"scorer": str(scorer_dir)},
                signature=signature,
                input_example=example.head(3),
                registered_model_name=registry.MODEL_NAME,
                pip_requirements=_requirements(),
            )
        version = str(info.registered_model_version)
        result.model_version = version
        registry.tag_version(version, as_of=str(as_of.date()), horizon_days=config.train.horizon_days,
                             run_id=run.info.run_id, selected=result.selected, metrics=selected_metrics,
                             backtested=result.plan is None or result.plan.backtested)
        registry.set_alias("challenger", version)
        if promote:
            decision = registry.promote(tolerance=config.train.promote_tolerance)
            result.promotion = decision.to_dict()  # promote() logged it in this run
        result.timings["log_and_register_s"] = time.perf_counter() - t_log
        mlflow.log_metric("timing.log_and_register_s", result.timings["log_and_register_s"])
    return result


def selected_means(result: TrainResult) -> dict[str, float]:
    """The backtest means of the selected model per target: what promotion compares. Empty when the
    run is not backtested at its own horizon (means at another horizon do not compare)."""
    out: dict[str, float] = {}
    if result.plan is not None and not result.plan.backtested:
        return out
    for target, cand in result.selected.items():
        if cand not in result.summary.index:
            continue
        prefix = {"churn": "churn_", "purchases": "purchases_", "spend": "spend_"}[target]
        for metric, value in result.summary.loc[cand].items():
            if metric.startswith(prefix) and np.isfinite(value):
                out[f"selected.{metric}"] = float(value)
    return out


def _requirements() -> list[str]:
    from importlib.metadata import version

    pkgs = ["pandas", "numpy", "lightgbm", "lifetimes", "scikit-learn", "scipy", "ibis-framework", "duckdb", "pyarrow"]
    return [f"{p}=={version(p)}" for p in pkgs] + ["churnclv"]


def clean_fingerprint(clean: Path | str, memory_limit: str | None = None) -> dict[str, Any]:
    """The data fingerprint of a clean folder (see :func:`churnclv.training.tracking.clean_fingerprint`)."""
    from churnclv.training.tracking import clean_fingerprint as fingerprint

    return fingerprint(clean, memory_limit=memory_limit)


def _flat_params(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(_flat_params(v, key + "."))
        else:
            out[key] = json.dumps(v) if isinstance(v, (list, tuple)) else v
    return out
