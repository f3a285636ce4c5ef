"""What the ``churnclv`` commands share: the data/config error (exit 1) and the one place that turns
churnclv's errors into it, the options several commands take (data source, as-of, horizon, run
configuration, tracking URI, model name, progress), the preparation of the data source, whether
``-q`` is on, and the progress of a long job (:class:`StepProgress`).

A core module: the CLI, ``churnclv.training.commands`` and ``churnclv.serving.commands`` import it,
so the command modules of the jobs layer never import the CLI itself.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from churnclv.errors import ChurnclvError
from churnclv.names import MODEL_NAME, MODEL_NAME_PATTERN
from churnclv.redaction import redact_text

if TYPE_CHECKING:
    from types import TracebackType

    from rich.console import Console
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
    except Exception as exc:
        if not _out_of_memory(exc):
            raise
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__  # sizes only, no data
        raise DataProblem(
            f"{prefix}DuckDB ran out of memory ({first.removeprefix('Out of Memory Error: ')}); fix: raise "
            "--memory-limit (or [train] memory_limit in the config), or leave it unset so DuckDB may use up to "
            "80 % of RAM"
        ) from None


def _out_of_memory(exc: BaseException) -> bool:
    """DuckDB's OutOfMemoryException, told by its type (no duckdb import for the CLI's other paths)."""
    return any(t.__name__ == "OutOfMemoryException" and "duckdb" in t.__module__ for t in type(exc).__mro__)


def _date(_ctx: click.Context, param: click.Parameter, value: str | None) -> Any:
    """A calendar day written ``YYYY-MM-DD``, nothing else: ``01/02/1997`` is ambiguous, ``19970102``
    and ``June 30 1997`` are not the documented form, and ``now`` or ``today`` would read the clock."""
    if value is None:
        return None
    import pandas as pd

    from churnclv.values import MAX_YEAR, MIN_YEAR, iso_day

    try:
        day = iso_day(value.strip())
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a date: use YYYY-MM-DD (e.g. 1997-06-30)", param=param) from None
    if not MIN_YEAR <= day.year <= MAX_YEAR:  # the validation's rule for dates in the data
        raise click.BadParameter(
            f"{value!r}: the year is outside {MIN_YEAR}-{MAX_YEAR} (a typo?): use a date within the data, YYYY-MM-DD",
            param=param,
        )
    return pd.Timestamp(day)


def prepare_source(
    data: str,
    mapping: Path | None,
    work: Path | None,
    trusted: bool,
    memory_limit: str | None = None,
    *,
    check_trusted: bool = True,
) -> Path:
    """Validate ``data`` into ``work`` (clean tables + rejects; None: :data:`WORK_DEFAULT`) and return
    the clean folder.

    ``trusted`` skips validation for a folder that already holds clean tables in the contract
    (e.g. the output of ``churnclv generate`` or of an earlier ``validate``); the value rules the
    features depend on (finite, bounded amounts; finite, plausible timestamps) are still checked,
    in one pass, so a folder that breaks them stops here with one line instead of failing later
    (``check_trusted=False``: the caller's own job checks them first thing, as the feature job does).
    """
    from churnclv.ingest import validate_source
    from churnclv.ingestion.databases import is_sql_url
    from churnclv.mapping import load_mapping

    if trusted:
        if is_sql_url(data) or mapping is not None:
            raise click.UsageError("--trusted needs a folder of clean tables and no --mapping")
        from churnclv.features.checks import check_values
        from churnclv.features.sources import connect

        # a value rule broken, a column of the wrong type, or not a folder of clean tables
        if check_trusted:
            with report_errors(prefix=f"--trusted {data}: "):
                check_values(Path(data), connect(memory_limit=memory_limit))
        return Path(data)
    if work is None:
        work = WORK_DEFAULT
        check_default_folder(data, work, "--work")
    with report_errors():
        result = validate_source(data, work, mapping=load_mapping(mapping), memory_limit=memory_limit)
    for r in result.reports.values():
        log.info("%s: read %d, accepted %d, rejected %d", r.table, r.read, r.accepted, r.rejected)
        if r.rejected:
            click.echo(
                f"{r.table}: {r.rejected:,} of {r.read:,} rows rejected -> {result.rejects_paths[r.table]}", err=True
            )
    return work / "clean"


def check_default_folder(data: str, folder: Path, option: str) -> None:
    """Every job without ``--work`` (and ``validate`` without ``--out``) validates into the one default
    folder, which the quick tour's ``--trusted`` commands read: refuse to replace the tables of another
    source there (a check of a second data set silently swapped the first one's out)."""
    from churnclv.ingest import source_identity, validated_source

    held, this = validated_source(folder), source_identity(data)
    if held is not None and held != this:
        raise DataProblem(
            f"{folder} holds the validated tables of {held}; validating {this} there would replace them: pass "
            f"{option} DIR for this source (or remove {folder})"
        )


def source_options(fn: _Command) -> _Command:
    """The options every job that reads data shares."""
    return _source_options(fn, required=True)


def optional_source_options(fn: _Command) -> _Command:
    """:func:`source_options` with ``--data`` optional (a command that can do without data)."""
    return _source_options(fn, required=False)


def _source_options(fn: _Command, *, required: bool) -> _Command:
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
    # no default=None beside required=True: since click 8.3 an explicit default satisfies required
    fn = click.option("--data", required=required, help=DATA_HELP)(fn)
    return fn


def as_of_option(help: str, *, required: bool = True) -> Callable[[_Command], _Command]:
    """``--as-of YYYY-MM-DD``, checked by the one date rule (:func:`_date`)."""
    return click.option("--as-of", required=required, callback=_date, help=help)


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


def model_name_option(help: str = "") -> Callable[[_Command], _Command]:
    """``--model-name NAME``: the registered model of a data set (default None: the config's, else
    :data:`~churnclv.names.MODEL_NAME`)."""
    text = help or (
        f"Registered model of this data set (default: {MODEL_NAME}, or [train] model_name): one name per data "
        "set keeps their versions, champions and promotions apart."
    )
    return click.option("--model-name", default=None, metavar="NAME", callback=_model_name, help=text)


def _model_name(_ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    if value is not None and not re.fullmatch(MODEL_NAME_PATTERN, value):
        raise click.BadParameter(
            f"{value!r}: use letters, digits, '_', '.' and '-' (starting with a letter or digit, at most 100), "
            "e.g. churnclv-cdnow",
            param=param,
        )
    return value


def progress_option() -> Callable[[_Command], _Command]:
    """``--progress/--no-progress`` (default None: on when stderr is a terminal; never with ``-q``)."""
    return click.option(
        "--progress/--no-progress",
        default=None,
        help="Show progress and the time left on stderr (default: only on a terminal; never with -q).",
    )


def is_quiet() -> bool:
    """Whether the command runs under ``churnclv -q`` (False outside a click context)."""
    ctx = click.get_current_context(silent=True)
    return bool(ctx is not None and ctx.find_root().params.get("quiet"))


def show_progress(flag: bool | None) -> bool:
    """Whether to show progress: never with ``-q``; else ``--progress/--no-progress``; else when stderr
    is a terminal."""
    if is_quiet():
        return False
    return sys.stderr.isatty() if flag is None else flag


class StderrHandler(logging.StreamHandler):
    """A log handler writing to ``sys.stderr`` as it is at each record, not as it was when the handler
    was made: a progress display that redirects stderr (rich) shows the lines above itself, and a test
    that captures stderr sees them."""

    def __init__(self) -> None:
        super().__init__()

    @property
    def stream(self) -> Any:
        """``sys.stderr``, now."""
        return sys.stderr

    @stream.setter
    def stream(self, _value: Any) -> None:  # StreamHandler.__init__ sets it; the property decides
        pass


class StepProgress:
    """The steps of a long job on stderr, one line each with the elapsed time: on a terminal under a
    spinner showing the current step, elsewhere (``--progress`` into a file) as plain lines. Disabled,
    every call does nothing. ``clock`` gives seconds (tests pass a fake one)."""

    def __init__(self, title: str, *, enabled: bool = True, clock: Callable[[], float] | None = None) -> None:
        import time

        self.title = title
        self.enabled = enabled
        self.clock = clock or time.perf_counter
        self.steps = 0
        self.started = 0.0
        self.status: Status | None = None
        self.console: Console | None = None
        if enabled and sys.stderr.isatty():
            from rich.console import Console

            self.console = Console(stderr=True)
            self.status = self.console.status(title)

    def __enter__(self) -> StepProgress:
        if self.status is not None:
            self.status.__enter__()
        self.started = self.clock()
        return self

    def __call__(self, message: str) -> None:
        """Show one step (nothing when disabled)."""
        if not self.enabled:
            return
        self.steps += 1
        line = f"[{self.clock() - self.started:6.1f}s] {message}"
        if self.console is None or self.status is None:
            click.echo(line, err=True)
            return
        self.console.print(line, highlight=False, markup=False, soft_wrap=True)
        self.status.update(f"{self.title}: {message}")

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self.status is not None:
            self.status.__exit__(exc_type, exc, tb)
