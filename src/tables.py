"""Where a canonical table is in a folder: ``<name>.<format>`` or a folder ``<name>/`` of files.

One locator for every reader of a folder of tables: ingestion (raw sources, which may also be
gzipped CSV or TSV), the feature engine and the batch job (clean tables, Parquet or CSV). A table
found twice (``transactions.parquet`` beside ``transactions.csv``) is refused: which one is meant
would be a guess.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from churnclv.errors import ChurnclvError
from churnclv.schema import TABLES

__all__ = ["CLEAN_FORMATS", "RAW_FORMATS", "DataError", "find_table", "table_paths"]

# the file formats of a table in a folder of clean tables (a folder <name>/ holds files of these too)
CLEAN_FORMATS: tuple[str, ...] = (".parquet", ".csv")
# the file formats ingestion reads from a folder of raw sources
RAW_FORMATS: tuple[str, ...] = (".parquet", ".csv", ".csv.gz", ".tsv")


class DataError(ChurnclvError, ValueError):
    """A whole-file problem (missing column, empty or unreadable file): names file, column, fix.

    Its message never holds customer data (row contents, ids): only the file, the line number, the
    column, the rule and the fix.
    """


def find_table(folder: Path, name: str, formats: Sequence[str] = CLEAN_FORMATS) -> Path | None:
    """The one file (``<name><format>``) or folder (``<name>/``) holding table ``name`` in ``folder``.

    Parameters
    ----------
    folder
        The folder of tables.
    name
        The table's file name without its format: a canonical name, or a mapped one for raw sources.
    formats
        The file formats looked for, in order (:data:`CLEAN_FORMATS` or :data:`RAW_FORMATS`).

    Returns
    -------
    Path or None
        None when the folder holds no such file or folder.

    Raises
    ------
    DataError
        When ``name`` is not a plain file name, or the table is found more than once.
    """
    # the mapping refuses names with path separators; checked again so nothing outside is read
    if name in ("", ".", "..") or any(c in name for c in "/\\\0"):
        raise DataError(f"table name {name!r} is not a plain name: tables are confined to the data folder")
    found = [folder / f"{name}{ext}" for ext in formats if (folder / f"{name}{ext}").is_file()]
    if (folder / name).is_dir():
        found.append(folder / name)
    if len(found) > 1:
        names = ", ".join(p.name for p in found)
        raise DataError(f"{folder}: table '{name}' is found more than once ({names}): keep exactly one")
    return found[0] if found else None


def table_paths(folder: Path) -> dict[str, Path]:
    """Every canonical table of a folder of clean tables, name -> file or folder (absent ones left out)."""
    found = {name: find_table(folder, name) for name in TABLES}
    return {name: path for name, path in found.items() if path is not None}
