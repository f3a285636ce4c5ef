"""The training commands of ``churnclv``: ``train`` and ``models list|promote``.

Registered with the CLI through the ``churnclv.commands`` entry points (pyproject.toml), so the
CLI core loads this module only when one of these commands runs or ``--help`` lists them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from churnclv.cli_options import (
    StepProgress,
    as_of_option,
    config_option,
    horizon_option,
    is_quiet,
    model_name_option,
    optional_source_options,
    prepare_source,
    progress_option,
    report_errors,
    show_progress,
    source_options,
    tracking_uri_option,
)
from churnclv.names import DEFAULT_TRACKING_URI, MODEL_NAME


@click.command()
@source_options
@as_of_option("Training as-of: only data on or before it is used.")
@horizon_option("Churn/spend horizon in days (default 90, or the config's).")
@config_option("TOML with [train], [scorer] and [tiers] sections.")
@tracking_uri_option(f"MLflow tracking URI (default $MLFLOW_TRACKING_URI or {DEFAULT_TRACKING_URI}).")
@model_name_option()
@click.option("--promote/--no-promote", default=True, show_default=True, help="Run the promotion check after training.")
@progress_option()
def train(
    data: str,
    mapping: Path | None,
    work: Path | None,
    trusted: bool,
    memory_limit: str | None,
    as_of: Any,
    horizon_days: int | None,
    config_path: Path | None,
    tracking_uri: str | None,
    model_name: str | None,
    promote: bool,
    progress: bool | None,
) -> None:
    """Backtest, select, train and register a model (alias challenger; champion when it earns it).

    Progress and the time left go to stderr (on a terminal, or with --progress); the summary at the
    end names the run, the registered version, where the plots are and how to open the MLflow UI.
    With -q it prints nothing but warnings and errors."""
    from churnclv.training.config import RunConfig
    from churnclv.training.mlflow_run import train_and_log
    from churnclv.training.summary import summary_lines
    from churnclv.training.tracking import tracking_uri as resolve_tracking_uri

    with report_errors():
        config = RunConfig.load(config_path, horizon_days=horizon_days, model_name=model_name)
    if memory_limit:
        from dataclasses import replace

        config = replace(config, train=replace(config.train, memory_limit=memory_limit))
    clean = prepare_source(data, mapping, work, trusted, memory_limit)
    with report_errors(), StepProgress("training", enabled=show_progress(progress)) as steps:
        result = train_and_log(clean, as_of, config, tracking_uri=tracking_uri, promote=promote, progress=steps)
    if is_quiet():
        return
    lines = summary_lines(
        result,
        as_of=f"{as_of:%Y-%m-%d}",
        horizon_days=config.train.horizon_days,
        tracking_uri=resolve_tracking_uri(tracking_uri),
    )
    for line in lines:
        click.echo(line)


@click.group()
def models() -> None:
    """The model registry: list versions, promote the challenger."""


@models.command("list")
@tracking_uri_option()
@model_name_option()
def models_list(tracking_uri: str | None, model_name: str | None) -> None:
    """Versions with their aliases, as-of, horizon, selected models and key backtest metrics."""
    from churnclv.training import registry, tracking

    name = model_name or MODEL_NAME
    with report_errors(redact=True):
        tracking.configure(tracking_uri)
    rows = registry.list_versions(name)
    if not rows:
        others = [n for n in registry.model_names() if n != name]
        hint = f"; registered models in this store: {', '.join(others)} (--model-name)" if others else ""
        click.echo(f"no version of model {name} registered yet: run churnclv train --model-name {name}{hint}")
        return
    click.echo(f"model {name}")
    click.echo(
        f"{'version':>7}  {'aliases':<20} {'as_of':<10} {'H':>4} {'backtest':<8}  {'AUC':>6} {'Brier':>6} "
        f"{'Gini':>6}  selected"
    )

    def shown(value: float | None) -> str:  # "-": not measured (no backtest at the horizon, or every fit failed)
        return "-" if value is None or value != value else f"{value:.3f}"

    for r in rows:
        m = r["metrics"]
        backtest = "yes" if r.get("backtested", True) else "no"  # "no": not backtested at its horizon
        click.echo(
            f"{r['version']:>7}  {r['aliases']:<20} {r['as_of']:<10} {r['horizon_days']:>4} {backtest:<8}  "
            f"{shown(m.get('selected.churn_auc')):>6} {shown(m.get('selected.churn_brier')):>6} "
            f"{shown(m.get('selected.spend_gini')):>6}  {r['selected']}"
        )
    if any(not r.get("backtested", True) for r in rows):
        click.echo("backtest no: not backtested at its horizon (too little history); promoted only without a champion")


@models.command("promote")
@optional_source_options
@tracking_uri_option()
@model_name_option()
@click.option("--version", default=None, help="Version to consider (default: the challenger).")
@click.option(
    "--tolerance",
    multiple=True,
    metavar="METRIC=LOSS",
    help="Largest loss allowed per metric, e.g. churn_auc=0.005 (repeatable).",
)
def models_promote(
    data: str | None,
    mapping: Path | None,
    work: Path | None,
    trusted: bool,
    memory_limit: str | None,
    tracking_uri: str | None,
    model_name: str | None,
    version: str | None,
    tolerance: tuple[str, ...],
) -> None:
    """Move champion to the challenger when it is not worse beyond the tolerance.

    With --data (the data the challenger was trained on) both are compared on the same out-of-time
    window when there is one; without it, on their logged backtests."""
    from churnclv.training import promotion, registry, tracking

    tol = dict(promotion.DEFAULT_TOLERANCE)
    for item in tolerance:
        name, _, value = item.partition("=")
        if name not in tracking.METRIC_DIRECTION:
            raise click.BadParameter(
                f"{item!r}: unknown metric {name!r}; choose from {sorted(tracking.METRIC_DIRECTION)}",
                param_hint="--tolerance",
            )
        try:
            tol[name] = float(value)
        except ValueError:
            raise click.BadParameter(f"{item!r}: use METRIC=NUMBER", param_hint="--tolerance") from None
    clean = None if data is None else prepare_source(data, mapping, work, trusted, memory_limit)
    with report_errors(redact=True):
        tracking.configure(tracking_uri)
    with report_errors():
        try:
            decision = promotion.promote(
                tolerance=tol,
                name=model_name or MODEL_NAME,
                challenger=version,
                data=clean,
                memory_limit=memory_limit,
            )
        except registry.UnknownVersionError as exc:  # a usage error (exit 2), not a data problem
            raise click.BadParameter(str(exc), param_hint="--version") from None
    verdict = "promoted to champion" if decision.promoted else "not promoted"
    reasons = "; ".join(decision.reasons)
    click.echo(f"{model_name or MODEL_NAME} version {decision.challenger_version}: {verdict} ({reasons})")
    if decision.champion_metrics is not None:
        # the basis in the header: the same window (per fold in promotion.json) or the logged backtests
        on = "same window" if decision.basis is not None and decision.basis.same_window else "logged backtests"
        click.echo(f"{'metric (' + on + ')':<34} {'challenger':>10} {'champion':>10} {'loss':>8} {'tolerance':>9}")
        for row in decision.comparison():
            if row["loss"] is not None:
                click.echo(
                    f"{row['metric']:<34} {row['challenger']:>10.4f} {row['champion']:>10.4f} "
                    f"{row['loss']:>+8.4f} {row['tolerance']:>9.4f}"
                )
