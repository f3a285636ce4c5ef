"""The ``[monitor]`` section (the thresholds of the monitor) and the breaches they find.

Quality thresholds are checked on the newest partition whose horizon has closed among those scored by the
model version in use (older partitions are reported, not judged: a retrained model is not blamed for its
predecessor's weeks); drift thresholds on this week's partition against the model's reference. Each
breach names the check, the value, the threshold, the partition and the fix.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Annotated, Any

from pydantic import Field

from churnclv.config_schema import Array, Fix, check_table, section, settings

__all__ = ["Breach", "MonitorConfig", "find_breaches", "parse_monitor"]

Share = Annotated[float, Field(ge=0, le=1, allow_inf_nan=False), Fix("a share between 0 and 1, e.g. 0.5")]
Positive = Annotated[float, Field(gt=0, allow_inf_nan=False)]


@settings("monitor")
class MonitorConfig:
    """Thresholds of ``churnclv monitor`` (TOML section ``[monitor]``).

    ``min_auc``: lowest churn ROC AUC; ``max_auc_drop``: largest fall of the churn AUC below the
    model's backtest AUC; ``max_ece``: largest expected calibration error of ``p_churn`` (10 equal-width
    bins, as the backtest reports it); ``max_aggregate_error``: largest |aggregate error| of purchases
    and of spend, in percent of the realised total; ``max_psi``: largest population stability index of a
    feature, a score (``p_churn``, ``clv``) or the tier mix (0.1-0.25 is the usual "moderate", above
    0.25 "major"); ``max_unseen_share``: largest share of this week's customers that were unknown when
    the model was trained; ``psi_bins``: quantile bins of a numeric column; ``drift_ignore``: features
    whose PSI is reported but never a breach (default: the ages ``tenure_days`` and ``T``);
    ``lookback_days``: partitions whose horizon closed longer ago than this before the as-of are not
    evaluated again.
    """

    min_auc: Share = 0.6
    max_auc_drop: Share = 0.05
    max_ece: Share = 0.1
    max_aggregate_error: Annotated[Positive, Fix("a percentage > 0, e.g. 25")] = 25.0
    max_psi: Annotated[Positive, Fix("a PSI > 0, e.g. 0.25")] = 0.25
    max_unseen_share: Share = 0.5
    psi_bins: Annotated[int, Field(ge=2, le=100)] = 10
    # ages that grow with the calendar: in a base without steady sign-ups (CDNOW: one cohort) they
    # drift every week by construction (tenure PSI 8.4 three months after training); newcomers show in
    # the unseen share, lapsing in days_since_last_purchase and the scores, which stay checked
    drift_ignore: Array[str] = ("tenure_days", "T")
    lookback_days: Annotated[int, Field(ge=1, le=36_600)] = 365


def parse_monitor(raw: Any) -> MonitorConfig:
    """The ``[monitor]`` section of a run configuration (``{}``: the defaults); a bad key or value is a
    :class:`~churnclv.config.ConfigError` naming the key, the rule and the fix."""
    return MonitorConfig(**check_table(raw, section("monitor")))


@dataclass(frozen=True)
class Breach:
    """One threshold crossed: ``check`` (what was measured), ``value``, ``threshold``, the ``partition``
    it was measured on, the ``key`` of the threshold and the ``fix``."""

    check: str
    value: float
    threshold: float
    partition: str
    key: str
    fix: str

    def to_dict(self) -> dict[str, Any]:
        """As plain data (what ``monitor.json`` lists)."""
        return asdict(self)

    def message(self) -> str:
        """One line: the check, the value, the threshold, the partition and the fix."""
        return (
            f"breach: {self.check} = {self.value:.4g} on {self.partition} crosses {self.key} = {self.threshold:g}; "
            f"fix: {self.fix}"
        )


def _num(value: Any) -> float:
    """A metric as a float: None (not measurable, e.g. AUC without churners) is NaN."""
    return math.nan if value is None else float(value)


_RETRAIN = "retrain on recent data (churnclv train --as-of <this as-of>) and promote it"


def _quality_breaches(q: dict[str, Any], config: MonitorConfig, backtest_auc: float | None) -> list[Breach]:
    m, where, out = q["metrics"], q["partition"], []
    auc = _num(m.get("churn_auc"))
    if math.isfinite(auc) and auc < config.min_auc:
        out.append(Breach("churn_auc", auc, config.min_auc, where, "[monitor] min_auc", _RETRAIN))
    if backtest_auc is not None and math.isfinite(auc) and backtest_auc - auc > config.max_auc_drop:
        out.append(
            Breach(
                "churn_auc_drop",
                backtest_auc - auc,
                config.max_auc_drop,
                where,
                "[monitor] max_auc_drop",
                f"the backtest promised AUC {backtest_auc:.3f}: {_RETRAIN}",
            )
        )
    ece = _num(m.get("churn_ece"))
    if math.isfinite(ece) and ece > config.max_ece:
        out.append(
            Breach(
                "churn_ece", ece, config.max_ece, where, "[monitor] max_ece", f"p_churn is miscalibrated: {_RETRAIN}"
            )
        )
    for target in ("purchases", "spend"):
        err = _num(m.get(f"{target}_agg_pct_error"))
        if math.isfinite(err) and abs(err) > config.max_aggregate_error:
            out.append(
                Breach(
                    f"{target}_agg_pct_error",
                    err,
                    config.max_aggregate_error,
                    where,
                    "[monitor] max_aggregate_error",
                    f"the base's {target} total is {'over' if err > 0 else 'under'}-predicted: {_RETRAIN}",
                )
            )
    return out


def _drift_breaches(d: dict[str, Any], config: MonitorConfig) -> list[Breach]:
    where, out = d["partition"], []
    drift_fix = (
        f"this week's data differs from the model's reference ({d['reference']['partition']}): check the data "
        f"feed, then {_RETRAIN}"
    )
    for row in d["features"]:
        if row["column"] in config.drift_ignore:
            continue
        if _num(row["psi"]) > config.max_psi:
            out.append(
                Breach(
                    f"psi.feature.{row['column']}", row["psi"], config.max_psi, where, "[monitor] max_psi", drift_fix
                )
            )
    for row in d["scores"]:
        if _num(row["psi"]) > config.max_psi:
            out.append(
                Breach(f"psi.score.{row['column']}", row["psi"], config.max_psi, where, "[monitor] max_psi", drift_fix)
            )
    tier_psi = _num(d["tier_mix"]["psi"])
    if tier_psi > config.max_psi:
        out.append(Breach("psi.tier_mix", tier_psi, config.max_psi, where, "[monitor] max_psi", drift_fix))
    unseen = d["unseen_share"]
    if unseen is not None and unseen > config.max_unseen_share:
        out.append(
            Breach(
                "unseen_share",
                unseen,
                config.max_unseen_share,
                where,
                "[monitor] max_unseen_share",
                f"most customers arrived after the model was trained: {_RETRAIN}",
            )
        )
    return out


def find_breaches(
    quality: dict[str, Any] | None,
    drift: dict[str, Any] | None,
    config: MonitorConfig,
    backtest_auc: float | None = None,
) -> list[Breach]:
    """The thresholds of ``config`` that ``quality`` (one partition's, see
    :func:`churnclv.monitoring.quality.partition_quality`; None: none closed) and ``drift``
    (:func:`churnclv.monitoring.drift.drift_report`; None: not measured) cross. ``backtest_auc``: the
    model's backtest churn AUC (None: the drop is not checked)."""
    out = [] if quality is None else _quality_breaches(quality, config, backtest_auc)
    return out + ([] if drift is None else _drift_breaches(drift, config))
