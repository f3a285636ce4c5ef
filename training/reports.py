"""What a training run shows: the backtest table, its notes, and the plots and tables of its report."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from churnclv import diagnostics, plotting
from churnclv.models.tier_report import tier_report
from churnclv.training.result import TrainResult


def format_summary(result: TrainResult) -> str:
    """The backtest summary as a fixed-width table (mean over folds), marking the selected models."""
    cols = [
        "churn_auc",
        "churn_pr_auc",
        "churn_brier",
        "churn_ece",
        "purchases_mae",
        "spend_gini",
        "spend_spearman",
        "spend_top_decile_capture",
        "spend_agg_pct_error",
    ]
    short = {
        "churn_auc": "AUC",
        "churn_pr_auc": "PR-AUC",
        "churn_brier": "Brier",
        "churn_ece": "ECE",
        "purchases_mae": "purch MAE",
        "spend_gini": "Gini",
        "spend_spearman": "Spearman",
        "spend_top_decile_capture": "top10%",
        "spend_agg_pct_error": "agg err %",
    }
    header = f"{'candidate':<10}" + "".join(f"{short[c]:>11}" for c in cols) + "  selected for"
    lines = [header, "-" * len(header)]
    if result.summary.empty:
        lines.append(f"(no backtest) selected: {result.selected}")
    for cand, row in result.summary.iterrows():
        chosen = ",".join(t for t, c in result.selected.items() if c == cand)
        lines.append(f"{cand:<10}" + "".join(f"{row[c]:>11.4f}" for c in cols) + f"  {chosen}")
    return "\n".join(lines)


def write_artifacts(result: TrainResult, out: Path) -> dict[str, Path]:
    """Plots and tables of a run, into ``out``: the diagnostics of the last backtest fold (calibration,
    gain for churn and spend, holdout purchases by frequency, each with its table as CSV), feature
    importance, the tier mix, and the backtest tables."""
    out.mkdir(parents=True, exist_ok=True)
    paths: dict[str, Path] = {}
    preds = result.fold_predictions
    chosen = [c for c in preds if c in set(result.selected.values())]
    shown = list(dict.fromkeys(chosen + [c for c in ("btyd", "recency") if c in preds]))
    if shown:  # a run without a backtest has no held-out predictions to plot
        paths.update(write_fold_diagnostics({c: preds[c] for c in shown}, out))
    importance = result.scorer.feature_importance("churn")
    if importance:
        paths["importance"] = plotting.save(plotting.plot_importance(importance), out / "feature_importance.png")
    policy = result.scorer.tiers_
    if policy is not None:  # always fitted by training; a scorer without tiers has no tier report
        # realized revenue per tier next to predicted CLV: the snapshot's net spend of the last 365 days
        past = result.snapshot_features.set_index("customer_id")["net_spend_365d"]
        customers = result.snapshot_scores["customer_id"]
        scores = result.snapshot_scores.assign(net_spend_365d=customers.map(past).to_numpy())
        report = tier_report(scores, tiers=list(policy.tier_names), spend_col="net_spend_365d")
        paths["tier_mix"] = plotting.save(plotting.plot_tier_mix(report.summary), out / "tier_mix.png")
        report.summary.to_csv(out / "tier_summary.csv", index=False)
        paths["tier_summary"] = out / "tier_summary.csv"
    result.backtest.to_csv(out / "backtest.csv", index=False)
    paths["backtest"] = out / "backtest.csv"
    result.summary.to_csv(out / "backtest_summary.csv")
    paths["backtest_summary"] = out / "backtest_summary.csv"
    return paths


def write_fold_diagnostics(preds: dict[str, pd.DataFrame], out: Path) -> dict[str, Path]:
    """The last fold's diagnostics of the shown candidates: PNG and CSV of each (see :mod:`churnclv.diagnostics`)."""
    paths: dict[str, Path] = {}
    calibration_ax = gain_churn_ax = gain_spend_ax = None
    tables: dict[str, list[pd.DataFrame]] = {"calibration": [], "gain": []}
    for name, p in preds.items():
        churned, p_churn = p["churned"].to_numpy(dtype=float), p["p_churn"].to_numpy(dtype=float)
        spend, expected = p["spend"].clip(lower=0).to_numpy(dtype=float), p["expected_spend"].to_numpy(dtype=float)
        calibration_ax = diagnostics.plot_calibration_curve(churned, p_churn, label=name, ax=calibration_ax)
        tables["calibration"].append(diagnostics.calibration_table(churned, p_churn).assign(candidate=name))
        for target, (actual, score) in {"churn": (churned, p_churn), "spend": (spend, expected)}.items():
            if actual.sum() <= 0:  # nothing churned or nothing spent in the window: no gain to show
                continue
            tables["gain"].append(diagnostics.gain_table(actual, score).assign(candidate=name, target=target))
            if target == "churn":
                gain_churn_ax = diagnostics.plot_gain(actual, score, label=name, ax=gain_churn_ax)
            else:
                gain_spend_ax = diagnostics.plot_gain(actual, score, label=name, ax=gain_spend_ax)
    for stem, ax, title in (
        ("calibration", calibration_ax, "calibration (last backtest fold)"),
        ("gain_churn", gain_churn_ax, "gain: churners found (last backtest fold)"),
        ("gain_spend", gain_spend_ax, "gain: realised spend (last backtest fold)"),
    ):
        if ax is not None:
            ax.set_title(title)
            paths[stem] = diagnostics.save(ax, out / f"{stem}.png")
    for stem, parts in tables.items():
        if parts:
            paths[f"{stem}_table"] = out / f"{stem}.csv"
            pd.concat(parts, ignore_index=True).to_csv(paths[f"{stem}_table"], index=False)
    first = next(iter(preds.values()))
    if "frequency" in first.columns:  # results from before the fold predictions carried it have none
        args = {
            "features": first[["customer_id", "frequency"]],
            "labels": first[["customer_id", "purchases"]],
            "predicted": {name: p["expected_purchases"] for name, p in preds.items()},
        }
        paths["holdout_by_frequency_table"] = out / "holdout_by_frequency.csv"
        diagnostics.holdout_by_frequency(**args).to_csv(paths["holdout_by_frequency_table"], index=False)
        ax = diagnostics.plot_holdout_by_frequency(**args)
        ax.set_title("purchases after the cutoff by frequency (last backtest fold)")
        paths["holdout_by_frequency"] = diagnostics.save(ax, out / "holdout_by_frequency.png")
    return paths
