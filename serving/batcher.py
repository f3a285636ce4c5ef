"""Opportunistic micro-batching of scoring requests on the worker's scoring thread.

Scoring one row costs mostly fixed per-call overhead (pandas and model plumbing, several ms), and
scoring 16 rows costs little more than one. Requests that arrive while the scoring thread is busy
wait in a queue and go together into the next call; a request that finds the thread idle goes at
once. There is no timer, so a lone request waits for nothing (unlike BentoML's adaptive batching,
which also answers 503 past ``max_latency_ms``), and under load the batch size follows the load.

Only compatible requests share a call (same ``key``: the same model object, and the same snapshot
or as-of). When a shared call fails, each request of it is retried alone, so one request's failure
is never another's.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable, Hashable, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Generic, TypeVar

log = logging.getLogger(__name__)

P = TypeVar("P")
R = TypeVar("R")


@dataclass
class _Job(Generic[P, R]):
    key: Hashable
    payload: P
    size: int
    future: asyncio.Future[R]


class RequestBatcher(Generic[P, R]):
    """Run ``run(key, payloads) -> results`` on ``executor`` for as many queued requests as fit.

    Parameters
    ----------
    executor
        Where ``run`` executes (the worker's single scoring thread).
    run
        Scores several payloads of one key in one call; returns one result per payload, in order.
    max_items
        Upper bound on the summed ``size`` of a batch (a single larger request still runs, alone).
    observe
        Called after each call with the number of requests it served and its duration in seconds
        (the service feeds its Prometheus histograms with it).

    Notes
    -----
    Call :meth:`submit` from the event loop only; the queue is touched by the loop thread alone.
    """

    def __init__(
        self,
        executor: Executor,
        run: Callable[[Hashable, list[P]], Sequence[R]],
        *,
        max_items: int,
        observe: Callable[[int, float], None] | None = None,
    ) -> None:
        self._executor = executor
        self._run = run
        self._max = max_items
        self._observe = observe
        self._queue: deque[_Job[P, R]] = deque()
        self._drainer: asyncio.Task[None] | None = None
        self.calls = 0  # scoring calls made (for tests and monitoring)
        self.batched = 0  # requests served by those calls

    async def submit(self, key: Hashable, payload: P, size: int = 1) -> R:
        """Queue ``payload`` (``size`` items) under ``key`` and wait for its result from a shared call."""
        loop = asyncio.get_running_loop()
        job: _Job[P, R] = _Job(key, payload, size, loop.create_future())
        self._queue.append(job)
        if self._drainer is None or self._drainer.done():
            self._drainer = loop.create_task(self._drain())
        return await job.future

    def _next_batch(self) -> list[_Job[P, R]]:
        key = self._queue[0].key
        batch: list[_Job[P, R]] = []
        rest: deque[_Job[P, R]] = deque()
        total = 0
        while self._queue:
            job = self._queue.popleft()
            if job.future.cancelled():
                continue
            if job.key == key and (not batch or total + job.size <= self._max):
                batch.append(job)
                total += job.size
            else:
                rest.append(job)
        self._queue.extendleft(reversed(rest))
        return batch

    async def _call(self, key: Hashable, payloads: list[P]) -> Sequence[R]:
        self.calls += 1
        self.batched += len(payloads)
        t0 = time.perf_counter()
        try:
            return await asyncio.get_running_loop().run_in_executor(self._executor, self._run, key, payloads)
        finally:
            if self._observe is not None:
                try:
                    self._observe(len(payloads), time.perf_counter() - t0)
                except Exception:
                    log.exception("recording the scoring call's metrics failed")

    async def _drain(self) -> None:
        while self._queue:
            batch = self._next_batch()
            if batch:
                await self._serve(batch)

    async def _serve(self, batch: list[_Job[P, R]]) -> None:
        try:
            results = await self._call(batch[0].key, [j.payload for j in batch])
            if len(results) != len(batch):
                raise RuntimeError(f"{len(batch)} requests got {len(results)} results (a bug in the batch runner)")
        except Exception as exc:  # noqa: BLE001 - delivered to the request(s), never lost
            if len(batch) == 1:
                if not batch[0].future.done():
                    batch[0].future.set_exception(exc)
                return
            log.warning("a batch of %d requests failed (%s); retrying them one by one", len(batch), exc)
            for job in batch:
                await self._serve([job])
            return
        for job, result in zip(batch, results, strict=True):  # lengths checked above
            if not job.future.done():
                job.future.set_result(result)


__all__ = ["RequestBatcher"]
