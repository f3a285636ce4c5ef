"""SpendIntervals: order, sign, persistence and coverage on a population simulated from BG/NBD + Gamma-Gamma."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from sklearn.exceptions import NotFittedError

from churnclv.models.btyd import BTYDModel
from churnclv.models.intervals import INTERVAL_COLUMNS, SpendIntervals

H = 90.0


def simulate(n: int, seed: int) -> tuple[pd.DataFrame, np.ndarray]:
    """Customers from BG/NBD + Gamma-Gamma: their summary at T and their realised spend in (T, T + H]."""
    rng = np.random.default_rng(seed)
    lam = rng.gamma(2.0, 1 / 40.0, n)  # purchase days per day
    p = rng.beta(1.0, 12.0, n)
    nu = rng.gamma(5.0, 1 / 120.0, n)  # order values Gamma(4, nu): mean 4 / nu
    age = rng.uniform(120, 500, n)
    t = np.zeros(n)
    alive = np.ones(n, dtype=bool)
    x = np.zeros(n)
    last = np.zeros(n)
    repeat_total = np.zeros(n)
    future = np.zeros(n)
    for _ in range(400):
        if not alive.any():
            break
        t = t + rng.exponential(1.0, n) / lam
        buy = alive & (t <= age + H)
        if not buy.any():
            break
        value = rng.gamma(4.0, 1.0, n) / nu
        past, ahead = buy & (t <= age), buy & (t > age)
        x += past
        last = np.where(past, t, last)
        repeat_total += np.where(past, value, 0.0)
        future += np.where(ahead, value, 0.0)
        alive &= ~(buy & (rng.random(n) < p))
        alive &= t <= age + H
    frame = pd.DataFrame(
        {
            "customer_id": [f"{i:06d}" for i in range(n)],
            "frequency": x,
            "recency": last,
            "T": age,
            "monetary_value": np.where(x > 0, repeat_total / np.maximum(x, 1), 0.0),
        }
    )
    return frame, future


@pytest.fixture(scope="module")
def fitted() -> tuple[SpendIntervals, pd.DataFrame, np.ndarray]:
    frame, future = simulate(4000, seed=1)
    btyd = BTYDModel().fit(frame)
    return SpendIntervals(n_draws=200).fit(btyd, horizon_days=H), frame, future


def test_quantiles_are_ordered_and_non_negative(fitted):
    model, frame, _ = fitted
    out = model.quantiles(frame, (0.1, 0.25, 0.5, 0.75, 0.9))
    for target in ("spend", "clv", "expected_spend"):
        q = out[[f"{target}_p{k}" for k in (10, 25, 50, 75, 90)]].to_numpy()
        assert (q >= 0).all()
        assert (np.diff(q, axis=1) >= 0).all()
    assert list(model.predict(frame).columns) == list(INTERVAL_COLUMNS)
    # a year's discounted value is at least the 90-day spend at the top of the distribution
    assert (out["clv_p90"].to_numpy() >= out["spend_p90"].to_numpy() - 1e-9).mean() > 0.99


def test_a_customer_gets_the_same_interval_alone_or_in_a_crowd(fitted):
    model, frame, _ = fitted
    crowd = model.predict(frame)
    alone = model.predict(frame.iloc[[17]])
    pd.testing.assert_frame_equal(alone, crowd.iloc[[17]])


def test_round_trip_through_json(fitted):
    model, frame, _ = fitted
    again = SpendIntervals.from_dict(json.loads(json.dumps(model.to_dict())))
    pd.testing.assert_frame_equal(again.predict(frame.head(300)), model.predict(frame.head(300)))


def test_unfitted_refuses():
    with pytest.raises(NotFittedError):
        SpendIntervals().predict(
            pd.DataFrame({"frequency": [1.0], "recency": [1.0], "T": [2.0], "monetary_value": [1]})
        )


def test_predictive_interval_covers_the_realised_spend(fitted):
    model, frame, future = fitted
    u = model.pit(frame, future)  # randomised PIT: the atom at 0 (no purchase) does not lift coverage
    cover80, cover50 = np.mean(np.abs(u - 0.5) <= 0.4), np.mean(np.abs(u - 0.5) <= 0.25)
    assert 0.70 <= cover80 <= 0.90, cover80
    assert 0.40 <= cover50 <= 0.60, cover50
    out = model.quantiles(frame, (0.1, 0.9))
    closed = np.mean((future >= out["spend_p10"]) & (future <= out["spend_p90"]))
    assert 0.75 <= closed <= 0.97, closed  # closed intervals: [0, 0] covers every customer who buys nothing


def test_pit_flags_a_wrong_model(fitted):
    model, frame, future = fitted
    u = model.pit(frame, future * 3)  # spend three times what the model expects
    assert np.mean(np.abs(u - 0.5) <= 0.4) < 0.70
