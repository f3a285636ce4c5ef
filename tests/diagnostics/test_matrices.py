"""The frequency/recency and P(alive) matrices: each cell is the model's answer for that history."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from churnclv.diagnostics import (
    DiagnosticsError,
    frequency_recency_matrix,
    p_alive_matrix,
    plot_frequency_recency_matrix,
    plot_p_alive_matrix,
)


def history(f: float, r: float, t: float) -> pd.DataFrame:
    return pd.DataFrame({"frequency": [f], "recency": [r], "T": [t], "monetary_value": [0.0]})


def test_cells_are_the_models_predictions(bgnbd) -> None:
    m = frequency_recency_matrix(bgnbd, 60, 30, max_frequency=4)
    assert m.shape == (5, 61) and m.index.tolist() == [0, 1, 2, 3, 4]
    assert m.columns.name == "recency (days)" and m.columns[-1] == 60
    for f, r in [(0, 0), (1, 0), (2, 17), (4, 60)]:
        expected = bgnbd.predict(history(f, r, 60), 30)["expected_purchases"].iloc[0]
        assert m.loc[f, float(r)] == pytest.approx(expected, rel=1e-12)
    assert m.loc[0].iloc[1:].isna().all()  # no repeat purchase: recency is 0 by definition
    alive = p_alive_matrix(bgnbd, 60, max_frequency=4)
    assert alive.loc[3, 20.0] == pytest.approx(bgnbd.predict(history(3, 20, 60), 1)["p_alive"].iloc[0])
    # the "frequent but not recent" corner is the dead one
    assert alive.loc[4, 0.0] < alive.loc[1, 0.0] < alive.loc[1, 60.0]


def test_weeks_are_seven_days(bgnbd) -> None:
    weeks = frequency_recency_matrix(bgnbd, 8, 2, time_unit="weeks", max_frequency=3)
    days = frequency_recency_matrix(bgnbd, 56, 14, time_unit="days", max_frequency=3)
    assert weeks.columns.name == "recency (weeks)" and weeks.shape == (4, 9)
    np.testing.assert_allclose(weeks.to_numpy(), days.loc[:, [7.0 * k for k in range(9)]].to_numpy())


def test_plots_show_the_matrices(bgnbd) -> None:
    ax = plot_frequency_recency_matrix(bgnbd, 30, 10, max_frequency=5)
    image = ax.images[0].get_array()
    matrix = frequency_recency_matrix(bgnbd, 30, 10, max_frequency=5).to_numpy()
    np.testing.assert_allclose(image.filled(np.nan), matrix)
    assert image.mask[0, 1:].all() and not image.mask[1:].any()
    assert ax.images[0].origin == "lower"  # frequency 0 at the bottom
    ax = plot_p_alive_matrix(bgnbd, 30, max_frequency=5)
    np.testing.assert_allclose(ax.images[0].get_array().filled(np.nan), p_alive_matrix(bgnbd, 30, max_frequency=5))


@pytest.mark.parametrize(
    ("args", "match"),
    [
        ((0, 10), "T=0 must be a customer age > 0"),
        ((10, -1), "horizon=-1 must be > 0"),
    ],
)
def test_bad_arguments_are_named(bgnbd, args: tuple, match: str) -> None:
    with pytest.raises(DiagnosticsError, match=match):
        frequency_recency_matrix(bgnbd, *args)


def test_a_scorer_lends_its_btyd(bgnbd) -> None:
    class Fitted:
        btyd_ = bgnbd

    pd.testing.assert_frame_equal(
        p_alive_matrix(Fitted(), 10, max_frequency=2), p_alive_matrix(bgnbd, 10, max_frequency=2)
    )
