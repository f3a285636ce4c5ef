"""Holdout purchases by calibration frequency: by hand, against lifetimes on CDNOW's 39-week split,
and the plot drawing the table."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

from churnclv.diagnostics import DiagnosticsError, holdout_by_frequency, plot_holdout_by_frequency
from churnclv.models.lifetimes_fitters import fitter_with_params, quiet

FEATURES = pd.DataFrame(
    {"customer_id": ["01", "02", "03", "04", "05", "06"], "frequency": [0.0, 0.0, 1.0, 3.0, 9.0, np.nan]}
)
LABELS = pd.DataFrame(  # another order, and the sign-up 06 too
    {"customer_id": ["06", "05", "04", "03", "02", "01"], "purchases": [4, 6, 2, 1, 1, 0]}
)


def test_table_by_hand() -> None:
    t = holdout_by_frequency(FEATURES, LABELS, predicted={"m": [0.2, 0.4, 1.0, 2.5, 5.0, 9.0]}, max_frequency=3)
    assert t["frequency"].tolist() == [0, 1, 3]  # 9 joins 3+, the sign-up (no frequency) is left out
    assert t["group"].tolist() == ["0", "1", "3+"]
    assert t["customers"].tolist() == [2, 1, 2]
    np.testing.assert_allclose(t["actual"], [0.5, 1.0, 4.0])
    np.testing.assert_allclose(t["m"], [0.3, 1.0, 3.75])


def test_plot_draws_actual_then_each_model() -> None:
    ax = plot_holdout_by_frequency(FEATURES, LABELS, predicted={"a": np.ones(6), "b": np.zeros(6)}, max_frequency=3)
    assert [line.get_label() for line in ax.lines] == ["actual", "a", "b"]
    np.testing.assert_allclose(ax.lines[0].get_xdata(), [0, 1, 3])
    np.testing.assert_allclose(ax.lines[0].get_ydata(), [0.5, 1.0, 4.0])
    np.testing.assert_allclose(ax.lines[1].get_ydata(), [1, 1, 1])
    assert [t.get_text() for t in ax.get_xticklabels()] == ["0", "1", "3+"]


def test_a_customer_without_labels_is_an_error() -> None:
    with pytest.raises(DiagnosticsError, match="labels hold no row for 1 customer"):
        holdout_by_frequency(FEATURES, LABELS[LABELS["customer_id"] != "04"], predicted={"m": np.ones(6)})


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({}, "nothing to compare"),
        ({"predicted": {"m": [1.0, 2.0]}}, r"predicted\['m'\] has 2 values for 6 rows"),
        ({"model": object(), "horizon": 1}, "expected a fitted BTYDModel or a fitted Scorer"),
        ({"predicted": {"m": np.ones(6)}, "max_frequency": -1}, "max_frequency=-1"),
    ],
)
def test_bad_arguments_are_named(kwargs: dict, match: str) -> None:
    with pytest.raises(DiagnosticsError, match=match):
        holdout_by_frequency(FEATURES, LABELS, **kwargs)


def test_missing_column_is_named() -> None:
    with pytest.raises(DiagnosticsError, match=r"missing column\(s\) \['purchases'\]"):
        holdout_by_frequency(FEATURES, LABELS.rename(columns={"purchases": "n"}), predicted={"m": np.ones(6)})


def test_cdnow_39_weeks_is_lifetimes_own_figure(cdnow) -> None:
    """The published split: our table equals lifetimes' summary, the holdout purchase days counted
    independently and lifetimes' BG/NBD predictions at the same parameters; the model is close to what
    happened for the light buyers."""
    import lifetimes.utils

    t = holdout_by_frequency(cdnow.features, cdnow.labels, model=cdnow.model, horizon=39, time_unit="weeks")
    tx = cdnow.transactions
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ch = lifetimes.utils.summary_data_from_transaction_data(
            tx, "customer_id", "ts", observation_period_end="1997-09-30", freq="D"
        )
    holdout = tx[(tx["ts"] > "1997-09-30") & (tx["ts"] <= "1998-06-30")]
    ch["frequency_holdout"] = holdout.groupby("customer_id")["ts"].nunique().reindex(ch.index, fill_value=0)
    ch = ch.rename(columns={"frequency": "frequency_cal", "recency": "recency_cal", "T": "T_cal"})
    fitter = fitter_with_params("bgnbd", cdnow.model.params_)
    with quiet():
        ch["predicted"] = fitter.conditional_expected_number_of_purchases_up_to_time(
            39, ch["frequency_cal"], ch["recency_cal"] / 7, ch["T_cal"] / 7
        )
    ch["group"] = ch["frequency_cal"].clip(upper=7).astype(int)
    theirs = ch.groupby("group").agg(
        customers=("predicted", "size"), actual=("frequency_holdout", "mean"), predicted=("predicted", "mean")
    )
    assert t["customers"].tolist() == theirs["customers"].tolist() and t["customers"].sum() == 2357
    np.testing.assert_allclose(t["actual"], theirs["actual"], rtol=1e-12)
    np.testing.assert_allclose(t["predicted"], theirs["predicted"], rtol=1e-6)
    # sanity: light buyers within 0.4 purchases, the one-time buyers within 0.05
    light = t[t["frequency"] <= 3]
    assert (light["predicted"] - light["actual"]).abs().max() < 0.4
    assert abs(t["predicted"].iloc[0] - t["actual"].iloc[0]) < 0.05


def test_time_unit_scales_the_horizon(bgnbd) -> None:
    summary = pd.DataFrame(
        {
            "customer_id": ["a", "b"],
            "frequency": [0.0, 2.0],
            "recency": [0.0, 30.0],
            "T": [40.0, 60.0],
            "monetary_value": [0.0, 20.0],
        }
    )
    labels = pd.DataFrame({"customer_id": ["a", "b"], "purchases": [0, 1]})
    weeks = holdout_by_frequency(summary, labels, model=bgnbd, horizon=4, time_unit="weeks")
    days = holdout_by_frequency(summary, labels, model=bgnbd, horizon=28, time_unit="days")
    pd.testing.assert_frame_equal(weeks, days)
    expected = bgnbd.predict(summary, 28)["expected_purchases"].to_numpy()
    np.testing.assert_allclose(weeks["predicted"], expected)
    with pytest.raises(DiagnosticsError, match="time_unit='months' is not one of"):
        holdout_by_frequency(summary, labels, model=bgnbd, horizon=1, time_unit="months")
