"""The bench scripts' command lines and results files, and ``bench/summary.py``'s table.

Every bench script (a file in ``bench/`` with a ``__main__`` guard, but ``common.NOT_BENCHES``)
answers ``--help`` with a ``--json`` option, and refuses a wrong option, an abbreviated one and a
missing value with a usage message (exit 2, no traceback). The results file has the documented shape
(``bench/common.py``), and the summary turns two of them into one table with the goal and met columns.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "bench"


def _common() -> ModuleType:
    """bench/common.py, loaded from its file (bench/ is a folder of scripts, not a package)."""
    spec = importlib.util.spec_from_file_location("bench_common", BENCH / "common.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_common"] = module  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


SCRIPTS = _common().bench_scripts()


def _doc(bench: str, headlines: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    return {
        "format": "churnclv-bench/1",
        "bench": bench,
        "status": "ok",
        "command": [f"bench/{bench}.py"],
        "wall_s": 1.5,
        "machine": {"cores": 2, "ram_gb": 23.5, "load_avg_start": [1.2, 1, 1], "load_avg_end": [2.4, 1, 1],
                    "python": "3.11.7", "duckdb": "1.2", "lightgbm": "4.6", "git_commit": "abcdef0123456789",
                    "git_dirty": False},
        "records": [],
        "headlines": headlines,
        **extra,
    }  # fmt: skip


def _headline(metric: str, ours: float, reference: float | None, goal: dict[str, Any] | None, unit: str = "s"):
    return {"metric": metric, "unit": unit, "ours": ours, "reference": reference, "reference_name": "ref",
            "ratio": None if reference is None else ours / reference, "goal": goal, "met": None}  # fmt: skip


def _summary(*paths: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(BENCH / "summary.py"), *map(str, paths)], capture_output=True, text=True, check=False
    )


def test_summary_renders_one_table_with_the_goal_and_met_columns(tmp_path: Path) -> None:
    goal = {"of": "ours", "op": "<=", "value": 2.0, "scale": "", "applies": True}
    (tmp_path / "btyd.json").write_text(
        json.dumps(
            _doc(
                "btyd",
                [
                    _headline("fit, fast", 1.5, 9.0, goal),
                    _headline("fit, slow", 3.0, 9.0, goal),
                    _headline("ratio", 3.0, 1.0, {**goal, "of": "ratio", "op": ">=", "value": 2.5}),
                ],
            )
        )
    )  # fmt: skip
    at_scale = {"of": "ours", "op": "<=", "value": 40.0, "scale": "1M customers", "applies": False}
    (tmp_path / "batch.json").write_text(
        json.dumps(_doc("batch", [_headline("batch, 20,000 customers", 8.0, None, at_scale)]))
    )
    (tmp_path / "http_load.json").write_text(
        json.dumps(_doc("http_load", [], status="skipped", reason="needs a service", full_command="bench/http_load.py"))
    )
    (tmp_path / "old.json").write_text("[1, 2]")  # an older bench's list of results: not this format

    proc = _summary(tmp_path)

    assert proc.returncode == 0, proc.stderr
    rows = [line.split(" | ") for line in proc.stdout.splitlines() if line.startswith("| ")]
    assert rows[0] == ["| bench", "metric", "ours", "reference", "ratio", "goal", "met? |"]
    by_metric = {r[1]: r for r in rows[1:]}
    assert by_metric["fit, fast"][2:] == ["1.5 s", "9 s (ref)", "0.1667", "<= 2 s", "yes |"]
    assert by_metric["fit, slow"][-1] == "NO |"  # 3 s > 2 s
    assert by_metric["ratio"][-2:] == ["ratio >= 2.5", "yes |"]
    # a goal stated at 1M is not judged on 20,000 customers, though 8 s would meet it
    assert by_metric["batch, 20,000 customers"][-2:] == ["<= 40 s (1M customers)", "n/a (not at that scale) |"]
    assert "http_load: skipped: needs a service; run it with: bench/http_load.py" in proc.stdout
    assert "commit abcdef0123" in proc.stdout
    assert "old.json: not a churnclv-bench/1 results file" in proc.stderr


def test_summary_without_results_says_so(tmp_path: Path) -> None:
    proc = _summary(tmp_path)
    assert proc.returncode == 1
    assert "no results files" in proc.stderr


def test_goal_met_is_applied_to_ours_ratio_and_differences() -> None:
    goal_met = _common().goal_met

    def goal(of: str, op: str, value: float, applies: bool = True) -> dict[str, Any]:
        return {"of": of, "op": op, "value": value, "scale": "", "applies": applies}

    assert goal_met(goal("difference", ">=", -0.02), 0.95, 0.96) is True
    assert goal_met(goal("difference", ">=", -0.02), 0.93, 0.96) is False
    assert goal_met(goal("abs_difference", "<=", 0.05), 0.74, 0.8) is False
    assert goal_met(goal("abs_difference", "<=", 0.05), 0.83, 0.8) is True
    assert goal_met(goal("ratio", "<=", 2), 3.0, None) is None  # no reference: nothing to judge
    assert goal_met(goal("ours", "<=", 40, applies=False), 8.0, None) is None
    assert goal_met(None, 1.0, 1.0) is None


def test_results_file_has_the_documented_shape(tmp_path: Path) -> None:
    common = _common()
    out = common.Results(tmp_path / "sub" / "x.json", str(BENCH / "x.py"))
    out.records.append({"customers": 10, "wall": 1.0})
    out.headline("wall", 1.0, "s", 4.0, "reference", common.Goal("ratio", "<=", 0.5))
    out.headline("wall at scale", 1.0, "s", goal=common.Goal("ours", "<=", 0.5, "1M"), goal_applies=False)
    doc = json.loads(out.write().read_text())
    assert doc["format"] == "churnclv-bench/1"
    assert doc["bench"] == "x"
    assert doc["command"][0] == "bench/x.py"
    machine = doc["machine"]
    assert machine["cores"] >= 1 and machine["ram_gb"] > 0
    assert len(machine["load_avg_start"]) == 3 and len(machine["load_avg_end"]) == 3
    assert {"python", "duckdb", "lightgbm", "git_commit", "git_dirty"} <= set(machine)
    assert machine["lightgbm"] and machine["duckdb"]
    assert doc["records"] == [{"customers": 10, "wall": 1.0}]
    first, second = doc["headlines"]
    assert first["ratio"] == 0.25 and first["met"] is True
    assert second["goal"]["applies"] is False and second["met"] is None
    assert not list((tmp_path / "sub").glob(".*.tmp"))  # written atomically, nothing left behind


def test_the_suite_has_small_options_or_a_reason_for_every_bench(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, str(BENCH / "suite.py"), "--list", "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    lines = {line.split(":")[0] if ": skipped" in line else line.split("/bench/")[1].split(".py")[0]: line
             for line in proc.stdout.splitlines()}  # fmt: skip
    assert sorted(lines) == SCRIPTS
    for name, line in lines.items():
        assert ": skipped, " in line or line.endswith(f"--json {tmp_path}/results/{name}.json"), line
    assert not list(tmp_path.iterdir())  # --list runs nothing


# The slow part: each script's command line, in a process of its own (their imports take 1-5 s each).
# One process per script runs the script once per case with runpy, as ``python bench/X.py ARGS`` would
# (bench/ on PYTHONPATH, as Python puts a script's folder first on its path).
DRIVER = r"""
import contextlib, io, json, runpy, sys
path = sys.argv[1]
out = {}
for case, argv in json.loads(sys.argv[2]).items():
    sys.argv = [path, *argv]
    err, std = io.StringIO(), io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(std):
        try:
            runpy.run_path(path, run_name="__main__")
            code = "returned"
        except SystemExit as exc:
            code = exc.code
        except BaseException as exc:  # the failure under test: a traceback instead of a usage message
            code = f"raised {type(exc).__name__}: {exc}"
    out[case] = {"code": code, "stdout": std.getvalue(), "stderr": err.getvalue()}
print(json.dumps(out))
"""
CASES = {"help": ["--help"], "wrong": ["--no-such-option"], "abbreviated": ["--jso", "x.json"], "missing": ["--json"]}


def _command_line(name: str) -> dict[str, dict[str, Any]]:
    proc = subprocess.run(
        [sys.executable, "-c", DRIVER, str(BENCH / f"{name}.py"), json.dumps(CASES)],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(BENCH)},
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def command_lines() -> dict[str, dict[str, dict[str, Any]]]:
    with ThreadPoolExecutor(max_workers=2) as pool:
        return dict(zip(SCRIPTS, pool.map(_command_line, SCRIPTS), strict=True))


@pytest.mark.slow
@pytest.mark.parametrize("name", SCRIPTS)
def test_bench_command_line(name: str, command_lines: dict[str, dict[str, dict[str, Any]]]) -> None:
    cases = command_lines[name]
    assert cases["help"]["code"] in (0, None), cases["help"]
    assert "--json PATH" in cases["help"]["stdout"]
    for case in ("wrong", "abbreviated", "missing"):
        got = cases[case]
        assert got["code"] == 2, f"{name} {CASES[case]}: {got['code']}"
        assert "usage:" in got["stderr"] and "Traceback" not in got["stderr"], got["stderr"][-500:]
