"""The ``churnclv monitor`` command (an entry point of ``churnclv.commands``).

Exit status: 0 when no threshold is crossed, 3 when one is (one line per breach on stderr: the check,
the value, the threshold, the partition and the fix), 1 for a data or configuration error.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from churnclv.cli_options import (
    as_of_option,
    config_option,
    prepare_source,
    report_errors,
    source_options,
    tracking_uri_option,
)

__all__ = ["BREACH_EXIT", "monitor"]

BREACH_EXIT = 3  # a threshold crossed: distinct from 1 (data or configuration error) and 2 (usage)


@click.command("monitor")
@source_options
@as_of_option("Monitor as-of (YYYY-MM-DD): partitions whose horizon closed by then are checked.")
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    required=True,
    help="The batch job's output folder (score-batch --out); the report goes to OUT/monitoring/dt=DATE/.",
)
@config_option("TOML whose [monitor] section sets the thresholds (and [features] the purchase rule).")
@tracking_uri_option("MLflow tracking URI of the model versions (default: $MLFLOW_TRACKING_URI, else the local store).")
@click.option(
    "--db",
    default=None,
    help="Also write the figures into a database table (postgresql://..., sqlite:///...); the as-of's rows "
    "are replaced.",
)
@click.option("--db-table", default="churnclv_monitoring", show_default=True, help="Table of the database sink.")
def monitor(
    data: str,
    mapping: Path | None,
    work: Path | None,
    trusted: bool,
    memory_limit: str | None,
    as_of: Any,
    out: Path,
    config_path: Path | None,
    tracking_uri: str | None,
    db: str | None,
    db_table: str,
) -> None:
    """Check past scores against what customers then did, and this week's data against the model's
    reference; write OUT/monitoring/dt=DATE/ (monitor.json, report.md, plots), log to MLflow under the
    model version that made the scores. Exit 3 when a [monitor] threshold is crossed."""
    from churnclv.config_schema import read_run_config
    from churnclv.features.config import parse_features
    from churnclv.monitoring.thresholds import parse_monitor
    from churnclv.serving.monitor import run_monitor

    with report_errors():
        raw = read_run_config(config_path)
        config = parse_monitor(raw.get("monitor", {}))
        features = parse_features(raw.get("features", {}))
    clean = prepare_source(data, mapping, work, trusted, memory_limit)
    with report_errors(redact=True):
        result = run_monitor(
            clean=clean,
            out=out,
            as_of=as_of,
            config=config,
            tracking_uri=tracking_uri,
            db=db,
            db_table=db_table,
            memory_limit=memory_limit,
            features=features,
            echo=click.echo,
        )
    for breach in result.breaches:
        click.echo(breach.message(), err=True)
    if result.breaches:
        raise click.exceptions.Exit(BREACH_EXIT)
