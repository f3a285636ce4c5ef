"""The training commands of ``churnclv``: ``train`` and ``models list|promote``.

Registered with the CLI through the ``churnclv.commands`` entry points (pyproject.toml), so the
CLI core loads this module only when one of these commands runs or ``--help`` lists them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from churnclv.cli_options import (
    _Steps,
    as_of_option,
    config_option,
    horizon_option,
    prepare_source,
    report_errors,
    source_options,
    tracking_uri_option,
)
from churnclv.names import CHALLENGER, DEFAULT_TRACKING_URI, MODEL_NAME


@click.command()
@source_options
@as_of_option("Training as-of: only data on or before it is used.")
@horizon_option("Churn/spend horizon in days (default 90, or the config's).")
@config_option("TOML with [train], [scorer] and [tiers] sections.")
@tracking_uri_option(f"MLflow tracking URI (default $MLFLOW_TRACKING_URI or {DEFAULT_TRACKING_URI}).")
@click.option("--promote/--no-promote", default=True, show_default=True, help="Run the promotion check after training.")
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
    promote: bool,
) -> None:
    """Backtest, select, train and register a model (alias challenger; champion when it earns it)."""
    from churnclv.training.config import RunConfig
    from churnclv.training.mlflow_run import train_and_log
    from churnclv.training.reports import format_notes, format_summary

    with report_errors():
        config = RunConfig.load(config_path, horizon_days=horizon_days)
    if memory_limit:
        from dataclasses import replace

        config = replace(config, train=replace(config.train, memory_limit=memory_limit))
    clean = prepare_source(data, mapping, work, trusted, memory_limit)
    with report_errors(), _Steps("training") as steps:
        result = train_and_log(clean, as_of, config, tracking_uri=tracking_uri, promote=promote, progress=steps)
    plan = result.plan
    bt_horizon = config.train.horizon_days if plan is None else plan.backtest_horizon_days
    if bt_horizon is None:
        click.echo(f"backtest: none (as of {as_of:%Y-%m-%d}, horizon {config.train.horizon_days} days)")
    else:
        click.echo(
            f"backtest: {len(result.folds)} folds, mean over folds (as of {as_of:%Y-%m-%d}, horizon {bt_horizon} days)"
        )
        click.echo(format_summary(result))
    for line in format_notes(result):
        click.echo(line)
    click.echo(f"\nselected: {result.selected}")
    click.echo(
        f"MLflow run {result.run_id}; registered {MODEL_NAME} version {result.model_version} (alias {CHALLENGER})"
    )
    if result.promotion is not None:
        verdict = "promoted to champion" if result.promotion["promoted"] else "not promoted"
        click.echo(f"promotion: {verdict}: {'; '.join(result.promotion['reasons'])}")


@click.group()
def models() -> None:
    """The model registry: list versions, promote the challenger."""


@models.command("list")
@tracking_uri_option()
def models_list(tracking_uri: str | None) -> None:
    """Versions with their aliases, as-of, horizon, selected models and key backtest metrics."""
    from churnclv.training import registry, tracking

    tracking.configure(tracking_uri)
    rows = registry.list_versions()
    if not rows:
        click.echo("no model registered yet: run churnclv train")
        return
    click.echo(
        f"{'version':>7}  {'aliases':<20} {'as_of':<10} {'H':>4} {'backtest':<8}  {'AUC':>6} {'Brier':>6} "
        f"{'Gini':>6}  selected"
    )
    for r in rows:
        m = r["metrics"]
        backtest = "yes" if r.get("backtested", True) else "no"  # "no": not backtested at its horizon
        click.echo(
            f"{r['version']:>7}  {r['aliases']:<20} {r['as_of']:<10} {r['horizon_days']:>4} {backtest:<8}  "
            f"{m.get('selected.churn_auc', float('nan')):>6.3f} {m.get('selected.churn_brier', float('nan')):>6.3f} "
            f"{m.get('selected.spend_gini', float('nan')):>6.3f}  {r['selected']}"
        )
    if any(not r.get("backtested", True) for r in rows):
        click.echo("backtest no: not backtested at its horizon (too little history); promoted only without a champion")


@models.command("promote")
@tracking_uri_option()
@click.option("--version", default=None, help="Version to consider (default: the challenger).")
@click.option(
    "--tolerance",
    multiple=True,
    metavar="METRIC=LOSS",
    help="Largest loss allowed per metric, e.g. churn_auc=0.005 (repeatable).",
)
def models_promote(tracking_uri: str | None, version: str | None, tolerance: tuple[str, ...]) -> None:
    """Move champion to the challenger when it is not worse beyond the tolerance."""
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
    tracking.configure(tracking_uri)
    with report_errors():
        try:
            decision = promotion.promote(tolerance=tol, challenger=version)
        except registry.UnknownVersionError as exc:  # a usage error (exit 2), not a data problem
            raise click.BadParameter(str(exc), param_hint="--version") from None
    verdict = "promoted to champion" if decision.promoted else "not promoted"
    click.echo(f"version {decision.challenger_version}: {verdict} ({'; '.join(decision.reasons)})")
    if decision.champion_metrics is not None:
        click.echo(f"{'metric':<26} {'challenger':>10} {'champion':>10} {'loss':>8} {'tolerance':>9}")
        for row in decision.comparison():
            if row["loss"] is not None:
                click.echo(
                    f"{row['metric']:<26} {row['challenger']:>10.4f} {row['champion']:>10.4f} "
                    f"{row['loss']:>+8.4f} {row['tolerance']:>9.4f}"
                )
