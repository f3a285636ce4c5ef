"""What a training run shows: the backtest table, its notes, and the plots and tables of its report."""

from __future__ import annotations

from pathlib import Path

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


def format_notes(result: TrainResult) -> list[str]:
    """One line each: the run's backtest status and every sub-fit left out, with its reason."""
    lines = []
    if result.plan is not None and result.plan.note:
        lines.append(result.plan.note)
    for d in result.dropped:
        where = f"fold {d['fold']}: " if d.get("fold") is not None else f"{d['stage']}: "
        lines.append(f"dropped {where}{d['candidate']}: {d['reason']}")
    lines += [f"note: {n}" for n in result.scorer.metadata_.get("fit_notes", [])]
    return lines


def write_artifacts(result: TrainResult, out: Path) -> dict[str, Path]:
    """Plots (calibration, gain, importance, tier mix) and tables of a run, into ``out``."""
    from churnclv import plotting

    out.mkdir(parents=True, exist_ok=True)
    paths: dict[str, Path] = {}
    preds = result.fold_predictions
    chosen = [c for c in preds if c in set(result.selected.values())]
    shown = list(dict.fromkeys(chosen + [c for c in ("btyd", "recency") if c in preds]))
    if shown:  # a run without a backtest has no held-out predictions to plot
        paths["calibration"] = plotting.save(
            plotting.plot_calibration(
                {c: (preds[c]["churned"].to_numpy(), preds[c]["p_churn"].to_numpy()) for c in shown}
            ),
            out / "calibration.png",
        )
        paths["gain_churn"] = plotting.save(
            plotting.plot_gain({c: (preds[c]["churned"].to_numpy(), preds[c]["p_churn"].to_numpy()) for c in shown}),
            out / "gain_churn.png",
        )
        paths["gain_spend"] = plotting.save(
            plotting.plot_gain(
                {c: (preds[c]["spend"].clip(lower=0).to_numpy(), preds[c]["expected_spend"].to_numpy()) for c in shown}
            ),
            out / "gain_spend.png",
        )
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
