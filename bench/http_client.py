"""The load-test client of ``bench/http_load.py``: a lean HTTP/1.1 client on asyncio (keep-alive
connections, one per concurrent caller) that costs little CPU, as it shares the cores with the server,
and ``measure``: latency percentiles and requests per second over bounded runs."""

from __future__ import annotations

import asyncio
import gc
import random
import time

import numpy as np

HOST = "127.0.0.1"


class Conn:
    """One keep-alive HTTP/1.1 connection (the client must cost little CPU: it shares the 2 cores)."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def open(self) -> None:
        self.reader, self.writer = await asyncio.open_connection(HOST, self.port)

    async def post(self, path: str, body: bytes, headers: dict[str, str]) -> tuple[int, bytes]:
        assert self.reader is not None
        assert self.writer is not None
        head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        self.writer.write(
            f"POST {path} HTTP/1.1\r\nHost: {HOST}:{self.port}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n{head}\r\n".encode()
            + body
        )
        status_line = await self.reader.readline()
        status = int(status_line.split()[1])
        length, chunked = 0, False
        while True:
            line = await self.reader.readline()
            if line in (b"\r\n", b""):
                break
            name, _, value = line.decode("latin-1").partition(":")
            name = name.strip().lower()
            if name == "content-length":
                length = int(value)
            elif name == "transfer-encoding" and "chunked" in value.lower():
                chunked = True
        if chunked:
            data = b""
            while True:
                size = int((await self.reader.readline()).strip(), 16)
                if size == 0:
                    await self.reader.readline()
                    break
                data += await self.reader.readexactly(size)
                await self.reader.readline()
            return status, data
        return status, await self.reader.readexactly(length)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


async def _load(
    port: int,
    path: str,
    bodies: list[bytes],
    headers: dict[str, str],
    concurrency: int,
    n_requests: int,
    max_seconds: float,
) -> tuple[np.ndarray, float, int]:
    conns = [Conn(port) for _ in range(concurrency)]
    await asyncio.gather(*(c.open() for c in conns))
    latencies: list[float] = []
    errors = 0
    issued = 0
    t_end = time.perf_counter() + max_seconds

    async def worker(conn: Conn, seed: int) -> None:
        nonlocal issued, errors
        rng = random.Random(seed)
        while issued < n_requests and time.perf_counter() < t_end:
            issued += 1
            body = bodies[rng.randrange(len(bodies))]
            t0 = time.perf_counter()
            status, _ = await conn.post(path, body, headers)
            latencies.append(time.perf_counter() - t0)
            if status != 200:
                errors += 1

    t0 = time.perf_counter()
    await asyncio.gather(*(worker(c, i) for i, c in enumerate(conns)))
    elapsed = time.perf_counter() - t0
    for c in conns:
        c.close()
    return np.asarray(latencies) * 1e3, elapsed, errors


def measure(
    port: int,
    path: str,
    bodies: list[bytes],
    headers: dict[str, str],
    concurrency: int,
    n_requests: int,
    max_seconds: float,
    repeat: int,
) -> dict[str, float]:
    """Median over ``repeat`` runs of p50/p95/p99 (ms) and requests/s; ``n`` and ``errors`` summed."""
    # warm-up: caches, compiled SQL, first LightGBM calls on every worker
    asyncio.run(_load(port, path, bodies, headers, concurrency, min(n_requests, 20 * concurrency), max_seconds))
    runs = []
    for _ in range(repeat):
        # the client's own garbage collections would stall all its requests in flight and show up
        # as server latency: none during a timed run (a run allocates a few MB at most)
        gc.collect()
        gc.disable()
        try:
            lat, elapsed, errors = asyncio.run(_load(port, path, bodies, headers, concurrency, n_requests, max_seconds))
        finally:
            gc.enable()
        runs.append(
            {
                "n": len(lat),
                "errors": errors,
                "p50": float(np.percentile(lat, 50)),
                "p95": float(np.percentile(lat, 95)),
                "p99": float(np.percentile(lat, 99)),
                "rps": len(lat) / elapsed,
            }
        )
    out = {k: float(np.median([r[k] for r in runs])) for k in ("p50", "p95", "p99", "rps")}
    return {"n": sum(r["n"] for r in runs), "errors": sum(r["errors"] for r in runs), **out}
