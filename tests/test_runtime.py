"""churnclv.runtime: the churnclv command runs without transparent huge pages, and so do the
processes it starts (the batch's spawned scoring workers); ``CHURNCLV_HUGE_PAGES=on`` keeps them.

Each probe is a fresh interpreter that starts from huge pages on (it inherits the test runner's
setting, which an in-process CLI test turns off), and reads the kernel's own answer
(``THP_enabled`` in ``/proc/self/status``), not only ours."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from churnclv.runtime import HUGE_PAGES_ENV

needs_thp_status = pytest.mark.skipif(
    not Path("/proc/self/status").is_file() or "THP_enabled:" not in Path("/proc/self/status").read_text(),
    reason="the kernel reports no THP_enabled (Linux 5.0 and later do)",
)

PROBE = """
import ctypes, json, multiprocessing, sys
from churnclv.runtime import huge_pages_enabled

def kernel():
    for line in open("/proc/self/status"):
        if line.startswith("THP_enabled:"):
            return int(line.split()[1])

def child(q):
    q.put([kernel(), huge_pages_enabled()])

if __name__ == "__main__":
    # the known start: a test runner that ran the CLI in its own process (CliRunner) turned them off
    assert ctypes.CDLL(None).prctl(41, 0, 0, 0, 0) == 0  # PR_SET_THP_DISABLE, 0
    before = kernel()
    if sys.argv[1].startswith("cli"):  # the group's callback runs before the subcommand's --help
        from churnclv.cli import cli
        try:
            cli([sys.argv[1].partition(":")[2] or "generate", "--help"], standalone_mode=False)
        except SystemExit:
            pass
    else:
        from churnclv.runtime import disable_huge_pages
        disable_huge_pages()
    ctx = multiprocessing.get_context("spawn")
    q = ctx.Queue()
    p = ctx.Process(target=child, args=(q,))
    p.start()
    spawned = q.get()
    p.join()
    print(json.dumps({"before": before, "after": [kernel(), huge_pages_enabled()], "spawned": spawned}))
"""


def _probe(tmp: Path, how: str, **env: str) -> dict[str, object]:
    script = tmp / "probe.py"  # a file: a spawned child imports its target from the parent's script
    script.write_text(PROBE)
    environ = {k: v for k, v in os.environ.items() if k != HUGE_PAGES_ENV} | env
    proc = subprocess.run(
        [sys.executable, str(script), how], capture_output=True, text=True, timeout=120, check=True, env=environ
    )
    return dict(json.loads(proc.stdout.strip().splitlines()[-1]))


@needs_thp_status
@pytest.mark.parametrize("how", ["cli", "function"])
def test_the_command_and_the_processes_it_spawns_run_without_huge_pages(tmp_path: Path, how: str) -> None:
    found = _probe(tmp_path, how)
    assert found["before"] == 1  # a fresh interpreter starts with them: the change is ours
    assert found["after"] == [0, False]
    assert found["spawned"] == [0, False]  # the batch's workers are spawned: they inherit it


@needs_thp_status
@pytest.mark.parametrize("value", ["on", "1", "TRUE"])
def test_churnclv_huge_pages_on_keeps_the_kernels_default(tmp_path: Path, value: str) -> None:
    found = _probe(tmp_path, "cli", **{HUGE_PAGES_ENV: value})
    assert found["after"] == [1, True]
    assert found["spawned"] == [1, True]


@needs_thp_status
def test_serve_keeps_the_kernels_default(tmp_path: Path) -> None:
    """The HTTP service (and the BentoML server processes it starts) keeps huge pages."""
    found = _probe(tmp_path, "cli:serve")
    assert found["before"] == 1
    assert found["after"] == [1, True]
    assert found["spawned"] == [1, True]


EXIT_PROBE = """
import atexit, gc, sys
# registered first, so it runs last: after the CLI's own exit handler
atexit.register(lambda: print("frozen at exit:", gc.get_freeze_count() > 0, flush=True))
from churnclv.cli import cli
if sys.argv[1] == "cli":
    try:
        cli(["generate", "--help"], standalone_mode=False)
    except SystemExit:
        pass
print("frozen during the run:", gc.get_freeze_count() > 0, flush=True)
"""


@pytest.mark.parametrize(("how", "frozen"), [("cli", True), ("import only", False)])
def test_the_command_freezes_its_objects_at_exit_only(tmp_path: Path, how: str, frozen: bool) -> None:
    """The CLI's exit skips the collector's passes over every object (gc.freeze at exit), and
    nothing is frozen while the job runs; importing the CLI alone changes nothing."""
    script = tmp_path / "exit_probe.py"
    script.write_text(EXIT_PROBE)
    proc = subprocess.run([sys.executable, str(script), how], capture_output=True, text=True, timeout=120, check=True)
    assert proc.stdout.splitlines()[-2:] == ["frozen during the run: False", f"frozen at exit: {frozen}"]
