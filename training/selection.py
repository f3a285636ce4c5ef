"""The selection rule: per target, the candidate with the best backtest mean; the refit fallback."""

from __future__ import annotations

import numpy as np
import pandas as pd

from churnclv.models.blending import logit
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


# the BTYD weights tried for the churn blend (0: the learned model alone; 1: BTYD alone)
CHURN_BLEND_WEIGHTS = (0.0, 0.25, 0.5, 0.75, 1.0)


def select_churn_blend(
    fold_preds: dict[str, list[pd.DataFrame]], learned: list[str], weights: tuple[float, ...] = CHURN_BLEND_WEIGHTS
) -> tuple[str, float, dict[str, float]] | None:
    """The churn model and BTYD weight with the best mean backtest log loss of the blended log-odds
    ``(1 - w) logit(p_learned) + w logit(p_btyd)`` (w = 1: BTYD alone, w = 0: the learned model alone).

    Log loss, a proper scoring rule, weighs ranking and calibration together: on CDNOW the weights
    within 0.001 of the best backtest AUC differed by up to 0.0002 in Brier, and the AUC pick (the
    learned model alone) was the one whose Brier lost to BG/NBD. Returns ``(model, weight, mean log
    loss per "model@w")``, or None when BTYD or every learned candidate lacks a fold. Ties go to the
    first tried: BTYD alone, then larger BTYD weights.
    """
    if "btyd" not in fold_preds:
        return None
    btyd = pd.concat(fold_preds["btyd"], ignore_index=True)
    n_folds = btyd["fold"].nunique()
    scores: dict[str, float] = {}
    best: tuple[float, str, float] | None = None
    for name in learned:
        if name not in fold_preds:
            continue
        own = pd.concat(fold_preds[name], ignore_index=True)
        if own["fold"].nunique() != n_folds:
            continue
        both = own.merge(btyd, on=["fold", "customer_id"], suffixes=("", "_btyd"), validate="one_to_one")
        zl, zb = logit(both["p_churn"].to_numpy()), logit(both["p_churn_btyd"].to_numpy())
        y = both["churned"].to_numpy(dtype=float)
        folds = list(both.groupby("fold").indices.values())
        for w in sorted(weights, reverse=True):
            s = (1.0 - w) * zl + w * zb
            # log loss of expit(s): log(1 + e^s) - y s, per fold, then the mean over folds
            loss = np.logaddexp(0.0, s) - y * s
            mean = float(np.mean([loss[idx].mean() for idx in folds]))
            scores[f"{name}@{w:g}"] = round(mean, 6)
            if best is None or mean < best[0] - 1e-9:
                best = (mean, name, w)
    if best is None:
        return None
    _, name, w = best
    return ("btyd" if w >= 1.0 else name), (0.0 if w >= 1.0 else float(w)), scores
