"""The weekly job checks every section of its configuration before any step runs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from churnclv.cli import cli
from churnclv.weekly import runner


@pytest.fixture
def started(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    runs: list[Any] = []

    def run_weekly(request: Any, **_: Any) -> Any:
        runs.append(request)
        raise AssertionError("a step ran with a bad configuration")

    monkeypatch.setattr(runner, "run_weekly", run_weekly)
    return runs


@pytest.mark.parametrize(
    ("config_text", "extra", "named"),
    [
        ('[monitor]\nmax_psi = "high"\n', (), "[monitor] max_psi"),  # read by the monitor step only
        ("[monitor]\nmax_pis = 0.3\n", (), "[monitor] max_pis"),
        ("[campaigns]\nholdout_shar = 0.2\n", (), "[campaigns] holdout_shar"),  # read by score-batch only
        ("[scorer]\ngbm_round = 10\n", ("--model-name", "shop_x"), "gbm_round"),  # not only without --model-name
    ],
)
def test_a_bad_section_stops_the_run_before_any_step(
    tmp_path: Path, started: list[Any], config_text: str, extra: tuple[str, ...], named: str
) -> None:
    config = tmp_path / "run.toml"
    config.write_text(config_text)
    out = tmp_path / "out"
    args = ["weekly", "--data", str(tmp_path), "--as-of", "2025-06-01", "--out", str(out), "--config", str(config)]
    result = CliRunner().invoke(cli, [*args, *extra])
    assert result.exit_code == 1, result.output
    assert named in result.output and "Traceback" not in result.output
    assert started == [] and not out.exists()
