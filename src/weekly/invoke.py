"""Running a ``churnclv`` command in this process, as typed by hand.

Each step of the weekly job is the command an operator would type (``churnclv score-batch ...``),
resolved by name through the ``churnclv`` group and run through click with the same arguments:
the same option parsing, defaults, checks and messages, and one process, so MLflow, DuckDB and
the model code load once instead of once per step. The journal keeps each step's command line
(redacted) so it can be rerun by hand.
"""

from __future__ import annotations

import shlex
from collections.abc import Callable
from dataclasses import dataclass

import click

from churnclv.redaction import redact_text
from churnclv.weekly.errors import WeeklyError

__all__ = ["Invocation", "Resolve", "invoke", "takes_option"]

Resolve = Callable[[str], click.Command | None]


@dataclass(frozen=True)
class Invocation:
    """One command line: ``churnclv <command> <args>``."""

    command: str
    args: tuple[str, ...]

    def display(self) -> str:
        """The command line as typed, URLs and credentials redacted."""
        return redact_text(shlex.join(["churnclv", self.command, *self.args]))


def _command(resolve: Resolve, name: str) -> click.Command:
    command = resolve(name)
    if command is None:
        raise WeeklyError(
            f"churnclv {name} is not available in this installation (see churnclv --help): "
            "reinstall churnclv (pip install -e .) so its commands are registered"
        )
    return command


def takes_option(resolve: Resolve, name: str, option: str) -> bool:
    """Whether command ``name`` (``"models promote"``: a group's subcommand) has the option ``option``."""
    group, *sub = name.split()
    command: click.Command | None = _command(resolve, group)
    for part in sub:
        command = command.commands.get(part) if isinstance(command, click.Group) else None
    return command is not None and any(option in getattr(p, "opts", ()) for p in command.params)


def invoke(resolve: Resolve, invocation: Invocation) -> int:
    """Run the command; its exit status (0 success, 1 data or configuration error, 2 usage error,
    3 and up: the command's own, e.g. the monitor's breach). Its error message is shown as by hand."""
    command = _command(resolve, invocation.command)
    try:
        result = command.main(
            args=list(invocation.args), prog_name=f"churnclv {invocation.command}", standalone_mode=False
        )
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    except SystemExit as exc:  # a command that calls sys.exit(status)
        code = exc.code
        return code if isinstance(code, int) else 0 if code is None else 1
    # standalone_mode=False returns ctx.exit(status)'s status; a command's own return value is not one
    return result if isinstance(result, int) and not isinstance(result, bool) else 0
