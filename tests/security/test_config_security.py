"""Hardening: a bad training configuration is one line and exit 1, naming the key, the rule and the fix;
never a traceback, never a job that runs for hours (clv_months = 1e9)."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from churnclv.cli import cli
from churnclv.training.config import RunConfig, TrainingError

BAD = [
    ('[train]\nn_folds = "3"\n', r"\[train\] n_folds: input should be a valid integer \(got '3'\); fix: write a whole"),
    ("[train]\nhorizon_days = 1.5\n", r"\[train\] horizon_days: input should be a valid integer"),
    ('[train]\ncandidates = "btyd"\n', r"\[train\] candidates: input should be a valid tuple"),
    ('[train]\npromote_tolerance = { churn_auc = "x" }\n', r"\[train\] promote_tolerance.churn_auc"),
    ("[train]\nsample_customers = -1\n", r"sample_customers: must be 0"),
    ("[scorer]\ngbm_rounds = -5\n", r"gbm_rounds: must be >= 1 \(got -5\); fix: a value between 1 and"),
    ("[scorer]\nclv_months = 1e9\n", r"\[scorer\] clv_months: input should be a valid integer"),
    ("[scorer]\nclv_months = 1000000000\n", r"clv_months: must be <= 600 \(got 1000000000\)"),
    ("[scorer]\ngbm_learning_rate = 0\n", r"gbm_learning_rate: must be > 0 \(got 0\); fix: a value in \(0, 1\]"),
    ('[scorer]\nbtyd_model = "magic"\n', r"btyd_model: must be one of \[.*\] \(got 'magic'\)"),
    ('[scorer]\ncalibration = "none"\n', r"calibration: must be one of \['platt', 'isotonic'\] \(got 'none'\)"),
    ("[scorer]\nannual_discount_rate = inf\n", r"annual_discount_rate: must be <= 10 \(got inf\); fix: a rate in \(-1"),
    ("[features]\nwindows = [0]\n", r"\[features\]"),
    ('[features]\nzero_amount_is_purchase = "yes"\n', r"zero_amount_is_purchase: input should be a valid boolean"),
    ("[magic]\nx = 1\n", r"unknown sections \['magic'\]"),
    ("[train\n", r"fix the file"),
]


@pytest.mark.parametrize(("text", "message"), BAD, ids=[f"bad{i}" for i in range(len(BAD))])
def test_bad_config_names_key_rule_and_fix(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "c.toml"
    path.write_text(text)
    with pytest.raises(TrainingError, match=message):
        RunConfig.load(path)


def test_non_utf8_config_is_one_line(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_bytes(b"[train]\nn_folds = 3 # \xff\xfe\n")
    with pytest.raises(TrainingError, match="UTF-8"):
        RunConfig.load(path)


@pytest.mark.parametrize(("text", "message"), BAD[:3] + BAD[5:8], ids=[f"cli{i}" for i in range(6)])
def test_train_cli_stops_on_a_bad_config_in_one_line(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "c.toml"
    path.write_text(text)
    result = CliRunner().invoke(
        cli, ["train", "--data", str(tmp_path / "nowhere"), "--trusted", "--as-of", "2024-01-01", "--config", str(path)]
    )
    assert result.exit_code == 1, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error: ") and "Traceback" not in result.output
