"""``bench/features.py``: wrong options are argparse errors, and its peak RSS is the measured process's own."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"


def bench(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(BENCH / "features.py"), *args], capture_output=True, text=True, timeout=60, check=False
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--work", "/tmp/x"], "unrecognized arguments: --work"),  # was taken for --worker: an IndexError
        (["--worker", "ibis"], "unrecognized arguments: --worker"),
        (["--sizes", "0"], "argument --sizes: 0 is below 1"),
        (["--repeats", "two"], "argument --repeats: 'two' is not a whole number"),
        (["--memory-limit", "lots"], "'lots' is not a DuckDB memory size"),
    ],
)
def test_wrong_options_are_argparse_errors(args, message):
    done = bench(*args)
    assert done.returncode == 2
    assert message in done.stderr and "Traceback" not in done.stderr


# A parent that peaks at 400 MB, frees it, then starts a worker that reports its peak as the bench's
# workers do. Linux hands the parent's peak on to the child's ru_maxrss; the bench's figure must not.
_PARENT = """
import json, os, subprocess, sys
big = bytearray(400 * 2**20)
for i in range(0, len(big), 4096):
    big[i] = 1
del big
child = "import features_workers as w; print(w._Work().usage())"  # in bench/: python -c imports from the cwd
proc = subprocess.Popen([sys.executable, "-c", child], stdout=subprocess.PIPE, text=True, cwd=sys.argv[1])
out = proc.stdout.read()
_, status, usage = os.wait4(proc.pid, 0)
print(json.dumps({**json.loads(out), "wait4_maxrss_mb": usage.ru_maxrss / 1024}))
"""


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="VmHWM is Linux's")
def test_peak_rss_is_the_workers_own_not_its_parents():
    done = subprocess.run(
        [sys.executable, "-c", _PARENT, str(BENCH)], capture_output=True, text=True, timeout=60, check=True
    )
    got = json.loads(done.stdout)
    assert got["wait4_maxrss_mb"] >= 400 and got["ru_maxrss_mb"] >= 400  # what the bench used to report
    assert got["rss_mb"] < 200  # a bare interpreter: tens of MB
