"""The promotion rule: the challenger replaces the champion unless it is worse by more than the tolerance."""

from __future__ import annotations

import pytest

from churnclv.training.pipeline import TrainConfig, TrainingError
from churnclv.training.tracking import compare_metrics

TOL = {"churn_auc": 0.005, "churn_brier": 0.005, "spend_gini": 0.01}
CHAMPION = {"churn_auc": 0.90, "churn_brier": 0.10, "spend_gini": 0.80}


def test_better_or_equal_is_not_worse() -> None:
    assert compare_metrics(CHAMPION, CHAMPION, TOL) == []
    assert compare_metrics({"churn_auc": 0.95, "churn_brier": 0.05, "spend_gini": 0.9}, CHAMPION, TOL) == []


def test_worse_within_the_tolerance_is_not_worse() -> None:
    # AUC down 0.004 and Brier up 0.004 (higher is worse), each inside its tolerance
    assert compare_metrics({"churn_auc": 0.896, "churn_brier": 0.104, "spend_gini": 0.795}, CHAMPION, TOL) == []


@pytest.mark.parametrize("metric, value", [("churn_auc", 0.894), ("churn_brier", 0.106), ("spend_gini", 0.789)])
def test_worse_beyond_the_tolerance_names_the_metric(metric: str, value: float) -> None:
    worse = compare_metrics({**CHAMPION, metric: value}, CHAMPION, TOL)
    assert len(worse) == 1 and worse[0].startswith(f"{metric}: challenger")


def test_unknown_tolerance_metric_is_refused() -> None:
    with pytest.raises(TrainingError, match="unknown metrics.*churn_acu"):
        TrainConfig(promote_tolerance={"churn_acu": 0.01})
