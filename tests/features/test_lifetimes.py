"""frequency, recency, T and monetary_value equal lifetimes' on CDNOW, for every customer.

lifetimes counts every line as a transaction, CDNOW's 80 zero-dollar lines included; our default
purchase needs ``amount > 0``. So the comparison runs twice: the default configuration against
lifetimes on the lines with a positive amount, and ``zero_amount_is_purchase=True`` against
lifetimes on every line.
"""

from __future__ import annotations

import warnings

import pandas as pd
import pytest

from churnclv.datasets import load_cdnow
from churnclv.features import FeatureConfig, compute_features

BTYD = ["frequency", "recency", "T", "monetary_value"]
AS_OFS = ["1998-06-30", "1997-09-30"]  # the end of the data, and mid-history


def lifetimes_summary(cdnow: pd.DataFrame, as_of: str) -> pd.DataFrame:
    from lifetimes.utils import summary_data_from_transaction_data

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return summary_data_from_transaction_data(
            cdnow, "customer_id", "ts", monetary_value_col="amount", observation_period_end=as_of, freq="D"
        )


def check(cdnow: pd.DataFrame, as_of: str) -> int:
    tx = cdnow[["customer_id", "ts", "amount"]]
    ours = compute_features({"transactions": tx}, as_of).set_index("customer_id")
    theirs = lifetimes_summary(tx[tx["amount"] > 0], as_of)
    # customers whose only lines are zero-dollar are known to us but have no purchase day
    assert set(ours.index[ours["frequency"].notna()]) == set(theirs.index)
    assert ours.loc[ours["frequency"].isna(), "n_purchase_days"].eq(0).all()
    pd.testing.assert_frame_equal(ours.loc[theirs.index, BTYD], theirs[BTYD], check_exact=False, rtol=1e-9)

    every = compute_features({"transactions": tx}, as_of, config=FeatureConfig(zero_amount_is_purchase=True))
    every = every.set_index("customer_id")
    theirs = lifetimes_summary(tx, as_of)
    assert set(every.index) == set(theirs.index)
    pd.testing.assert_frame_equal(every.loc[theirs.index, BTYD], theirs[BTYD], check_exact=False, rtol=1e-9)
    return len(theirs)


# the full file takes about a second, so it runs with the fast tests
@pytest.mark.parametrize("variant", ["sample", "master"])
@pytest.mark.parametrize("as_of", AS_OFS)
def test_cdnow_equals_lifetimes(variant, as_of):
    n = check(load_cdnow(variant), as_of)
    if variant == "master" and as_of == "1998-06-30":
        assert n == 23_570
    else:
        assert n > (10_000 if variant == "master" else 1_000)
