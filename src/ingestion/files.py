"""Raw files: a table's file (or folder of files) in a data folder, read as a DuckDB view.

CSV is read with explicit options and every value as text (ids keep their zeros); Parquet as it is.
A reader's error becomes one line naming the file, the line and the fix, never the line's contents.
"""

from __future__ import annotations

import csv
import gzip
import re
from collections import Counter
from pathlib import Path
from typing import Any

import duckdb
import pyarrow.parquet as pq

from churnclv.ingestion.raw import RawTable, check_names, literal
from churnclv.tables import RAW_FORMATS, DataError, find_table

__all__ = ["find_source", "read_error", "register_file"]

_SURROGATE = re.compile("[\udc80-\udcff]")  # a byte that is not UTF-8, as surrogateescape decodes it


def find_source(directory: Path, stem: str) -> Path | None:
    """The one file (or folder of files) holding table ``stem`` in ``directory``; None when absent.

    A file of the table in another format (``transactions.json``) is refused by name, instead of
    being reported as no file at all.
    """
    found = find_table(directory, stem, RAW_FORMATS)
    if found is None:
        other = sorted(p.name for p in directory.glob(f"{stem}.*") if p.is_file())
        if other:  # e.g. transactions.json or transactions.xlsx: say so instead of "no file"
            raise DataError(
                f"{directory / other[0]}: unknown format for table '{stem}': "
                f"use {', '.join(stem + e for e in RAW_FORMATS)} (convert the file)"
            )
    return found


def _file_kind(path: Path) -> str | None:
    name = path.name.lower()
    if name.endswith(".parquet"):
        return "parquet"
    if name.endswith((".csv", ".csv.gz")):
        return "csv"
    if name.endswith(".tsv"):
        return "tsv"
    return None


def _folder_files(folder: Path) -> tuple[str, list[Path]]:
    """The format and the data files of a table folder; refuses a folder that mixes formats or holds
    files of an unknown format, so no file is left unread."""
    files: list[Path] = []
    for p in sorted(folder.rglob("*")):
        parts = p.relative_to(folder).parts
        if not p.is_file() or any(part.startswith(".") for part in parts):
            continue  # hidden files and folders (.crc, .DS_Store, .spark-staging)
        if _file_kind(p) is None and p.name.startswith("_"):
            continue  # markers of Spark and Hadoop writers (_SUCCESS, _metadata)
        files.append(p)
    unknown = [p for p in files if _file_kind(p) is None]
    if unknown:
        raise DataError(
            f"{unknown[0]}: unknown format in the folder of table '{folder.name}': a table folder holds "
            ".parquet or .csv files only; convert the file or move it out of the folder"
        )
    kinds = Counter(kind for p in files if (kind := _file_kind(p)) is not None)
    if len(kinds) > 1:
        counts = " and ".join(f"{n} .{k} file{'s' if n > 1 else ''}" for k, n in sorted(kinds.items()))
        raise DataError(
            f"{folder}: the folder mixes formats ({counts}): keep one format per table folder "
            "(convert the other files), so that no file is left unread"
        )
    if not files:
        raise DataError(f"{folder}: folder holds no .parquet or .csv files: add the table's files")
    return next(iter(kinds)), files


def _csv_header(path: Path, delim: str) -> list[str]:
    """The column names of a CSV file (its first record), read by the rules the data is read with."""
    opener: Any = gzip.open if path.name.lower().endswith(".gz") else open
    try:
        # undecodable bytes kept as surrogates: the text decoder reads ahead of the header, so a bad byte
        # on a later line must not be blamed on line 1; DuckDB reports that one with its line number
        with opener(path, "rt", encoding="utf-8-sig", errors="surrogateescape", newline="") as f:
            row = next(csv.reader(f, delimiter=delim, quotechar='"', doublequote=True, strict=True), None)
    except csv.Error:
        raise DataError(
            f"{path}: line 1 (the header) is not valid CSV: quote names that hold the delimiter "
            'or quotes ("a,b", doubled "" inside)'
        ) from None
    except (OSError, EOFError) as exc:
        raise DataError(f"{path}: unreadable ({exc.__class__.__name__}): check the file") from None
    if not row:
        raise DataError(f"{path}: file is empty: it needs a header row and data rows")
    if any(_SURROGATE.search(name) for name in row):
        raise DataError(f"{path}: line 1 (the header) is not UTF-8 text: save the file as UTF-8")
    # names trimmed, and blank ones numbered, as DuckDB's own CSV reader names them
    names = [name.strip() or f"column{i}" for i, name in enumerate(row)]
    check_names(names, str(path))
    return names


def _csv_sql(files: list[Path], delim: str) -> str:
    """SQL reading CSV files as text with explicit options: nothing is sniffed, so a quote first seen
    after the sniffer's sample still quotes, and every value stays text (ids keep their zeros)."""
    groups: dict[tuple[str, ...], list[Path]] = {}
    for f in files:
        groups.setdefault(tuple(_csv_header(f, delim)), []).append(f)
    parts = []
    for names, paths in groups.items():
        columns = "{" + ", ".join(f"{literal(n)}: 'VARCHAR'" for n in names) + "}"
        listed = "[" + ", ".join(literal(str(p)) for p in paths) + "]"
        parts.append(
            f"SELECT * FROM read_csv({listed}, header=true, auto_detect=false, columns={columns}, "
            f"delim={literal(delim)}, quote='\"', escape='\"', comment='', skip=0, strict_mode=true, "
            "null_padding=false, ignore_errors=false, hive_partitioning=false)"
        )
    # files with other headers are matched by column name, as union_by_name did
    return parts[0] if len(parts) == 1 else " UNION ALL BY NAME ".join(f"({q})" for q in parts)


def _parquet_sql(files: list[Path]) -> str:
    for f in files:
        try:
            names = pq.read_schema(f).names
        except Exception as exc:  # noqa: BLE001 - any reader failure: the file is not Parquet we can read
            why = (str(exc).strip().splitlines() or [exc.__class__.__name__])[0][:200]  # the footer: no rows
            raise DataError(f"{f}: unreadable ({why}): check the file") from None
        check_names(names, str(f))
    listed = "[" + ", ".join(literal(str(p)) for p in files) + "]"
    return f"SELECT * FROM read_parquet({listed}, union_by_name=true, hive_partitioning=false)"  # dt=... is a folder


def register_file(con: duckdb.DuckDBPyConnection, path: Path, view: str) -> RawTable:
    """Expose a raw file as a view with every column as read (CSV: all text, so ids keep zeros)."""
    if path.is_dir():
        kind, files = _folder_files(path)
    else:
        file_kind = _file_kind(path)
        if file_kind is None:
            raise DataError(f"{path}: unknown format: use .parquet, .csv, .csv.gz or .tsv")
        if path.stat().st_size == 0:
            raise DataError(f"{path}: file is empty: it needs a header row and data rows")
        kind, files = file_kind, [path]
    src = _parquet_sql(files) if kind == "parquet" else _csv_sql(files, "\t" if kind == "tsv" else ",")
    try:
        con.execute(f"CREATE OR REPLACE TEMP VIEW {view} AS {src}")
        con.execute(f"SELECT * FROM {view} LIMIT 0")
    except duckdb.Error as exc:
        raise read_error(str(path), exc) from None
    return RawTable(view=view, where=str(path))


def read_error(where: str, exc: duckdb.Error) -> DataError:
    """A reader's error as one line naming the file, the line and the fix, without the line's
    contents (DuckDB quotes the offending row, which is customer data)."""
    text = str(exc)
    file = re.search(r"^\s*file = (.+)$", text, re.MULTILINE)
    line = re.search(r"CSV Error on Line: (\d+)", text)
    at = f"{file.group(1).strip() if file else where}" + (f": line {line.group(1)}" if line else "")
    fields = re.search(r"Expected Number of Columns: (\d+) Found: (\d+)", text)
    if fields:
        what = (
            f"{fields.group(2)} fields where the header has {fields.group(1)}: quote a field that holds the "
            'delimiter ("1,5"), and give every row as many fields as the header'
        )
    elif "unicode" in text.lower() or "utf-8" in text.lower():
        what = "not UTF-8 text: save the file as UTF-8"
    elif "unterminated quote" in text:
        what = 'a quoted field is never closed: close it, and double quotes inside a quoted field ("")'
    elif line or "CSV" in text:
        what = (
            "not valid CSV (RFC 4180): quote fields that hold the delimiter, quotes or line breaks, and "
            "double quotes inside them"
        )
    else:
        what = f"unreadable ({exc.__class__.__name__})"
    return DataError(f"{at}: {what}. Nothing was validated: fix the file and run again")
