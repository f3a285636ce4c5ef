"""``churnclv campaign plan|evaluate``: a campaign's holdout, and its uplift measured against it.

Registered as the ``campaign`` entry point of ``churnclv.commands``; the measuring is in
:mod:`churnclv.campaigns`, this module reads the files, writes the report and logs it to MLflow.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

import click
import pandas as pd

from churnclv.cli_options import (
    as_of_option,
    config_option,
    horizon_option,
    prepare_source,
    report_errors,
    source_options,
    tracking_uri_option,
)
from churnclv.names import DEFAULT_TRACKING_URI
from churnclv.training.campaign_inputs import (
    CAMPAIGN_EXPERIMENT,
    SCORES_HELP,
    campaign_arms,
    evaluate_from_files,
    read_table,
    scores_as_of,
)
from churnclv.training.targeting_command import fit_targeting


def _write_plan(plan: pd.DataFrame, out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.suffix.lower() == ".csv":
        plan.to_csv(out, index=False)
    else:
        plan.to_parquet(out, index=False)


@click.group()
def campaign() -> None:
    """Campaigns: stable holdouts per campaign, the uplift measured against them, whom to contact."""


campaign.add_command(fit_targeting)


@campaign.command()
@click.option("--scores", required=True, type=click.Path(exists=True, path_type=Path), help=SCORES_HELP)
@click.option("--campaign", "campaign_id", required=True, help="The campaign id (a new id draws a new holdout).")
@click.option(
    "--previous",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="An earlier plan of the same campaign: its customers keep their arm.",
)
@config_option("TOML with a [campaigns] section (holdout_share, strata, min_controls).")
@click.option(
    "--out", required=True, type=click.Path(dir_okay=False, path_type=Path), help="Plan file (.parquet or .csv)."
)
def plan(scores: Path, campaign_id: str, previous: Path | None, config_path: Path | None, out: Path) -> None:
    """Write the holdout plan of a campaign for a scores partition."""
    from churnclv.campaigns.config import load_campaign_config
    from churnclv.campaigns.holdout import assign_holdout, holdout_summary

    with report_errors():
        s = load_campaign_config(config_path).settings
        frame = read_table(scores, "scores")
        prev = read_table(previous, "previous plan") if previous else None
        result = assign_holdout(
            frame, campaign_id, share=s.holdout_share, strata=s.strata, min_controls=s.min_controls, previous=prev
        )
    _write_plan(result, out)
    summary = holdout_summary(result, s.strata)
    click.echo(
        f"campaign {campaign_id}: {int(result['holdout'].sum()):,} of {len(result):,} customers held out "
        f"({result['holdout'].mean():.1%}) in {len(summary)} strata; "
        f"{int((result['assigned'] != 'draw').sum())} by top-up or release -> {out}"
    )


@campaign.command()
@source_options
@click.option("--scores", required=True, type=click.Path(exists=True, path_type=Path), help=SCORES_HELP)
@click.option(
    "--contacts",
    required=True,
    type=click.Path(exists=True, path_type=Path),
    help="Contact log (customer_id, campaign, date, action), Parquet or CSV.",
)
@click.option("--campaign", "campaign_id", required=True, help="The campaign id, as in the plan and the log.")
@click.option(
    "--plan",
    "plan_path",
    type=click.Path(exists=True, path_type=Path),
    help="The campaign's plan (default: the scores' holdout column when their campaign column is this campaign, "
    "else the plan recomputed from the scores).",
)
@click.option("--campaign-as-of", default=None, help="The scores' as-of (default: their as_of column).")
@as_of_option("The date the data is known up to (default: the end of the outcome window).", required=False)
@horizon_option("Outcome window in days (default: [campaigns] horizon_days, 90).")
@config_option("TOML with [campaigns] and [tiers] (the playbook's action costs).")
@tracking_uri_option(f"MLflow tracking URI (default $MLFLOW_TRACKING_URI or {DEFAULT_TRACKING_URI}).")
@click.option(
    "--score-column",
    "score_columns",
    multiple=True,
    default=("p_churn", "clv_at_risk"),
    show_default=True,
    help="Score columns to draw Qini curves for (repeat the option).",
)
@click.option(
    "--out", type=click.Path(file_okay=False, path_type=Path), default=Path("reports/campaign"), show_default=True
)
@click.option("--mlflow/--no-mlflow", "log_mlflow", default=True, show_default=True, help="Log the report to MLflow.")
def evaluate(
    data: str,
    mapping: Path | None,
    work: Path | None,
    trusted: bool,
    memory_limit: str | None,
    scores: Path,
    contacts: Path,
    campaign_id: str,
    plan_path: Path | None,
    campaign_as_of: str | None,
    as_of: Any,
    horizon_days: int | None,
    config_path: Path | None,
    tracking_uri: str | None,
    score_columns: tuple[str, ...],
    out: Path,
    log_mlflow: bool,
) -> None:
    """Measure a campaign against its holdout: uplift per tier and action, cost and ROI."""
    from churnclv.campaigns.config import load_campaign_config
    from churnclv.campaigns.report import write_campaign_report

    with report_errors():
        config = load_campaign_config(config_path)
        horizon = horizon_days or config.settings.horizon_days
        frame = read_table(scores, "scores")
        campaign_day = scores_as_of(frame, campaign_as_of)
        plan_frame = read_table(plan_path, "plan") if plan_path is not None else None
        arms = campaign_arms(frame, campaign_id, plan_frame, config)
        log = read_table(contacts, "contact log")
    clean = prepare_source(data, mapping, work, trusted, memory_limit)
    with report_errors():
        result = evaluate_from_files(
            clean,
            frame,
            arms,
            log,
            campaign_id=campaign_id,
            campaign_day=campaign_day,
            horizon=horizon,
            as_of=as_of,
            config=config,
        )
        paths = write_campaign_report(result, out, score_columns=score_columns)
    total = result.total.iloc[0]
    click.echo(
        f"campaign {campaign_id}: {int(total['treated']):,} treated, {int(total['controls']):,} held out; revenue "
        f"uplift {total['revenue_uplift']:.4g} per customer [{total['revenue_low']:.4g}, {total['revenue_high']:.4g}], "
        f"retention {total['retention_uplift']:+.2%}; incremental revenue {total['incremental_revenue']:,.0f}, "
        f"cost {total['cost']:,.0f}, ROI {total['roi']:.3g}"
    )
    for note in result.notes:
        click.echo(f"note: {note}")
    click.echo(f"report: {paths['campaign']}")
    if log_mlflow:
        with report_errors(redact=True):
            run_id = _log_to_mlflow(result, out, tracking_uri)
        click.echo(f"MLflow run {run_id} (experiment {CAMPAIGN_EXPERIMENT})")


def _log_to_mlflow(result: Any, out: Path, tracking_uri: str | None) -> str:
    import mlflow

    from churnclv.training.tracking import configure

    configure(tracking_uri, experiment=CAMPAIGN_EXPERIMENT)
    total = result.total.iloc[0]
    metrics = {
        f"{name}_{part}": float(total[f"{name}_{part}"])
        for name in ("retention", "purchases", "revenue")
        for part in ("uplift", "low", "high")
    }
    metrics |= {k: float(total[k]) for k in ("incremental_revenue", "cost", "profit", "roi", "contact_rate")}
    metrics |= {
        "tier_revenue_uplift_" + re.sub(r"[^\w\-.]", "_", str(row.tier)): float(row.revenue_uplift)
        for row in result.tiers.itertuples()
    }
    with mlflow.start_run(run_name=f"campaign {result.campaign}") as run:
        mlflow.log_params(
            {"campaign": result.campaign, "as_of": str(result.as_of.date()), "horizon_days": result.horizon_days}
        )
        mlflow.log_metrics({k: v for k, v in metrics.items() if math.isfinite(v)})
        mlflow.log_dict(result.counts.to_dict(), "campaign/contact_counts.json")
        mlflow.log_artifacts(str(out), "campaign")
        return str(run.info.run_id)
