"""The promotion gate's default tolerance: the largest loss per metric a challenger may show against
the champion, in each metric's own units (the one default of ``[train] promote_tolerance`` and of
``churnclv models promote``). Its own module so the configuration reads it without the gate's
imports (MLflow, the models)."""

from __future__ import annotations

DEFAULT_TOLERANCE: dict[str, float] = {"churn_auc": 0.005, "spend_gini": 0.01, "churn_brier": 0.005}
