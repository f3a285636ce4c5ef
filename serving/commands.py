"""The serving commands of ``churnclv``: ``score-batch`` and ``serve``.

Registered with the CLI through the ``churnclv.commands`` entry points (pyproject.toml), so the
CLI core loads this module only when one of these commands runs or ``--help`` lists them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from churnclv.cli_options import (
    as_of_option,
    config_option,
    horizon_option,
    model_name_option,
    prepare_source,
    report_errors,
    show_progress,
    source_options,
    tracking_uri_option,
)
from churnclv.names import DEFAULT_MODEL_URI, MODEL_NAME, model_uri


def _chosen_model(uri: str | None, name: str | None) -> str | None:
    """``--model`` or ``--model-name`` (its champion), not both; None when neither was given."""
    if uri is not None and name is not None:
        raise click.UsageError(
            f"give --model or --model-name, not both (--model-name {name} means --model {model_uri(name)})"
        )
    return model_uri(name) if name is not None else uri


@click.command("score-batch")
@source_options
@as_of_option("Scoring as-of date (YYYY-MM-DD).")
@horizon_option("Horizon; must match the model's (default: the model's).")
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    required=True,
    help="Output folder; the run writes OUT/scores/dt=DATE/, OUT/features/dt=DATE/, OUT/reports/dt=DATE/ and "
    "OUT/LATEST (the latest partition by date).",
)
@click.option(
    "--model",
    "model_uri",
    default=None,
    help=f"MLflow model URI (default: the champion of --model-name, {DEFAULT_MODEL_URI}).",
)
@model_name_option(
    f"Registered model of this data set: scores with models:/NAME@champion (default: {MODEL_NAME}). "
    "A model trained on another data set (other customer attributes or events) is refused."
)
@tracking_uri_option()
@click.option(
    "--db",
    default=None,
    help="Also write the rows into a database table (postgresql://..., sqlite:///...): the as-of's rows "
    "are replaced in one transaction when the partition is published.",
)
@click.option(
    "--engine",
    type=click.Choice(["duckdb", "spark"]),
    default="duckdb",
    show_default=True,
    help="Feature engine and scorer runtime (spark needs the spark extra).",
)
@click.option(
    "--chunk-size",
    type=click.IntRange(min=1),
    default=200_000,
    show_default=True,
    help="Customers scored per chunk (memory is bounded by the chunk).",
)
@click.option("--resume", is_flag=True, help="Continue a killed run of this as-of from its completed chunks.")
@click.option("--db-table", default="churnclv_scores", show_default=True, help="Table of the database sink.")
@click.option(
    "--hysteresis",
    is_flag=True,
    help="Keep last as-of's tiers unless the score passes a boundary by the margin (tiers may then "
    "differ from the HTTP service's, which has no history).",
)
@click.option(
    "--reasons/--no-reasons",
    default=True,
    show_default=True,
    help="Compute the plain-word reasons (TreeSHAP: most of the scoring time).",
)
@click.option(
    "--max-days-after-data",
    type=click.IntRange(min=0),
    default=31,
    show_default=True,
    help="Refuse an as-of more days than this after the last transaction, event or sign-up in the data "
    "(a typo'd year would otherwise become LATEST).",
)
@click.option(
    "--campaign",
    default=None,
    metavar="ID",
    help="Write this campaign's holdout with the scores (campaign and holdout columns); wins over [campaigns] "
    "campaign. A customer keeps their arm for the life of the campaign; a new id draws a new holdout.",
)
@click.option(
    "--targeting",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    metavar="DIR",
    help="A targeting saved by `churnclv campaign fit-targeting`: adds contact, expected_incremental_revenue, "
    "expected_profit and targeting to the scores (holdout customers are never contacted); wins over [campaigns] "
    "targeting.",
)
@config_option("TOML with a [campaigns] section: campaign, holdout_share, strata, min_controls, targeting.")
def score_batch(
    data: str,
    mapping: Path | None,
    work: Path | None,
    trusted: bool,
    memory_limit: str | None,
    as_of: Any,
    horizon_days: int | None,
    out: Path,
    model_uri: str | None,
    model_name: str | None,
    tracking_uri: str | None,
    db: str | None,
    engine: str,
    chunk_size: int,
    resume: bool,
    db_table: str,
    hysteresis: bool,
    reasons: bool,
    max_days_after_data: int,
    campaign: str | None,
    targeting: Path | None,
    config_path: Path | None,
) -> None:
    """Score every customer known at as-of; write Parquet, a manifest, the tier report and the
    feature snapshot for the HTTP service.

    OUT/LATEST names the latest partition by date: re-running an older as-of leaves it alone. To
    drop a partition written by mistake (a wrong date), remove its folders (rm -r OUT/*/dt=DATE)
    and run the newest correct as-of again, or write that partition's name into OUT/LATEST.
    """
    from churnclv.campaigns.config import parse_campaigns
    from churnclv.config_schema import read_run_config
    from churnclv.serving.batch import run_batch
    from churnclv.serving.batch_targeting import TargetingOptions

    uri = _chosen_model(model_uri, model_name) or DEFAULT_MODEL_URI
    with report_errors():  # a bad config or targeting folder stops before the data is prepared
        campaigns = parse_campaigns(read_run_config(config_path).get("campaigns", {}))
        TargetingOptions.of(targeting, campaigns)
    clean = prepare_source(data, mapping, work, trusted, memory_limit)
    with report_errors(redact=True):
        run_batch(
            clean=clean,
            as_of=as_of,
            out=out,
            model_uri=uri,
            tracking_uri=tracking_uri,
            horizon_days=horizon_days,
            db=db,
            engine=engine,
            chunk_size=chunk_size,
            resume=resume,
            memory_limit=memory_limit,
            echo=click.echo,
            db_table=db_table,
            hysteresis=hysteresis,
            reasons=reasons,
            max_days_after_data=max_days_after_data,
            campaign=campaign,
            campaign_settings=campaigns,
            targeting=targeting,
            progress=show_progress(None),  # on a terminal only, never with -q (cron logs stay clean)
        )


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind.")
@click.option("--port", type=click.IntRange(1, 65535), default=3000, show_default=True)
@click.option(
    "--model",
    "model_uri",
    default=None,
    help=f"MLflow model URI or bento:TAG (default: $CHURNCLV_MODEL_URI, else {DEFAULT_MODEL_URI}).",
)
@model_name_option(
    "Registered model of the data set served: serves models:/NAME@champion (instead of --model / $CHURNCLV_MODEL_URI)."
)
@tracking_uri_option()
@click.option(
    "--snapshot",
    type=click.Path(file_okay=False, exists=True, path_type=Path),  # a typo fails here, not at the first call
    default=None,
    help="The batch job's output folder (score-batch --out, the one holding LATEST; not a folder inside it), for "
    "scoring by customer id (it must exist; its first partition may come later: score_by_id answers 503 until "
    "/reload finds one).",
)
@click.option(
    "--targeting",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="A targeting folder (campaign fit-targeting --out): every score carries its contact decision "
    "(default: $CHURNCLV_TARGETING).",
)
def serve(
    host: str,
    port: int,
    model_uri: str | None,
    model_name: str | None,
    tracking_uri: str | None,
    snapshot: Path | None,
    targeting: Path | None,
) -> None:
    """Start the HTTP scoring service (BentoML). The API key comes from CHURNCLV_API_KEY.

    A --port in use stops here first, then the model is loaded and checked: one that cannot load, or that
    does not fit the --snapshot (trained on another data set), stops here too (exit 1, one line)."""
    from churnclv.serving.server import serve as run_server

    uri = _chosen_model(model_uri, model_name)
    with report_errors(redact=True):
        run_server(
            host=host, port=port, model_uri=uri, tracking_uri=tracking_uri, snapshot=snapshot, targeting=targeting
        )
