"""What the end-to-end bench scripts share: the CLI in a child process, its peak memory, cached worlds."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path


def cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "churnclv.cli", *args]


def run(cmd: list[str], log: Path, cwd: Path | None = None) -> tuple[float, float, int]:
    """Run ``cmd``; returns (wall seconds, peak RSS in GB of the child, exit status)."""
    start = time.perf_counter()
    with log.open("w") as fh:
        proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, cwd=cwd)
        _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    return time.perf_counter() - start, usage.ru_maxrss / 2**20, proc.returncode  # ru_maxrss is KiB on Linux


def world(work: Path, n: int, seed: int) -> tuple[Path, float | None]:
    """A generated world of ``n`` customers under ``work`` (made once; returns its generation time then)."""
    path = work / f"world-{n}-s{seed}"
    if (path / "customers.parquet").is_file():
        return path, None
    shutil.rmtree(path, ignore_errors=True)
    wall, _, rc = run(
        cli("generate", "--customers", str(n), "--seed", str(seed), "--out", str(path)), work / f"generate-{n}.log"
    )
    if rc:
        sys.exit(f"generate failed: see {work / f'generate-{n}.log'}")
    return path, wall


def rows_of(path: Path, name: str) -> int:
    import pyarrow.parquet as pq

    return pq.ParquetFile(path / f"{name}.parquet").metadata.num_rows
