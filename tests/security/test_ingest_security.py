"""Regression tests of the "Hardening" issue: rows that passed validation and then broke a job,
inputs that answered 500 over HTTP, and ingestion that lost, altered or leaked data silently.

Each test names the item of the issue it guards (1: value rules, 2: HTTP timestamps, 3: silent loss
or change, 4: tracebacks and customer data in messages).
"""

from __future__ import annotations

import errno
import json
import os
import sqlite3
import subprocess
import sys
import tempfile
from pathlib import Path

import duckdb
import ibis
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner, Result
from pydantic import ValidationError

from churnclv import values
from churnclv.cli import cli
from churnclv.config import ConfigError
from churnclv.features import compute_features, compute_features_frames
from churnclv.ingest import validate_frames, validate_source, validated_source
from churnclv.mapping import Mapping, TableMapping, load_mapping
from churnclv.readiness import assess
from churnclv.tables import DataError

SECRET = "cust-4711-secret"  # a customer id that must never appear in a message


def _csv(path: Path, header: str, rows: list[str]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join([header, *rows]) + "\n")
    return path


def _one_line_error(result: Result) -> str:
    """The CLI failed with exit status 1 and one line on stderr (no traceback)."""
    assert result.exit_code == 1, (result.exit_code, result.output)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.stderr
    assert "Traceback" not in result.output
    return lines[0]


# =========================================================================== 1. one set of value rules


@pytest.mark.parametrize(
    "ts",
    [
        "-infinity",
        "infinity",
        "Infinity",
        " -INFINITY ",
        "epoch",
        "now",
        "today",
        "tomorrow",
        "yesterday",
        "allballs",
        "+infinity",
    ],
)
def test_special_timestamp_words_are_rejected_by_name(ts: str) -> None:
    result = validate_frames(pd.DataFrame({"customer_id": ["1", "2"], "ts": ["2024-01-01", ts], "amount": ["1", "1"]}))
    rep = result.reports["transactions"]
    assert (rep.read, rep.accepted, rep.rejected) == (2, 1, 1)
    assert result.rejects["transactions"]["reason"].iloc[0].startswith("unparseable ts")


@pytest.mark.parametrize(
    ("ts", "reason"),
    [
        ("0001-01-01T00:00:00+01:00", "implausible ts"),  # year 0 in UTC
        ("9999-12-31T23:00:00-05:00", "implausible ts"),  # year 10000 in UTC
        ("1900-01-01T00:30:00+01:00", "implausible ts"),  # 1899 in UTC
        ("2200-12-31T23:59:59-14:00", "implausible ts"),  # 2201 in UTC
        ("294247-01-01", "unparseable ts"),  # not a four-digit year
        ("-2024-01-01", "unparseable ts"),
    ],
)
def test_timestamps_are_judged_in_utc_and_need_a_four_digit_year(ts: str, reason: str) -> None:
    result = validate_frames(pd.DataFrame({"customer_id": ["1"], "ts": [ts], "amount": ["1"]}))
    assert result.reports["transactions"].rejected == 1
    assert result.rejects["transactions"]["reason"].iloc[0].startswith(reason)


def test_year_first_dates_are_still_accepted() -> None:
    cells = [
        "2024-01-31",
        "2024/01/31",
        "2024-1-31",
        "2024-01-31T10:00:00+05:30",
        "2024-01-31 10:00:00 UTC",
        "1900-01-01",
        "2200-12-31T23:59:59",
    ]
    n = len(cells)
    result = validate_frames(pd.DataFrame({"customer_id": ["1"] * n, "ts": cells, "amount": ["1"] * n}))
    assert result.reports["transactions"].accepted == len(cells)


def test_typed_infinite_timestamps_are_rejected(tmp_path: Path) -> None:
    """A Parquet file written by DuckDB (or a database) can hold infinite timestamps: their year is
    NULL, so a year check alone let them through."""
    data = tmp_path / "data"
    data.mkdir()
    duckdb.sql(
        "COPY (SELECT * FROM (VALUES ('1', TIMESTAMP '2024-01-01', 1.0), ('2', TIMESTAMP '-infinity', 1.0), "
        "('3', TIMESTAMP 'infinity', 1.0)) t(customer_id, ts, amount)) "
        f"TO '{data / 'transactions.parquet'}' (FORMAT parquet)"
    )
    result = validate_source(data, tmp_path / "out")
    rep = result.reports["transactions"]
    assert (rep.read, rep.accepted, rep.rejected) == (3, 1, 2)
    assert set(rep.reasons) == {values.reason("implausible_ts", "ts")}


@pytest.mark.parametrize(
    ("amount", "ok"),
    [
        ("1e9", True),
        ("-1e9", True),
        ("0", True),
        ("-0", True),
        ("1e-9", True),
        ("999999999.99", True),
        ("1000000000.01", False),
        ("1e308", False),
        ("-1e308", False),
        ("1.7976931348623157e308", False),
        ("5e-324", False),
        ("-1e-10", False),
        ("inf", False),
        ("NaN", False),
    ],
)
def test_amounts_and_event_values_keep_the_bounds(amount: str, ok: bool) -> None:
    tx = pd.DataFrame({"customer_id": ["1", "1"], "ts": ["2024-01-01", "2024-01-02"], "amount": ["5", amount]})
    ev = pd.DataFrame({"customer_id": ["1"], "ts": ["2024-01-01"], "event_type": ["login"], "value": [amount]})
    result = validate_frames(tx, ev)
    assert result.reports["transactions"].accepted == (2 if ok else 1)
    assert result.reports["events"].accepted == (1 if ok else 0)
    if not ok:
        assert result.rejects["transactions"]["reason"].iloc[0].split(":")[0] in (
            "implausible amount",
            "non-finite amount (NaN or infinity)",
        )
        assert result.rejects["events"]["reason"].iloc[0].split(":")[0] in (
            "implausible value",
            "non-finite value (NaN or infinity)",
        )


def _attack_world(folder: Path) -> Path:
    """The lines that made score-batch fail or write net_spend=-inf before the rules were shared."""
    _csv(
        folder / "transactions.csv",
        "customer_id,ts,amount",
        [
            "good,2024-01-01,10",
            "good,2024-03-01,20",
            "good,2024-05-01,15",
            "minus,-infinity,5",
            "minus,2024-02-01,5",  # one -infinity line
            "huge,2024-01-05,1e308",
            "huge,2024-01-06,1e308",  # two 1e308 lines: the sum is inf
            "neg,2024-01-05,-1e308",
            "neg,2024-01-06,-1e308",
            "neg,2024-02-06,3",  # net_spend=-inf
        ],
    )
    return folder


def test_the_attack_lines_are_rejected_and_the_features_are_finite(tmp_path: Path) -> None:
    data = _attack_world(tmp_path / "data")
    result = CliRunner().invoke(
        cli,
        [
            "-q",
            "features",
            "--data",
            str(data),
            "--work",
            str(tmp_path / "work"),
            "--as-of",
            "2024-06-30",
            "--out",
            str(tmp_path / "f.parquet"),
        ],
    )
    assert result.exit_code == 0, result.output
    rejects = pd.read_csv(tmp_path / "work" / "rejects" / "transactions.csv", dtype=str)
    assert sorted(rejects["_row"].astype(int)) == [4, 6, 7, 8, 9]
    features = pd.read_parquet(tmp_path / "f.parquet")
    numbers = features.select_dtypes("number").to_numpy(dtype=float)
    assert not np.isinf(numbers).any()
    assert features.set_index("customer_id").loc["neg", "net_spend"] == 3.0


def test_trusted_input_that_breaks_the_rules_stops_with_table_column_rule_and_fix(tmp_path: Path) -> None:
    """--trusted skips validation; the feature job checks the rules it depends on, cheaply, and says
    what to do instead of failing halfway or writing infinities."""
    data = tmp_path / "trusted"
    data.mkdir()
    pd.DataFrame(
        {
            "customer_id": ["a", "a", "b"],
            "ts": pd.to_datetime(["2024-01-01", "2024-01-02", "2024-01-03"]),
            "amount": [1e308, 1e308, 1.0],
        }
    ).to_parquet(data / "transactions.parquet")
    line = _one_line_error(
        CliRunner().invoke(
            cli,
            [
                "features",
                "--data",
                str(data),
                "--trusted",
                "--as-of",
                "2024-06-30",
                "--out",
                str(tmp_path / "f.parquet"),
            ],
        )
    )
    assert "transactions.amount" in line and "1e9" in line and "churnclv validate" in line
    assert not (tmp_path / "f.parquet").exists()

    with pytest.raises(values.ValueRuleError, match=r"transactions\.amount: 2 row\(s\) break the rule"):
        compute_features(data, "2024-06-30")
    duckdb.sql(
        "COPY (SELECT 'a' AS customer_id, TIMESTAMP '-infinity' AS ts, 1.0 AS amount) "
        f"TO '{data / 'transactions.parquet'}' (FORMAT parquet)"
    )
    with pytest.raises(values.ValueRuleError, match=r"transactions\.ts: .*1900-2200.*churnclv validate"):
        compute_features(data, "2024-06-30")


def test_the_feature_jobs_timestamp_rule_is_the_year_rule_at_its_bounds(tmp_path: Path) -> None:
    """The trusted check compares timestamps with the bounds (so DuckDB can skip row groups by their
    statistics): the same verdict as a year outside 1900-2200, infinities and microseconds included."""
    cells = {
        "1899-12-31 23:59:59.999999": True,
        "1900-01-01 00:00:00": False,
        "2024-06-30 12:00:00": False,
        "2200-12-31 23:59:59.999999": False,
        "2201-01-01 00:00:00": True,
        "infinity": True,
        "-infinity": True,
    }
    path = tmp_path / "ts.parquet"
    rows = ", ".join(f"({i}, TIMESTAMP '{c}')" for i, c in enumerate(cells))
    duckdb.sql(f"COPY (SELECT * FROM (VALUES {rows}, ({len(cells)}, NULL)) t(i, ts)) TO '{path}' (FORMAT parquet)")
    con = ibis.duckdb.connect()
    table = con.read_parquet(path)
    got = con.to_pyarrow(table.mutate(bad=values.ibis_timestamp_violation(table.ts)).order_by("i"))["bad"]
    assert got.to_pylist() == [*cells.values(), False]  # NULL: not a violation (the columns' own rule)
    year_rule = [c.lstrip("-").startswith("inf") or not 1900 <= int(c[:4]) <= 2200 for c in cells]
    assert list(cells.values()) == year_rule


def test_frames_breaking_the_rules_are_refused_by_the_in_memory_path() -> None:
    tx = pd.DataFrame(
        {"customer_id": ["a", "a"], "ts": pd.to_datetime(["2024-01-01", "2024-01-02"]), "amount": [-1e308, -1e308]}
    )
    with pytest.raises(values.ValueRuleError, match=r"transactions\.amount"):
        compute_features_frames(tx, as_of="2024-06-30")
    with pytest.raises(values.ValueRuleError, match=r"transactions\.amount"):
        compute_features({"transactions": tx}, "2024-06-30")


# =========================================================================== 2. HTTP: never a 500

OVERFLOWING = [
    "0001-01-01T00:00:00+01:00",
    "0001-01-01T00:59:59+14:00",
    "9999-12-31T23:00:00-05:00",
    "9999-12-31T23:59:59-00:01",
]


def _request(where: str, ts: str) -> dict:
    customer: dict = {"customer_id": "1", "transactions": [{"ts": "2024-01-01T00:00:00", "amount": 1.0}]}
    if where == "ts":
        customer["transactions"] = [{"ts": ts, "amount": 1.0}]
    elif where == "signup_ts":
        customer["signup_ts"] = ts
    else:
        customer["events"] = [{"ts": ts, "event_type": "login"}]
    return {"as_of": "2024-06-30", "customers": [customer]}


@pytest.mark.parametrize("ts", OVERFLOWING)
@pytest.mark.parametrize(
    ("where", "loc"),
    [
        ("ts", ("customers", 0, "transactions", 0, "ts")),
        ("signup_ts", ("customers", 0, "signup_ts")),
        ("events", ("customers", 0, "events", 0, "ts")),
    ],
)
def test_timestamps_whose_utc_conversion_overflows_are_field_errors(where: str, loc: tuple, ts: str) -> None:
    """Year 1 with a positive offset and 9999 with a negative one overflowed datetime in the UTC
    conversion (OverflowError: a 500); now a validation error on the field."""
    from churnclv.serving.schemas import ScoreRequest

    with pytest.raises(ValidationError) as err:
        ScoreRequest.model_validate(_request(where, ts))
    (error,) = err.value.errors()
    assert error["loc"] == loc and "implausible timestamp: year outside 1900-2200" in error["msg"]


@pytest.mark.parametrize(("field", "value"), [("ts", 0), ("ts", 1.7e9), ("amount", 5e-324), ("amount", 1e9 + 1)])
def test_http_values_follow_the_ingestion_rules(field: str, value: float) -> None:
    """Unix seconds (0 is 'epoch') are not ISO 8601; amounts keep the same bounds as ingestion."""
    from churnclv.serving.schemas import Transaction

    line = {"ts": "2024-01-01", "amount": 1.0, field: value}
    with pytest.raises(ValidationError) as err:
        Transaction.model_validate(line)
    assert err.value.errors()[0]["loc"] == (field,)


# =========================================================================== 3. nothing lost or altered silently


def test_a_table_folder_mixing_csv_and_parquet_is_refused(tmp_path: Path) -> None:
    folder = tmp_path / "data" / "transactions"
    folder.mkdir(parents=True)
    pd.DataFrame({"customer_id": ["1"], "ts": ["2024-01-01"], "amount": [1.0]}).to_parquet(folder / "a.parquet")
    _csv(folder / "b.csv", "customer_id,ts,amount", [f"{i},2024-01-01,1" for i in range(20)])
    with pytest.raises(DataError, match=r"mixes formats \(1 \.csv file and 1 \.parquet file\).*keep one format"):
        validate_source(tmp_path / "data", tmp_path / "out")
    (folder / "notes.json").write_text("{}")
    (folder / "b.csv").unlink()
    with pytest.raises(DataError, match=r"notes\.json: unknown format in the folder of table 'transactions'"):
        validate_source(tmp_path / "data", tmp_path / "out")


def test_a_folder_of_csv_files_reads_every_file(tmp_path: Path) -> None:
    folder = tmp_path / "data" / "transactions"
    _csv(folder / "part-1.csv", "customer_id,ts,amount", ["1,2024-01-01,1", "2,2024-01-02,2"])
    _csv(folder / "part-2.csv", "amount,customer_id,ts,channel", ["3,3,2024-01-03,web"])  # other column order
    (folder / "_SUCCESS").write_text("")  # a writer's marker, not data
    result = validate_source(tmp_path / "data", tmp_path / "out")
    assert result.reports["transactions"].read == 3
    clean = pd.read_parquet(result.clean_paths["transactions"])
    assert clean["customer_id"].tolist() == ["1", "2", "3"] and clean["amount"].tolist() == [1.0, 2.0, 3.0]


def test_csv_quotes_first_seen_after_the_sniffers_sample_still_quote(tmp_path: Path) -> None:
    rows = [f"c{i % 100},2024-01-01,1" for i in range(25_000)]
    _csv(
        tmp_path / "data" / "transactions.csv",
        "customer_id,ts,amount",
        [*rows, '"c1",2024-01-02,2', '"c2","2024-01-03","1,5"', '"c""3",2024-01-04,3'],
    )
    result = validate_source(tmp_path / "data", tmp_path / "out")
    rep = result.reports["transactions"]
    assert (rep.read, rep.accepted, rep.rejected) == (25_003, 25_002, 1)
    assert rep.reasons == {"non-numeric amount": 1}  # "1,5": a decimal comma is not a number
    clean = pd.read_parquet(result.clean_paths["transactions"])
    assert set(clean["customer_id"]) == {f"c{i}" for i in range(100)} | {'c"3'}  # no '"c1"' customer
    rejects = pd.read_csv(result.rejects_paths["transactions"], dtype=str)
    assert rejects[["customer_id", "amount"]].to_numpy().tolist() == [["c2", "1,5"]]


def test_float_ids_must_be_whole_numbers(tmp_path: Path) -> None:
    """Parquet (and SQL) float ids: 12.0 is the id 12; NaN, inf, 12.5 and 1e20 used to become the
    ids 'nan', 'inf', '12.5' and '1e+20'."""
    data = tmp_path / "data"
    data.mkdir()
    table = pa.table(
        {
            "customer_id": pa.array([12.0, float("nan"), float("inf"), 1e20, 12.5, 2.0**53, 7.0, None]),
            "ts": pa.array([pd.Timestamp("2024-01-01")] * 8, pa.timestamp("us")),
            "amount": pa.array([1.0] * 8),
        }
    )
    pq.write_table(table, data / "transactions.parquet")  # pyarrow keeps NaN a NaN (pandas would write null)
    result = validate_source(data, tmp_path / "out")
    rep = result.reports["transactions"]
    assert (rep.read, rep.accepted) == (8, 2)
    assert rep.reasons == {values.reason("non_integral_id", "customer_id"): 5, "missing customer_id": 1}
    assert pd.read_parquet(result.clean_paths["transactions"])["customer_id"].tolist() == ["12", "7"]

    db = tmp_path / "shop.db"
    with sqlite3.connect(db) as con:
        con.execute("CREATE TABLE transactions (customer_id REAL, ts TEXT, amount REAL, order_id REAL)")
        con.executemany(
            "INSERT INTO transactions VALUES (?, ?, ?, ?)",
            [(12.0, "2024-01-01", 1.0, 5.0), (1e20, "2024-01-01", 1.0, 6.0), (13.0, "2024-01-01", 1.0, 6.5)],
        )
    result = validate_source(f"sqlite:///{db}", tmp_path / "out2")
    assert pd.read_parquet(result.clean_paths["transactions"])[["customer_id", "order_id"]].to_numpy().tolist() == [
        ["12", "5"]
    ]
    assert set(result.reports["transactions"].reasons) == {
        values.reason("non_integral_id", "customer_id"),
        values.reason("non_integral_id", "order_id"),
    }


@pytest.mark.parametrize("header", ["customer_id,ts,amount,amount", "customer_id,ts,Amount,AMOUNT"])
def test_duplicate_column_names_are_an_error_naming_the_column(tmp_path: Path, header: str) -> None:
    _csv(tmp_path / "data" / "transactions.csv", header, ["1,2024-01-01,3,4"])
    with pytest.raises(DataError, match=r"transactions\.csv: column.*mount.*(appears 2 times|differ only in case)"):
        validate_source(tmp_path / "data", tmp_path / "out")


def test_duplicate_parquet_and_frame_columns_are_an_error(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    pq.write_table(
        pa.table(
            [pa.array(["1"]), pa.array(["2024-01-01"]), pa.array([1.0]), pa.array([2.0])],
            names=["customer_id", "ts", "amount", "amount"],
        ),
        data / "transactions.parquet",
    )
    with pytest.raises(DataError, match="column 'amount' appears 2 times"):
        validate_source(data, tmp_path / "out")
    frame = pd.DataFrame([["1", "2024-01-01", 1.0, 2.0]], columns=["customer_id", "ts", "amount", "amount"])
    with pytest.raises(DataError, match="column 'amount' appears 2 times"):
        validate_frames(frame)


@pytest.mark.parametrize("name", ["../../x", "../secret", "/etc/passwd", "sub/transactions", "..", "a\\b", ""])
def test_mapped_table_names_are_confined_to_the_source(tmp_path: Path, name: str) -> None:
    outside = _csv(tmp_path / "secret.csv", "customer_id,ts,amount", ["1,2024-01-01,1"])
    data = tmp_path / "data"
    (data / "sub").mkdir(parents=True)
    mapping = tmp_path / "mapping.toml"
    mapping.write_text(f"[transactions]\ntable = {json.dumps(name)}\n")  # a TOML basic string
    with pytest.raises(ConfigError, match="is not a table name: names are confined to the --data source"):
        load_mapping(mapping)
    with pytest.raises(ConfigError):
        Mapping(tables={"transactions": TableMapping(source=name)})
    assert outside.exists()


def test_a_missing_sqlite_database_is_an_error_and_nothing_is_created(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    line = _one_line_error(CliRunner().invoke(cli, ["validate", "--data", "sqlite:///missing.db", "--out", "out"]))
    assert "missing.db does not exist" in line
    assert not (tmp_path / "missing.db").exists() and not (tmp_path / "out").exists()
    with pytest.raises(DataError, match="does not exist"):
        validate_source(f"sqlite:///{tmp_path / 'missing.db'}", tmp_path / "out")
    assert not (tmp_path / "missing.db").exists()


def test_validating_another_data_set_into_the_same_folder_replaces_it_whole(tmp_path: Path) -> None:
    first, second, out = tmp_path / "first", tmp_path / "second", tmp_path / "out"
    _csv(first / "transactions.csv", "customer_id,ts,amount", ["1,2024-01-01,1", "1,bad,1"])
    _csv(first / "events.csv", "customer_id,ts,event_type", ["1,2024-01-01,login"])
    _csv(first / "customers.csv", "customer_id", ["1", "1"])
    _csv(second / "transactions.csv", "customer_id,ts,amount", ["9,2024-01-01,1"])
    validate_source(first, out)
    assert sorted(p.name for p in (out / "rejects").iterdir()) == ["customers.csv", "transactions.csv"]
    result = validate_source(second, out)
    assert sorted(p.name for p in (out / "clean").iterdir()) == ["transactions.parquet"]
    assert list((out / "rejects").iterdir()) == []
    assert sorted(p.name for p in out.iterdir()) == ["clean", "rejects", "source.json"]  # no staging folder left
    assert validated_source(out) == str(second.resolve())  # the tables' source, recorded
    assert result.clean_paths["transactions"] == out / "clean" / "transactions.parquet"
    assert pd.read_parquet(result.clean_paths["transactions"])["customer_id"].tolist() == ["9"]

    _csv(tmp_path / "broken" / "transactions.csv", "customer_id,ts,total", ["1,2024-01-01,1"])
    with pytest.raises(DataError, match="'amount'"):
        validate_source(tmp_path / "broken", out)
    assert pd.read_parquet(out / "clean" / "transactions.parquet")["customer_id"].tolist() == ["9"]  # kept whole
    assert sorted(p.name for p in out.iterdir()) == ["clean", "rejects", "source.json"]
    assert validated_source(out) == str(second.resolve())


# =========================================================================== 4. one line, no customer data


def _late(tmp_path: Path, line: bytes) -> Path:
    data = tmp_path / "data"
    data.mkdir()
    body = b"customer_id,ts,amount\n" + b"c1,2024-01-01,1\n" * 30_000 + line + b"\nc2,2024-01-02,1\n"
    (data / "transactions.csv").write_bytes(body)
    return data


@pytest.mark.parametrize(
    ("line", "what"),
    [
        (f"{SECRET},2024-01-01,1,9".encode(), "line 30002: 4 fields where the header has 3"),
        (f"{SECRET},2024-01-01".encode(), "line 30002: 2 fields where the header has 3"),
        (SECRET.encode() + b"\xff\xfe,2024-01-01,1", "line 30002: not UTF-8 text: save the file as UTF-8"),
        (f'"{SECRET},2024-01-01,1'.encode(), "line 30002"),
    ],
)
def test_a_late_broken_csv_line_is_one_line_without_its_contents(tmp_path: Path, line: bytes, what: str) -> None:
    data = _late(tmp_path, line)
    with pytest.raises(DataError) as err:
        validate_source(data, tmp_path / "out")
    message = str(err.value)
    assert message.startswith(f"{data / 'transactions.csv'}: ") and what in message
    assert SECRET not in message and "\n" not in message and "Original Line" not in message


_LATIN1_LINE = SECRET.encode() + b"\xe9,2024-03-01,1\n"  # é in Latin-1


@pytest.mark.parametrize(
    ("body", "what"),
    [
        # the decoder reads the whole start of the file with the header: line 4 was blamed on line 1
        (b"customer_id,ts,amount\nc1,2024-01-01,1\nc1,2024-02-01,1\n" + _LATIN1_LINE, "line 4: not UTF-8 text"),
        (b"customer_id,ts,amount,caf\xe9\nc1,2024-01-01,1,x\n", "line 1 (the header) is not UTF-8 text"),
    ],
    ids=["line-4", "header"],
)
def test_a_csv_byte_that_is_not_utf8_is_named_by_its_line(tmp_path: Path, body: bytes, what: str) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "transactions.csv").write_bytes(body)
    with pytest.raises(DataError) as err:
        validate_source(data, tmp_path / "out")
    message = str(err.value)
    assert message.startswith(f"{data / 'transactions.csv'}: {what}"), message
    assert SECRET not in message and "\n" not in message


@pytest.mark.slow  # a Python process of its own: seconds of imports
def test_a_late_broken_csv_line_exits_1_with_one_line_on_stderr(tmp_path: Path) -> None:
    data = _late(tmp_path, f"{SECRET},2024-01-01,1,9".encode())
    proc = subprocess.run(
        [sys.executable, "-m", "churnclv.cli", "validate", "--data", str(data), "--out", str(tmp_path / "out")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 1
    assert proc.stderr.count("\n") == 1 and proc.stderr.startswith("Error: ") and "line 30002" in proc.stderr
    assert SECRET not in proc.stderr + proc.stdout and "Traceback" not in proc.stderr


def test_a_non_utf8_mapping_file_is_one_line(tmp_path: Path) -> None:
    _csv(tmp_path / "data" / "transactions.csv", "customer_id,ts,amount", ["1,2024-01-01,1"])
    (tmp_path / "m.toml").write_bytes(b'[transactions]\ntable = "caf\xe9"\n')
    line = _one_line_error(
        CliRunner().invoke(
            cli,
            [
                "validate",
                "--data",
                str(tmp_path / "data"),
                "--mapping",
                str(tmp_path / "m.toml"),
                "--out",
                str(tmp_path / "out"),
            ],
        )
    )
    assert "is not UTF-8 text" in line and "m.toml" in line


def test_sqlite_blob_columns(tmp_path: Path) -> None:
    db = tmp_path / "blob.db"
    with sqlite3.connect(db) as con:
        con.execute("CREATE TABLE transactions (customer_id BLOB, ts TEXT, amount REAL, note BLOB)")
        con.execute("INSERT INTO transactions VALUES (X'303132', '2024-01-01', 1.0, X'6F6B')")  # UTF-8 text
    result = validate_source(f"sqlite:///{db}", tmp_path / "out")
    assert pd.read_parquet(result.clean_paths["transactions"])["customer_id"].tolist() == ["012"]
    with sqlite3.connect(db) as con:
        con.execute("INSERT INTO transactions VALUES (?, '2024-01-02', 1.0, X'FFFE')", (SECRET,))
    line = _one_line_error(
        CliRunner().invoke(cli, ["validate", "--data", f"sqlite:///{db}", "--out", str(tmp_path / "out")])
    )
    assert "column 'note' holds binary values (BLOB) that are not UTF-8 text" in line and SECRET not in line


def test_out_that_is_a_file_or_not_writable_is_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _csv(tmp_path / "data" / "transactions.csv", "customer_id,ts,amount", ["1,2024-01-01,1"])
    (tmp_path / "afile").write_text("x")
    with pytest.raises(DataError, match="cannot write the validated tables there"):
        validate_source(tmp_path / "data", tmp_path / "afile")
    line = _one_line_error(
        CliRunner().invoke(
            cli, ["validate", "--data", str(tmp_path / "data"), "--out", str(tmp_path / "afile" / "sub")]
        )
    )
    assert "cannot write the validated tables there (Not a directory)" in line

    # running as root, chmod cannot make a folder read-only: the OS's answer is simulated
    def denied(*_args: object, **_kwargs: object) -> str:
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES))

    monkeypatch.setattr(tempfile, "mkdtemp", denied)
    line = _one_line_error(
        CliRunner().invoke(cli, ["validate", "--data", str(tmp_path / "data"), "--out", str(tmp_path / "ro")])
    )
    assert "ro: cannot write the validated tables there (Permission denied): pass --out a folder" in line


@pytest.mark.parametrize(
    ("column", "text", "form"),
    [("ts", "05/01/2024", "timestamps written YYYY-MM-DD"), ("amount", '"10,5"', "'.' as the decimal point")],
)
def test_trusted_csv_text_that_does_not_convert_is_one_line_without_the_value(
    tmp_path: Path, column: str, text: str, form: str
) -> None:
    """A reviewer's --trusted CSV with dates written 05/01/2024 (or amounts written 10,5) ended in
    DuckDB's ConversionException: a 40-line traceback quoting the row's value."""
    data = tmp_path / "trusted"
    data.mkdir()
    row = {"ts": "2024-01-05", "amount": "10.5"} | {column: text}
    (data / "transactions.csv").write_text(
        f"customer_id,ts,amount\n007,{row['ts']},{row['amount']}\n008,2024-02-01,5\n", encoding="utf-8"
    )
    args = ["features", "--data", str(data), "--trusted", "--as-of", "2024-06-01", "--out", str(tmp_path / "f.pq")]
    line = _one_line_error(CliRunner().invoke(cli, args))
    assert f"transactions.{column}: a value does not convert" in line and form in line and "churnclv validate" in line
    assert text.strip('"') not in line and "Traceback" not in line
    with pytest.raises(values.ValueRuleError, match=rf"transactions\.{column}: a value does not convert") as info:
        compute_features(data, "2024-06-01")  # the Python API: a ChurnclvError too, not DuckDB's
    assert text.strip('"') not in str(info.value)


def test_trusted_parquet_number_ids_are_read_as_text_next_to_a_csv(tmp_path: Path) -> None:
    """Number ids in a Parquet file written by another tool, next to a CSV's text ids: ibis refused to
    union the two (RelationError) in a traceback; the ids are text now, and readiness says that most
    buyers are not in the customers table (7 is not 007)."""
    data = tmp_path / "mixed"
    data.mkdir()
    pd.DataFrame(
        {"customer_id": [7, 8], "ts": pd.to_datetime(["2024-01-05", "2024-02-01"]), "amount": [10.5, 5.0]}
    ).to_parquet(data / "transactions.parquet")
    (data / "customers.csv").write_text("customer_id,signup_ts\n007,2024-01-01\n008,2024-01-02\n", encoding="utf-8")
    features = compute_features(data, "2024-02-15")
    assert sorted(features["customer_id"]) == ["007", "008", "7", "8"]
    r = assess(data, "2024-02-15", 30)
    assert (r.customers_with_lines, r.lines_not_in_customers) == (2, 2)
    missing = "2 of the 2 customers with transaction lines are not in the customers table"
    assert any(w.startswith(missing) for w in r.warnings)
    (data / "customers.csv").write_text("customer_id,signup_ts\n7,2024-01-01\n8,2024-01-02\n", encoding="utf-8")
    assert not any("not in the customers table" in w for w in assess(data, "2024-02-15", 30).warnings)
