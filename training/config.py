"""What a training run is configured by: the ``[train]``, ``[scorer]``, ``[tiers]`` and ``[features]``
sections of one TOML file, the candidate names and the error training raises."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, field, replace
from pathlib import Path
from typing import Annotated, Any

from pydantic import AfterValidator, Field

from churnclv.config import ConfigError
from churnclv.config_schema import Array, Fix, Source, check_table, read_run_config, rule_error, section, settings
from churnclv.errors import ChurnclvError
from churnclv.features import FeatureConfig
from churnclv.features.config import parse_features
from churnclv.models.scorer_config import ScorerConfig
from churnclv.models.tier_config import parse_tier_config
from churnclv.names import MODEL_NAME, MODEL_NAME_PATTERN

MODEL_CANDIDATES = ("btyd", "gbm", "hybrid")  # what the scorer can hold
BASELINES = ("recency", "rfm")
ALL_CANDIDATES = (*BASELINES, "btyd", "pareto", "gbm", "hybrid")
MIN_SAMPLE_CUSTOMERS = 100
LABEL_FRAME_COLUMNS = ("customer_id", "cutoff", "churned", "purchases", "spend")
KEY_METRICS = ("churn_auc", "churn_brier", "churn_ece", "purchases_mae", "spend_gini", "spend_top_decile_capture")

Progress = Callable[[str], None]  # receives one line per step of a run


class TrainingError(ChurnclvError, ValueError):
    """Training cannot run as asked: a bad configuration, or e.g. no backtest fold fits in the history."""


def _default_tolerance() -> dict[str, float]:
    # imported here: the promotion rule reads the MLflow registry, a config need not import MLflow
    from churnclv.training.promotion_tolerance import DEFAULT_TOLERANCE

    return dict(DEFAULT_TOLERANCE)


def _known_candidates(names: tuple[str, ...]) -> tuple[str, ...]:
    bad = [c for c in names if c not in ALL_CANDIDATES]
    if bad:
        raise rule_error(f"names unknown candidates {bad}", f"choose from {list(ALL_CANDIDATES)}", got=names)
    if not any(c in MODEL_CANDIDATES for c in names):
        raise rule_error(f"must include one of {list(MODEL_CANDIDATES)}", "add one of them", got=names)
    return names


def _known_metrics(tolerance: dict[str, float]) -> dict[str, float]:
    # imported here, as above: the metric names live with the MLflow store
    from churnclv.training.tracking import METRIC_DIRECTION

    unknown = sorted(set(tolerance) - set(METRIC_DIRECTION))
    if unknown:
        raise rule_error(f"names unknown metrics {unknown}", f"choose from {sorted(METRIC_DIRECTION)}")
    return tolerance


# customers per chunk of an out-of-core training snapshot: a chunk's features, model input and
# outputs take ~0.6 GB at this size, whatever the base
SNAPSHOT_CHUNK_ROWS = 250_000


def _sample_size(n: int) -> int:
    if n < 0 or 0 < n < MIN_SAMPLE_CUSTOMERS:
        raise rule_error(
            f"must be 0 (every customer) or at least {MIN_SAMPLE_CUSTOMERS}",
            "e.g. sample_customers = 50000; fewer customers leave folds without churners or buyers",
            got=n,
        )
    return n


Count = Annotated[int, Field(ge=1)]


@settings("train", error=TrainingError)
class TrainConfig:
    """Backtest, selection and promotion settings (TOML section ``[train]``)."""

    horizon_days: Count = 90
    n_folds: Count = 3
    fold_step_days: Count = 30
    train_cutoffs: Count = 12  # a year of monthly cutoffs: every season in the training labels
    cutoff_step_days: Count = 30
    min_history_days: int = 60  # a cutoff needs this much data before it
    # with fewer labelled cutoffs of the horizon than this (and no backtest at it), the learned models
    # train on the labels of the backtest's shorter horizon, carried to the horizon by BTYD
    min_label_cutoffs: Count = 3
    # the backtest and the LightGBM fits read a fixed hash sample of about this many customers
    # (0: everyone); BTYD, the tier policy and the snapshot scores always use the whole base
    sample_customers: Annotated[int, AfterValidator(_sample_size)] = 50_000
    # the backtest's candidates train on a fixed hash sample of about this many customers of the
    # base (0: every customer of the training frame) and are scored on every customer of the frame:
    # the backtest only chooses; the final fit reads the whole frame. On 2 cores at 1M customers this
    # halves the backtest (18 LightGBM fits); bases of at most this many customers are unaffected
    backtest_customers: Annotated[int, AfterValidator(_sample_size)] = 25_000
    # the as-of snapshot (every customer's features: BTYD, the level factors, the tier policy and the
    # training's scores read it) is held in memory up to this many customers; above, it is written
    # out of core and read in chunks of SNAPSHOT_CHUNK_ROWS (0: always held whole). The fitted scorer
    # is the same either way (tested); at 1M customers the whole snapshot takes ~0.5 GB
    snapshot_in_memory: Annotated[int, Field(ge=0)] = 1_000_000
    candidates: Annotated[Array[str], AfterValidator(_known_candidates)] = ("recency", "rfm", "btyd", "gbm", "hybrid")
    # promotion: the largest loss per metric the challenger may show against the champion
    promote_tolerance: Annotated[dict[str, float], AfterValidator(_known_metrics)] = field(
        default_factory=_default_tolerance
    )
    memory_limit: str | None = None
    # backtest fits run side by side, LightGBM on one thread each (0: one per core this process may use;
    # 1: one at a time, LightGBM on every core). The same boosters either way; at 1M customers on 2
    # cores the backtest takes ~25 % less time
    backtest_workers: Annotated[int, Field(ge=0, le=256)] = 0
    # the registered model of this data set: its versions, aliases and promotions (``--model-name`` wins)
    model_name: Annotated[
        str, Field(pattern=MODEL_NAME_PATTERN), Fix("letters, digits, '_', '.' and '-', e.g. 'churnclv-cdnow'")
    ] = MODEL_NAME

    def snapshot_chunk_rows(self, n_customers: int) -> int | None:
        """Customers per chunk of an out-of-core snapshot (None: the snapshot is held whole)."""
        if not self.snapshot_in_memory or n_customers <= self.snapshot_in_memory:
            return None
        return min(self.snapshot_in_memory, SNAPSHOT_CHUNK_ROWS)

    def sample_fraction(self, n_customers: int) -> float | None:
        """The share of customers the training frame reads (None: all of them)."""
        if not self.sample_customers or n_customers <= self.sample_customers:
            return None
        return self.sample_customers / n_customers

    def backtest_fraction(self, n_customers: int) -> float | None:
        """The share of customers the backtest's candidates train on (None: all of the training frame's)."""
        frame = self.sample_fraction(n_customers) or 1.0
        if not self.backtest_customers or n_customers * frame <= self.backtest_customers:
            return None
        return self.backtest_customers / n_customers


@settings(Source(label="RunConfig.{key}"), error=TrainingError)
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
    def load(
        cls, path: Path | str | None, *, horizon_days: int | None = None, model_name: str | None = None
    ) -> RunConfig:
        """The sections of the TOML file at ``path`` (None: the defaults), each checked now, not after
        the backtest; a bad one is a :class:`TrainingError` naming the key, the rule and the fix.
        ``horizon_days`` and ``model_name`` (the command line's) win over ``[train]``."""
        try:
            raw = read_run_config(path)
        except ConfigError as exc:
            raise TrainingError(str(exc)) from None
        try:
            train_raw = check_table(raw.get("train", {}), section("train"))
            if horizon_days is not None:
                train_raw = {**train_raw, "horizon_days": horizon_days}
            if model_name is not None:
                train_raw = {**train_raw, "model_name": model_name}
            train = TrainConfig(**train_raw)
            scorer_raw = check_table(raw.get("scorer", {}), section("scorer"))
            scorer = ScorerConfig.from_dict({**scorer_raw, "horizon_days": train.horizon_days})
        except (ConfigError, TrainingError) as exc:
            raise TrainingError(f"config: {exc}") from None
        try:
            features = parse_features(raw.get("features", {}))  # its message starts "config: "
        except ConfigError as exc:
            raise TrainingError(str(exc)) from None
        tiers = raw.get("tiers")
        if tiers is not None:
            try:
                parse_tier_config(tiers)
            except ConfigError as exc:
                raise TrainingError(f"config [tiers]: {exc}") from None
        return cls(train=train, scorer=scorer, tiers=tiers, features=features)

    def to_dict(self) -> dict[str, Any]:
        """Every section as plain data (what a run logs)."""
        return {
            "train": asdict(self.train),
            "scorer": asdict(self.scorer),
            "tiers": self.tiers,
            "features": asdict(self.features),
        }

    def with_horizon(self, horizon_days: int) -> RunConfig:
        """The same configuration at another horizon (labels and predictions)."""
        return replace(
            self,
            train=replace(self.train, horizon_days=horizon_days),
            scorer=replace(self.scorer, horizon_days=horizon_days),
        )
