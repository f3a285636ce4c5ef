"""The ``churnclv`` command. The only place that configures logging or reads the clock.

Exit status: 0 success, 1 data or configuration error (message on stderr), 2 usage error.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from pathlib import Path
from typing import Any

import click
from click.core import ParameterSource

from churnclv import __version__
from churnclv.cli_options import (
    DATA_HELP,
    WORK_DEFAULT,
    StderrHandler,
    _date,
    as_of_option,
    check_default_folder,
    config_option,
    horizon_option,
    prepare_source,
    report_errors,
    source_options,
)
from churnclv.runtime import disable_huge_pages, freeze_at_exit

log = logging.getLogger("churnclv")

# commands that keep the kernel's transparent huge pages: the BentoML server of `serve` answered
# 1,100-1,250 requests/s without them at concurrency 16 in 10 of 10 runs, 1,800-2,200 with them in
# half of its runs (bench/http_load.py, 2026-12-07)
KEEPS_HUGE_PAGES = frozenset({"serve"})

COMMANDS_GROUP = "churnclv.commands"


class LazyGroup(click.Group):
    """A group that also offers the commands declared as ``churnclv.commands`` entry points
    (pyproject.toml: training and serving). A command's module is imported only when the command
    runs or when ``--help`` lists the commands, so the core never imports training or serving."""

    def _entry_points(self) -> dict[str, Any]:
        from importlib.metadata import entry_points

        # by name: an entry point seen twice (two metadata copies) is one command
        return {ep.name: ep for ep in entry_points(group=COMMANDS_GROUP) if ep.name not in self.commands}

    def list_commands(self, ctx: click.Context) -> list[str]:
        """The built-in commands and the entry points' names (nothing imported)."""
        return sorted({*super().list_commands(ctx), *self._entry_points()})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        """A built-in command, else the entry point's command, imported now."""
        command = super().get_command(ctx, cmd_name)
        if command is not None:
            return command
        ep = self._entry_points().get(cmd_name)
        if ep is None:
            return None
        loaded = ep.load()
        if not isinstance(loaded, click.Command):
            raise click.ClickException(f"entry point {ep.name} = {ep.value!r} is not a click command")
        return loaded


def _configure_logging(verbose: int, quiet: bool) -> None:
    """Who says what on stderr. ``-q``: warnings and errors only, MLflow's and its database migrations'
    included. Default: churnclv's INFO lines, without the model-fit details (``churnclv.models``).
    ``-v``: those details and the fitted parameters (DEBUG). ``-vv``: the libraries' INFO lines too."""
    level = logging.WARNING if quiet else logging.DEBUG if verbose else logging.INFO
    library_level = logging.INFO if verbose > 1 and not quiet else logging.WARNING
    handler = StderrHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s", "%H:%M:%S"))
    if not verbose:
        # a filter, not a logger level: the records still reach whoever else listens (tests' caplog)
        handler.addFilter(lambda r: r.levelno >= logging.WARNING or not r.name.startswith("churnclv.models"))
    seen: set[tuple[str, str]] = set()

    def once(record: logging.LogRecord) -> bool:
        # a warning repeated word for word (the same sub-fit in several candidates) is said once
        if record.levelno < logging.WARNING:
            return True
        key = (record.name, record.getMessage())
        if key in seen:
            return False
        seen.add(key)
        return True

    handler.addFilter(once)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.WARNING)
    logging.getLogger("churnclv").setLevel(level)
    # MLflow sets its loggers' level from this variable when it is imported (after this, lazily)...
    os.environ["MLFLOW_LOGGING_LEVEL"] = logging.getLevelName(library_level)
    # ...and the loggers of libraries already imported are set here; each has its own handler
    for name in ("mlflow", "alembic", "sqlalchemy", "huey", "bentoml", "py4j"):
        logging.getLogger(name).setLevel(library_level)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="churnclv")
@click.option(
    "-v", "--verbose", count=True, help="More log output: -v model-fit details and parameters, -vv the libraries' too."
)
@click.option("-q", "--quiet", is_flag=True, help="Only warnings and errors.")
@click.pass_context
def cli(ctx: click.Context, verbose: int, quiet: bool) -> None:
    """churnclv: churn, customer lifetime value and growth-potential tiers, point in time."""
    _configure_logging(verbose, quiet)
    # every job of this process and the processes it starts (the batch's workers): no transparent
    # huge pages, whose kernel-side zeroing cost the feature stage more than they save (churnclv.runtime);
    # the HTTP service keeps the kernel's default, which serves more requests a second
    if ctx.invoked_subcommand not in KEEPS_HUGE_PAGES:
        disable_huge_pages()
    freeze_at_exit()  # the exit skips the collector's passes over every library's objects (~1 s)


# --------------------------------------------------------------------------- generate


def _multiplier_option(flag: str, help: str) -> Any:
    """A generator rate multiplier: a number > 0, default 1 (unchanged)."""
    return click.option(flag, type=click.FloatRange(min=0, min_open=True), default=1.0, show_default=True, help=help)


@cli.command()
@click.option(
    "--customers",
    "n_customers",
    type=click.IntRange(min=1),
    default=10_000,
    show_default=True,
    help="Number of customers.",
)
@click.option("--seed", type=int, default=42, show_default=True, help="Random seed (same seed, same world).")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True, help="Output folder.")
@click.option(
    "--truth-as-of",
    "truth_as_of",
    multiple=True,
    metavar="DATE",
    callback=lambda ctx, param, values: [_date(ctx, param, v) for v in values],
    help="As-of date (YYYY-MM-DD) of truth.parquet; repeat for several. Its window (as-of, as-of + H] "
    "must lie within the data: as-of from 2023-01-01 to 2025-12-31 minus H. Default: 2025-12-31 "
    "minus H and the two 30-day steps before it (2025-08-03, 2025-09-02, 2025-10-02 for H = 90).",
)
@click.option(
    "--horizon-days",
    type=int,
    default=90,
    show_default=True,
    metavar="H",
    help="Length in days of every truth window (as-of, as-of + H]; at least 1.",
)
@_multiplier_option("--purchase-rate-scale", "Multiplies every purchase rate (3.3 gives about 50 lines per customer).")
@_multiplier_option("--event-rate-scale", "Multiplies every event rate (3.0 gives about 100 events per customer).")
@click.option(
    "--seasonality-amplitude",
    type=click.FloatRange(min=0, max=1, max_open=True),
    default=None,  # WorldConfig's own default (the CLI does not import it; a test keeps the help in step)
    metavar="A",
    help="Strength of the yearly season, 0 <= A < 1: every purchase rate is multiplied by "
    "1 + A cos(2 pi (day of year - peak) / 365.25). 0 gives a flat year; 0.6 a strong season "
    "(1.6 times the mean rate at the peak, 0.4 times it half a year away). Default: 0.25.",
)
@click.option(
    "--season-peak-day",
    type=click.IntRange(min=1, max=366),
    default=None,  # WorldConfig's own default, as above
    metavar="DAY",
    help="Day of the year (1-366) on which purchase rates peak; 152 is 1 June. Default: 335 (1 December).",
)
@click.option(
    "--shift-date",
    default=None,
    callback=_date,
    metavar="DATE",
    help="A change in customer behaviour from this date on (YYYY-MM-DD, within the data): see "
    "--shift-purchase-rate and --shift-hazard. Default: no change.",
)
@_multiplier_option(
    "--shift-purchase-rate", "Multiplies every purchase rate from --shift-date on (0.5: customers buy half as often)."
)
@_multiplier_option(
    "--shift-hazard", "Multiplies every customer's dropout hazard from --shift-date on (3: they leave 3 times as fast)."
)
@click.option("--format", "fmt", type=click.Choice(["parquet", "csv"]), default="parquet", show_default=True)
@click.pass_context
def generate(
    ctx: click.Context,
    n_customers: int,
    seed: int,
    out: Path,
    truth_as_of: list[Any],
    horizon_days: int,
    purchase_rate_scale: float,
    event_rate_scale: float,
    seasonality_amplitude: float | None,
    season_peak_day: int | None,
    shift_date: Any,
    shift_purchase_rate: float,
    shift_hazard: float,
    fmt: str,
) -> None:
    """Generate a synthetic customer world (transactions, events, customers) and its ground truth.

    The data runs from 2023-01-01 to 2025-12-31 (no row after it); customers sign up over the first
    two years. Written block by block, so memory stays bounded for millions of customers.

    truth.parquet (always Parquet) has one row per truth as-of and customer signed up on or before
    it: customer_id, as_of, horizon_days (H), alive (not yet silently dead at as-of), p_no_purchase
    (the true probability of no order in (as-of, as-of + H]; 1 when dead), expected_purchases
    (expected orders in that window), expected_spend (expected net spend in it, returns deducted)
    and satisfaction (the latent state driving churn). It is computed from the latent state at
    as-of, not from the realised future: the best any model could do.
    """
    from dataclasses import replace

    import pandas as pd
    import pyarrow.parquet as pq

    from churnclv.generate import generate_world_to_parquet
    from churnclv.generator.truth import default_truth_as_of
    from churnclv.generator.world import WorldConfig

    season: dict[str, Any] = {
        "seasonality_amplitude": seasonality_amplitude,
        "season_peak_day_of_year": season_peak_day,
    }
    with report_errors():
        config = WorldConfig(
            n_customers=n_customers,
            seed=seed,
            purchase_rate_scale=purchase_rate_scale,
            event_rate_scale=event_rate_scale,
            **{name: value for name, value in season.items() if value is not None},
        )
    first, end = config.start, config.end
    span = f"the generated data runs from {first:%Y-%m-%d} to {end:%Y-%m-%d}"
    if shift_date is None and (shift_purchase_rate != 1.0 or shift_hazard != 1.0):
        raise click.UsageError("--shift-purchase-rate and --shift-hazard need --shift-date, the day the change starts")
    if shift_date is not None:
        if not first < shift_date <= end:
            raise click.BadParameter(
                f"{shift_date:%Y-%m-%d} is outside the data ({span}): pass a date after {first:%Y-%m-%d}",
                ctx=ctx,
                param_hint="'--shift-date'",
            )
        config = replace(
            config, shift_date=shift_date, shift_purchase_rate=shift_purchase_rate, shift_hazard=shift_hazard
        )
    if not 1 <= horizon_days <= config.n_days:
        raise click.BadParameter(
            f"{horizon_days}: the truth window (as-of, as-of + H] must last 1 to {config.n_days} days ({span}). "
            f"Pass e.g. --horizon-days 90.",
            ctx=ctx,
            param_hint="'--horizon-days'",
        )
    last = end - pd.Timedelta(days=horizon_days)  # latest as-of whose window closes within the data
    # sorted and unique, so truth.parquet stays sorted by (customer_id, as_of) with one row per pair
    dates = sorted(set(truth_as_of)) or default_truth_as_of(config, horizon_days)
    for a in dates:
        if first <= a <= last:
            continue
        where = (
            f"as-of {a:%Y-%m-%d} is before the data starts ({first:%Y-%m-%d})"
            if a < first
            else f"the window ({a:%Y-%m-%d}, {a + pd.Timedelta(days=horizon_days):%Y-%m-%d}] ends after "
            f"the data ends ({end:%Y-%m-%d})"
        )
        rule = (
            f"{where}, but every truth window (as-of, as-of + H] must lie within the data: with "
            f"--horizon-days {horizon_days}, as-of from {first:%Y-%m-%d} to {last:%Y-%m-%d}"
        )
        if not truth_as_of:  # only a horizon close to the data's length pushes the defaults out
            raise click.BadParameter(
                f"with the default truth as-of dates, {rule}. Pass a shorter --horizon-days "
                f"or --truth-as-of dates in that range.",
                ctx=ctx,
                param_hint="'--horizon-days'",
            )
        fix = "Pass a --truth-as-of in that range" + ("." if a < first else " or a shorter --horizon-days.")
        raise click.BadParameter(f"{rule}. {fix}", ctx=ctx, param_hint="'--truth-as-of'")
    paths = generate_world_to_parquet(config, out, truth_as_of=dates, horizon_days=horizon_days)
    if fmt == "csv":
        for name in ("transactions", "events", "customers"):
            p = paths[name]
            pd.read_parquet(p).to_csv(p.with_suffix(".csv"), index=False)
            p.unlink()
            paths[name] = p.with_suffix(".csv")
    counts = {n: (pq.ParquetFile(p).metadata.num_rows if p.suffix == ".parquet" else None) for n, p in paths.items()}
    click.echo(
        f"wrote {n_customers:,} customers, {counts['transactions'] or 0:,} transaction lines, "
        f"{counts['events'] or 0:,} events to {out}"
    )
    click.echo(
        f"truth: {counts['truth']:,} rows as of {', '.join(f'{a:%Y-%m-%d}' for a in dates)}, "
        f"horizon {horizon_days} days"
    )
    if config.shift_date is not None:
        click.echo(
            f"behaviour shift from {config.shift_date:%Y-%m-%d}: purchase rates x {config.shift_purchase_rate:g}, "
            f"dropout hazard x {config.shift_hazard:g}"
        )
    for name, p in paths.items():
        click.echo(f"  {name:<13} {p}")


# --------------------------------------------------------------------------- datasets


@cli.group()
def datasets() -> None:
    """Real data sets converted into the canonical contract."""


@datasets.command("cdnow")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True, help="Output folder.")
@click.option("--sample", is_flag=True, help="The 1/10 sample (2,357 customers) instead of the full file.")
def datasets_cdnow(out: Path, sample: bool) -> None:
    """CDNOW (23,570 customers, 1997-01 to 1998-06) as shipped by lifetimes, in the contract."""
    from churnclv.datasets import load_cdnow

    frame = load_cdnow("sample" if sample else "master")
    out.mkdir(parents=True, exist_ok=True)
    path = out / "transactions.parquet"
    frame.to_parquet(path, index=False)
    click.echo(
        f"wrote {len(frame):,} transactions of {frame['customer_id'].nunique():,} customers "
        f"({frame['ts'].min():%Y-%m-%d} to {frame['ts'].max():%Y-%m-%d}) to {path}"
    )


# --------------------------------------------------------------------------- validate


def _print_reports(reports: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="validation")
    for col in ("table", "read", "accepted", "rejected", "customers", "from", "to"):
        table.add_column(col, justify="right" if col in ("read", "accepted", "rejected", "customers") else "left")
    for r in reports.values():
        table.add_row(
            r.table,
            f"{r.read:,}",
            f"{r.accepted:,}",
            f"{r.rejected:,}",
            f"{r.customers:,}",
            "" if r.ts_min is None else f"{r.ts_min:%Y-%m-%d}",
            "" if r.ts_max is None else f"{r.ts_max:%Y-%m-%d}",
        )
    console = Console(file=sys.stdout, width=120)
    console.print(table)
    for r in reports.values():
        for reason, n in r.reasons.items():
            console.print(f"  rejected {r.table}: {n:,} x {reason}", highlight=False, markup=False)
    for r in reports.values():
        if r.dropped_columns:
            note = (
                "; amounts of several currencies would be summed as one: convert them to one currency first"
                if any("currenc" in c.lower() for c in r.dropped_columns)
                else ""
            )
            console.print(
                f"  not kept {r.table}: columns {', '.join(r.dropped_columns)} are not in the data contract{note}",
                highlight=False,
                markup=False,
            )


@cli.command()
@click.option("--data", required=True, help=DATA_HELP)
@click.option(
    "--mapping",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    help="TOML file mapping your table and column names onto the canonical ones.",
)
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=WORK_DEFAULT,
    show_default=True,
    help="Where clean Parquet (clean/) and rejects (rejects/) go.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@as_of_option(
    "As-of date (YYYY-MM-DD) of the readiness check: only rows on or before it count "
    "(default: the last transaction date).",
    required=False,
)
@horizon_option("Churn/spend horizon in days the readiness check judges the models for.", default=90)
def validate(data: str, mapping: Path | None, out: Path, as_json: bool, as_of: Any, horizon_days: int) -> None:
    """Validate a data source: rows, customers, date range and rejects by reason; then what the clean
    data support as of a date: per model, whether it can be fitted, the rule, and what is missing.

    Exits 0 even when some models (or none) can be fitted: it is a report.
    """
    from churnclv.ingest import validate_source
    from churnclv.mapping import load_mapping
    from churnclv.readiness import assess

    if click.get_current_context().get_parameter_source("out") is ParameterSource.DEFAULT:
        check_default_folder(data, out, "--out")
    with report_errors():
        result = validate_source(data, out, mapping=load_mapping(mapping))
    with report_errors():
        readiness = assess(out / "clean", as_of, horizon_days)
    if as_json:
        report = {k: r.to_dict() for k, r in result.reports.items()}
        click.echo(json.dumps({**report, "readiness": readiness.to_dict()}, indent=2))
        for error in readiness.errors:  # stdout stays JSON
            click.echo(f"error: {error}", err=True)
    else:
        _print_reports(result.reports)
        click.echo(f"clean tables in {out / 'clean'}")
        if result.rejects_paths:
            click.echo("rejects: " + ", ".join(str(p) for p in result.rejects_paths.values()))
        click.echo()
        click.echo(readiness.format())


# --------------------------------------------------------------------------- features


def _feature_config(path: Path | None) -> Any:
    """The ``[features]`` section of a run configuration (the file train reads), checked as train does."""
    from churnclv.config_schema import read_run_config
    from churnclv.features.config import parse_features

    with report_errors():
        return parse_features(read_run_config(path).get("features", {}))


_TEXT_SUFFIXES = frozenset({".csv", ".tsv", ".txt", ".json", ".xlsx", ".xls"})


@cli.command()
@source_options
@as_of_option("As-of date (YYYY-MM-DD): only rows on or before it count.")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), required=True, help="Output Parquet file.")
@config_option("TOML whose [features] section sets windows and data conventions (as for train).")
def features(
    data: str,
    mapping: Path | None,
    work: Path | None,
    trusted: bool,
    memory_limit: str | None,
    as_of: Any,
    out: Path,
    config_path: Path | None,
) -> None:
    """Point-in-time features, one row per customer known at as-of (see the README's catalogue)."""
    import time

    import pyarrow.parquet as pq

    from churnclv.features import write_features

    if out.suffix.lower() in _TEXT_SUFFIXES:  # a reviewer's f.csv held Parquet bytes
        raise click.BadParameter(
            f"{out.name}: the features are written as Parquet, not {out.suffix}: name the file .parquet "
            "(and read it with pandas.read_parquet or DuckDB)",
            param_hint="--out",
        )
    feature_config = _feature_config(config_path)
    started = time.perf_counter()
    # the feature job checks the value rules of trusted tables itself, first thing
    clean = prepare_source(data, mapping, work, trusted, memory_limit, check_trusted=False)
    with report_errors():
        write_features(clean, as_of, out, memory_limit=memory_limit, config=feature_config)
    meta = pq.ParquetFile(out).metadata
    click.echo(
        f"wrote features of {meta.num_rows:,} customers ({meta.num_columns} columns) as of "
        f"{as_of:%Y-%m-%d} to {out} in {time.perf_counter() - started:.1f} s"
    )


def main() -> None:
    """Entry point of the ``churnclv`` console script."""
    cli(prog_name="churnclv")


if __name__ == "__main__":
    main()
