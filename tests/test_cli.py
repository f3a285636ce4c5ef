from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import click
import pandas as pd
from click.testing import CliRunner

from churnclv.cli import cli

def _commands(group: click.Group, prefix: list[str]) -> list[list[str]]:
    out = [prefix]
    for name, command in group.commands.items():
        out += _commands(command, [*prefix, name]) if isinstance(command, click.Group) else [[*prefix, name]]
    return out


def test_every_command_has_help() -> None:
    commands = _commands(cli, [])  # walked from the group: a new command is covered without editing this
    assert {"generate", "validate", "features", "train", "score-batch", "serve"} <= {c[0] for c in commands if c}
    assert ["models", "promote"] in commands and ["datasets", "cdnow"] in commands
    runner = CliRunner()
    for cmd in commands:
        result = runner.invoke(cli, [*cmd, "--help"])
        assert result.exit_code == 0, (cmd, result.output)
        assert "Usage:" in result.output


def test_usage_error_exits_2() -> None:
    result = CliRunner().invoke(cli, ["validate", "--no-such-option"])
    assert result.exit_code == 2


def test_data_error_exits_1_with_message_on_stderr(tmp_path: Path) -> None:
    (tmp_path / "transactions.csv").write_text("customer_id,when,amount\n1,2024-01-01,3\n")
    proc = subprocess.run(
        [sys.executable, "-m", "churnclv.cli", "validate", "--data", str(tmp_path), "--out", str(tmp_path / "o")],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 1
    assert "'ts'" in proc.stderr and "transactions.csv" in proc.stderr
    assert proc.stdout == ""


def test_validate_prints_summary_and_writes_rejects(tmp_path: Path) -> None:
    (tmp_path / "transactions.csv").write_text(
        "customer_id,ts,amount\n001,2024-01-01,3\n002,bad,1\n001,2024-02-01,-1\n"
    )
    out = tmp_path / "v"
    result = CliRunner().invoke(cli, ["validate", "--data", str(tmp_path), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "transactions" in result.output and "unparseable ts" in result.output
    rejects = pd.read_csv(out / "rejects" / "transactions.csv", dtype=str)
    assert rejects["customer_id"].tolist() == ["002"]
    assert len(pd.read_parquet(out / "clean" / "transactions.parquet")) == 2


def test_datasets_cdnow_sample(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["datasets", "cdnow", "--sample", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    frame = pd.read_parquet(tmp_path / "transactions.parquet")
    assert len(frame) == 6_919 and frame["customer_id"].nunique() == 2_357
