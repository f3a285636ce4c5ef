"""What a training run is configured by: the ``[train]``, ``[scorer]``, ``[tiers]`` and ``[features]``
sections of one TOML file, the candidate names and the error training raises."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from churnclv.config import ConfigError
from churnclv.config_schema import parse_section, read_run_config
from churnclv.features import FeatureConfig
from churnclv.features.config import parse_features as features_section
from churnclv.models.scorer_config import ScorerConfig

MODEL_CANDIDATES = ("btyd", "gbm", "hybrid")  # what the scorer can hold
BASELINES = ("recency", "rfm")
ALL_CANDIDATES = (*BASELINES, "btyd", "pareto", "gbm", "hybrid")
MIN_SAMPLE_CUSTOMERS = 100
LABEL_FRAME_COLUMNS = ("customer_id", "cutoff", "churned", "purchases", "spend")
KEY_METRICS = ("churn_auc", "churn_brier", "churn_ece", "purchases_mae", "spend_gini", "spend_top_decile_capture")

Progress = Callable[[str], None]  # receives one line per step of a run


class TrainingError(ValueError):
    """Training cannot run as asked (e.g. no backtest fold fits in the history)."""


def _default_tolerance() -> dict[str, float]:
    # imported here: the promotion rule reads the MLflow registry, a config need not import MLflow
    from churnclv.training.promotion import DEFAULT_TOLERANCE

    return dict(DEFAULT_TOLERANCE)


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
    promote_tolerance: dict[str, float] = field(default_factory=_default_tolerance)
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
            raise TrainingError(
                f"train.promote_tolerance: unknown metrics {unknown}; choose from {sorted(METRIC_DIRECTION)}"
            )
        for name in ("horizon_days", "n_folds", "fold_step_days", "train_cutoffs", "cutoff_step_days"):
            if getattr(self, name) < 1:
                raise TrainingError(f"train.{name} must be >= 1 (got {getattr(self, name)})")
        if self.sample_customers < 0 or 0 < self.sample_customers < MIN_SAMPLE_CUSTOMERS:
            raise TrainingError(
                f"train.sample_customers must be 0 (every customer) or at least "
                f"{MIN_SAMPLE_CUSTOMERS} (got {self.sample_customers}): too few customers leave "
                "folds without churners or buyers"
            )

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
        try:
            raw = read_run_config(path)
        except ConfigError as exc:
            raise TrainingError(str(exc)) from None
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
            from churnclv.models.tier_config import parse_tier_config

            try:
                parse_tier_config(tiers)
            except ConfigError as exc:
                raise TrainingError(f"config [tiers]: {exc}") from None
        return cls(train=train, scorer=scorer, tiers=tiers, features=parse_features(raw.get("features", {})))

    def to_dict(self) -> dict[str, Any]:
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


def parse_features(raw: dict[str, Any]) -> FeatureConfig:
    """The ``[features]`` section (see :func:`churnclv.config_schema.parse_features`)."""
    try:
        return features_section(raw)
    except ConfigError as exc:
        raise TrainingError(str(exc)) from None
