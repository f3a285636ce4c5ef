"""Unit tests of the feature definitions on tiny frames with hand-computed answers."""

from __future__ import annotations

import datetime as dt

import ibis
import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from churnclv.features import (
    FeatureConfig,
    FeatureTables,
    as_of_date,
    build_features,
    compute_features,
    compute_features_frames,
    compute_labels,
    compute_training_frame,
)

AS_OF = "2024-06-30"


@pytest.fixture
def history(tx, ev, cu):
    """Customer 001 with a worked example; 002 only returns; 003 buys only on the as-of day;
    004 signed up without buying; 005 signs up after as-of; 006 buys only after as-of."""
    transactions = tx(
        [
            ("001", "2024-01-10 10:00", 30.0),
            ("001", "2024-01-10 18:00", 20.0),  # same day: one purchase day worth 50
            ("001", "2024-03-01 09:00", 40.0),
            ("001", "2024-03-01 12:00", -10.0),  # a return on a purchase day: that day is worth 30
            ("001", "2024-03-15 11:00", -5.0),  # a return-only day: not a purchase day
            ("001", "2024-06-10 08:00", 25.0),
            ("001", "2024-06-30 23:30", 15.0),  # late evening of the as-of day counts
            ("001", "2024-07-01 00:00", 100.0),  # after as-of
            ("002", "2024-05-01 12:00", -20.0),
            ("003", "2024-06-30 23:59:59", 12.5),
            ("006", "2024-07-05 10:00", 9.0),
        ],
        order_id=["o1", "o2", "o3", "o1", "o3", "o4", "o5", "o6", "o7", "o8", "o9"],
        channel=["web", "web", "app", "app", "app", "store", "web", "web", "web", "web", "web"],
        category=["a", "b", "a", "a", "a", "c", "b", "d", "a", "a", "a"],
    )
    events = ev(
        [
            ("001", "2024-06-29 10:00", "login"),
            ("001", "2024-06-20 10:00", "login"),
            ("001", "2024-05-20 10:00", "login"),  # 41 days before as-of
            ("001", "2024-04-01 10:00", "login"),  # 90 days before: outside the 90-day window
            ("001", "2024-06-30 22:00", "email_open"),
            ("001", "2024-07-01 09:00", "complaint"),  # after as-of
            ("001", "2024-06-30 09:00", "page_view"),  # not a configured event type
            ("004", "2024-06-15 09:00", "login"),
        ]
    )
    customers = cu(
        [
            ("001", "2023-12-01 00:00", "north"),
            ("004", "2024-06-01 15:00", "south"),
            ("005", "2024-07-02 00:00", "east"),
            ("007", None, "west"),
        ]
    )
    return transactions, events, customers


def by_id(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.set_index("customer_id")


def test_worked_example(history):
    f = by_id(compute_features_frames(*history, as_of=AS_OF)).loc["001"]
    assert (f["frequency"], f["recency"], f["T"]) == (3.0, 172.0, 172.0)
    assert f["monetary_value"] == pytest.approx((30 + 25 + 15) / 3)
    assert (f["n_lines"], f["n_orders"], f["n_purchase_days"]) == (7, 5, 4)
    assert (f["gross_spend"], f["net_spend"]) == (130.0, 115.0)
    assert (f["purchase_days_30d"], f["purchase_days_90d"], f["purchase_days_180d"], f["purchase_days_365d"]) == (
        2,
        2,
        4,
        4,
    )
    assert (f["net_spend_30d"], f["net_spend_90d"], f["net_spend_180d"]) == (40.0, 40.0, 115.0)
    assert f["purchase_days_trend_90d"] == pytest.approx(3 / 3)
    assert f["net_spend_trend_90d"] == pytest.approx(41 / (50 + 30 - 5 + 1))
    assert f["gap_mean_days"] == pytest.approx(172 / 3)
    assert f["gap_std_days"] == pytest.approx(np.std([51, 101, 20], ddof=1))
    assert (f["days_since_last_purchase"], f["days_since_last_purchase_rel_gap"]) == (0, 0.0)
    assert (f["n_returns"], f["returned_spend"]) == (2, 15.0)
    assert f["return_share"] == pytest.approx(15 / 130)
    assert f["tenure_days"] == (dt.date(2024, 6, 30) - dt.date(2023, 12, 1)).days
    assert (f["n_channels"], f["n_categories"]) == (3, 3)
    assert f["attr_region"] == "north"


def test_engagement(history):
    f = by_id(compute_features_frames(*history, as_of=AS_OF))
    one = f.loc["001"]
    assert (one["login_count_30d"], one["login_count_90d"], one["login_days_since_last"]) == (2, 3, 1)
    assert one["login_trend_30d"] == pytest.approx((2 + 1) / (1 + 1))
    assert (one["email_open_count_30d"], one["email_open_days_since_last"]) == (1, 0)
    # an event after as-of is invisible; an unconfigured type gets no column
    assert one["complaint_count_30d"] == 0 and pd.isna(one["complaint_days_since_last"])
    assert one["complaint_trend_30d"] == 1.0
    assert not any(c.startswith("page_view") for c in f.columns)
    assert f.loc["004", "login_days_since_last"] == 15


def test_population(history):
    f = by_id(compute_features_frames(*history, as_of=AS_OF))
    # 005 signs up after as-of, 006 buys after as-of, 007 has no signup date and no transaction
    assert list(f.index) == ["001", "002", "003", "004"]


def test_only_returns_is_like_a_signup_without_purchase(history):
    f = by_id(compute_features_frames(*history, as_of=AS_OF)).loc["002"]
    assert all(
        pd.isna(f[c])
        for c in ("frequency", "recency", "T", "monetary_value", "gap_mean_days", "days_since_last_purchase")
    )
    assert (f["n_lines"], f["n_purchase_days"], f["purchase_days_30d"], f["n_orders"]) == (1, 0, 0, 0)
    assert (f["gross_spend"], f["net_spend"], f["n_returns"], f["returned_spend"]) == (0.0, -20.0, 1, 20.0)
    assert pd.isna(f["return_share"])
    assert f["tenure_days"] == 60
    assert f["purchase_days_trend_90d"] == 1.0 and f["net_spend_trend_90d"] == 1.0


def test_only_purchase_on_the_as_of_day(history):
    f = by_id(compute_features_frames(*history, as_of=AS_OF)).loc["003"]
    assert (f["frequency"], f["recency"], f["T"], f["monetary_value"]) == (0.0, 0.0, 0.0, 0.0)
    assert (f["n_purchase_days"], f["purchase_days_30d"], f["days_since_last_purchase"]) == (1, 1, 0)
    assert pd.isna(f["gap_mean_days"]) and pd.isna(f["days_since_last_purchase_rel_gap"])
    # the day before, the customer is unknown
    assert "003" not in by_id(compute_features_frames(*history, as_of="2024-06-29")).index


def test_signup_without_purchase(history):
    f = by_id(compute_features_frames(*history, as_of=AS_OF)).loc["004"]
    assert all(pd.isna(f[c]) for c in ("frequency", "recency", "T", "monetary_value"))
    assert (f["n_lines"], f["n_purchase_days"], f["net_spend"]) == (0, 0, 0.0)
    assert f["tenure_days"] == 29  # signup 2024-06-01 15:00 counts from its calendar day
    assert f["attr_region"] == "south"


def test_duplicate_lines_on_one_day_are_one_purchase_day(tx):
    t = tx([("1", "2024-06-01 10:00", 5.0)] * 3 + [("1", "2024-06-02 10:00", 7.0)])
    f = compute_features_frames(t, as_of=AS_OF).iloc[0]
    assert (f["n_lines"], f["n_purchase_days"], f["frequency"], f["recency"]) == (4, 2, 1.0, 1.0)
    assert f["monetary_value"] == 7.0


def test_zero_amount_lines(tx):
    t = tx([("1", "2024-06-01 10:00", 5.0), ("1", "2024-06-03 10:00", 0.0)])
    default = compute_features_frames(t, as_of=AS_OF).iloc[0]
    assert (default["frequency"], default["recency"]) == (0.0, 0.0)
    zero = compute_features_frames(t, as_of=AS_OF, config=FeatureConfig(zero_amount_is_purchase=True)).iloc[0]
    assert (zero["frequency"], zero["recency"], zero["monetary_value"]) == (1.0, 2.0, 0.0)


def test_no_events_table_gives_null_engagement(history, event_types):
    t, _, c = history
    f = compute_features_frames(t, customers=c, as_of=AS_OF)
    for e in event_types:
        for col in (f"{e}_count_30d", f"{e}_count_90d", f"{e}_days_since_last", f"{e}_trend_30d"):
            assert f[col].isna().all(), col


def test_missing_optional_columns_give_null(tx):
    f = compute_features_frames(tx([("1", "2024-06-01 10:00", 5.0)]), as_of=AS_OF)
    assert f[["n_orders", "n_channels", "n_categories"]].isna().all().all()
    assert not any(c.startswith("attr_") for c in f.columns)


def test_configurable_windows_and_event_types(history):
    config = FeatureConfig(
        windows=(7,), trend_days=30, event_types=("login", "page_view"), event_windows=(14,), event_trend_days=7
    )
    f = by_id(compute_features_frames(*history, as_of=AS_OF, config=config)).loc["001"]
    assert (f["purchase_days_7d"], f["net_spend_7d"], f["purchase_days_trend_30d"]) == (1, 15.0, (2 + 1) / (0 + 1))
    assert (f["login_count_14d"], f["page_view_count_14d"], f["page_view_days_since_last"]) == (2, 1, 0)
    assert f["login_trend_7d"] == (1 + 1) / (1 + 1)
    assert "purchase_days_30d" not in f.index and "session_count_14d" not in f.index


def test_dtypes_and_leading_zeros(history):
    f = compute_features_frames(*history, as_of=AS_OF)
    assert f["customer_id"].tolist()[0] == "001"
    assert pd.api.types.is_string_dtype(f["customer_id"])
    assert f["n_lines"].dtype == np.int64 and f["purchase_days_30d"].dtype == np.int64
    assert f["days_since_last_purchase"].dtype == "Int64" and f["login_count_30d"].dtype == "Int64"
    assert f["frequency"].dtype == np.float64 and f["monetary_value"].dtype == np.float64


def test_as_of_must_be_a_day():
    assert as_of_date("2024-06-30") == as_of_date(pd.Timestamp("2024-06-30")) == dt.date(2024, 6, 30)
    assert as_of_date(dt.datetime(2024, 6, 30)) == dt.date(2024, 6, 30)
    with pytest.raises(ValueError, match="time of day"):
        as_of_date("2024-06-30 12:00")
    with pytest.raises(ValueError, match="time zone"):
        as_of_date(pd.Timestamp("2024-06-30", tz="UTC"))
    with pytest.raises(ValueError, match="not a date"):
        as_of_date("yesterday")


@pytest.mark.parametrize("text", ["now", "today", "30/06/2024", "06/30/2024", "01/02/2024", "June 30 2024", ""])
def test_an_as_of_string_is_read_as_iso_8601_only(text):
    """Day-first and month-first forms would be a guess (pandas reads ``01/02/2024`` as 2 January), and
    ``now`` or ``today`` would read the clock below the command line."""
    with pytest.raises(ValueError, match=r"not a date: pass an ISO date \(YYYY-MM-DD"):
        as_of_date(text)
    assert as_of_date("2024-06-30T00:00:00") == as_of_date(" 2024-06-30 ") == dt.date(2024, 6, 30)


def test_as_of_before_any_data(history):
    t, e, c = history
    with pytest.raises(ValueError, match=r"before any data.*2024-01-10"):
        compute_features({"transactions": t, "events": e}, "2023-06-30")
    with pytest.raises(ValueError, match="before any data"):
        compute_features_frames(t, e, c, as_of="2023-06-30")
    # a signup alone makes the customer known
    assert compute_features({"transactions": t, "customers": c}, "2023-12-01")["customer_id"].tolist() == ["001"]


def test_label_windows_past_the_data_are_refused(history):
    # the data end on 2024-07-05: windows far after it would call every customer churned
    t, e, c = history
    data = {"transactions": t, "events": e, "customers": c}
    with pytest.raises(ValueError, match=r"compute_labels: the label window ends on 2024-12-28, 176 days after"):
        compute_labels(data, "2024-09-29", 90, as_of="2024-12-31")
    with pytest.raises(ValueError, match=r"compute_training_frame: the label window ends on 2024-12-31.*2024-07-05"):
        compute_training_frame(data, "2024-12-31", 90, n_cutoffs=2)
    # within the CLI's allowance (MAX_DAYS_AFTER_DATA, 31 days) they are labels as before
    assert compute_labels(data, "2024-05-01", 90, as_of="2024-07-30")["customer_id"].tolist() == ["001", "002"]


def test_frames_reject_bad_types(tx):
    t = tx([("1", "2024-06-01 10:00", 5.0)])
    with pytest.raises(TypeError, match="time-zone aware"):
        compute_features_frames(t.assign(ts=t.ts.dt.tz_localize("UTC")), as_of=AS_OF)
    with pytest.raises(TypeError, match=r"customer_id.*string"):
        compute_features_frames(t.assign(customer_id=1), as_of=AS_OF)


@pytest.mark.parametrize(
    ("column", "missing"), [("customer_id", None), ("amount", float("nan")), ("ts", pd.NaT)], ids=str
)
def test_a_required_value_missing_from_a_frame_is_refused(tx, column, missing):
    # a helper: a None id became a customer 'None' (scored, tier Gold); NaN amounts and NaT times were
    # left out of every sum without a word
    t = tx([("1", "2024-06-01 10:00", 5.0), ("2", "2024-06-02 10:00", 7.0)])
    t[column] = t[column].astype(object) if column == "customer_id" else t[column]
    t.loc[1, column] = missing
    if column == "customer_id":
        t[column] = t[column].astype("str").where(t[column].notna(), None)
    with pytest.raises(ValueError, match=rf"transactions\.{column}: 1 row\(s\) have no value \(None, NaN or NaT\)"):
        compute_features({"transactions": t}, AS_OF)


def test_config_validation():
    with pytest.raises(ValueError, match="event_types"):
        FeatureConfig(event_types=("Email Open",))
    with pytest.raises(ValueError, match="windows"):
        FeatureConfig(windows=(30, 30))
    with pytest.raises(ValueError, match="trend_days"):
        FeatureConfig(trend_days=0)


def test_missing_required_column(tx):
    t = ibis.memtable(pa.Table.from_pandas(tx([("1", "2024-06-01 10:00", 5.0)]).drop(columns="amount")))
    with pytest.raises(ValueError, match=r"transactions table: required column\(s\) \['amount'\]"):
        FeatureTables(transactions=t)


def test_expression_is_portable(history, monkeypatch):
    """The same expression compiles for PySpark: no DuckDB-only function sneaks in."""
    if ibis.options.pyspark is None:  # registered only when pyspark itself is installed

        class PySparkOptions(ibis.config.Config):
            treat_nan_as_null: bool = False

        monkeypatch.setattr(ibis.options, "pyspark", PySparkOptions())
    t, e, c = history
    tables = FeatureTables(*(ibis.memtable(pa.Table.from_pandas(x)) for x in (t, e, c)))
    sql = ibis.to_sql(build_features(tables, AS_OF), dialect="pyspark")
    assert "OVER (" in sql.upper() and "DATEDIFF(" in sql.upper()


def test_time_zone_aware_source_converted_to_naive_utc(tx):
    """Upstream converts aware timestamps to naive UTC; the UTC calendar day is what counts."""
    local = [
        pd.Timestamp("2024-06-01 10:00", tz="UTC"),
        pd.Timestamp("2024-06-30 22:30", tz="UTC"),
        pd.Timestamp("2024-06-30 21:00", tz="America/Bogota"),
    ]  # UTC-5, no daylight saving
    t = tx([("1", "2024-06-01 10:00", 5.0), ("1", "2024-06-01 10:00", 7.0), ("1", "2024-06-01 10:00", 9.0)])
    t["ts"] = pd.Series([ts.tz_convert("UTC").tz_localize(None) for ts in local], dtype="datetime64[us]")
    f = compute_features_frames(t, as_of=AS_OF).iloc[0]
    # 22:30 UTC on the as-of day counts; 21:00 at UTC-5 is 02:00 UTC the next day and does not
    assert (f["n_lines"], f["n_purchase_days"], f["net_spend"], f["recency"]) == (2, 2, 12.0, 29.0)


def test_an_attribute_of_mixed_python_objects_still_reads_as_strings(tx, cu):
    # the frames go to DuckDB as Arrow tables; a column Arrow cannot type must still work
    t = tx([("1", "2024-06-01 10:00", 5.0), ("2", "2024-06-02 10:00", 7.0)])
    c = cu([("1", "2024-01-01", "x"), ("2", "2024-01-01", "y")])
    c["region"] = pd.Series(["north", 3], dtype=object)
    f = compute_features_frames(t, customers=c, as_of=AS_OF)
    assert f["attr_region"].tolist() == ["north", "3"]
