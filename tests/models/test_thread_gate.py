"""LightGBM calls of different thread counts never overlap; calls of one count do."""

from __future__ import annotations

import threading
from contextlib import AbstractContextManager

import numpy as np
import pandas as pd
import pytest

from churnclv.models import gbm_base
from churnclv.models.gbm import GBMSpendRegressor
from churnclv.models.thread_gate import LIGHTGBM_CALLS, ThreadSettingGate


def test_callers_of_one_count_share_the_gate_and_another_count_waits_for_all_of_them() -> None:
    gate = ThreadSettingGate()
    assert gate.try_enter(1) and gate.try_enter(1)  # the backtest's fits, one thread each
    assert not gate.try_enter(0)  # all cores: not while a one-thread call is inside
    gate.leave()
    assert not gate.try_enter(0)  # one of them is still inside
    gate.leave()
    assert gate.try_enter(0) and not gate.try_enter(1) and not gate.try_enter(2)
    gate.leave()
    with pytest.raises(RuntimeError, match="nobody is inside"):
        gate.leave()


def test_a_waiting_caller_enters_once_the_other_count_has_left() -> None:
    gate = ThreadSettingGate()
    entered = threading.Event()

    def other() -> None:
        with gate.calls(0):
            entered.set()

    with gate.calls(1):
        worker = threading.Thread(target=other)
        worker.start()
        assert not gate.try_enter(0)  # still held at one thread: the worker cannot be inside
        assert not entered.is_set()
    assert entered.wait(timeout=30)  # a failsafe bound, not a timing: it is set once we left
    worker.join(timeout=30)
    assert gate.try_enter(5)  # everyone left
    gate.leave()


def test_every_prediction_and_fit_goes_through_the_gate(monkeypatch: pytest.MonkeyPatch) -> None:
    """A model's LightGBM calls hold the gate at their thread count: a gate held at another count
    makes them wait (checked here by a gate that refuses, instead of waiting, and records)."""
    seen: list[int] = []

    class Recording(ThreadSettingGate):
        def calls(self, threads: int) -> AbstractContextManager[None]:  # type: ignore[override]
            seen.append(threads)
            return super().calls(threads)

    monkeypatch.setattr(gbm_base, "LIGHTGBM_CALLS", Recording())
    rng = np.random.default_rng(0)
    X = pd.DataFrame({"customer_id": [str(i) for i in range(400)], "x": rng.normal(size=400)})
    y = np.exp(X["x"].to_numpy()) + rng.random(400)
    with gbm_base.lightgbm_threads(1):
        model = GBMSpendRegressor(num_boost_round=5).fit(X, y)
        model.predict(X)
    model.predict(X.head(3))  # a few rows outside the context: one thread
    big = pd.concat([X] * 3, ignore_index=True)
    model.predict(big)  # 1,200 rows outside the context: all cores (0)
    assert seen[0] == 1 and 1 in seen[1:-2] and seen[-2:] == [1, 0]
    assert LIGHTGBM_CALLS.try_enter(3)  # the module's own gate is free (nothing left inside)
    LIGHTGBM_CALLS.leave()
