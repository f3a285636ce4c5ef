"""The accuracy bench on two CDNOW setups: churnclv must not lose to the plain BG/NBD it wraps.

``bench/accuracy.py`` trains and scores through the CLI on data up to as-of only and fits lifetimes'
BG/NBD + Gamma-Gamma in the same run on the same customers. Two setups of its grid: one where a
backtest at the horizon fits in the history (1997-08-31, 90 days) and one where it does not and
training falls back to BTYD (1997-06-30, 180 days).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SETUPS = ("1997-08-31:90", "1997-06-30:180")

pytestmark = [pytest.mark.slow, pytest.mark.integration]


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> list[dict]:
    work = tmp_path_factory.mktemp("accuracy")
    out = work / "results.json"
    proc = subprocess.run(
        [
            sys.executable,
            str(ROOT / "bench" / "accuracy.py"),
            "--work",
            str(work),
            "--json",
            str(out),
            "--setups",
            *SETUPS,
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(out.read_text())["records"]  # the per-setup results (bench/common.py's results file)


def test_every_setup_is_measured_on_every_customer(results: list[dict]) -> None:
    assert [r["setup"] for r in results] == ["1997-08-31 H90", "1997-06-30 H180"]
    for r in results:
        assert r["customers"] == 23_570  # everyone in CDNOW bought in 1997Q1, so is known at both dates
        assert {"churnclv", "bgnbd", "pareto"} <= set(r["metrics"])


@pytest.mark.parametrize("metric", ["churn_auc", "spend_gini"])
def test_churnclv_is_at_least_as_good_as_bgnbd(results: list[dict], metric: str) -> None:
    for r in results:
        ours, theirs = r["metrics"]["churnclv"][metric], r["metrics"]["bgnbd"][metric]
        assert ours >= theirs, f"{r['setup']}: churnclv {metric} {ours:.4f} < BG/NBD {theirs:.4f}"


def test_churnclv_brier_is_no_worse_than_bgnbd(results: list[dict]) -> None:
    for r in results:
        ours, theirs = r["metrics"]["churnclv"]["churn_brier"], r["metrics"]["bgnbd"]["churn_brier"]
        assert ours <= theirs, f"{r['setup']}: churnclv Brier {ours:.4f} > BG/NBD {theirs:.4f}"
