"""Property tests: point in time, labels read only their window, Ibis == pandas reference."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from churnclv.features import compute_features, compute_features_frames, compute_labels
from churnclv.features.reference import reference_features

BASE = pd.Timestamp("2024-01-01")
AS_OF = dt.date(2025, 2, 4)  # day 400 after BASE
AS_OF_DAY = 400
IDS = ["001", "002", "017", "9"]
TYPES = ["login", "session", "email_open", "complaint", "page_view"]
AMOUNTS = [-30.0, -0.5, 0.0, 0.01, 5.0, 12.34, 100.0]

SETTINGS = settings(
    max_examples=min(40, settings.default.max_examples), deadline=None, suppress_health_check=[HealthCheck.too_slow]
)


def _ts(day: int, second: int) -> pd.Timestamp:
    return BASE + pd.Timedelta(days=day, seconds=second)


def tx_frame(rows) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "customer_id": pd.Series([r[0] for r in rows], dtype="str"),
            "ts": pd.Series([_ts(r[1], r[2]) for r in rows], dtype="datetime64[us]"),
            "amount": pd.Series([r[3] for r in rows], dtype="float64"),
            "order_id": pd.Series([f"{r[0]}-{r[4]}" for r in rows], dtype="str"),
            "channel": pd.Series([["web", "app"][r[4] % 2] for r in rows], dtype="str"),
        }
    )


def ev_frame(rows) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "customer_id": pd.Series([r[0] for r in rows], dtype="str"),
            "ts": pd.Series([_ts(r[1], r[2]) for r in rows], dtype="datetime64[us]"),
            "event_type": pd.Series([r[3] for r in rows], dtype="str"),
        }
    )


def cu_frame(rows) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "customer_id": pd.Series([r[0] for r in rows], dtype="str"),
            "signup_ts": pd.Series([pd.NaT if r[1] is None else _ts(r[1], 0) for r in rows], dtype="datetime64[us]"),
            "region": pd.Series([r[2] for r in rows], dtype="str"),
        }
    )


def tx_rows(days: st.SearchStrategy[int]):
    return st.lists(
        st.tuples(st.sampled_from(IDS), days, st.integers(0, 86_399), st.sampled_from(AMOUNTS), st.integers(0, 5)),
        max_size=25,
    )


def ev_rows(days: st.SearchStrategy[int]):
    return st.lists(st.tuples(st.sampled_from(IDS), days, st.integers(0, 86_399), st.sampled_from(TYPES)), max_size=15)


# histories up to as-of have at least one line on or before as-of (otherwise "before any data")
history = st.tuples(
    tx_rows(st.integers(0, AS_OF_DAY)).filter(bool),
    ev_rows(st.integers(0, AS_OF_DAY)),
    st.lists(
        st.tuples(st.sampled_from(IDS), st.one_of(st.none(), st.integers(0, 500)), st.sampled_from(["n", "s"])),
        max_size=4,
        unique_by=lambda r: r[0],
    ),
)
after = st.tuples(tx_rows(st.integers(AS_OF_DAY + 1, 520)), ev_rows(st.integers(AS_OF_DAY + 1, 520)))


def assert_same(left: pd.DataFrame, right: pd.DataFrame, rtol: float = 1e-12) -> None:
    pd.testing.assert_frame_equal(left, right, check_exact=False, rtol=rtol, atol=1e-9)


@SETTINGS
@given(history, after)
def test_rows_after_as_of_change_no_feature(data, late):
    tx, ev, cu = data
    late_tx, late_ev = late
    # a late signup row for a customer with no history: must not make them known
    late_cu = [*cu, ("new", AS_OF_DAY + 1, "n")]
    before = compute_features_frames(tx_frame(tx), ev_frame(ev), cu_frame(cu), as_of=AS_OF)
    later = compute_features_frames(tx_frame(tx + late_tx), ev_frame(ev + late_ev), cu_frame(late_cu), as_of=AS_OF)
    assert_same(before, later)


@SETTINGS
@given(history)
def test_ibis_matches_pandas_reference(data):
    tx, ev, cu = (f(rows) for f, rows in zip((tx_frame, ev_frame, cu_frame), data, strict=True))
    got = compute_features_frames(tx, ev, cu, as_of=AS_OF)
    want = reference_features(tx, ev, cu, as_of=AS_OF)
    assert_same(got, want, rtol=1e-9)


@SETTINGS
@given(history)
def test_invariants(data):
    f = compute_features_frames(tx_frame(data[0]), as_of=AS_OF)
    bought = f[f["n_purchase_days"] > 0]
    assert bought["frequency"].notna().all() and f.loc[f["n_purchase_days"] == 0, "frequency"].isna().all()
    assert ((bought["recency"] >= 0) & (bought["recency"] <= bought["T"])).all()
    assert (bought["frequency"] == bought["n_purchase_days"] - 1).all()
    assert (bought["days_since_last_purchase"] == bought["T"] - bought["recency"]).all()
    assert (f["tenure_days"] >= f["T"].fillna(0)).all()
    windows = f[
        ["purchase_days_30d", "purchase_days_90d", "purchase_days_180d", "purchase_days_365d", "n_purchase_days"]
    ]
    assert (windows.diff(axis=1).iloc[:, 1:] >= 0).all().all()
    assert (f["n_purchase_days"] <= f["n_lines"]).all()
    assert ((f["gross_spend"] - f["returned_spend"] - f["net_spend"]).abs() < 1e-9).all()


CUTOFF, HORIZON = dt.date(2024, 9, 1), 60  # window: days 245 .. 304 after BASE
CUTOFF_DAY = 244
# a customer first seen on the as-of day: the data reach the as-of (labels of windows the data do not
# reach are refused), and nobody known at the cutoff changes
DATA_END = [("end-of-data", AS_OF_DAY, 0, 1.0, 0)]


@settings(
    max_examples=min(25, settings.default.max_examples), deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
@given(
    tx_rows(st.integers(0, CUTOFF_DAY)).filter(bool),
    tx_rows(st.integers(CUTOFF_DAY + 1, CUTOFF_DAY + HORIZON)),
    tx_rows(st.integers(CUTOFF_DAY + HORIZON + 1, 520)),
    tx_rows(st.integers(0, CUTOFF_DAY)),
)
def test_labels_read_only_their_window(before, window, later, more_before):
    base = before + window + DATA_END
    labels = compute_labels({"transactions": tx_frame(base)}, CUTOFF, HORIZON, as_of=AS_OF)
    # rows after the window, and earlier rows of customers already known, change no label
    known = {r[0] for r in before}
    extra = later + [r for r in more_before if r[0] in known]
    again = compute_labels({"transactions": tx_frame(base + extra)}, CUTOFF, HORIZON, as_of=AS_OF)
    assert_same(labels, again)
    # and the labels are what the window says
    win = tx_frame(window)
    for row in labels.itertuples():
        mine = win[win["customer_id"] == row.customer_id]
        days = mine.loc[mine["amount"] > 0, "ts"].dt.floor("D").nunique()
        assert row.purchases == days and row.churned == (days == 0)
        assert row.spend == pytest.approx(mine["amount"].sum(), abs=1e-9)


@settings(
    max_examples=min(10, settings.default.max_examples), deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
@given(history)
def test_single_customer_equals_batch(data):
    tx, ev, cu = (f(rows) for f, rows in zip((tx_frame, ev_frame, cu_frame), data, strict=True))
    batch = compute_features({"transactions": tx, "events": ev, "customers": cu}, AS_OF).set_index("customer_id")
    for cid in batch.index:
        one = compute_features_frames(
            tx[tx["customer_id"] == cid], ev[ev["customer_id"] == cid], cu[cu["customer_id"] == cid], as_of=AS_OF
        )
        assert_same(one, batch.loc[[cid]].reset_index())
