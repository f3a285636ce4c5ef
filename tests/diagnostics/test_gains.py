"""Gain, lift and Lorenz: tables against hand computations, plots drawing exactly the tables."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from churnclv.diagnostics import DiagnosticsError, gain_table, lorenz_table, plot_gain, plot_lift, plot_lorenz
from churnclv.metrics import normalized_gini, top_decile_capture

ACTUAL = [5, 0, 3, 0, 2, 0, 0, 0, 0, 0]  # total 10, mean 1 per customer
SCORE = [0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1, 0.0]


def test_gain_table_by_hand() -> None:
    t = gain_table(ACTUAL, SCORE, n_bins=5)
    assert t["bin"].tolist() == [1, 2, 3, 4, 5]
    assert t["customers"].tolist() == [2, 2, 2, 2, 2]
    np.testing.assert_allclose(t["customer_share_cumulative"], [0.2, 0.4, 0.6, 0.8, 1.0])
    np.testing.assert_allclose(t["actual"], [5, 3, 2, 0, 0])
    np.testing.assert_allclose(t["gain"], [0.5, 0.8, 1.0, 1.0, 1.0])
    np.testing.assert_allclose(t["lift"], [2.5, 1.5, 1.0, 0.0, 0.0])
    np.testing.assert_allclose(t["lift_cumulative"], [2.5, 2.0, 10 / 6, 1.25, 1.0])


def test_gain_ties_are_broken_pessimistically() -> None:
    """A constant score finds nothing: the tied customers are taken smallest actual first."""
    t = gain_table(ACTUAL, np.zeros(10), n_bins=5)
    np.testing.assert_allclose(t["gain"], [0.0, 0.0, 0.0, 0.2, 1.0])


def test_first_decile_gain_is_the_metrics_top_decile_capture() -> None:
    rng = np.random.default_rng(3)
    actual, score = rng.gamma(0.5, 20, 1000), rng.random(1000)
    assert gain_table(actual, score)["gain"].iloc[0] == pytest.approx(top_decile_capture(actual, score))


def test_lorenz_by_hand() -> None:
    t = lorenz_table([0, 0, 1, 3], [3, 2, 1, 0], n_points=4)  # the worst possible ranking
    np.testing.assert_allclose(t["customer_share"], [0, 0.25, 0.5, 0.75, 1])
    np.testing.assert_allclose(t["actual"], [0, 0, 0, 0.25, 1])
    np.testing.assert_allclose(t["model"], [0, 0.75, 1, 1, 1])
    assert t.attrs["gini_actual"] == pytest.approx(0.625)
    assert t.attrs["gini_model"] == pytest.approx(-0.625)


@settings(max_examples=50, deadline=None)
@given(
    arrays(np.float64, st.integers(2, 60), elements=st.floats(0, 100)).filter(lambda a: a.sum() > 0),
    st.integers(0, 2**31),
    st.integers(1, 12),
)
@example(np.array([5e-324, 0.0]), 0, 2)  # a subnormal total: the mean underflowed to 0 and the lift was NaN
def test_gain_and_lorenz_invariants(actual: np.ndarray, seed: int, n_bins: int) -> None:
    score = np.random.default_rng(seed).integers(0, 5, actual.size).astype(float)  # with ties
    t = gain_table(actual, score, n_bins=n_bins)
    assert t["customers"].sum() == actual.size
    assert (np.diff(t["gain"]) >= -1e-12).all() and t["gain"].iloc[-1] == pytest.approx(1.0)
    assert t["lift_cumulative"].iloc[-1] == pytest.approx(1.0)
    lorenz = lorenz_table(actual, score)
    # sorting by the actual values themselves is the lowest curve any ranking can give
    assert (lorenz["model"] >= lorenz["actual"] - 1e-12).all()
    if lorenz.attrs["gini_actual"] > 1e-9:
        ratio = lorenz.attrs["gini_model"] / lorenz.attrs["gini_actual"]
        assert ratio == pytest.approx(normalized_gini(actual, score), abs=1e-9)


def test_plot_gain_draws_the_table_and_the_diagonal_once() -> None:
    ax = plot_gain(ACTUAL, SCORE, n_bins=5, label="m1")
    plot_gain(ACTUAL, np.zeros(10), n_bins=5, label="m2", ax=ax)
    assert [line.get_label() for line in ax.lines] == ["random", "m1", "m2"]
    np.testing.assert_allclose(ax.lines[1].get_xdata(), [0, 0.2, 0.4, 0.6, 0.8, 1.0])
    np.testing.assert_allclose(ax.lines[1].get_ydata(), [0, 0.5, 0.8, 1.0, 1.0, 1.0])
    np.testing.assert_allclose(ax.lines[2].get_ydata(), [0, 0, 0, 0, 0.2, 1.0])


def test_plot_lift_bars_are_the_lift_column() -> None:
    ax = plot_lift(ACTUAL, SCORE, n_bins=5)
    np.testing.assert_allclose([p.get_height() for p in ax.patches], [2.5, 1.5, 1.0, 0.0, 0.0])


def test_plot_lorenz_draws_both_curves() -> None:
    ax = plot_lorenz([0, 0, 1, 3], [3, 2, 1, 0])
    table = lorenz_table([0, 0, 1, 3], [3, 2, 1, 0])
    np.testing.assert_allclose(ax.lines[1].get_ydata(), table["actual"])
    np.testing.assert_allclose(ax.lines[2].get_ydata(), table["model"])
    assert "Gini -0.62" in ax.lines[2].get_label()


@pytest.mark.parametrize(
    ("actual", "score", "match"),
    [
        ([1, 0], [0.5], "actual has 2 values but score has 1"),
        ([0, 0], [0.5, 0.2], "sum to 0"),
        ([1, 0], [np.nan, 0.2], "must be finite"),
    ],
)
def test_bad_input_is_named(actual: list, score: list, match: str) -> None:
    with pytest.raises(DiagnosticsError, match=match):
        gain_table(actual, score)


def test_bad_bins_are_named() -> None:
    with pytest.raises(DiagnosticsError, match="n_bins=0 must be an integer >= 1"):
        gain_table(ACTUAL, SCORE, n_bins=0)
