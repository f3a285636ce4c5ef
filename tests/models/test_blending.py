from __future__ import annotations

import numpy as np
import pytest

from churnclv.models.blending import (
    blend_logodds,
    churn_probability,
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
