"""``churnclv weekly`` end to end with the real commands, a real MLflow store and real DuckDB:
killed mid-way and run again it gives the uninterrupted run's outputs; on an empty registry it
trains, promotes and scores (real training on a tiny world)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from click.testing import CliRunner

from churnclv.cli import cli
from churnclv.weekly.commands import FAULT_VARIABLE

pytestmark = pytest.mark.slow

AS_OF = "2025-10-02"  # the trained store's training as-of


@pytest.fixture
def store(trained_store: dict[str, Any], tmp_path: Path) -> str:
    """A private copy of the session's registry (version 1, champion), so this test's runs stay its own."""
    copy = tmp_path / "store"
    copy.mkdir()
    shutil.copy(Path(trained_store["store"]) / "mlflow.db", copy / "mlflow.db")
    return f"sqlite:///{copy}/mlflow.db"


def _config(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "weekly.toml"
    path.write_text(text)
    return path


def _args(world: Path, out: Path, store: str, config: Path, as_of: str = AS_OF) -> list[str]:
    return ["weekly", "--data", str(world), "--as-of", as_of, "--out", str(out), "--tracking-uri", store]


def _outputs(out: Path) -> dict[str, Any]:
    """What a weekly run leaves, without its timings: scores, feature snapshot, manifest counts, monitor
    verdicts, journal steps and outcomes."""
    day = f"dt={AS_OF}"
    manifest = json.loads((out / "scores" / day / "_manifest.json").read_text())
    monitor = json.loads((out / "monitoring" / day / "monitor.json").read_text())
    journal = json.loads((out / "weekly" / day / "journal.json").read_text())
    return {
        "scores": pd.read_parquet(out / "scores" / day),
        "features": pd.read_parquet(out / "features" / day / "features.parquet"),
        "counts": manifest["counts"],
        "model": manifest["model"]["version"],
        "breaches": monitor["breaches"],
        "steps": {k: v["outcome"].replace(str(out), "OUT") for k, v in journal["steps"].items()},
        "partitions": sorted(p.name for p in (out / "scores").iterdir()),
        "stray": sorted(p.name for p in out.iterdir() if p.name.startswith(".dt=")),  # temp folders left
    }


def test_killed_mid_way_and_run_again_equals_an_uninterrupted_run(
    small_world: Path, store: str, tmp_path: Path
) -> None:
    config = _config(tmp_path, "[weekly]\nretrain_every_days = 365\nretrain_on_breach = false\n")
    killed_out, clean_out = tmp_path / "killed", tmp_path / "clean"
    argv = [*_args(small_world, killed_out, store, config), "--config", str(config)]
    # killed right after score-batch published, before the journal records it: the worst moment
    env = {**os.environ, FAULT_VARIABLE: "score:after", "TMPDIR": str(tmp_path)}  # its leftovers stay here
    proc = subprocess.run(
        [sys.executable, "-m", "churnclv.cli", *argv], env=env, capture_output=True, text=True, check=False
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
    journal = json.loads((killed_out / "weekly" / f"dt={AS_OF}" / "journal.json").read_text())
    assert list(journal["steps"]) == ["validate"]  # score ran but was not recorded

    again = CliRunner().invoke(cli, argv)
    assert again.exit_code == 0, again.output
    assert "== validate: done in an earlier run" in again.output and "== score: churnclv score-batch" in again.output
    reference = CliRunner().invoke(cli, [*_args(small_world, clean_out, store, config), "--config", str(config)])
    assert reference.exit_code == 0, reference.output

    got, want = _outputs(killed_out), _outputs(clean_out)
    pd.testing.assert_frame_equal(got.pop("scores"), want.pop("scores"))
    pd.testing.assert_frame_equal(got.pop("features"), want.pop("features"))
    assert got == want
    assert want["counts"]["rows_written"] == want["counts"]["customers_known"]  # nobody lost, nobody twice

    rerun = CliRunner().invoke(cli, argv)  # a complete as-of: every step skipped, nothing changes
    assert rerun.exit_code == 0, rerun.output
    assert rerun.output.count("done in an earlier run") == 6
    assert "churnclv score-batch" not in rerun.output.split("weekly run as of")[0]


def test_empty_registry_trains_promotes_and_scores(tmp_path: Path) -> None:
    from churnclv.generate import generate_world_to_parquet
    from churnclv.generator.world import WorldConfig

    world = tmp_path / "world"
    generate_world_to_parquet(WorldConfig(n_customers=800, seed=3), world, horizon_days=28)
    # two lines validation rejects: the summary says how many rows the run left out, not only where
    tx = pd.read_parquet(world / "transactions.parquet")
    bad = tx.head(2).assign(ts=pd.Timestamp("1850-01-01"))
    pd.concat([tx, bad], ignore_index=True).to_parquet(world / "transactions.parquet", index=False)
    config = _config(
        tmp_path,
        "[train]\nhorizon_days = 28\nn_folds = 1\ntrain_cutoffs = 2\ncandidates = ['btyd', 'gbm']\n"
        "[scorer]\ngbm_rounds = 30\n[weekly]\nretrain_every_days = 28\n",
    )
    store = f"sqlite:///{tmp_path}/store/mlflow.db"
    out = tmp_path / "out"
    result = CliRunner().invoke(cli, [*_args(world, out, store, config, "2025-06-01"), "--config", str(config)])
    assert result.exit_code == 0, result.output
    journal = json.loads((out / "weekly" / "dt=2025-06-01" / "journal.json").read_text())["steps"]
    assert journal["score"]["outcome"] == "no champion yet: scored after training"
    assert journal["retrain"]["reasons"] == ["no model registered yet"] and journal["retrain"]["promoted"]
    assert journal["rescore"]["version"] == "1" == journal["retrain"]["champion"]
    manifest = json.loads((out / "scores" / "dt=2025-06-01" / "_manifest.json").read_text())
    assert manifest["model"]["version"] == "1" and manifest["counts"]["rows_written"] == 800
    assert "champion version None -> 1" in result.output
    rows = len(tx) + 2
    assert f"rejected   transactions 2 of {rows:,} rows (the reasons: rejects/*.csv below)" in result.output
    assert journal["validate"]["outcome"].endswith(f"; rejected transactions 2 of {rows:,}")
    assert not (out / "weekly" / "validated" / "2025-06-01" / "clean").exists()

    # a week later: not due (7 of 28 days), no retrain, the champion scores
    week2 = CliRunner().invoke(cli, [*_args(world, out, store, config, "2025-06-08"), "--config", str(config)])
    assert week2.exit_code == 0, week2.output
    steps = json.loads((out / "weekly" / "dt=2025-06-08" / "journal.json").read_text())["steps"]
    assert steps["score"]["version"] == "1"
    assert steps["retrain"]["retrained"] is False or steps["retrain"]["reasons"][0].startswith("breach")

    # an as-of long after the data end (a late export): the run stops at validation, before anything
    # is scored, with a fix the weekly command can follow (score-batch's hint named an option it lacks)
    late = CliRunner().invoke(cli, [*_args(world, out, store, config, "2026-03-15"), "--config", str(config)])
    assert late.exit_code == 1
    assert "step validate: the data's last date is 2025-12-30, 75 days before the as-of 2026-03-15" in late.output
    assert "--max-days-after-data" not in late.output and not (out / "scores" / "dt=2026-03-15").exists()
