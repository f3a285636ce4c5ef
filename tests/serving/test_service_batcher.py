"""The request batcher: concurrent requests share calls, answers go to their own request, and one
request's failure is not another's."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Hashable
from concurrent.futures import ThreadPoolExecutor

import pytest

from churnclv.serving.batcher import RequestBatcher


def test_requests_arriving_while_busy_share_one_call() -> None:
    gate = threading.Event()
    calls: list[list[int]] = []

    def run(key: Hashable, payloads: list[int]) -> list[int]:
        calls.append(list(payloads))
        gate.wait(5)  # the first call holds the thread while the others queue
        return [p * 10 for p in payloads]

    observed: list[tuple[int, float]] = []

    async def scenario() -> list[int]:
        with ThreadPoolExecutor(1) as pool:
            b: RequestBatcher[int, int] = RequestBatcher(pool, run, max_items=100,
                                                         observe=lambda n, s: observed.append((n, s)))
            first = asyncio.ensure_future(b.submit("k", 1))
            await asyncio.sleep(0.05)
            rest = [asyncio.ensure_future(b.submit("k", i)) for i in range(2, 7)]
            await asyncio.sleep(0.05)
            gate.set()
            return await asyncio.gather(first, *rest)

    assert asyncio.run(scenario()) == [10, 20, 30, 40, 50, 60]
    assert calls == [[1], [2, 3, 4, 5, 6]]
    assert [n for n, _ in observed] == [1, 5]  # requests per call, for the service's histogram
    assert observed[0][1] >= 0.04  # the first call waited on the gate about 0.05 s


def test_batches_respect_keys_and_size() -> None:
    gate = threading.Event()
    calls: list[tuple[Hashable, list[int]]] = []

    def run(key: Hashable, payloads: list[int]) -> list[int]:
        calls.append((key, list(payloads)))
        gate.wait(5)
        return payloads

    async def scenario() -> None:
        with ThreadPoolExecutor(1) as pool:
            b: RequestBatcher[int, int] = RequestBatcher(pool, run, max_items=5)
            hold = asyncio.ensure_future(b.submit("a", 0))
            await asyncio.sleep(0.05)
            jobs = [b.submit("a", 1, size=3), b.submit("b", 2), b.submit("a", 3, size=3), b.submit("a", 4, size=1)]
            tasks = [asyncio.ensure_future(j) for j in jobs]
            await asyncio.sleep(0.05)
            gate.set()
            assert await asyncio.gather(hold, *tasks) == [0, 1, 2, 3, 4]

    asyncio.run(scenario())
    # after the held call: key a up to 5 items (1 and 4), then b, then the a that did not fit
    assert calls == [("a", [0]), ("a", [1, 4]), ("b", [2]), ("a", [3])]


def test_a_failing_request_does_not_fail_its_batch_mates() -> None:
    gate = threading.Event()

    def run(key: Hashable, payloads: list[int]) -> list[int]:
        gate.wait(5)
        if -1 in payloads:
            raise ValueError("bad payload")
        return [p + 1 for p in payloads]

    async def scenario() -> list[object]:
        with ThreadPoolExecutor(1) as pool:
            b: RequestBatcher[int, int] = RequestBatcher(pool, run, max_items=100)
            hold = asyncio.ensure_future(b.submit("k", 0))
            await asyncio.sleep(0.05)
            tasks = [asyncio.ensure_future(b.submit("k", p)) for p in (1, -1, 2)]
            await asyncio.sleep(0.05)
            gate.set()
            return await asyncio.gather(hold, *tasks, return_exceptions=True)

    out = asyncio.run(scenario())
    assert out[:2] == [1, 2] and out[3] == 3
    assert isinstance(out[2], ValueError)


def test_a_lone_request_goes_at_once() -> None:
    async def scenario() -> int:
        with ThreadPoolExecutor(1) as pool:
            b: RequestBatcher[int, int] = RequestBatcher(pool, lambda k, ps: [p for p in ps], max_items=10)
            r = await asyncio.wait_for(b.submit("k", 7), timeout=5)
            assert (b.calls, b.batched) == (1, 1)
            return r

    assert asyncio.run(scenario()) == 7


@pytest.mark.parametrize("n", [1, 3])
def test_wrong_result_count_is_an_error_not_a_hang(n: int) -> None:
    async def scenario() -> None:
        with ThreadPoolExecutor(1) as pool:
            b: RequestBatcher[int, int] = RequestBatcher(pool, lambda k, ps: [], max_items=10)
            with pytest.raises(RuntimeError, match="results"):
                await asyncio.wait_for(asyncio.gather(*(b.submit("k", i) for i in range(n))), timeout=5)

    asyncio.run(scenario())
