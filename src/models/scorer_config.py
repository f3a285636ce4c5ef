"""The scorer's settings: which model predicts each quantity, the horizon, the CLV discounting and
the LightGBM hyperparameters (the ``[scorer]`` section of a training configuration file)."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Field, model_validator

from churnclv.config_schema import Fix, check_table, one_of, rule_error, section, settings
from churnclv.models.btyd import MODELS as BTYD_MODELS

__all__ = ["MAX_CLV_MONTHS", "ORDER_VALUES", "SOURCES", "TOTALS_LEVELS", "ScorerConfig"]

SOURCES = ("btyd", "gbm", "hybrid")
TOTALS_LEVELS = ("auto", "btyd", "learned")  # what sets the learned purchases' and spend's level
ORDER_VALUES = ("backtest", "fixed")  # where the factor on the order values comes from
MAX_CLV_MONTHS = 600  # 50 years: past this the discounted sum no longer moves

ModelSource = Annotated[str, one_of(SOURCES)]


@settings("scorer")
class ScorerConfig:
    """What the scorer predicts and with which model.

    ``churn_model``, ``purchases_model`` and ``spend_model`` each choose ``btyd`` (BTYD closed
    forms), ``gbm`` (LightGBM on the features) or ``hybrid`` (LightGBM on the features plus the BTYD
    outputs). Bounded: a CLV over 1e9 months is a typo that would run for hours (it walks month by
    month).
    """

    horizon_days: Annotated[int, Field(ge=1, le=3660)] = 90
    clv_months: Annotated[int, Field(ge=0, le=MAX_CLV_MONTHS)] = 12
    annual_discount_rate: Annotated[float, Field(gt=-1, le=10), Fix("a rate in (-1, 10], e.g. 0.10 for 10% a year")] = (
        0.10
    )
    churn_model: ModelSource = "hybrid"
    purchases_model: ModelSource = "hybrid"
    spend_model: ModelSource = "hybrid"
    btyd_model: Annotated[str, one_of(BTYD_MODELS)] = "bgnbd"
    btyd_penalizer: Annotated[float, Field(ge=0, allow_inf_nan=False)] = 0.0
    # 0.1 / 300 rounds: the same backtest metrics as 0.05 / 600 (churn AUC 0.9431 vs 0.9433 on 1M
    # rows of a 1M-customer world) in a third of the time; on CDNOW too (0.05 / 1000: churn AUC and
    # spend Gini within +-0.0016 of 0.1, with twice the trees)
    gbm_rounds: Annotated[int, Field(ge=1, le=100_000)] = 300
    gbm_learning_rate: Annotated[float, Field(gt=0, le=1)] = 0.1
    # small, regularised trees (15 leaves, 100 rows a leaf, 70 % of the features and 80 % of the rows
    # per tree, L2 10): on CDNOW (23k customers, 1-12 cutoffs) churn AUC +0.001 to +0.013 and spend
    # Gini +0.002 to +0.03 over 31 leaves, 50 rows a leaf, all features and rows, L2 1
    gbm_num_leaves: Annotated[int, Field(ge=2, le=131_072)] = 15
    gbm_min_data_in_leaf: Annotated[int, Field(ge=1, le=1_000_000)] = 100
    gbm_feature_fraction: Annotated[float, Field(gt=0, le=1), Fix("a share in (0, 1], e.g. 0.8")] = 0.7
    gbm_bagging_fraction: Annotated[float, Field(gt=0, le=1), Fix("a share in (0, 1], e.g. 0.8")] = 0.8
    gbm_lambda_l2: Annotated[float, Field(ge=0, allow_inf_nan=False)] = 10.0
    # depth 6 kept the churn AUC (0.9581 vs 0.9582 unbounded on a 20k-customer world) and made the
    # TreeSHAP reasons 3x faster (2,050 vs 690 rows/s on one core): their cost grows with depth^2
    gbm_max_depth: Annotated[int, Field(ge=-1, le=64)] = 6
    # monotone: keeps the booster's ranking, no ties at p = 1
    calibration: Annotated[str, one_of(("platt", "isotonic"))] = "platt"
    top_reasons: Annotated[int, Field(ge=0, le=20)] = 3
    seed: Annotated[int, Field(ge=0, le=2**31 - 1)] = 0
    # 0: automatic (one thread for small training sets, all cores for large)
    train_threads: Annotated[int, Field(ge=0, le=1024)] = 0
    # retrain the purchases and spend models on every row after early stopping picked their rounds
    # (off: they keep the booster trained on 90 % of the customers; same metrics, half the time)
    gbm_refit_full: bool = False
    # churn from a learned model: the weight of the BTYD log-odds averaged with the learned model's,
    # p = expit((1 - w) logit(p_learned) + w logit(p_btyd)); training picks it on the backtest
    churn_btyd_weight: Annotated[float, Field(ge=0, le=1)] = 0.0
    # recalibrate that blend on BTYD's probabilities over the training snapshot (soft Platt: BTYD's level,
    # the blend's ranking); training picks it on the backtest. Always done with a shorter label horizon
    churn_recalibrate: bool = False
    # the horizon of the learned models' labels when no label window of ``horizon_days`` closes by
    # the as-of (None: ``horizon_days``): their outputs are then carried to ``horizon_days`` by BTYD
    # (churn recalibrated on BTYD's probabilities, totals scaled to BTYD's)
    label_horizon_days: Annotated[int | None, Field(ge=1)] = None
    # "btyd": learned purchases and spend are scaled so that their totals over the training snapshot
    # are BTYD's (the learned models rank, BTYD sets the level); "learned": used as predicted; "auto":
    # training picks one on the backtest (training.selection.select_totals_level), BTYD's without
    # one. A season levelled on its last closed window sets the level whatever this says, and
    # labels of a shorter horizon always take BTYD's
    learned_totals: Annotated[str, one_of(TOTALS_LEVELS)] = "auto"
    # "backtest": training sets order_value_factor from BTYD's backtest folds where they show
    # Gamma-Gamma's order values off beyond chance (training.selection.select_order_value_factor; on
    # CDNOW 4 % low on the median setup); "fixed": order_value_factor as given (1: Gamma-Gamma as
    # fitted). Without a backtest (ChurnCLV.fit) the factor is always the one given
    order_value: Annotated[str, one_of(ORDER_VALUES)] = "backtest"
    # the factor on Gamma-Gamma's expected order value, so on BTYD's spend and CLV and on the learned
    # totals at BTYD's level: the realised spend per purchase over the predicted one
    order_value_factor: Annotated[float, Field(gt=0, le=10, allow_inf_nan=False)] = 1.0
    # a yearly season fitted on the daily purchases (with >= 540 days of history and significant
    # harmonics): BTYD refitted in operational time and the totals carried to the scoring window
    # (models.seasonality); on a seasonal generated world, aggregate purchases -30 %..+142 % -> +6..+17 %
    seasonality: bool = True
    # the CLV intervals clv_p10/p50/p90 (models.intervals): about 8x the spend intervals' cost, +8 s per
    # 100k customers on one core; off, those columns are null (spend_p10/p50/p90 are always given)
    clv_intervals: bool = False

    @model_validator(mode="after")
    def _labels_within_horizon(self) -> ScorerConfig:
        if self.label_horizon_days is not None and self.label_horizon_days > self.horizon_days:
            raise rule_error(
                f"must be <= horizon_days ({self.horizon_days})",
                "a number of days between 1 and horizon_days, or leave it unset",
                key=("label_horizon_days",),
                got=self.label_horizon_days,
            )
        return self

    @classmethod
    def from_dict(cls, data: Any) -> ScorerConfig:
        """From a ``[scorer]`` section or a saved scorer: unknown keys and wrong types are refused
        (:class:`~churnclv.config.ConfigError`, naming the key, the rule and the fix)."""
        return cls(**check_table(data, section("scorer")))

    @property
    def label_horizon(self) -> int:
        """The horizon (days) of the learned models' labels."""
        return self.label_horizon_days or self.horizon_days

    def uses_gbm(self) -> bool:
        """Whether any quantity is predicted by LightGBM (``gbm`` or ``hybrid``)."""
        return any(m != "btyd" for m in (self.churn_model, self.purchases_model, self.spend_model))
