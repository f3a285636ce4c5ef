"""The batch output as its readers open it, in one line each: pandas, DuckDB and Spark read ``OUT/scores``
as it is, one row per customer and as-of with ``as_of`` a date; the rows carry the HTTP answer's fields;
an output folder of the earlier layout is named, not read.

The one-liners run here are the README's, character for character (``--out batch/`` there).
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd
import pytest

from churnclv.serving.snapshots import (
    OUTPUT_COLUMNS,
    PARTITION_KEY,
    PartitionError,
    features_path,
    partitions,
    read_scores,
    report_dir,
    scores_dir,
)

README = Path(__file__).resolve().parents[2] / "README.md"
# what the README shows for an output folder batch/ (the tests read their own output folder instead)
ONE_LINERS = {
    "pandas": 'pd.read_parquet("batch/scores")',
    "duckdb": 'duckdb.read_parquet("batch/scores/*/*.parquet", hive_partitioning=True)',
    "spark": 'spark.read.parquet("batch/scores")',
}
AS_OF = dt.date(2025, 10, 2)
NEXT = dt.date(2025, 10, 9)
LEGACY = "as_of=2025-09-25"  # a partition of the earlier layout (OUT/as_of=DATE/), left in the output folder


@pytest.fixture(scope="module")
def two_weeks(small_world: Path, trained_store: dict, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list]:
    """Two as-ofs published into one output folder that also holds an earlier-layout partition;
    returns the folder and the second run's summary lines."""
    from churnclv.serving.batch import run_batch

    out = tmp_path_factory.mktemp("readers")
    legacy = out / LEGACY
    legacy.mkdir()
    (legacy / "manifest.json").write_text("{}")
    (legacy / "part-00000.parquet").write_bytes(b"an earlier run's scores")
    lines: list[str] = []
    for day in (AS_OF, NEXT):
        lines.clear()
        run_batch(
            clean=small_world,
            as_of=day,
            out=out,
            model_uri=trained_store["model_uri"],
            tracking_uri=trained_store["tracking_uri"],
            echo=lines.append,
            progress=False,
            chunk_size=700,
        )
    return out, lines


def _known(out: Path) -> dict[dt.date, int]:
    """Rows written per as-of, from the manifests."""
    return {day: json.loads((p / "_manifest.json").read_text())["counts"]["rows_written"] for day, p in partitions(out)}


def _one_liner(reader: str, out: Path, **names: Any) -> Any:
    """Run the README's one-liner of ``reader`` on the output folder ``out``."""
    code = ONE_LINERS[reader].replace('"batch/', f'"{out}/')
    return eval(code, {"pd": pd, "duckdb": duckdb, **names})  # our own constant: the README's line, run as is


def _check_rows(frame: pd.DataFrame, out: Path) -> None:
    """One row per customer and as-of, ``as_of`` a date equal to the folder key, the counts of the manifests."""
    assert list(frame.columns) == [*OUTPUT_COLUMNS, PARTITION_KEY]
    assert all(type(d) is dt.date for d in frame["as_of"])
    assert frame.groupby("as_of").size().to_dict() == _known(out) and set(_known(out)) == {AS_OF, NEXT}
    assert not frame.duplicated(["customer_id", "as_of"]).any()
    assert (frame["as_of"].map(dt.date.isoformat) == frame[PARTITION_KEY].astype(str)).all()


@pytest.mark.integration
def test_pandas_reads_the_scores_folder_and_one_partition(two_weeks: tuple[Path, list]) -> None:
    out, _ = two_weeks
    frame = _one_liner("pandas", out)
    _check_rows(frame, out)
    one = pd.read_parquet(scores_dir(out, AS_OF))  # one week: the rows alone, as_of still a date
    assert list(one.columns) == list(OUTPUT_COLUMNS) and one["customer_id"].is_unique
    assert set(one["as_of"]) == {AS_OF} and len(one) == _known(out)[AS_OF]
    pd.testing.assert_frame_equal(one, read_scores(out, AS_OF))


@pytest.mark.integration
def test_duckdb_reads_the_scores_folder(two_weeks: tuple[Path, list]) -> None:
    out, _ = two_weeks
    rel = _one_liner("duckdb", out)
    types = dict(zip(rel.columns, map(str, rel.types), strict=True))
    assert types["as_of"] == types[PARTITION_KEY] == "DATE" and types["tier_level"] == "BIGINT"
    _check_rows(rel.to_arrow_table().to_pandas(), out)


@pytest.mark.slow
@pytest.mark.spark
@pytest.mark.integration
def test_spark_reads_the_scores_folder(two_weeks: tuple[Path, list]) -> None:
    pytest.importorskip("pyspark", reason="the spark extra is not installed (pip install 'churnclv[spark]')")
    from churnclv.serving.spark import session

    spark = session()  # local mode, bound to 127.0.0.1
    out, _ = two_weeks
    df = _one_liner("spark", out, spark=spark)
    types = dict(df.dtypes)
    assert types["as_of"] == types[PARTITION_KEY] == "date" and types["tier_level"] == "bigint"
    _check_rows(df.toPandas(), out)


@pytest.mark.integration
def test_scores_features_and_report_each_have_their_folder(two_weeks: tuple[Path, list]) -> None:
    out, _ = two_weeks
    manifest = json.loads((scores_dir(out, NEXT) / "_manifest.json").read_text())
    o = manifest["outputs"]
    assert manifest["format_version"] == 2
    assert (out / o["scores_dir"]) == scores_dir(out, NEXT) and (out / o["features"]) == features_path(out, NEXT)
    assert (out / o["tier_report"]) == report_dir(out, NEXT)
    for day in (AS_OF, NEXT):  # scores hold nothing else: no feature snapshot, no PNG
        names = {p.name for p in scores_dir(out, day).iterdir()}
        assert "_manifest.json" in names and all(n.startswith("part-") for n in names - {"_manifest.json"})
        assert [p.name for p in features_path(out, day).parent.iterdir()] == ["features.parquet"]
    assert sorted(p.name for p in (out / "scores").iterdir()) == ["dt=2025-10-02", "dt=2025-10-09"]
    files = manifest["tier_report"]["files"]
    assert {Path(f).parent for f in files.values()} == {Path(o["tier_report"])}
    assert sorted(p.name for p in report_dir(out, NEXT).iterdir()) == sorted(Path(f).name for f in files.values())
    assert "tier_migration.png" in {Path(f).name for f in files.values()}  # the second week has a migration
    assert (out / "LATEST").read_text() == "dt=2025-10-09"


@pytest.mark.integration
def test_an_earlier_layout_is_named_with_the_fix_and_left_alone(two_weeks: tuple[Path, list]) -> None:
    out, lines = two_weeks
    (note,) = [line for line in lines if "earlier layout" in line]
    assert LEGACY in note and f"churnclv score-batch --as-of 2025-09-25 --out {out}" in note
    assert (out / LEGACY / "part-00000.parquet").read_bytes() == b"an earlier run's scores"  # not changed
    with pytest.raises(PartitionError, match=r"written by an earlier churnclv.*run churnclv score-batch --as-of 2025"):
        read_scores(out, "2025-09-25")
    with pytest.raises(PartitionError, match=r"no published scores of as-of 2025-09-18: run churnclv score-batch"):
        read_scores(out, "2025-09-18")


def test_the_readme_shows_the_one_liners_run_here() -> None:
    text = README.read_text()
    missing = [code for code in ONE_LINERS.values() if code not in text]
    assert not missing, f"the README's batch section must show {missing} (the one-liners these tests run)"


def test_batch_rows_have_the_http_answers_fields() -> None:
    """The batch row is the HTTP answer (same fields, same order) but for what only a request has."""
    from churnclv.serving.schemas import CustomerScore
    from churnclv.serving.targeting_decisions import TARGETING_COLUMNS

    only_http = {"rows_after_as_of"}
    # a run with a targeting adds its columns last, where the answer has them (null without one)
    fields = tuple(f for f in CustomerScore.model_fields if f not in only_http)
    assert fields == (*OUTPUT_COLUMNS, *TARGETING_COLUMNS)
