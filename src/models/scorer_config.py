"""The scorer's settings: which model predicts each quantity, the horizon, the CLV discounting and
the LightGBM hyperparameters (the ``[scorer]`` section of a training configuration file)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from churnclv.models.btyd import MODELS as BTYD_MODELS

__all__ = ["MAX_CLV_MONTHS", "SOURCES", "ScorerConfig"]

SOURCES = ("btyd", "gbm", "hybrid")
MAX_CLV_MONTHS = 600  # 50 years: past this the discounted sum no longer moves


@dataclass(frozen=True)
class ScorerConfig:
    """What the scorer predicts and with which model.

    ``churn_model``, ``purchases_model`` and ``spend_model`` each choose ``btyd`` (BTYD closed
    forms), ``gbm`` (LightGBM on the features) or ``hybrid`` (LightGBM on the features plus the BTYD
    outputs).
    """

    horizon_days: int = 90
    clv_months: int = 12
    annual_discount_rate: float = 0.10
    churn_model: str = "hybrid"
    purchases_model: str = "hybrid"
    spend_model: str = "hybrid"
    btyd_model: str = "bgnbd"
    btyd_penalizer: float = 0.0
    # 0.1 / 300 rounds: the same backtest metrics as 0.05 / 600 (churn AUC 0.9431 vs 0.9433 on 1M
    # rows of a 1M-customer world) in a third of the time
    gbm_rounds: int = 300
    gbm_learning_rate: float = 0.1
    gbm_num_leaves: int = 31
    # depth 6 kept the churn AUC (0.9581 vs 0.9582 unbounded on a 20k-customer world) and made the
    # TreeSHAP reasons 3x faster (2,050 vs 690 rows/s on one core): their cost grows with depth^2
    gbm_max_depth: int = 6
    calibration: str = "platt"  # monotone: keeps the booster's ranking, no ties at p = 1
    top_reasons: int = 3
    seed: int = 0
    train_threads: int = 0  # 0: automatic (one thread for small training sets, all cores for large)
    # retrain the purchases and spend models on every row after early stopping picked their rounds
    # (off: they keep the booster trained on 90 % of the customers; same metrics, half the time)
    gbm_refit_full: bool = False

    def __post_init__(self) -> None:
        for name in ("churn_model", "purchases_model", "spend_model"):
            if getattr(self, name) not in SOURCES:
                raise ValueError(f"ScorerConfig.{name}={getattr(self, name)!r}: use one of {list(SOURCES)}")
        if self.horizon_days <= 0:
            raise ValueError(f"ScorerConfig.horizon_days={self.horizon_days}: must be a positive number of days")
        if not -1 < self.annual_discount_rate <= 10:
            raise ValueError("ScorerConfig.annual_discount_rate must be in (-1, 10] (0.10 for 10% a year)")
        # bounded: a CLV over 1e9 months is a typo that would run for hours (it walks month by month)
        ranges = {
            "clv_months": (0, MAX_CLV_MONTHS),
            "gbm_rounds": (1, 100_000),
            "gbm_num_leaves": (2, 131_072),
            "gbm_max_depth": (-1, 64),
            "top_reasons": (0, 20),
            "train_threads": (0, 1024),
            "horizon_days": (1, 3660),
            "seed": (0, 2**31 - 1),
        }
        for name, (low, high) in ranges.items():
            if not low <= getattr(self, name) <= high:
                raise ValueError(f"ScorerConfig.{name}={getattr(self, name)!r}: must be between {low} and {high}")
        if self.btyd_model not in BTYD_MODELS:
            raise ValueError(f"ScorerConfig.btyd_model={self.btyd_model!r}: use one of {list(BTYD_MODELS)}")
        if self.calibration not in ("platt", "isotonic"):
            raise ValueError(f"ScorerConfig.calibration={self.calibration!r}: use 'platt' or 'isotonic'")
        if not 0 < self.gbm_learning_rate <= 1:
            raise ValueError(f"ScorerConfig.gbm_learning_rate={self.gbm_learning_rate!r}: must be in (0, 1], e.g. 0.1")
        if self.btyd_penalizer < 0 or not np.isfinite(self.btyd_penalizer):
            raise ValueError(f"ScorerConfig.btyd_penalizer={self.btyd_penalizer!r}: must be a finite number >= 0")

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ScorerConfig:
        """From a ``[scorer]`` section or a saved scorer: unknown keys and wrong types are refused
        (:class:`~churnclv.config.ConfigError`, naming the key, the rule and the fix)."""
        from churnclv.config_schema import parse_section

        return cls(**parse_section(cls, data, "scorer"))

    def uses_gbm(self) -> bool:
        return any(m != "btyd" for m in (self.churn_model, self.purchases_model, self.spend_model))
