"""SpendIntervals: order, sign, persistence and coverage on a population simulated from BG/NBD + Gamma-Gamma."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sklearn.exceptions import NotFittedError

from churnclv.models import intervals
from churnclv.models.btyd import BTYDModel
from churnclv.models.interval_kernels import common_draws, row_draws
from churnclv.models.intervals import INTERVAL_COLUMNS, SpendIntervals, _order_stats

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


def test_p_zero_sets_the_chance_of_spending_nothing(fitted):
    model, frame, _ = fitted
    p_none = model.btyd_.predict(frame, H)["p_churn"].to_numpy()
    rng = np.random.default_rng(3)
    p_zero = np.clip(p_none + rng.normal(0, 0.15, len(frame)), 0, 1)  # a churn model other than BTYD's
    out = model.quantiles(frame, (0.1, 0.5, 0.9), clv=False, expected=False, p_zero=p_zero)
    q = out.to_numpy()
    assert (q >= 0).all() and (np.diff(q, axis=1) >= 0).all()
    for i, level in enumerate((0.1, 0.5, 0.9)):  # zero exactly where no purchase is at least that likely
        assert (q[p_zero >= level, i] == 0).all()
    btyd_only = model.quantiles(frame, (0.5, 0.9), clv=False, expected=False).to_numpy()
    buys = btyd_only[:, 1] > 0  # BTYD has positive draws to place the upper part on
    assert (q[buys & (p_zero < 0.5), 1] > 0).all() and (q[buys & (p_zero < 0.9), 2] > 0).all()
    # more chance of buying nothing never raises a quantile
    higher = model.quantiles(frame, (0.1, 0.5, 0.9), clv=False, expected=False, p_zero=np.minimum(p_zero + 0.1, 1))
    assert (higher.to_numpy() <= q).all()


def test_pit_with_p_zero_is_calibrated_and_flags_a_wrong_churn(fitted):
    model, frame, future = fitted
    p_none = model.btyd_.predict(frame, H)["p_churn"].to_numpy()
    u = model.pit(frame, future, p_zero=p_none)  # BTYD's own closed-form P(no purchase in H)
    assert 0.70 <= np.mean(np.abs(u - 0.5) <= 0.4) <= 0.90
    assert 0.40 <= np.mean(np.abs(u - 0.5) <= 0.25) <= 0.60
    assert np.all(u[future == 0] <= p_none[future == 0])  # the atom at 0 is exactly p_zero wide
    wrong = model.pit(frame, future, p_zero=np.full(len(frame), 0.98))  # "almost nobody buys"
    assert np.mean(np.abs(wrong - 0.5) <= 0.4) < 0.70
    with pytest.raises(ValueError, match="p_zero must be a probability"):
        model.pit(frame, future, p_zero=np.full(len(frame), 1.5))
    with pytest.raises(ValueError, match="one value per row"):
        model.quantiles(frame, p_zero=np.zeros(3))


# ---------------------------------------------------------------- the compiled path equals the reference


def edge_cases(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` (with ``tenure_days``) plus never-bought sign-ups, one-time buyers, rows past the draw
    tables (frequency > 512), shared histories with different order values, and huge order values
    (up to one whose Gamma-Gamma scale overflows: infinite and NaN draws)."""
    nan = np.nan
    extra = pd.DataFrame(
        {
            "frequency": [nan, nan, nan, 0.0, 0.0, 600.0, 5.0, 5.0, 5.0, 3.0, 3.0, 40.0],
            "recency": [nan, nan, nan, 0.0, 0.0, 700.0, 200.0, 200.0, 200.0, 90.0, 90.0, 300.0],
            "T": [nan, nan, nan, 30.0, 400.0, 720.0, 300.0, 300.0, 300.0, 100.0, 100.0, 301.0],
            "monetary_value": [nan, nan, nan, 0.0, 0.0, 80.0, 10.0, 1e4, 1e12, 1e250, 1e308, 55.0],
            "tenure_days": [0.0, 45.0, nan, 30.0, 400.0, 720.0, 300.0, 300.0, 300.0, 100.0, 100.0, 301.0],
        }
    )
    out = pd.concat([frame.assign(tenure_days=frame["T"]), extra], ignore_index=True)
    return out.assign(customer_id=[f"{i:06d}" for i in range(len(out))])


def reference_quantiles(
    model: SpendIntervals, frame: pd.DataFrame, probs: tuple[float, ...], p_zero: np.ndarray | None = None
) -> pd.DataFrame:
    """The quantiles as numpy order statistics of every draw (:meth:`SpendIntervals._draw_chunk`)."""
    f, r, t, m, unit = model._columns(model.btyd_, frame)
    gg = model.btyd_.gg_params_
    draws = common_draws(model.n_draws, model.seed, float(gg["p"]) if gg else 1.0)
    windows, discounts = model._windows(unit, clv=True)
    every = model._draw_chunk(model.btyd_, draws, f, r, t, m, windows, discounts, windows[0])
    return pd.DataFrame(
        {
            f"{target}_p{round(100 * p)}": _order_stats(
                every[target],
                probs,
                None if target == "expected_spend" else p_zero,
                None if p_zero is None else every["spend"] == 0,
            )[:, i]
            for target in ("spend", "clv", "expected_spend")
            for i, p in enumerate(probs)
        },
        index=frame.index,
    )


@pytest.fixture(scope="module")
def population() -> pd.DataFrame:
    return simulate(2500, seed=2)[0]


@pytest.mark.filterwarnings("ignore:overflow:RuntimeWarning", "ignore:divide by zero:RuntimeWarning")
@pytest.mark.filterwarnings("ignore:invalid value:RuntimeWarning")  # the order value of 1e308, on purpose
@pytest.mark.parametrize(
    ("kind", "gg_min", "n_draws"),
    [("bgnbd", 20, 200), ("mbgnbd", 20, 57), ("pareto", 20, 64), ("bgnbd", 10**9, 41)],
    ids=["bgnbd", "mbgnbd", "pareto", "gamma-gamma-fallback"],
)
def test_compiled_quantiles_equal_the_reference_bit_for_bit(population, monkeypatch, kind, gg_min, n_draws):
    btyd = BTYDModel(model=kind, gg_min_repeat_buyers=gg_min).fit(population)
    edge_frame = edge_cases(population)
    assert (btyd.gg_params_ is None) == (gg_min > 20)
    capped = SpendIntervals(n_draws=n_draws, seed=3).fit(btyd, horizon_days=H, clv_months=6)
    assert np.isfinite(capped.quantiles(edge_frame).to_numpy()).all()  # the huge order values at the cap
    btyd.monetary_cap_ = None  # as saved before the cap: the overflowing order values reach the kernel
    model = SpendIntervals(n_draws=n_draws, seed=3).fit(btyd, horizon_days=H, clv_months=6)
    monkeypatch.setattr(intervals, "_CHUNK", 700)  # several blocks of unique rows
    probs = (0.05, 0.1, 0.5, 0.9, 0.99)
    fast = model.quantiles(edge_frame, probs)
    expected = reference_quantiles(model, edge_frame, probs)
    pd.testing.assert_frame_equal(fast, expected[fast.columns], check_exact=True)
    if btyd.gg_params_ is not None:  # the order value whose Gamma-Gamma scale overflows
        assert np.isnan(fast.to_numpy()).any() and np.isinf(fast.to_numpy()).any()
    assert (fast["spend_p90"] > 0).any() and (fast["spend_p10"] == 0).any()
    without = model.quantiles(edge_frame, probs, clv=False, expected=False)
    assert list(without.columns) == [f"spend_p{round(100 * p)}" for p in probs]
    pd.testing.assert_frame_equal(without, fast[without.columns], check_exact=True)
    # the mass at 0 moved to a given P(no purchase): exact probabilities (0, 1, a quantile's own level) too
    p_zero = np.random.default_rng(7).random(len(edge_frame))
    p_zero[:6] = [0.0, 1.0, 0.5, 0.1, 0.9, 0.05]
    moved = model.quantiles(edge_frame, probs, p_zero=p_zero)
    expected = reference_quantiles(model, edge_frame, probs, p_zero)
    pd.testing.assert_frame_equal(moved, expected[moved.columns], check_exact=True)
    others = [c for c in moved.columns if c.startswith("expected_spend_")]
    pd.testing.assert_frame_equal(moved[others], fast[others], check_exact=True)
    assert not moved.equals(fast)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=st.lists(st.integers(0, 2_000_000), min_size=1, max_size=40), seed=st.integers(0, 5))
def test_any_subset_gets_the_reference_quantiles(fitted, rows, seed):
    model, frame, _ = fitted
    model = SpendIntervals(n_draws=30 + seed, seed=seed).fit(model.btyd_, horizon_days=H, clv_months=3)
    sub = edge_cases(frame).iloc[[i % (len(frame) + 12) for i in rows]]
    p_zero = np.random.default_rng(seed).random(len(sub)) if seed % 2 else None
    fast = model.quantiles(sub, (0.1, 0.5, 0.9), p_zero=p_zero)
    pd.testing.assert_frame_equal(
        fast, reference_quantiles(model, sub, (0.1, 0.5, 0.9), p_zero)[fast.columns], check_exact=True
    )


def test_the_amount_scale_puts_the_weighted_draws_mean_at_the_expected_spend() -> None:
    from churnclv.models.intervals import SCALE_RANGE, amount_scale

    # BTYD: spend 10 with P(buy) 0.5, so 20 given a purchase; the scorer: P(buy) 0.25, spend 10
    f = amount_scale(np.array([10.0]), np.array([0.75]), np.array([10.0]), np.array([0.5]))
    assert f[0] == pytest.approx(10.0 / (0.25 * 20.0))
    # nothing to scale (BTYD expects no purchase, no spend; the scorer no spend): 1; beyond the range: held
    odd = amount_scale(
        np.array([5.0, 5.0, 0.0, 1e9, 1e-9]),
        np.array([0.5, 0.5, 0.5, 0.5, 0.5]),
        np.array([0.0, 1.0, 1.0, 1.0, 1.0]),
        np.array([0.5, 1.0, 0.5, 0.5, 0.5]),
    )
    np.testing.assert_array_equal(odd, [1.0, 1.0, 1.0, SCALE_RANGE[1], SCALE_RANGE[0]])


def test_scaled_intervals_are_the_weighted_ones_times_the_scale(fitted):
    from churnclv.models.intervals import with_intervals

    model, frame, future = fitted
    rows = frame.head(300)
    scores = pd.DataFrame({"clv": np.ones(300), "p_churn": np.linspace(0.05, 0.95, 300)}, index=rows.index)
    scale = np.linspace(0.5, 2.0, 300)
    plain = with_intervals(scores, model, rows, clv=True)
    scaled = with_intervals(scores, model, rows, clv=True, scale=scale)
    for col in INTERVAL_COLUMNS:
        np.testing.assert_allclose(scaled[col], plain[col] * scale)
    u = model.pit(rows, future[:300] * scale, p_zero=scores["p_churn"], scale=scale)
    np.testing.assert_allclose(u, model.pit(rows, future[:300], p_zero=scores["p_churn"]))


def degenerate_bgnbd(a: float, b: float) -> BTYDModel:
    """A BG/NBD fit with drop-out shapes far below 1, as a short history gives (a = 1.7e-5, b = 2.5e-3
    on 60 days of 300 customers)."""
    fitted = {
        "params": {"r": 0.41, "alpha": 8.3, "a": a, "b": b},
        "log_likelihood": -1.0,
        "gg_params": {"p": 6.0, "q": 4.0, "v": 15.0},
        "gg_log_likelihood": -1.0,
        "mean_order_value": 35.0,
        "n_customers": 300,
        "n_unique_rows": 100,
        "n_repeat_buyers": 100,
    }
    return BTYDModel.from_dict({"format": "churnclv.models.btyd.BTYDModel", "version": 1, "init": {}, "fitted": fitted})


def test_tiny_drop_out_shapes_draw_from_the_beta_not_nan():
    # both Gamma draws of a one-time buyer fall below the smallest float: 0 / 0 was a NaN cap, cast to a
    # negative purchase count that the compiled kernel read as an index outside its tables
    model = degenerate_bgnbd(1e-3, 1e-3)
    rows = row_draws(model, common_draws(4000, 0, 6.0), np.zeros(1), np.zeros(1), np.array([30.0]), 14.0)
    assert (rows.cap >= 1).all() and np.isfinite(rows.mean_count).all()
    # Beta(a, a) with a -> 0 is a coin: half the draws drop out at their first purchase day
    assert 0.45 < np.mean(rows.cap == 1) < 0.55
    frame = pd.DataFrame(
        {"frequency": [0.0, 2.0], "recency": [0.0, 20.0], "T": [30.0, 30.0], "monetary_value": [0, 40.0]}
    )
    fitted = SpendIntervals(n_draws=400).fit(model, horizon_days=14, clv_months=12, annual_discount_rate=0.1)
    q = fitted.quantiles(frame, clv=True)
    assert np.isfinite(q.to_numpy()).all() and (q.to_numpy() >= 0).all()
