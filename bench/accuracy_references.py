"""The references of the accuracy benches (``accuracy.py``, ``accuracy_generated.py``,
``level_calibration.py``, ``intervals.py``), fitted in the same run on the same customers as churnclv:

- ``btyd_reference``: lifetimes' BG/NBD or Pareto/NBD + Gamma-Gamma at as-of (weeks as the unit, as
  in the paper); churn = P(no purchase in H), never 1 - P(alive);
- ``rfm_rule``: rates per recency x frequency x monetary cell at the latest labelled cutoff;
- ``lgbm_rfm``: LightGBM on RFM features at that cutoff.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd

WEEK = 7.0


def _unique_fit(fitter, stats: pd.DataFrame):
    """Fit on the unique (frequency, recency, T) rows with their counts as weights (same likelihood)."""
    u = stats.groupby(["frequency", "recency", "T"]).size().rename("w").reset_index()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fitter.fit(u["frequency"], u["recency"], u["T"], weights=u["w"])
    return fitter


def btyd_reference(stats: pd.DataFrame, horizon: int, kind: str) -> pd.DataFrame:
    from lifetimes import BetaGeoFitter, GammaGammaFitter, ParetoNBDFitter

    s = pd.DataFrame(
        {"frequency": stats["frequency"], "recency": stats["recency"] / WEEK, "T": stats["T"] / WEEK},
        index=stats.index,
    )
    t = horizon / WEEK
    if kind == "bgnbd":
        m = _unique_fit(BetaGeoFitter(penalizer_coef=0.0), s)
        r, alpha = m.params_["r"], m.params_["alpha"]
        p_alive = m.conditional_probability_alive(s["frequency"], s["recency"], s["T"])
        p_zero_if_alive = ((alpha + s["T"]) / (alpha + s["T"] + t)) ** (r + s["frequency"])
        p_churn = 1 - p_alive + p_alive * p_zero_if_alive
        purchases = m.conditional_expected_number_of_purchases_up_to_time(t, s["frequency"], s["recency"], s["T"])
    else:
        m = _unique_fit(ParetoNBDFitter(penalizer_coef=0.0), s)
        u = s.drop_duplicates()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            p0 = m.conditional_probability_of_n_purchases_up_to_time(0, t, u["frequency"], u["recency"], u["T"])
        p0 = pd.Series(np.asarray(p0, dtype=float), index=pd.MultiIndex.from_frame(u))
        p_churn = pd.Series(p0.reindex(pd.MultiIndex.from_frame(s)).to_numpy(), index=s.index)
        purchases = m.conditional_expected_number_of_purchases_up_to_time(t, s["frequency"], s["recency"], s["T"])
    repeat = stats[(stats["frequency"] > 0) & (stats["monetary_value"] > 0)]
    gg = GammaGammaFitter(penalizer_coef=0.0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        gg.fit(repeat["frequency"], repeat["monetary_value"])
    value = gg.conditional_expected_average_profit(stats["frequency"], stats["monetary_value"].clip(lower=0))
    purchases = pd.Series(np.asarray(purchases, dtype=float), index=stats.index)
    return pd.DataFrame(
        {
            "p_churn": np.clip(np.asarray(p_churn, dtype=float), 0, 1),
            "expected_purchases": purchases,
            "expected_spend": purchases * np.asarray(value, dtype=float),
        },
        index=stats.index,
    )


RFM_FEATURES = ("frequency", "recency", "T", "days_since_last", "n_days", "total_spend", "mean_spend")


def _cells(feats: pd.DataFrame, edges: dict[str, np.ndarray]) -> pd.Series:
    r = np.searchsorted(edges["r"], feats["days_since_last"].to_numpy(), side="right")
    f = np.minimum(feats["n_days"].to_numpy(), 4).astype(int)
    m = np.searchsorted(edges["m"], feats["mean_spend"].to_numpy(), side="right")
    return pd.Series([f"{a}-{b}-{c}" for a, b, c in zip(r, f, m, strict=True)], index=feats.index)


def rfm_rule(train: pd.DataFrame, labels: pd.DataFrame, score: pd.DataFrame, shrink: float = 20.0) -> pd.DataFrame:
    """Per-cell rates at the cutoff (recency quartiles x frequency 0..4+ x monetary terciles)."""
    edges = {
        "r": np.unique(np.quantile(train["days_since_last"], [0.25, 0.5, 0.75])),
        "m": np.unique(np.quantile(train["mean_spend"], [1 / 3, 2 / 3])),
    }
    y = labels.assign(churned=labels["churned"].astype(float), cell=_cells(train, edges))
    overall = y[["churned", "purchases", "spend"]].mean()
    g = y.groupby("cell")[["churned", "purchases", "spend"]]
    n = g.size()
    rates = (
        g.mean()
        .mul(n / (n + shrink), axis=0)
        .add(overall.to_frame().T.to_numpy() * (shrink / (n + shrink)).to_numpy()[:, None])
    )
    cells = _cells(score, edges)
    out = rates.reindex(cells.to_numpy()).fillna(overall)
    out.index = score.index
    return out.rename(columns={"churned": "p_churn", "purchases": "expected_purchases", "spend": "expected_spend"})


def lgbm_rfm(train: pd.DataFrame, labels: pd.DataFrame, score: pd.DataFrame, seed: int = 0) -> pd.DataFrame:
    import lightgbm as lgb

    X, Xs = train[list(RFM_FEATURES)], score[list(RFM_FEATURES)]
    common = {
        "n_estimators": 300,
        "learning_rate": 0.05,
        "num_leaves": 15,
        "min_child_samples": 50,
        "random_state": seed,
        "verbose": -1,
        "n_jobs": 2,
    }
    clf = lgb.LGBMClassifier(**common).fit(X, labels["churned"].astype(int))
    pur = lgb.LGBMRegressor(objective="poisson", **common).fit(X, labels["purchases"])
    spend = lgb.LGBMRegressor(**common).fit(X, labels["spend"])
    return pd.DataFrame(
        {
            "p_churn": clf.predict_proba(Xs)[:, 1],
            "expected_purchases": pur.predict(Xs),
            "expected_spend": spend.predict(Xs),
        },
        index=score.index,
    )
