"""A raw table as registered in DuckDB, the SQL quoting of a literal, and the rules on column names."""

from __future__ import annotations

from dataclasses import dataclass

from churnclv.tables import DataError

__all__ = ["RawTable", "check_names", "literal", "other_separator"]

_OTHER_SEPARATORS = {";": "';'", "\t": "tab", "|": "'|'"}  # what an export uses instead of commas, as said


@dataclass(frozen=True)
class RawTable:
    """A raw table registered as a DuckDB view: where it came from (for messages) and which of its
    text columns held floating-point numbers in the source (SQL tables and frames are read as text)."""

    view: str
    where: str
    float_columns: frozenset[str] = frozenset()


def literal(text: str) -> str:
    """``text`` as a SQL string literal (single quotes doubled)."""
    return "'" + text.replace("'", "''") + "'"


def check_names(names: list[str], where: str) -> None:
    """Refuse a table with two columns of the same name (ignoring case, as SQL and DuckDB do): which
    one is meant would be a guess."""
    seen: dict[str, list[str]] = {}
    for name in names:
        seen.setdefault(name.lower(), []).append(name)
    for same in seen.values():
        if len(same) > 1:
            what = (
                f"column '{same[0]}' appears {len(same)} times"
                if len(set(same)) == 1
                else f"columns {sorted(set(same))} differ only in case"
            )
            raise DataError(f"{where}: {what}: rename or drop the copies, so that each column name has one meaning")


def other_separator(names: list[str]) -> str | None:
    """The separator a header read comma-separated as one column holds (``';'``, ``tab``, ``'|'``): the file
    is not comma-separated. None when the header has several columns or its one name holds none of them."""
    if len(names) != 1:
        return None
    return next((said for sep, said in _OTHER_SEPARATORS.items() if sep in names[0]), None)
