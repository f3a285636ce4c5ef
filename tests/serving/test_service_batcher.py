"""The request batcher: concurrent requests share calls, answers go to their own request, and one
request's failure is not another's.

No test here waits for time to pass. The fake scoring function tells the event loop when it has
started (so the first request holds the worker), the test sees the other requests in the queue
before it lets the worker go, and call durations come from a clock the test moves."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Hashable, Sequence
from concurrent.futures import ThreadPoolExecutor
from types import SimpleNamespace

import pytest

from churnclv.serving import batcher as batcher_module
from churnclv.serving.batcher import RequestBatcher

# Safety nets only: a correct run never waits on them; a broken one fails instead of hanging.
SAFETY_S = 30
MAX_YIELDS = 100


class HeldWorker:
    """A scoring function whose first call holds the worker thread until :meth:`release`.

    ``started`` is set (on the event loop) when that first call is running, i.e. when the batcher
    has taken the first request off its queue and the worker is busy.
    """

    def __init__(self, score: Callable[[Hashable, list[int]], Sequence[int]]) -> None:
        self._score = score
        self._loop = asyncio.get_running_loop()
        self.started = asyncio.Event()
        self._gate = threading.Event()

    def __call__(self, key: Hashable, payloads: list[int]) -> Sequence[int]:
        self._loop.call_soon_threadsafe(self.started.set)
        if not self._gate.wait(SAFETY_S):
            raise TimeoutError("the test never released the worker")
        return self._score(key, payloads)

    async def busy(self) -> None:
        await asyncio.wait_for(self.started.wait(), SAFETY_S)

    def release(self) -> None:
        self._gate.set()


async def queued(b: RequestBatcher, n: int) -> None:
    """Return once ``n`` requests wait in ``b``'s queue.

    Each submitted task appends its request before its first await, so this needs event-loop turns
    only, never the worker thread or the clock; the bound counts turns, not seconds.
    """
    for _ in range(MAX_YIELDS):
        if len(b._queue) == n:  # private: the queue is what this test is about
            return
        await asyncio.sleep(0)
    pytest.fail(f"{len(b._queue)} requests queued after {MAX_YIELDS} event-loop turns, expected {n}")


def test_requests_arriving_while_busy_share_one_call(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = [100.0]
    monkeypatch.setattr(batcher_module, "time", SimpleNamespace(perf_counter=lambda: clock[0]))
    calls: list[list[int]] = []
    observed: list[tuple[int, float]] = []

    def score(key: Hashable, payloads: list[int]) -> list[int]:
        calls.append(list(payloads))
        clock[0] += len(payloads)  # a call "takes" one second per request
        return [p * 10 for p in payloads]

    async def scenario() -> list[int]:
        worker = HeldWorker(score)
        with ThreadPoolExecutor(1) as pool:
            b: RequestBatcher[int, int] = RequestBatcher(
                pool, worker, max_items=100, observe=lambda n, s: observed.append((n, s))
            )
            try:
                first = asyncio.ensure_future(b.submit("k", 1))
                await worker.busy()
                rest = [asyncio.ensure_future(b.submit("k", i)) for i in range(2, 7)]
                await queued(b, 5)
                clock[0] += 7  # the time requests 2..6 wait is the first call's, not their own call's
            finally:
                worker.release()
            return await asyncio.wait_for(asyncio.gather(first, *rest), SAFETY_S)

    assert asyncio.run(scenario()) == [10, 20, 30, 40, 50, 60]
    assert calls == [[1], [2, 3, 4, 5, 6]]
    # requests per call and the call's own duration, for the service's histograms
    assert observed == [(1, pytest.approx(1 + 7)), (5, pytest.approx(5))]


def test_batches_respect_keys_and_size() -> None:
    calls: list[tuple[Hashable, list[int]]] = []

    def score(key: Hashable, payloads: list[int]) -> list[int]:
        calls.append((key, list(payloads)))
        return payloads

    async def scenario() -> None:
        worker = HeldWorker(score)
        with ThreadPoolExecutor(1) as pool:
            b: RequestBatcher[int, int] = RequestBatcher(pool, worker, max_items=5)
            try:
                hold = asyncio.ensure_future(b.submit("a", 0))
                await worker.busy()
                jobs = [b.submit("a", 1, size=3), b.submit("b", 2), b.submit("a", 3, size=3), b.submit("a", 4, size=1)]
                tasks = [asyncio.ensure_future(j) for j in jobs]
                await queued(b, 4)
            finally:
                worker.release()
            assert await asyncio.wait_for(asyncio.gather(hold, *tasks), SAFETY_S) == [0, 1, 2, 3, 4]

    asyncio.run(scenario())
    # after the held call: key a up to 5 items (1 and 4), then b, then the a that did not fit
    assert calls == [("a", [0]), ("a", [1, 4]), ("b", [2]), ("a", [3])]


def test_a_failing_request_does_not_fail_its_batch_mates() -> None:
    calls: list[list[int]] = []

    def score(key: Hashable, payloads: list[int]) -> list[int]:
        calls.append(list(payloads))
        if -1 in payloads:
            raise ValueError("bad payload")
        return [p + 1 for p in payloads]

    async def scenario() -> list[object]:
        worker = HeldWorker(score)
        with ThreadPoolExecutor(1) as pool:
            b: RequestBatcher[int, int] = RequestBatcher(pool, worker, max_items=100)
            try:
                hold = asyncio.ensure_future(b.submit("k", 0))
                await worker.busy()
                tasks = [asyncio.ensure_future(b.submit("k", p)) for p in (1, -1, 2)]
                await queued(b, 3)
            finally:
                worker.release()
            return await asyncio.wait_for(asyncio.gather(hold, *tasks, return_exceptions=True), SAFETY_S)

    out = asyncio.run(scenario())
    assert out[:2] == [1, 2] and out[3] == 3
    assert isinstance(out[2], ValueError)
    assert calls == [[0], [1, -1, 2], [1], [-1], [2]]  # the shared call failed, so each went alone


def test_a_lone_request_goes_at_once() -> None:
    async def scenario() -> int:
        with ThreadPoolExecutor(1) as pool:
            b: RequestBatcher[int, int] = RequestBatcher(pool, lambda k, ps: list(ps), max_items=10)
            r = await asyncio.wait_for(b.submit("k", 7), timeout=SAFETY_S)
            assert (b.calls, b.batched) == (1, 1)
            return r

    assert asyncio.run(scenario()) == 7


@pytest.mark.parametrize("n", [1, 3])
def test_wrong_result_count_is_an_error_not_a_hang(n: int) -> None:
    async def scenario() -> None:
        with ThreadPoolExecutor(1) as pool:
            b: RequestBatcher[int, int] = RequestBatcher(pool, lambda k, ps: [], max_items=10)
            with pytest.raises(RuntimeError, match="results"):
                await asyncio.wait_for(asyncio.gather(*(b.submit("k", i) for i in range(n))), timeout=SAFETY_S)

    asyncio.run(scenario())
