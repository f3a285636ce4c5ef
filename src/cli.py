"""The ``churnclv`` command. The only place that configures logging or reads the clock.

Exit status: 0 success, 1 data or configuration error (message on stderr), 2 usage error.
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import Any

import click

from churnclv import __version__

log = logging.getLogger("churnclv")

DATA_HELP = "Data folder (transactions.parquet|csv, optional events.*, customers.*) or a database URL (sqlite:///f.db, postgresql://...)."


class DataProblem(click.ClickException):
    """A data or configuration error: exit status 1, message on stderr."""

    exit_code = 1


def _data_errors() -> tuple[type[BaseException], ...]:
    from churnclv.config import ConfigError
    from churnclv.ingest import DataError

    return (DataError, ConfigError)


def _run_guarded(fn, *args: Any, **kwargs: Any) -> Any:
    """Turn the package's data/config errors into exit status 1 with a one-line message."""
    try:
        return fn(*args, **kwargs)
    except _data_errors() as exc:
        raise DataProblem(str(exc)) from None


def _configure_logging(verbose: int, quiet: bool) -> None:
    level = logging.WARNING if quiet else logging.DEBUG if verbose > 1 else logging.INFO
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s", "%H:%M:%S"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.WARNING)
    logging.getLogger("churnclv").setLevel(level)


def _date(_ctx: click.Context, param: click.Parameter, value: str | None) -> Any:
    if value is None:
        return None
    import pandas as pd

    from churnclv.values import MAX_YEAR, MIN_YEAR

    try:
        ts = pd.Timestamp(value)
    except (ValueError, TypeError, OverflowError):
        raise click.BadParameter(f"{value!r} is not a date: use YYYY-MM-DD", param=param) from None
    if pd.isna(ts):  # "" and "NaT" parse to NaT
        raise click.BadParameter(f"{value!r} is not a date: use YYYY-MM-DD", param=param)
    if ts.tzinfo is not None:
        ts = ts.tz_convert("UTC").tz_localize(None)
    if not MIN_YEAR <= ts.year <= MAX_YEAR:  # the validation's rule for dates in the data
        raise click.BadParameter(f"{value!r}: the year is outside {MIN_YEAR}-{MAX_YEAR} (a typo?): use a date "
                                 "within the data, YYYY-MM-DD", param=param)
    return ts.normalize()


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="churnclv")
@click.option("-v", "--verbose", count=True, help="More log output (-vv for debug).")
@click.option("-q", "--quiet", is_flag=True, help="Only warnings and errors.")
def cli(verbose: int, quiet: bool) -> None:
    """churnclv: churn, customer lifetime value and growth-potential tiers, point in time."""
    _configure_logging(verbose, quiet)


# --------------------------------------------------------------------------- generate


@cli.command()
@click.option("--customers", "n_customers", type=click.IntRange(min=1), default=10_000, show_default=True,
              help="Number of customers.")
@click.option("--seed", type=int, default=42, show_default=True, help="Random seed (same seed, same world).")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True, help="Output folder.")
@click.option("--truth-as-of", "truth_as_of", multiple=True, metavar="DATE",
              callback=lambda ctx, param, values: [_date(ctx, param, v) for v in values],
              help="As-of date (YYYY-MM-DD) of truth.parquet; repeat for several. Its window (as-of, as-of + H] "
                   "must lie within the data: as-of from 2023-01-01 to 2025-12-31 minus H. Default: 2025-12-31 "
                   "minus H and the two 30-day steps before it (2025-08-03, 2025-09-02, 2025-10-02 for H = 90).")
@click.option("--horizon-days", type=int, default=90, show_default=True, metavar="H",
              help="Length in days of every truth window (as-of, as-of + H]; at least 1.")
@click.option("--purchase-rate-scale", type=click.FloatRange(min=0, min_open=True), default=1.0, show_default=True,
              help="Multiplies every purchase rate (3.3 gives about 50 lines per customer).")
@click.option("--event-rate-scale", type=click.FloatRange(min=0, min_open=True), default=1.0, show_default=True,
              help="Multiplies every event rate (3.0 gives about 100 events per customer).")
@click.option("--format", "fmt", type=click.Choice(["parquet", "csv"]), default="parquet", show_default=True)
@click.pass_context
def generate(ctx: click.Context, n_customers: int, seed: int, out: Path, truth_as_of: list[Any], horizon_days: int,
             purchase_rate_scale: float, event_rate_scale: float, fmt: str) -> None:
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
    import pandas as pd
    import pyarrow.parquet as pq

    from churnclv.generate import WorldConfig, default_truth_as_of, generate_world_to_parquet

    config = _run_guarded(lambda: WorldConfig(n_customers=n_customers, seed=seed,
                                              purchase_rate_scale=purchase_rate_scale,
                                              event_rate_scale=event_rate_scale))
    first, end = config.start, config.end
    span = f"the generated data runs from {first:%Y-%m-%d} to {end:%Y-%m-%d}"
    if not 1 <= horizon_days <= config.n_days:
        raise click.BadParameter(
            f"{horizon_days}: the truth window (as-of, as-of + H] must last 1 to {config.n_days} days ({span}). "
            f"Pass e.g. --horizon-days 90.", ctx=ctx, param_hint="'--horizon-days'")
    last = end - pd.Timedelta(days=horizon_days)  # latest as-of whose window closes within the data
    # sorted and unique, so truth.parquet stays sorted by (customer_id, as_of) with one row per pair
    dates = sorted(set(truth_as_of)) or default_truth_as_of(config, horizon_days)
    for a in dates:
        if first <= a <= last:
            continue
        where = (f"as-of {a:%Y-%m-%d} is before the data starts ({first:%Y-%m-%d})" if a < first else
                 f"the window ({a:%Y-%m-%d}, {a + pd.Timedelta(days=horizon_days):%Y-%m-%d}] ends after "
                 f"the data ends ({end:%Y-%m-%d})")
        rule = (f"{where}, but every truth window (as-of, as-of + H] must lie within the data: with "
                f"--horizon-days {horizon_days}, as-of from {first:%Y-%m-%d} to {last:%Y-%m-%d}")
        if not truth_as_of:  # only a horizon close to the data's length pushes the defaults out
            raise click.BadParameter(f"with the default truth as-of dates, {rule}. Pass a shorter --horizon-days "
                                     f"or --truth-as-of dates in that range.", ctx=ctx, param_hint="'--horizon-days'")
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
    click.echo(f"truth: {counts['truth']:,} rows as of {', '.join(f'{a:%Y-%m-%d}' for a in dates)}, "
               f"horizon {horizon_days} days")
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
            r.table, f"{r.read:,}", f"{r.accepted:,}", f"{r.rejected:,}", f"{r.customers:,}",
            "" if r.ts_min is None else f"{r.ts_min:%Y-%m-%d}", "" if r.ts_max is None else f"{r.ts_max:%Y-%m-%d}",
        )
    console = Console(file=sys.stdout, width=120)
    console.print(table)
    for r in reports.values():
        for reason, n in r.reasons.items():
            console.print(f"  rejected {r.table}: {n:,} x {reason}", highlight=False, markup=False)


@cli.command()
@click.option("--data", required=True, help=DATA_HELP)
@click.option("--mapping", type=click.Path(dir_okay=False, exists=True, path_type=Path),
              help="TOML file mapping your table and column names onto the canonical ones.")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=Path("work/validated"),
              show_default=True, help="Where clean Parquet (clean/) and rejects (rejects/) go.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.option("--as-of", default=None, callback=_date,
              help="As-of date (YYYY-MM-DD) of the readiness check: only rows on or before it count "
                   "(default: the last transaction date).")
@click.option("--horizon-days", type=click.IntRange(min=1), default=90, show_default=True,
              help="Churn/spend horizon in days the readiness check judges the models for.")
def validate(data: str, mapping: Path | None, out: Path, as_json: bool, as_of: Any, horizon_days: int) -> None:
    """Validate a data source: rows, customers, date range and rejects by reason; then what the clean
    data support as of a date: per model, whether it can be fitted, the rule, and what is missing.

    Exits 0 even when some models (or none) can be fitted: it is a report.
    """
    from churnclv.config import load_mapping
    from churnclv.ingest import validate_source
    from churnclv.readiness import assess

    result = _run_guarded(lambda: validate_source(data, out, mapping=load_mapping(mapping)))
    try:
        readiness = assess(out / "clean", as_of, horizon_days)
    except ValueError as exc:
        raise DataProblem(str(exc)) from None
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


def prepare_source(data: str, mapping: Path | None, work: Path, trusted: bool, memory_limit: str | None = None) -> Path:
    """Validate ``data`` into ``work`` (clean tables + rejects) and return the clean folder.

    ``trusted`` skips validation for a folder that already holds clean tables in the contract
    (e.g. the output of ``churnclv generate`` or of an earlier ``validate``); the value rules the
    features depend on (finite, bounded amounts; finite, plausible timestamps) are still checked,
    in one pass, so a folder that breaks them stops here with one line instead of failing later.
    """
    from churnclv.config import load_mapping
    from churnclv.ingest import is_sql_url, validate_source

    if trusted:
        if is_sql_url(data) or mapping is not None:
            raise click.UsageError("--trusted needs a folder of clean tables and no --mapping")
        from churnclv.features.engine import check_values

        try:
            check_values(Path(data))
        except (ValueError, TypeError) as exc:  # the rule broken, or not a folder of clean tables
            raise DataProblem(f"--trusted {data}: {exc}") from None
        return Path(data)
    result = _run_guarded(lambda: validate_source(data, work, mapping=load_mapping(mapping), memory_limit=memory_limit))
    for r in result.reports.values():
        log.info("%s: read %d, accepted %d, rejected %d", r.table, r.read, r.accepted, r.rejected)
        if r.rejected:
            click.echo(f"{r.table}: {r.rejected:,} of {r.read:,} rows rejected -> {result.rejects_paths[r.table]}", err=True)
    return work / "clean"


def source_options(fn):
    """The options every job that reads data shares."""
    fn = click.option("--memory-limit", default=None, help="DuckDB memory limit, e.g. 1GB (it spills past it).")(fn)
    fn = click.option("--trusted", is_flag=True, help="The folder already holds clean tables: skip validation.")(fn)
    fn = click.option("--work", type=click.Path(file_okay=False, path_type=Path), default=None,
                      help="Where validated tables and rejects go (default: work/validated).")(fn)
    fn = click.option("--mapping", type=click.Path(dir_okay=False, exists=True, path_type=Path),
                      help="TOML mapping of your table and column names.")(fn)
    fn = click.option("--data", required=True, help=DATA_HELP)(fn)
    return fn


@cli.command()
@source_options
@click.option("--as-of", required=True, callback=_date, help="As-of date (YYYY-MM-DD): only rows on or before it count.")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), required=True, help="Output Parquet file.")
@click.option("--config", "config_path", type=click.Path(dir_okay=False, exists=True, path_type=Path),
              help="TOML whose [features] section sets windows and data conventions (as for train).")
def features(data: str, mapping: Path | None, work: Path | None, trusted: bool, memory_limit: str | None,
             as_of: Any, out: Path, config_path: Path | None) -> None:
    """Point-in-time features, one row per customer known at as-of (see the README's catalogue)."""
    import time

    import pyarrow.parquet as pq

    from churnclv.features import write_features
    from churnclv.training.config import RunConfig, TrainingError

    try:
        feature_config = RunConfig.load(config_path).features
    except TrainingError as exc:
        raise DataProblem(str(exc)) from None
    started = time.perf_counter()
    clean = prepare_source(data, mapping, work or Path("work/validated"), trusted, memory_limit)
    try:
        write_features(clean, as_of, out, memory_limit=memory_limit, config=feature_config)
    except ValueError as exc:
        raise DataProblem(str(exc)) from None
    meta = pq.ParquetFile(out).metadata
    click.echo(f"wrote features of {meta.num_rows:,} customers ({meta.num_columns} columns) as of "
               f"{as_of:%Y-%m-%d} to {out} in {time.perf_counter() - started:.1f} s")


# --------------------------------------------------------------------------- train and models


class _Steps:
    """A spinner with the current step and the elapsed time (stderr), for the long jobs."""

    def __init__(self, title: str) -> None:
        from rich.console import Console

        self.console = Console(stderr=True)
        self.title = title
        self.status = None

    def __enter__(self) -> _Steps:
        self.status = self.console.status(self.title)
        self.status.__enter__()
        import time

        self.started = time.perf_counter()
        return self

    def __call__(self, message: str) -> None:
        import time

        elapsed = time.perf_counter() - self.started
        self.console.log(f"[{elapsed:6.1f}s] {message}", highlight=False, markup=False)
        self.status.update(f"{self.title}: {message}")

    def __exit__(self, *exc: Any) -> None:
        self.status.__exit__(*exc)


@cli.command()
@source_options
@click.option("--as-of", required=True, callback=_date, help="Training as-of: only data on or before it is used.")
@click.option("--horizon-days", type=click.IntRange(min=1), default=None,
              help="Churn/spend horizon in days (default 90, or the config's).")
@click.option("--config", "config_path", type=click.Path(dir_okay=False, exists=True, path_type=Path),
              help="TOML with [train], [scorer] and [tiers] sections.")
@click.option("--tracking-uri", default=None, help="MLflow tracking URI (default $MLFLOW_TRACKING_URI or sqlite:///mlruns/mlflow.db).")
@click.option("--promote/--no-promote", default=True, show_default=True,
              help="Run the promotion check after training.")
def train(data: str, mapping: Path | None, work: Path | None, trusted: bool, memory_limit: str | None, as_of: Any,
          horizon_days: int | None, config_path: Path | None, tracking_uri: str | None, promote: bool) -> None:
    """Backtest, select, train and register a model (alias challenger; champion when it earns it)."""
    from churnclv.models.btyd import BTYDConvergenceError
    from churnclv.training.config import RunConfig, TrainingError
    from churnclv.training.mlflow_run import train_and_log
    from churnclv.training.reports import format_notes, format_summary

    try:
        config = RunConfig.load(config_path, horizon_days=horizon_days)
    except (TrainingError, ValueError) as exc:
        raise DataProblem(str(exc)) from None
    if memory_limit:
        from dataclasses import replace

        config = replace(config, train=replace(config.train, memory_limit=memory_limit))
    clean = prepare_source(data, mapping, work or Path("work/validated"), trusted, memory_limit)
    try:
        with _Steps("training") as steps:
            result = train_and_log(clean, as_of, config, tracking_uri=tracking_uri, promote=promote, progress=steps)
    except (TrainingError, BTYDConvergenceError) as exc:
        raise DataProblem(str(exc)) from None
    plan = result.plan
    bt_horizon = config.train.horizon_days if plan is None else plan.backtest_horizon_days
    if bt_horizon is None:
        click.echo(f"backtest: none (as of {as_of:%Y-%m-%d}, horizon {config.train.horizon_days} days)")
    else:
        click.echo(f"backtest: {len(result.folds)} folds, mean over folds (as of {as_of:%Y-%m-%d}, "
                   f"horizon {bt_horizon} days)")
        click.echo(format_summary(result))
    for line in format_notes(result):
        click.echo(line)
    click.echo(f"\nselected: {result.selected}")
    click.echo(f"MLflow run {result.run_id}; registered churnclv version {result.model_version} (alias challenger)")
    if result.promotion is not None:
        verdict = "promoted to champion" if result.promotion["promoted"] else "not promoted"
        click.echo(f"promotion: {verdict}: {'; '.join(result.promotion['reasons'])}")


@cli.group()
def models() -> None:
    """The model registry: list versions, promote the challenger."""


@models.command("list")
@click.option("--tracking-uri", default=None, help="MLflow tracking URI.")
def models_list(tracking_uri: str | None) -> None:
    """Versions with their aliases, as-of, horizon, selected models and key backtest metrics."""
    from churnclv.training import registry, tracking

    tracking.configure(tracking_uri)
    rows = registry.list_versions()
    if not rows:
        click.echo("no model registered yet: run churnclv train")
        return
    click.echo(f"{'version':>7}  {'aliases':<20} {'as_of':<10} {'H':>4} {'backtest':<8}  {'AUC':>6} {'Brier':>6} "
               f"{'Gini':>6}  selected")
    for r in rows:
        m = r["metrics"]
        backtest = "yes" if r.get("backtested", True) else "no"  # "no": not backtested at its horizon
        click.echo(f"{r['version']:>7}  {r['aliases']:<20} {r['as_of']:<10} {r['horizon_days']:>4} {backtest:<8}  "
                   f"{m.get('selected.churn_auc', float('nan')):>6.3f} {m.get('selected.churn_brier', float('nan')):>6.3f} "
                   f"{m.get('selected.spend_gini', float('nan')):>6.3f}  {r['selected']}")
    if any(not r.get("backtested", True) for r in rows):
        click.echo("backtest no: not backtested at its horizon (too little history); promoted only without a champion")


@models.command("promote")
@click.option("--tracking-uri", default=None, help="MLflow tracking URI.")
@click.option("--version", default=None, help="Version to consider (default: the challenger).")
@click.option("--tolerance", multiple=True, metavar="METRIC=LOSS",
              help="Largest loss allowed per metric, e.g. churn_auc=0.005 (repeatable).")
def models_promote(tracking_uri: str | None, version: str | None, tolerance: tuple[str, ...]) -> None:
    """Move champion to the challenger when it is not worse beyond the tolerance."""
    from churnclv.training import promotion, registry, tracking

    tol = dict(promotion.DEFAULT_TOLERANCE)
    for item in tolerance:
        name, _, value = item.partition("=")
        if name not in tracking.METRIC_DIRECTION:
            raise click.BadParameter(f"{item!r}: unknown metric {name!r}; choose from "
                                     f"{sorted(tracking.METRIC_DIRECTION)}", param_hint="--tolerance")
        try:
            tol[name] = float(value)
        except ValueError:
            raise click.BadParameter(f"{item!r}: use METRIC=NUMBER", param_hint="--tolerance") from None
    tracking.configure(tracking_uri)
    try:
        decision = promotion.promote(tolerance=tol, challenger=version)
    except registry.UnknownVersionError as exc:
        raise click.BadParameter(str(exc), param_hint="--version") from None
    except ValueError as exc:
        raise DataProblem(str(exc)) from None
    verdict = "promoted to champion" if decision.promoted else "not promoted"
    click.echo(f"version {decision.challenger_version}: {verdict} ({'; '.join(decision.reasons)})")
    if decision.champion_metrics is not None:
        click.echo(f"{'metric':<26} {'challenger':>10} {'champion':>10} {'loss':>8} {'tolerance':>9}")
        for row in decision.comparison():
            if row["loss"] is not None:
                click.echo(f"{row['metric']:<26} {row['challenger']:>10.4f} {row['champion']:>10.4f} "
                           f"{row['loss']:>+8.4f} {row['tolerance']:>9.4f}")


# --------------------------------------------------------------------------- batch and serving


@cli.command("score-batch")
@source_options
@click.option("--as-of", required=True, callback=_date, help="Scoring as-of date (YYYY-MM-DD).")
@click.option("--horizon-days", type=click.IntRange(min=1), default=None,
              help="Horizon; must match the model's (default: the model's).")
@click.option("--out", type=click.Path(path_type=Path), required=True,
              help="Output folder; the run writes OUT/as_of=DATE/ and OUT/LATEST (the latest partition by date).")
@click.option("--model", "model_uri", default="models:/churnclv@champion", show_default=True, help="MLflow model URI.")
@click.option("--tracking-uri", default=None, help="MLflow tracking URI.")
@click.option("--db", default=None,
              help="Also write the rows into a database table (postgresql://..., sqlite:///...): the as-of's rows "
                   "are replaced in one transaction when the partition is published.")
@click.option("--engine", type=click.Choice(["duckdb", "spark"]), default="duckdb", show_default=True,
              help="Feature engine and scorer runtime (spark needs the spark extra).")
@click.option("--chunk-size", type=click.IntRange(min=1), default=200_000, show_default=True,
              help="Customers scored per chunk (memory is bounded by the chunk).")
@click.option("--resume", is_flag=True, help="Continue a killed run of this as-of from its completed chunks.")
@click.option("--db-table", default="churnclv_scores", show_default=True, help="Table of the database sink.")
@click.option("--hysteresis", is_flag=True,
              help="Keep last as-of's tiers unless the score passes a boundary by the margin (tiers may then "
                   "differ from the HTTP service's, which has no history).")
@click.option("--reasons/--no-reasons", default=True, show_default=True,
              help="Compute the plain-word reasons (TreeSHAP: most of the scoring time).")
@click.option("--max-days-after-data", type=click.IntRange(min=0), default=31, show_default=True,
              help="Refuse an as-of more days than this after the last transaction, event or sign-up in the data "
                   "(a typo'd year would otherwise become LATEST).")
def score_batch(data: str, mapping: Path | None, work: Path | None, trusted: bool, memory_limit: str | None,
                as_of: Any, horizon_days: int | None, out: Path, model_uri: str, tracking_uri: str | None,
                db: str | None, engine: str, chunk_size: int, resume: bool, db_table: str, hysteresis: bool,
                reasons: bool, max_days_after_data: int) -> None:
    """Score every customer known at as-of; write Parquet, a manifest, the tier report and the
    feature snapshot for the HTTP service.

    OUT/LATEST names the latest partition by date: re-running an older as-of leaves it alone. To
    drop a partition written by mistake (a wrong date), remove its folder (rm -r OUT/as_of=DATE)
    and run the newest correct as-of again, or write that partition's name into OUT/LATEST.
    """
    from churnclv.redaction import redact_text
    from churnclv.serving.batch import BatchError, run_batch

    clean = prepare_source(data, mapping, work or Path("work/validated"), trusted, memory_limit)
    try:
        run_batch(clean=clean, as_of=as_of, out=out, model_uri=model_uri, tracking_uri=tracking_uri,
                  horizon_days=horizon_days, db=db, engine=engine, chunk_size=chunk_size, resume=resume,
                  memory_limit=memory_limit, echo=click.echo, db_table=db_table, hysteresis=hysteresis,
                  reasons=reasons, max_days_after_data=max_days_after_data)
    except BatchError as exc:
        raise DataProblem(redact_text(" ".join(str(exc).split()))) from None


@cli.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind.")
@click.option("--port", type=click.IntRange(1, 65535), default=3000, show_default=True)
@click.option("--model", "model_uri", default=None,
              help="MLflow model URI or bento:TAG (default: $CHURNCLV_MODEL_URI, else models:/churnclv@champion).")
@click.option("--tracking-uri", default=None, help="MLflow tracking URI.")
@click.option("--snapshot", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="The batch job's output folder, for scoring by customer id.")
def serve(host: str, port: int, model_uri: str | None, tracking_uri: str | None, snapshot: Path | None) -> None:
    """Start the HTTP scoring service (BentoML). The API key comes from CHURNCLV_API_KEY.

    The model is loaded and checked first: one that cannot load stops here (exit 1, one line)."""
    from churnclv.redaction import redact_text
    from churnclv.serving.service import ServeError
    from churnclv.serving.service import serve as run_server

    try:
        run_server(host=host, port=port, model_uri=model_uri, tracking_uri=tracking_uri, snapshot=snapshot)
    except ServeError as exc:
        # one line, URLs redacted (the error quotes the model and tracking URIs)
        raise DataProblem(redact_text(" ".join(str(exc).split()))) from None


def main() -> None:
    """Entry point of the ``churnclv`` console script."""
    cli(prog_name="churnclv")


if __name__ == "__main__":
    main()
