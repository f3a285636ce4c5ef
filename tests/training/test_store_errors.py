"""A tracking store that cannot be opened (an unsupported URI here) stops every command with one line
naming the store, redacted, and the fix: never a traceback, never "no such alias"."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from churnclv.cli import cli
from churnclv.serving.monitor_mlflow import MonitorTrackingError, open_client

BAD = "foo://bob:S3cretPW@bar"
SHOWN = "foo://bob:***@bar"


@pytest.mark.parametrize(
    "args",
    [
        ["models", "list"],
        ["models", "promote"],
        ["train", "--data", "{world}", "--trusted", "--as-of", "2025-10-02"],
        ["score-batch", "--data", "{world}", "--trusted", "--as-of", "2025-10-02", "--out", "{tmp}/scores"],
    ],
    ids=["models-list", "models-promote", "train", "score-batch"],
)
def test_an_unusable_tracking_store_is_one_line_naming_it_redacted(
    args: list[str], small_world: Path, tmp_path: Path
) -> None:
    argv = [a.format(world=small_world, tmp=tmp_path) for a in args] + ["--tracking-uri", BAD]
    result = CliRunner().invoke(cli, argv)
    assert isinstance(result.exception, SystemExit) and result.exit_code == 1, result.output  # not a crash
    line = result.output.strip().splitlines()[-1]
    assert SHOWN in line and "cannot" in line and "--tracking-uri" in line, line
    assert "alias" not in line and "S3cretPW" not in result.output


def test_the_monitors_client_fails_with_the_monitors_error() -> None:
    with pytest.raises(MonitorTrackingError, match=r"foo://bob:\*\*\*@bar: cannot open the store") as info:
        open_client(BAD)
    assert "S3cretPW" not in str(info.value)
