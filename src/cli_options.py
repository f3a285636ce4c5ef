"""What the ``churnclv`` commands share: the data/config error (exit 1) and the one place that turns
churnclv's errors into it, the options several commands take (data source, as-of, horizon, run
configuration, tracking URI), the preparation of the data source, and the progress spinner.

A core module: the CLI, ``churnclv.training.commands`` and ``churnclv.serving.commands`` import it,
so the command modules of the jobs layer never import the CLI itself.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from churnclv.errors import ChurnclvError
from churnclv.redaction import redact_text

if TYPE_CHECKING:
    from types import TracebackType

    from rich.status import Status

log = logging.getLogger("churnclv")

WORK_DEFAULT = Path("work/validated")  # where validated tables (clean/) and rejects (rejects/) go
DATA_HELP = "Data folder (transactions.parquet|csv, optional events.*, customers.*) or a database URL (sqlite:///f.db, postgresql://...)."

_Command = TypeVar("_Command", bound=Callable[..., Any])


class DataProblem(click.ClickException):
    """A data or configuration error: exit status 1, message on stderr."""

    exit_code = 1


@contextmanager
def report_errors(*, prefix: str = "", redact: bool = False) -> Iterator[None]:
    """Turn every error churnclv raises on purpose (:class:`~churnclv.errors.ChurnclvError`) into exit
    status 1 with a one-line message (after ``prefix``); any other error is a bug and keeps its traceback.

    ``redact``: fold the message onto one line and redact its URLs and credentials (for the errors
    that quote the model and tracking URIs).
    """
    try:
        yield
    except ChurnclvError as exc:
        message = redact_text(" ".join(str(exc).split())) if redact else str(exc)
        raise DataProblem(f"{prefix}{message}") from None


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
        raise click.BadParameter(
            f"{value!r}: the year is outside {MIN_YEAR}-{MAX_YEAR} (a typo?): use a date within the data, YYYY-MM-DD",
            param=param,
        )
    return ts.normalize()


def prepare_source(
    data: str, mapping: Path | None, work: Path | None, trusted: bool, memory_limit: str | None = None
) -> Path:
    """Validate ``data`` into ``work`` (clean tables + rejects; None: :data:`WORK_DEFAULT`) and return
    the clean folder.

    ``trusted`` skips validation for a folder that already holds clean tables in the contract
    (e.g. the output of ``churnclv generate`` or of an earlier ``validate``); the value rules the
    features depend on (finite, bounded amounts; finite, plausible timestamps) are still checked,
    in one pass, so a folder that breaks them stops here with one line instead of failing later.
    """
    from churnclv.ingest import validate_source
    from churnclv.ingestion.databases import is_sql_url
    from churnclv.mapping import load_mapping

    if trusted:
        if is_sql_url(data) or mapping is not None:
            raise click.UsageError("--trusted needs a folder of clean tables and no --mapping")
        from churnclv.features.checks import check_values

        # a value rule broken, a column of the wrong type, or not a folder of clean tables
        with report_errors(prefix=f"--trusted {data}: "):
            check_values(Path(data))
        return Path(data)
    work = work or WORK_DEFAULT
    with report_errors():
        result = validate_source(data, work, mapping=load_mapping(mapping), memory_limit=memory_limit)
    for r in result.reports.values():
        log.info("%s: read %d, accepted %d, rejected %d", r.table, r.read, r.accepted, r.rejected)
        if r.rejected:
            click.echo(
                f"{r.table}: {r.rejected:,} of {r.read:,} rows rejected -> {result.rejects_paths[r.table]}", err=True
            )
    return work / "clean"


def source_options(fn: _Command) -> _Command:
    """The options every job that reads data shares."""
    fn = click.option("--memory-limit", default=None, help="DuckDB memory limit, e.g. 1GB (it spills past it).")(fn)
    fn = click.option("--trusted", is_flag=True, help="The folder already holds clean tables: skip validation.")(fn)
    fn = click.option(
        "--work",
        type=click.Path(file_okay=False, path_type=Path),
        default=None,
        help=f"Where validated tables and rejects go (default: {WORK_DEFAULT}).",
    )(fn)
    fn = click.option(
        "--mapping",
        type=click.Path(dir_okay=False, exists=True, path_type=Path),
        help="TOML mapping of your table and column names.",
    )(fn)
    fn = click.option("--data", required=True, help=DATA_HELP)(fn)
    return fn


def as_of_option(help: str, *, required: bool = True) -> Callable[[_Command], _Command]:
    """``--as-of YYYY-MM-DD``, checked by the one date rule (:func:`_date`)."""
    return click.option("--as-of", required=required, default=None, callback=_date, help=help)


def horizon_option(help: str, *, default: int | None = None) -> Callable[[_Command], _Command]:
    """``--horizon-days``, a whole number of days, at least 1 (a default is shown in the help)."""
    return click.option(
        "--horizon-days", type=click.IntRange(min=1), default=default, show_default=default is not None, help=help
    )


def config_option(help: str) -> Callable[[_Command], _Command]:
    """``--config FILE``, the run configuration (TOML), passed as ``config_path``."""
    return click.option(
        "--config", "config_path", type=click.Path(dir_okay=False, exists=True, path_type=Path), help=help
    )


def tracking_uri_option(help: str = "MLflow tracking URI.") -> Callable[[_Command], _Command]:
    """``--tracking-uri`` (default None: the command's own default)."""
    return click.option("--tracking-uri", default=None, help=help)


class _Steps:
    """A spinner with the current step and the elapsed time (stderr), for the long jobs."""

    def __init__(self, title: str) -> None:
        from rich.console import Console

        self.console = Console(stderr=True)
        self.title = title
        self.status: Status = self.console.status(title)
        self.started = 0.0

    def __enter__(self) -> _Steps:
        import time

        self.status.__enter__()
        self.started = time.perf_counter()
        return self

    def __call__(self, message: str) -> None:
        import time

        elapsed = time.perf_counter() - self.started
        self.console.log(f"[{elapsed:6.1f}s] {message}", highlight=False, markup=False)
        self.status.update(f"{self.title}: {message}")

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.status.__exit__(exc_type, exc, tb)
