"""The selection rule: per target, the candidate with the best backtest mean; the refit fallback."""

from __future__ import annotations

import numpy as np
import pandas as pd

from churnclv.training.config import MODEL_CANDIDATES

# the selection rule: per target, the candidate with the best mean of this metric over the folds;
# ties go to the simpler model (order of MODEL_CANDIDATES)
SELECTION = {"churn": ("churn_auc", 1), "purchases": ("purchases_mae", -1), "spend": ("spend_gini", 1)}
# the final refit falls back one step at a time when the selected model cannot be fitted
REFIT_FALLBACK = {"hybrid": "gbm", "gbm": "btyd"}


def select_models(
    summary: pd.DataFrame, candidates: tuple[str, ...], eligible: list[str] | None = None
) -> dict[str, str]:
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
