"""train's summary warns when a selected model ranks worse than chance on the backtest."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pandas as pd

from churnclv.training.selection import OrderValue
from churnclv.training.summary import below_chance, values_line


def _result(**metrics: Any) -> Any:
    summary = pd.DataFrame({"churn_auc": [0.7, 0.6], "spend_gini": [-0.15, 0.3]}, index=["gbm", "btyd"])
    for col, value in metrics.items():
        summary[col] = value
    return SimpleNamespace(selected={"churn": "gbm", "purchases": "gbm", "spend": "gbm"}, summary=summary)


def test_a_spend_model_worse_than_chance_is_a_warning() -> None:
    """A data zoo shop of mostly returns: every spend candidate had a negative Gini, and the best of
    them ranked customers who never made a sale first."""
    [line] = below_chance(_result())
    assert (
        line.startswith("warning:   the selected spend model (gbm) ranks worse than chance") and "Gini -0.150" in line
    )


def test_chance_or_better_and_not_measured_are_not_warnings() -> None:
    assert below_chance(_result(spend_gini=[0.0, 0.3])) == []
    assert below_chance(_result(spend_gini=[float("nan"), 0.3])) == []
    [line] = below_chance(_result(churn_auc=[0.45, 0.6], spend_gini=[0.2, 0.3]))
    assert "churn model (gbm)" in line and "AUC 0.450, chance 0.5" in line


def test_the_values_line_says_when_a_season_sets_the_level_instead() -> None:
    # the demo's shop: a factor of 0.96 measured, but the season's window sets the totals
    value = OrderValue(0.9599, "the realised spend per purchase 0.960 times BTYD's (+- 0.016) on 3 fold(s)")
    assert values_line(value, "btyd") == f"values:    {value}"
    assert values_line(value, "season").endswith("; the season's window sets the totals' level, so it moves no total")
    assert values_line(OrderValue(1.0, "within chance"), "season") == "values:    x 1 (within chance)"
