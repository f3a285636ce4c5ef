from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from churnclv.models.blending import (
    blend_logodds,
    churn_probability,
    coherent_totals,
    expit,
    floored_total_factor,
    logit,
    soft_platt,
    total_factor,
)


def test_soft_platt_recovers_a_known_calibration() -> None:
    rng = np.random.default_rng(7)
    s = rng.normal(0.5, 2.0, 5_000)
    a, b = soft_platt(s, expit(-1.3 + 0.6 * s))
    assert abs(a - -1.3) < 1e-4 and abs(b - 0.6) < 1e-4


def test_soft_platt_falls_back_to_the_identity_on_constant_scores() -> None:
    assert soft_platt(np.ones(10), np.full(10, 0.3)) == (0.0, 1.0)


def test_churn_probability_is_the_learned_one_without_blend_or_calibration() -> None:
    p, q = np.array([0.1, 0.5, 0.9]), np.array([0.3, 0.3, 0.3])
    assert np.array_equal(churn_probability(p, q, 0.0, None), p)
    np.testing.assert_allclose(churn_probability(p, q, 1.0, None), q)
    np.testing.assert_allclose(churn_probability(p, q, 0.5, (0.0, 1.0)), expit(blend_logodds(p, q, 0.5)))
    np.testing.assert_allclose(blend_logodds(p, q, 0.5), 0.5 * logit(p) + 0.5 * logit(q))


def test_total_factor_matches_the_totals_or_refuses() -> None:
    assert total_factor(np.array([1.0, 3.0]), np.array([2.0, 6.0])) == 2.0
    assert total_factor(np.zeros(2), np.ones(2)) is None
    assert total_factor(np.ones(2), np.array([np.nan, 1.0])) is None


def test_the_floored_total_factor_meets_the_total_after_the_floor() -> None:
    x = np.array([0.0, 1e-10, 0.5, 2.0, 4.0])
    floor = np.array([0.3, 0.6, 0.1, 0.0, 0.2])
    want = np.full(5, 1.6)  # total 8
    f = floored_total_factor(x, want, floor)
    assert f is not None and f < total_factor(x, want)
    assert np.sum(np.maximum(f * x, floor)) == pytest.approx(8.0, rel=1e-12)
    assert floored_total_factor(x, want, np.zeros(5)) == total_factor(x, want)  # no floor: the plain one
    assert floored_total_factor(x, np.full(5, 0.1), floor) == total_factor(x, np.full(5, 0.1))  # floor alone reaches it


@given(
    st.lists(
        st.tuples(st.floats(0, 1), st.floats(0, 200), st.floats(0, 1e4)),
        min_size=1,
        max_size=50,
    ),
    st.integers(1, 365),
)
def test_coherent_totals_hold_purchases_between_the_churn_bounds(rows, horizon) -> None:
    p, n, s = (np.array(col, dtype=float) for col in zip(*rows, strict=True))
    purchases, spend = coherent_totals(n, s, p, horizon)
    alive = 1 - p
    assert np.all(purchases >= alive) and np.all(purchases <= horizon * alive * (1 + 1e-12))
    inside = (n >= alive) & (n <= horizon * alive)
    np.testing.assert_array_equal(purchases[inside], n[inside])  # nothing moves inside the bounds
    np.testing.assert_array_equal(spend[n <= horizon * alive], s[n <= horizon * alive])
    capped = n > horizon * alive
    # where the cap binds, spend keeps its value per purchase
    np.testing.assert_allclose(spend[capped], s[capped] * (horizon * alive[capped]) / n[capped], rtol=1e-12)


def test_a_customer_sure_to_be_gone_expects_no_purchase_and_no_spend() -> None:
    # CDNOW, churn by BTYD and purchases by the hybrid model: p_churn 1.000000 with 0.40 purchases
    purchases, spend = coherent_totals(np.array([0.404]), np.array([120.3]), np.array([1.0]), 90)
    assert purchases[0] == 0.0 and spend[0] == 0.0
