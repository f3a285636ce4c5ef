"""What the models read: model_input's types, and that it never writes into the features."""

from __future__ import annotations

import numpy as np
import pandas as pd

from churnclv.models.inputs import model_input


def _features() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "customer_id": pd.array(["007", "010", "123"], dtype="str"),
            "frequency": np.array([2.0, np.nan, 0.5]),
            "n_lines": np.array([3, 0, 7], dtype=np.int64),
            "login_days_since_last": pd.array([4, None, 0], dtype="Int64"),
            "flag": np.array([True, False, True]),
        },
        index=[5, 6, 7],
    )


def test_integers_and_booleans_become_floats_with_nan_for_null() -> None:
    features = _features()
    out = model_input(features)
    assert list(out.columns) == list(features.columns) and list(out.index) == [5, 6, 7]
    assert out["customer_id"].tolist() == ["007", "010", "123"] and out["customer_id"].dtype == "str"
    for col in ("frequency", "n_lines", "login_days_since_last", "flag"):
        assert out[col].dtype == np.float64, col
    np.testing.assert_array_equal(out["n_lines"].to_numpy(), [3.0, 0.0, 7.0])
    np.testing.assert_array_equal(out["login_days_since_last"].to_numpy(), [4.0, np.nan, 0.0])
    np.testing.assert_array_equal(out["flag"].to_numpy(), [1.0, 0.0, 1.0])
    np.testing.assert_array_equal(out["frequency"].to_numpy(), [2.0, np.nan, 0.5])


def test_writing_into_the_model_input_leaves_the_features_alone() -> None:
    features = _features()
    before = features.copy(deep=True)
    out = model_input(features)
    out.loc[5, "frequency"] = 99.0  # a column passed through unchanged
    out.loc[5, "customer_id"] = "xxx"
    out.loc[5, "n_lines"] = -1.0
    pd.testing.assert_frame_equal(features, before, check_exact=True)
