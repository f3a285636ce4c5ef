"""``churnclv weekly``: the weekly job as one command (validate, score, monitor, retrain when due,
score again, reload the service), idempotent per as-of, one run per output folder at a time.

Registered through the ``churnclv.commands`` entry points, like the training and serving commands.
Exit status: 0 done (breaches handled are in the summary), 1 a step or the configuration failed
(rerun to continue), 2 usage error, 75 another run holds the lock (EX_TEMPFAIL: try again later).
"""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any

import click

from churnclv.cli_options import (
    DataProblem,
    as_of_option,
    config_option,
    horizon_option,
    model_name_option,
    report_errors,
    source_options,
    tracking_uri_option,
)
from churnclv.weekly.errors import WeeklyBusyError, WeeklyError

__all__ = ["BUSY_EXIT", "FAULT_VARIABLE", "weekly"]

BUSY_EXIT = 75  # sysexits.h EX_TEMPFAIL: another run holds the lock; cron and systemd may simply retry
FAULT_VARIABLE = "CHURNCLV_WEEKLY_KILL_AT"  # STEP:before|after -> SIGKILL there (tests and recovery drills)


class _Busy(click.ClickException):
    exit_code = BUSY_EXIT


def _fault_hook() -> Any:
    """The hook that kills this process at ``$CHURNCLV_WEEKLY_KILL_AT`` (``score:after``), if set."""
    where = os.environ.get(FAULT_VARIABLE, "").strip()
    if not where:
        return None

    def hook(step: str, when: str) -> None:
        if where == f"{step}:{when}":
            os.kill(os.getpid(), signal.SIGKILL)

    return hook


def _resolve(ctx: click.Context) -> Any:
    root = ctx.find_root()
    group = root.command
    if not isinstance(group, click.Group):
        raise click.UsageError("run the weekly job as churnclv weekly (it runs the other churnclv commands)")
    return lambda name: group.get_command(root, name)


@click.command()
@source_options
@as_of_option("The week's as-of date (YYYY-MM-DD): the data run to it; scores, monitor and training use it.")
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    required=True,
    help="The batch output folder (as for score-batch); the journal goes to OUT/weekly/dt=DATE/.",
)
@config_option("TOML with [weekly] (cadence, service), [monitor] thresholds and the training sections.")
@tracking_uri_option()
@horizon_option("Horizon for training and validation's readiness report (default: the config's, else 90).")
@click.option(
    "--db", default=None, help="Database sink of score-batch and the monitor (postgresql://..., sqlite:///...)."
)
@model_name_option("Registered model of this data set (default: [train] model_name, else churnclv).")
@click.option(
    "--service-url", default=None, help="Scoring service to POST /reload to (overrides [weekly] service_url)."
)
@click.option(
    "--api-key-env", default=None, help="Variable holding the service's API key (overrides [weekly] api_key_env)."
)
@click.option("--wait", is_flag=True, help="When another weekly run holds the lock, wait for it instead of exiting 75.")
@click.pass_context
def weekly(
    ctx: click.Context,
    data: str,
    mapping: Path | None,
    work: Path | None,
    trusted: bool,
    memory_limit: str | None,
    as_of: Any,
    out: Path,
    config_path: Path | None,
    tracking_uri: str | None,
    horizon_days: int | None,
    db: str | None,
    model_name: str | None,
    service_url: str | None,
    api_key_env: str | None,
    wait: bool,
) -> None:
    """The weekly job: validate the data, score the base as of the date (resuming an interrupted run),
    monitor past scores and drift, retrain when due ([weekly] retrain_every_days) or when the monitor
    reports a breach, promote through the gate, score again if the champion changed, and ask the
    service to reload.

    Each step is the churnclv command you would type (shown as it runs). Completed steps are
    recorded in OUT/weekly/dt=DATE/journal.json: run the same command again after a failure or a
    kill and it continues where it stopped; a complete as-of is skipped step by step. One run per
    output folder at a time (lock OUT/.locks/weekly.lock).
    """
    from dataclasses import replace

    from churnclv.names import MODEL_NAME
    from churnclv.training.config import RunConfig
    from churnclv.weekly.config import load_weekly_config
    from churnclv.weekly.lock import run_lock
    from churnclv.weekly.registry_view import MlflowRegistry
    from churnclv.weekly.request import WeeklyRequest
    from churnclv.weekly.runner import run_weekly
    from churnclv.weekly.summary import summary_lines

    with report_errors(redact=True):
        settings = load_weekly_config(config_path)
        configured = RunConfig.load(config_path).train.model_name  # every section checked before any step
        if model_name is None:  # [train] model_name names the model every step uses, as train resolves it
            model_name = None if configured == MODEL_NAME else configured
        if service_url is not None:
            settings = replace(settings, service_url=service_url)
        if api_key_env is not None:
            settings = replace(settings, api_key_env=api_key_env)
    resolve = _resolve(ctx)
    request = WeeklyRequest(
        out=out,
        as_of=as_of.date(),
        data=data,
        settings=settings,
        mapping=mapping,
        work=work,
        trusted=trusted,
        memory_limit=memory_limit,
        config_path=config_path,
        tracking_uri=tracking_uri,
        db=db,
        horizon_days=horizon_days,
        model_name=model_name,
        api_key=os.environ.get(settings.api_key_env),
    )
    registry = MlflowRegistry(tracking_uri, request.name)
    try:
        with run_lock(out, wait=wait, on_wait=lambda m: click.echo(m, err=True)), report_errors(redact=True):
            result = run_weekly(request, resolve=resolve, registry=registry, echo=click.echo, hook=_fault_hook())
    except WeeklyBusyError as exc:  # raised by the lock, before anything runs
        raise _Busy(str(exc)) from None
    except WeeklyError as exc:  # the lock could not be created (--out not a writable folder)
        raise DataProblem(str(exc)) from None
    click.echo()
    for line in summary_lines(result):
        click.echo(line)


# the shared --work help names score-batch's default; the weekly job keeps one copy per as-of
for _param in weekly.params:
    if _param.name == "work" and isinstance(_param, click.Option):
        _param.help = "Where validated tables and rejects go (default: OUT/weekly/validated/DATE)."
