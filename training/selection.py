"""The selection rule: per target, the candidate with the best backtest mean; the refit fallback."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from churnclv.models.blending import logit, soft_platt
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
            if values[c] == values[best] or abs(values[c] - values[best]) <= 1e-9:  # both -inf: equal
                best = c
                break
        selected[target] = best
    return selected


# the BTYD weights tried for the churn blend (0: the learned model alone; 1: BTYD alone)
CHURN_BLEND_WEIGHTS = (0.0, 0.25, 0.5, 0.75, 1.0)
# BTYD alone replaces the learned churn model only on the evidence of at least this many folds: one
# fold of an early as-of trains its learned model on a cutoff or two, far fewer than the final refit
# reads (CDNOW 1997-10-31 H180: one fold whose learned model saw one cutoff chose BG/NBD, AUC 0.7659,
# where the learned model refitted on its cutoffs ranks at 0.78)
MIN_FOLDS_BTYD_ALONE = 2


@dataclass(frozen=True)
class ChurnBlend:
    """The churn model chosen on the backtest: the learned model (or ``btyd``), the weight of BTYD's
    log-odds, whether the blend is recalibrated on BTYD's probabilities at as-of, and the mean backtest
    log loss of every option tried (``"model@w"``, ``"model@w+btyd_level"``)."""

    model: str
    btyd_weight: float
    recalibrate: bool
    scores: dict[str, float]


def select_churn_blend(
    fold_preds: dict[str, list[pd.DataFrame]], learned: list[str], weights: tuple[float, ...] = CHURN_BLEND_WEIGHTS
) -> ChurnBlend | None:
    """The churn model, BTYD weight and level with the best mean backtest log loss of the blended
    log-odds ``s = (1 - w) logit(p_learned) + w logit(p_btyd)`` (w = 1: BTYD alone, w = 0: the learned
    model alone), each taken as is and recalibrated on the fold's BTYD probabilities
    (:func:`~churnclv.models.blending.soft_platt`, as the scorer does at as-of with ``churn_recalibrate``).

    Log loss, a proper scoring rule, weighs ranking and calibration together: on CDNOW the weights
    within 0.001 of the best backtest AUC differed by up to 0.0002 in Brier, and the AUC pick (the
    learned model alone) was the one whose Brier lost to BG/NBD. The recalibrated option takes the
    level from BTYD fitted at the evaluation cutoff, so a learned model whose level drifted since its
    training cutoffs is judged on its ranking. BTYD alone needs :data:`MIN_FOLDS_BTYD_ALONE` folds.
    Returns None when BTYD or every learned candidate lacks a fold. Ties go to the first tried: BTYD
    alone, then larger BTYD weights, the learned model's own level before BTYD's.
    """
    if "btyd" not in fold_preds:
        return None
    btyd = pd.concat(fold_preds["btyd"], ignore_index=True)
    n_folds = btyd["fold"].nunique()
    if n_folds < MIN_FOLDS_BTYD_ALONE:
        weights = tuple(w for w in weights if w < 1.0)
    scores: dict[str, float] = {}
    best: tuple[float, str, float, bool] | None = None
    for name in learned:
        if name not in fold_preds:
            continue
        own = pd.concat(fold_preds[name], ignore_index=True)
        if own["fold"].nunique() != n_folds:
            continue
        both = own.merge(btyd, on=["fold", "customer_id"], suffixes=("", "_btyd"), validate="one_to_one")
        pb = both["p_churn_btyd"].to_numpy()
        zl, zb = logit(both["p_churn"].to_numpy()), logit(pb)
        y = both["churned"].to_numpy(dtype=float)
        folds = list(both.groupby("fold").indices.values())
        for w in sorted(weights, reverse=True):
            s = (1.0 - w) * zl + w * zb
            for recalibrate in (False, True) if w < 1.0 else (False,):
                mean = float(np.mean([_log_loss(s[idx], y[idx], pb[idx] if recalibrate else None) for idx in folds]))
                scores[f"{name}@{w:g}" + ("+btyd_level" if recalibrate else "")] = round(mean, 6)
                if best is None or mean < best[0] - 1e-9:
                    best = (mean, name, w, recalibrate)
    if best is None:
        return None
    _, name, w, recalibrate = best
    if w >= 1.0:
        return ChurnBlend("btyd", 0.0, False, scores)
    return ChurnBlend(name, float(w), recalibrate, scores)


def _log_loss(s: np.ndarray, y: np.ndarray, p_btyd: np.ndarray | None) -> float:
    """Mean log loss of ``expit(s)``, or of ``expit(a + b s)`` recalibrated on ``p_btyd``."""
    if p_btyd is not None:
        a, b = soft_platt(s, p_btyd)
        s = a + b * s
    # log(1 + e^s) - y s: the log loss of expit(s), stable for any s
    return float((np.logaddexp(0.0, s) - y * s).mean())


# The learned models' own level replaces BTYD's for the totals only on clear evidence: nearer what
# happened on every fold, at least this many, and by at least this many points of aggregate error
# on the mean over the folds. One month's demand moves the totals by 10 % and more on CDNOW with
# nothing in the histories to predict it (a level measured on the previous window chased those
# shocks: bench/level_calibration.py); at 5 points the rule took the learned level at 1997-05-31 H30
# on two folds (4.4 and 4.7 % against 15.4 and 12.7 %) and the realised window went the other way
# (spend -5.4 -> -16.4 %). At 10 points no setup of the CDNOW grid changes.
# Each fold's evidence must also stand out of chance: the realised total is one draw, and a small
# base's total moves by 10 % and more from who happened to buy (the zoo's 500 CDNOW customers: BTYD
# -40 and -30 % on two folds, the learned level -1 and -26 %, and then BTYD +0.0 % on the window that
# followed where the learned level was +21.5 %). The realised total must lie this many of its
# standard errors (``*_agg_noise_pct``) beyond the midpoint of the two levels' totals, on the
# learned level's side.
OWN_LEVEL_MIN_FOLDS = 2
OWN_LEVEL_MARGIN_PCT = 10.0
OWN_LEVEL_Z = 2.0
AGG_NOISE = "_agg_noise_pct"  # the suffix of a target's realised-total standard error, in %
TOTALS = ("purchases", "spend")  # the learned totals whose level is chosen
OWN_LEVEL = "_own_level"  # the suffix of a backtest metric taken at the learned candidate's own level
LEVEL_WORDS = {"btyd": "BTYD's level", "learned": "the learned models' own level", "season": "the season's window"}


@dataclass(frozen=True)
class TotalsLevel:
    """What sets the learned totals' level (``"btyd"``, ``"learned"``; training notes ``"season"`` when
    a season levelled on the last closed window sets it), why, and per learned target the aggregate %
    errors of the folds at BTYD's level and at the learned model's own."""

    level: str
    reason: str
    errors: dict[str, dict[str, list[float]]]

    def __str__(self) -> str:
        return f"{LEVEL_WORDS[self.level]} ({self.reason})"


def select_totals_level(backtest: pd.DataFrame, selected: dict[str, str]) -> TotalsLevel:
    """``learned_totals = "auto"``: the learned models' own level when the backtest shows it nearer what
    happened than BTYD's for every learned total (purchases, spend), on every fold beyond chance
    (:data:`OWN_LEVEL_Z` standard errors of the realised total) and by :data:`OWN_LEVEL_MARGIN_PCT`
    points on the mean; BTYD's otherwise (the default where the evidence is thin). A subscription
    shop is where BTYD's level fails: customers who skip a month are gone, BG/NBD keeps them alive
    (spend +74 % on a backtest where the learned level was +9 %).

    The backtest's candidates are not blended: their purchases' floor (at least ``1 - p_churn``)
    reads their own churn, where the final scorer reads the chosen blend. The two differ little
    unless the blend leans on BTYD."""
    targets = [t for t in TOTALS if selected.get(t, "btyd") != "btyd"]
    if not targets:
        return TotalsLevel("btyd", "no learned total", {})
    errors: dict[str, dict[str, list[float]]] = {}
    said, learned = [], True
    for target in targets:
        columns = [f"{target}_agg_pct_error", f"{target}_agg_pct_error{OWN_LEVEL}", f"{target}{AGG_NOISE}"]
        rows = backtest[backtest["candidate"] == selected[target]]
        if not set(columns) <= set(rows.columns):  # the backtest's own-level metrics come together
            return TotalsLevel("btyd", "the backtest has no totals at the learned models' own level", {})
        folds = rows[columns].to_numpy(float)
        folds = folds[np.isfinite(folds).all(axis=1)]
        errors[target] = {
            k: [round(x, 2) for x in col] for k, col in zip(("btyd", "learned", "noise"), folds.T.tolist(), strict=True)
        }
        if len(folds) < OWN_LEVEL_MIN_FOLDS:
            said.append(f"{target}: {len(folds)} fold(s), {OWN_LEVEL_MIN_FOLDS} needed")
            learned = False
            continue
        e_btyd, e_own, noise = folds.T
        btyd, own = np.abs(e_btyd), np.abs(e_own)
        # the realised total's distance from the midpoint of the two totals, in its standard errors
        z = np.abs(e_btyd + e_own) / 2.0 / np.maximum(noise, 1e-12)
        beyond = int(((own < btyd) & (z >= OWN_LEVEL_Z)).sum())
        said.append(
            f"{target}: mean |error| {own.mean():.1f} % at the learned level, {btyd.mean():.1f} % at BTYD's, "
            f"nearer beyond chance on {beyond} of {len(folds)} folds"
        )
        learned &= beyond == len(folds) and btyd.mean() - own.mean() >= OWN_LEVEL_MARGIN_PCT
    return TotalsLevel("learned" if learned else "btyd", "; ".join(said), errors)


def at_learned_level(backtest: pd.DataFrame) -> pd.DataFrame:
    """The backtest as a learned level ships: each learned candidate's purchases and spend metrics
    taken at its own level where they were measured (the ``*_own_level`` columns stay beside)."""
    out = backtest.copy()
    for col in [c for c in backtest.columns if c.endswith(OWN_LEVEL)]:
        base, measured = col.removesuffix(OWN_LEVEL), backtest[col].notna()
        if base in out.columns:
            out.loc[measured, base] = backtest.loc[measured, col]
    return out


# Gamma-Gamma assumes a customer's order values do not move with the purchase rate and stay as they
# were; on CDNOW the window's buyers spent 4.4 % more per purchase than BTYD predicted on the median
# setup of bench/accuracy.py (below 1 on 21 of 27), and BTYD's backtest folds saw the same (their
# mean ratio below 1 on 22). The folds' ratio is applied where it stands this many of its standard
# errors from 1; a small base's ratio is too noisy to move anything.
ORDER_VALUE_Z = 2.0
ORDER_VALUE_BOUNDS = (0.5, 2.0)  # a ratio outside these says more is wrong than the order values


@dataclass(frozen=True)
class OrderValue:
    """The factor on Gamma-Gamma's order values (``[scorer] order_value = "backtest"``) and why."""

    factor: float
    reason: str

    def __str__(self) -> str:
        return f"x {self.factor:g} ({self.reason})"


def select_order_value_factor(backtest: pd.DataFrame) -> OrderValue:
    """The factor on Gamma-Gamma's expected order values: the mean over BTYD's backtest folds of the
    realised spend per purchase over the predicted one (``spend_value_ratio``), where that mean stands
    :data:`ORDER_VALUE_Z` standard errors from 1; 1 otherwise. The ratio does not depend on how many
    purchases BTYD predicted (their level is the totals' business), so folds with labels of a
    shorter horizon count too."""
    columns = ["spend_value_ratio", "spend_value_ratio_se"]
    if not {"candidate", *columns} <= set(backtest.columns):  # no backtest, or one from before the ratio
        return OrderValue(1.0, "the backtest measured no order values")
    rows = backtest[backtest["candidate"] == "btyd"]
    folds = rows[columns].to_numpy(float)
    folds = folds[np.isfinite(folds).all(axis=1)]
    if not len(folds):
        return OrderValue(1.0, "no fold had purchases and spend to compare")
    ratio = float(folds[:, 0].mean())
    se = float(np.sqrt(np.sum(folds[:, 1] ** 2))) / len(folds)
    measured = f"the realised spend per purchase {ratio:.3f} times BTYD's (+- {se:.3f}) on {len(folds)} fold(s)"
    if abs(ratio - 1.0) < ORDER_VALUE_Z * se:
        return OrderValue(1.0, f"{measured}: within chance")
    low, high = ORDER_VALUE_BOUNDS
    if not low <= ratio <= high:
        return OrderValue(1.0, f"{measured}: outside [{low:g}, {high:g}], not applied")
    return OrderValue(round(ratio, 4), measured)
