"""The servers of ``bench/http_load.py``: started in their own process group (optionally pinned to some
cores), waited for, stopped; and the service's own scoring-call figures read from ``/metrics``."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

from http_client import HOST


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def split_cores(pin: bool) -> tuple[set[int] | None, set[int] | None]:
    """(client cores, server cores) for ``--pin``: the client on the first core this process may use,
    the servers on the others; (None, None) without ``--pin`` or with a single core."""
    cores = sorted(os.sched_getaffinity(0))
    if not pin or len(cores) < 2:
        return None, None
    return {cores[0]}, set(cores[1:])


def _ready(port: int, path: str) -> bool:
    with contextlib.suppress(OSError), socket.create_connection((HOST, port), timeout=2) as s:
        s.sendall(f"GET {path} HTTP/1.1\r\nHost: {HOST}\r\nConnection: close\r\n\r\n".encode())
        return s.recv(64).startswith(b"HTTP/1.1 200")
    return False


@contextlib.contextmanager
def server(
    cmd: list[str],
    env: dict[str, str],
    port: int,
    ready_path: str,
    log: Path,
    *,
    cores: set[int] | None = None,
    deadline_s: float = 180,
) -> Iterator[subprocess.Popen]:
    """Start ``cmd`` in its own process group (on ``cores``, inherited by its workers), wait (bounded)
    for ``ready_path``, kill the group after."""

    if cores is not None:  # taskset: the affinity is set before the server starts, and its workers inherit it
        cmd = ["taskset", "--cpu-list", ",".join(map(str, sorted(cores))), *cmd]
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        t_end = time.monotonic() + deadline_s
        while not _ready(port, ready_path):
            if proc.poll() is not None or time.monotonic() > t_end:
                tail = "\n".join(log.read_text(errors="replace").splitlines()[-30:])
                raise RuntimeError(f"{cmd[:4]} did not get ready:\n{tail}")
            time.sleep(0.5)  # polling a port that is not open yet: there is nothing to wait on
        yield proc
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)


def scoring_calls(port: int) -> dict[str, tuple[float, float]]:
    """Per endpoint, the service's own (requests per scoring call, mean ms per call) from /metrics."""
    with socket.create_connection((HOST, port), timeout=5) as s:
        s.sendall(f"GET /metrics HTTP/1.1\r\nHost: {HOST}\r\nConnection: close\r\n\r\n".encode())
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    sums: dict[tuple[str, str], float] = {}
    for line in data.decode("utf-8", "replace").splitlines():
        for metric in ("scoring_batch_requests", "scoring_call_seconds"):
            for part in ("sum", "count"):
                if metric + "_" + part + "{" in line and 'endpoint="' in line:
                    endpoint = line.split('endpoint="', 1)[1].split('"', 1)[0]
                    key = (endpoint, metric + "_" + part)
                    sums[key] = sums.get(key, 0.0) + float(line.rsplit(" ", 1)[1])
    out = {}
    for endpoint in {e for e, _ in sums}:
        calls = sums.get((endpoint, "scoring_batch_requests_count"), 0.0)
        if calls:
            out[endpoint] = (
                sums[(endpoint, "scoring_batch_requests_sum")] / calls,
                1e3 * sums.get((endpoint, "scoring_call_seconds_sum"), 0.0) / calls,
            )
    return out
