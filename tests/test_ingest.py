from __future__ import annotations

import sqlite3
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from churnclv.config import ConfigError, load_mapping
from churnclv.ingest import DataError, validate_frames, validate_source


def _tx(**cols):
    return pd.DataFrame(cols)


# ----------------------------------------------------------------- each reject reason


@pytest.mark.parametrize(
    ("row", "reason"),
    [
        ({"customer_id": None, "ts": "2024-01-01", "amount": "1"}, "missing customer_id"),
        ({"customer_id": "  ", "ts": "2024-01-01", "amount": "1"}, "missing customer_id"),
        ({"customer_id": "1", "ts": None, "amount": "1"}, "missing ts"),
        ({"customer_id": "1", "ts": "yesterday", "amount": "1"}, "unparseable ts"),
        ({"customer_id": "1", "ts": "01/02/2024", "amount": "1"}, "unparseable ts"),  # ambiguous
        ({"customer_id": "1", "ts": "0202-01-01", "amount": "1"}, "implausible ts"),
        ({"customer_id": "1", "ts": "2024-01-01", "amount": None}, "missing amount"),
        ({"customer_id": "1", "ts": "2024-01-01", "amount": "12,50"}, "non-numeric amount"),
        ({"customer_id": "1", "ts": "2024-01-01", "amount": "NaN"}, "non-finite amount"),
        ({"customer_id": "1", "ts": "2024-01-01", "amount": "inf"}, "non-finite amount"),
    ],
)
def test_each_transaction_reject_reason(row: dict, reason: str) -> None:
    good = {"customer_id": "1", "ts": "2024-01-01", "amount": "5"}
    result = validate_frames(pd.DataFrame([good, row]))
    rep = result.reports["transactions"]
    assert (rep.read, rep.accepted, rep.rejected) == (2, 1, 1)
    (got,) = rep.reasons
    assert got.startswith(reason)
    rejects = result.rejects["transactions"]
    assert rejects["_row"].tolist() == [2]  # the row number in the source
    assert rejects["reason"].iloc[0].startswith(reason)


def test_duplicate_order_line_rejected_but_other_lines_of_the_order_kept() -> None:
    frame = _tx(
        customer_id=["1", "1", "1", "1"],
        ts=["2024-01-01 10:00"] * 4,
        amount=[5.0, 5.0, 7.0, 5.0],
        order_id=["A", "A", "A", None],
    )
    result = validate_frames(frame)
    rep = result.reports["transactions"]
    assert rep.accepted == 3 and rep.rejected == 1
    assert next(iter(rep.reasons)).startswith("duplicate line")
    assert result.rejects["transactions"]["_row"].tolist() == [2]


def test_event_reasons_and_unknown_customer() -> None:
    customers = pd.DataFrame({"customer_id": ["1", "1"], "signup_ts": ["2024-01-01", "2024-02-01"]})
    tx = _tx(customer_id=["1"], ts=["2024-01-02"], amount=[3.0])
    events = pd.DataFrame(
        {
            "customer_id": ["1", "2", "1", "1"],
            "ts": ["2024-01-02", "2024-01-02", "2024-01-02", "2024-01-02"],
            "event_type": ["login", "login", None, "session"],
            "value": [None, None, None, "many"],
        }
    )
    result = validate_frames(tx, events, customers)
    ev = result.reports["events"]
    assert ev.read == 4 and ev.accepted == 1
    assert set(ev.reasons) == {
        "unknown customer_id: not in the customers table",
        "missing event_type",
        "non-numeric value",
    }
    cu = result.reports["customers"]
    assert cu.accepted == 1 and list(cu.reasons) == ["duplicate customer_id: an earlier row has it"]
    assert result.clean["customers"]["signup_ts"].iloc[0] == pd.Timestamp("2024-01-01")


def test_events_without_customers_table_keep_any_customer() -> None:
    tx = _tx(customer_id=["1"], ts=["2024-01-02"], amount=[3.0])
    events = pd.DataFrame({"customer_id": ["2"], "ts": ["2024-01-02"], "event_type": ["login"]})
    assert validate_frames(tx, events).reports["events"].accepted == 1


# ----------------------------------------------------------------- coercion


def test_time_zones_become_naive_utc_and_ids_keep_leading_zeros() -> None:
    frame = _tx(
        customer_id=["007", "007", "010"],
        ts=["2024-03-01T23:30:00+02:00", "2024-03-01T23:30:00Z", "2024-03-01"],
        amount=["1.5", "2", "-3"],
    )
    clean = validate_frames(frame).clean["transactions"]
    assert clean["customer_id"].tolist() == ["007", "007", "010"]
    assert clean["ts"].tolist() == [
        pd.Timestamp("2024-03-01 21:30"),
        pd.Timestamp("2024-03-01 23:30"),
        pd.Timestamp("2024-03-01"),
    ]
    assert clean["ts"].dt.tz is None
    assert clean["amount"].dtype == np.float64
    assert clean["amount"].tolist() == [1.5, 2.0, -3.0]  # returns are kept


def test_tz_aware_pandas_timestamps_are_converted() -> None:
    ts = pd.to_datetime(["2024-03-01 01:00"]).tz_localize("Europe/Berlin")
    clean = validate_frames(_tx(customer_id=["1"], ts=ts, amount=[1.0])).clean["transactions"]
    assert clean["ts"].iloc[0] == pd.Timestamp("2024-03-01 00:00")


def test_parquet_source_with_numeric_ids_and_typed_columns(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    pd.DataFrame(
        {"customer_id": [12, 12, 13], "ts": pd.to_datetime(["2024-01-01", "2024-01-02", "2024-01-03"]),
         "amount": [1.0, np.nan, 3.0]}
    ).to_parquet(data / "transactions.parquet")
    result = validate_source(data, tmp_path / "out")
    rep = result.reports["transactions"]
    assert (rep.read, rep.accepted, rep.rejected) == (3, 2, 1)
    clean = pd.read_parquet(result.clean_paths["transactions"])
    assert clean["customer_id"].tolist() == ["12", "13"]
    rejects = pd.read_csv(result.rejects_paths["transactions"], dtype=str)
    assert rejects["reason"].tolist() == ["missing amount"]


# ----------------------------------------------------------------- whole-file problems


def test_missing_required_column_names_file_column_and_fix(tmp_path: Path) -> None:
    (tmp_path / "transactions.csv").write_text("customer_id,ts,total\n1,2024-01-01,3\n")
    with pytest.raises(DataError) as err:
        validate_source(tmp_path, tmp_path / "out")
    msg = str(err.value)
    assert "transactions.csv" in msg and "'amount'" in msg and "mapping" in msg


def test_empty_file(tmp_path: Path) -> None:
    (tmp_path / "transactions.csv").write_text("")
    with pytest.raises(DataError, match="empty"):
        validate_source(tmp_path, tmp_path / "out")
    (tmp_path / "transactions.csv").write_text("customer_id,ts,amount\n")  # a header and no rows
    with pytest.raises(DataError, match=r"transactions.csv: empty.*export the transactions again"):
        validate_source(tmp_path, tmp_path / "out")


def test_unknown_format_names_the_file(tmp_path: Path) -> None:
    (tmp_path / "transactions.json").write_text("[]")
    with pytest.raises(DataError, match=r"transactions.json: unknown format.*transactions.parquet"):
        validate_source(tmp_path, tmp_path / "out")


def test_unreadable_file(tmp_path: Path) -> None:
    (tmp_path / "transactions.parquet").write_bytes(b"this is not parquet")
    with pytest.raises(DataError, match="unreadable"):
        validate_source(tmp_path, tmp_path / "out")


def test_missing_transactions_and_ambiguous_files(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no transactions file"):
        validate_source(tmp_path, tmp_path / "out")
    (tmp_path / "transactions.csv").write_text("customer_id,ts,amount\n1,2024-01-01,3\n")
    pd.read_csv(tmp_path / "transactions.csv").to_parquet(tmp_path / "transactions.parquet")
    with pytest.raises(DataError, match="more than once"):
        validate_source(tmp_path, tmp_path / "out")


def test_not_a_directory(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="not a directory"):
        validate_source(tmp_path / "nope", tmp_path / "out")


# ----------------------------------------------------------------- mapping and SQL sources


def test_mapping_file_renames_tables_and_columns(tmp_path: Path) -> None:
    (tmp_path / "orders.csv").write_text("cust,when,total\n0042,2024-01-01,3.5\n")
    mapping_file = tmp_path / "mapping.toml"
    mapping_file.write_text(
        '[transactions]\ntable = "orders"\ncolumns = { customer_id = "cust", ts = "when", amount = "total" }\n'
    )
    result = validate_source(tmp_path, tmp_path / "out", mapping=load_mapping(mapping_file))
    clean = pd.read_parquet(result.clean_paths["transactions"])
    assert clean.to_dict("records") == [
        {"customer_id": "0042", "ts": pd.Timestamp("2024-01-01"), "amount": 3.5}
    ]


def test_mapping_errors_are_clear(tmp_path: Path) -> None:
    bad = tmp_path / "m.toml"
    bad.write_text('[orders]\ntable = "x"\n')
    with pytest.raises(ConfigError, match="unknown table"):
        load_mapping(bad)
    bad.write_text('[transactions]\ncolumns = { price = "x" }\n')
    with pytest.raises(ConfigError, match="unknown canonical columns"):
        load_mapping(bad)


def test_sqlite_source(tmp_path: Path) -> None:
    db = tmp_path / "shop.db"
    with sqlite3.connect(db) as con:
        con.execute("CREATE TABLE transactions (customer_id TEXT, ts TEXT, amount REAL)")
        con.executemany(
            "INSERT INTO transactions VALUES (?, ?, ?)",
            [("001", "2024-01-01 10:00:00", 5.0), ("002", "bad", 1.0), ("001", "2024-01-02", None)],
        )
        con.execute("CREATE TABLE customers (customer_id TEXT, signup_ts TEXT, segment TEXT)")
        con.execute("INSERT INTO customers VALUES ('001', '2023-12-31', 'gold')")
    result = validate_source(f"sqlite:///{db}", tmp_path / "out")
    tx = result.reports["transactions"]
    assert (tx.read, tx.accepted, tx.rejected) == (3, 1, 2)
    customers = pd.read_parquet(result.clean_paths["customers"])
    assert customers["segment"].tolist() == ["gold"]  # categorical attributes kept


def test_sqlite_without_transactions_table(tmp_path: Path) -> None:
    db = tmp_path / "empty.db"
    sqlite3.connect(db).close()
    with pytest.raises(DataError, match="table 'transactions' not found"):
        validate_source(f"sqlite:///{db}", tmp_path / "out")


# ----------------------------------------------------------------- property: nothing is lost

cells_id = st.one_of(st.none(), st.sampled_from(["", " ", "001", "1", "abc", "0"]))
cells_ts = st.one_of(
    st.none(),
    st.sampled_from(["2024-01-01", "2024-02-30", "nope", "2024-01-01T10:00:00+05:00", "1850-01-01", "01/02/03"]),
)
cells_amount = st.one_of(
    st.none(),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.sampled_from(["", "x", "1e3", "-2.5", " 7 "]),
)
rows = st.lists(
    st.tuples(cells_id, cells_ts, cells_amount, st.one_of(st.none(), st.sampled_from(["A", "B"]))),
    min_size=1,
    max_size=25,
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rows)
def test_counts_reconcile_and_accepted_rows_keep_the_contract(data: list[tuple]) -> None:
    frame = pd.DataFrame(data, columns=["customer_id", "ts", "amount", "order_id"], dtype=object)
    result = validate_frames(frame)
    rep = result.reports["transactions"]
    clean, rejects = result.clean["transactions"], result.rejects["transactions"]
    assert rep.read == len(frame) == rep.accepted + rep.rejected
    assert len(clean) == rep.accepted and len(rejects) == rep.rejected
    assert sorted(rejects["_row"].tolist() + []) == sorted(set(rejects["_row"]))  # each row once
    if len(clean):
        assert clean["customer_id"].map(lambda s: isinstance(s, str) and s.strip() == s and s != "").all()
        assert clean["ts"].notna().all() and clean["ts"].dt.tz is None
        assert clean["ts"].dt.year.between(1900, 2200).all()
        assert np.isfinite(clean["amount"].to_numpy()).all()
    assert rejects["reason"].notna().all()


def test_customers_unparseable_signup_and_attributes_kept() -> None:
    tx = _tx(customer_id=["1"], ts=["2024-01-02"], amount=[3.0])
    customers = pd.DataFrame(
        {"customer_id": ["1", "2", "3"], "signup_ts": ["2024-01-01", "someday", None], "tier": ["a", "b", "c"]}
    )
    result = validate_frames(tx, customers=customers)
    rep = result.reports["customers"]
    assert (rep.read, rep.accepted, rep.rejected) == (3, 2, 1)
    assert next(iter(rep.reasons)).startswith("unparseable signup_ts")
    clean = result.clean["customers"]
    assert clean["tier"].tolist() == ["a", "c"]  # categorical attribute kept
    assert clean["signup_ts"].isna().tolist() == [False, True]  # a missing signup is allowed
