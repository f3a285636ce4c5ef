"""RFM tables with chosen cut points: scores by hand, segments with what followed, the heat map."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from churnclv.diagnostics import DiagnosticsError, plot_rfm, rfm_segments, rfm_table

FEATURES = pd.DataFrame(
    {
        "customer_id": ["a", "b", "c", "d", "e", "f"],
        "days_since_last_purchase": [10, 40, 100, 200, None, 30],
        "n_purchase_days": [5, 2, 1, 1, 0, 3],
        "net_spend": [500.0, 80.0, 20.0, -5.0, 0.0, 100.0],
    }
).astype({"days_since_last_purchase": "Int64"})
CUTS = {"recency_cuts": (30, 90), "frequency_cuts": (1, 3), "monetary_cuts": (0, 100)}
LABELS = pd.DataFrame(
    {
        "customer_id": ["f", "e", "d", "c", "b", "a"],
        "churned": [False, True, True, True, False, False],
        "spend": [50.0, 0.0, 0.0, 0.0, 10.0, 90.0],
    }
)


def test_scores_by_hand() -> None:
    t = rfm_table(FEATURES, **CUTS)
    # right-closed groups: f's 30 days, 3 purchase days and 100 spent sit in the lower group
    assert t["rfm"].tolist() == ["333", "222", "112", "111", "000", "322"]
    assert t["R"].tolist() == [3, 2, 1, 1, 0, 3]
    assert t.attrs["cuts"] == {"R": [30.0, 90.0], "F": [1.0, 3.0], "M": [0.0, 100.0]}
    assert t["customer_id"].tolist() == FEATURES["customer_id"].tolist()


def test_quantile_groups_by_default() -> None:
    rng = np.random.default_rng(0)
    n = 500
    feats = pd.DataFrame(
        {
            "customer_id": [f"{i:05d}" for i in range(n)],
            "days_since_last_purchase": rng.integers(0, 400, n),
            "n_purchase_days": rng.integers(1, 30, n),
            "net_spend": rng.gamma(2, 50, n),
        }
    )
    t = rfm_table(feats)
    for score in "RFM":
        counts = t[score].value_counts().sort_index()
        assert counts.index.tolist() == [1, 2, 3, 4, 5]
        assert counts.min() >= 0.17 * n  # quintiles, up to ties
    assert t.loc[t["recency_days"].idxmin(), "R"] == 5 and t.loc[t["monetary"].idxmax(), "M"] == 5


def test_segments_with_labels() -> None:
    s = rfm_segments(rfm_table(FEATURES, **CUTS), labels=LABELS)
    assert list(zip(s["R"], s["F"], strict=True)) == [(0, 0), (1, 1), (2, 2), (3, 2), (3, 3)]
    assert s["customers"].tolist() == [1, 2, 1, 1, 1]
    np.testing.assert_allclose(s["customer_share"], [1 / 6, 2 / 6, 1 / 6, 1 / 6, 1 / 6])
    np.testing.assert_allclose(s["monetary"], [0.0, 7.5, 80.0, 100.0, 500.0])
    np.testing.assert_allclose(s["churn_rate"], [1.0, 1.0, 0.0, 0.0, 0.0])
    np.testing.assert_allclose(s["mean_spend"], [0.0, 0.0, 10.0, 50.0, 90.0])
    by_m = rfm_segments(rfm_table(FEATURES, **CUTS), by=["M"])
    assert by_m["M"].tolist() == [0, 1, 2, 3] and by_m["customers"].tolist() == [1, 1, 3, 1]


def test_heat_map_is_the_segments() -> None:
    table = rfm_table(FEATURES, **CUTS)
    ax = plot_rfm(table, value="churn_rate", labels=LABELS)
    image = ax.images[0].get_array()
    # rows R = 3, 2, 1 (best on top), columns F = 1, 2, 3; the sign-up (0, 0) is left out
    np.testing.assert_allclose(image.filled(np.nan), [[np.nan, 0.0, 0.0], [np.nan, 0.0, np.nan], [1.0, np.nan, np.nan]])
    assert [t.get_text() for t in ax.get_yticklabels()] == ["3", "2", "1"]
    counts = plot_rfm(table).images[0].get_array()
    assert counts.sum() == 5


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"recency_cuts": (90, 30)}, r"recency_cuts=\(90, 30\): cut points must be finite and strictly ascending"),
        ({"frequency_cuts": 0}, "frequency_cuts=0: a number of groups must be >= 1"),
    ],
)
def test_bad_cuts_are_named(kwargs: dict, match: str) -> None:
    with pytest.raises(DiagnosticsError, match=match):
        rfm_table(FEATURES, **kwargs)


def test_missing_columns_and_labels_are_named() -> None:
    with pytest.raises(DiagnosticsError, match=r"missing column\(s\) \['net_spend'\]"):
        rfm_table(FEATURES.drop(columns="net_spend"))
    with pytest.raises(DiagnosticsError, match="labels hold no row for 1 customer"):
        rfm_segments(rfm_table(FEATURES, **CUTS), labels=LABELS.iloc[1:])
    with pytest.raises(DiagnosticsError, match=r"by=.* must name one or more of"):
        rfm_segments(rfm_table(FEATURES, **CUTS), by=["X"])
