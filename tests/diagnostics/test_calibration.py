"""The calibration curve of p_churn: the table by hand, the ECE of churnclv.metrics, the plot's content."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from churnclv.diagnostics import DiagnosticsError, calibration_table, plot_calibration_curve
from churnclv.metrics import expected_calibration_error

CHURNED = [0, 0, 1, 0, 1, 1, 1, 1]
P = [0.1, 0.1, 0.2, 0.2, 0.6, 0.6, 0.9, 0.9]


def test_quantile_bins_by_hand() -> None:
    t = calibration_table(CHURNED, P, n_bins=4)
    assert t["customers"].tolist() == [2, 2, 2, 2]
    np.testing.assert_allclose(t["predicted"], [0.1, 0.2, 0.6, 0.9])
    np.testing.assert_allclose(t["observed"], [0.0, 0.5, 1.0, 1.0])
    np.testing.assert_allclose(t["gap"], [-0.1, 0.3, 0.4, 0.1])
    # 95% Wilson intervals of 0/2, 1/2 and 2/2 (textbook values)
    np.testing.assert_allclose(t["observed_low"], [0.0, 0.0945, 0.3424, 0.3424], atol=1e-4)
    np.testing.assert_allclose(t["observed_high"], [0.6576, 0.9055, 1.0, 1.0], atol=1e-4)


def test_uniform_bins_leave_empty_ones_out() -> None:
    t = calibration_table(CHURNED, P, n_bins=10, strategy="uniform")
    assert t["bin"].tolist() == [1, 2, 6, 9]  # 0.1 falls in [0.1, 0.2): bin 1


@settings(max_examples=40, deadline=None)
@given(st.integers(5, 300), st.integers(0, 2**31), st.integers(1, 15))
def test_uniform_gap_weighted_is_the_ece(n: int, seed: int, n_bins: int) -> None:
    rng = np.random.default_rng(seed)
    p = rng.random(n)
    y = rng.random(n) < p
    t = calibration_table(y, p, n_bins=n_bins, strategy="uniform")
    assert t["customers"].sum() == n
    ece = (t["customers"] * t["gap"].abs()).sum() / n
    assert ece == pytest.approx(expected_calibration_error(y, p, n_bins=n_bins))
    q = calibration_table(y, p, n_bins=n_bins)
    assert q["customers"].sum() == n and (q["observed_low"] <= q["observed"]).all()
    assert (q["observed"] <= q["observed_high"]).all()


def test_plot_draws_the_table_with_its_intervals() -> None:
    ax = plot_calibration_curve(CHURNED, P, n_bins=4, label="btyd")
    plot_calibration_curve(CHURNED, np.full(8, 0.5), n_bins=4, label="flat", ax=ax)
    table = calibration_table(CHURNED, P, n_bins=4)
    first = ax.containers[0]
    np.testing.assert_allclose(first.lines[0].get_xdata(), table["predicted"])
    np.testing.assert_allclose(first.lines[0].get_ydata(), table["observed"])
    segments = np.array(first.lines[2][0].get_segments())  # one vertical bar per bin
    np.testing.assert_allclose(segments[:, 0, 1], table["observed_low"])
    np.testing.assert_allclose(segments[:, 1, 1], table["observed_high"])
    assert sum(line.get_label() == "perfect" for line in ax.lines) == 1
    np.testing.assert_allclose(ax.containers[1].lines[0].get_ydata(), [np.mean(CHURNED)])  # one bin: all tied


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"strategy": "kmeans"}, "strategy='kmeans' is not one of"),
        ({"n_bins": 0}, "n_bins=0"),
    ],
)
def test_bad_settings_are_named(kwargs: dict, match: str) -> None:
    with pytest.raises(DiagnosticsError, match=match):
        calibration_table(CHURNED, P, **kwargs)


def test_probabilities_out_of_range_are_refused() -> None:
    with pytest.raises(DiagnosticsError, match=r"p_churn must lie in \[0, 1\]"):
        calibration_table([0, 1], [0.2, 1.5])
