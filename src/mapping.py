"""The mapping of a user's own tables and columns onto the canonical contract (TOML).

Nothing is read at import time; call :func:`load_mapping` explicitly. TOML form (every key
optional; unmapped names are taken as canonical)::

    [transactions]
    table = "orders"              # file stem (orders.csv, orders.parquet) or SQL table
    columns = { customer_id = "cust_no", ts = "ordered_at", amount = "total" }

    [events]
    table = "web_events"
"""

from __future__ import annotations

import tomllib
from dataclasses import field
from pathlib import Path
from typing import Annotated, Any

from pydantic import AfterValidator, Field, TypeAdapter, ValidationError

from churnclv.config import ConfigError
from churnclv.config_schema import Section, Source, format_errors, rule_error, settings
from churnclv.schema import TABLES

__all__ = ["Mapping", "TableMapping", "load_mapping", "parse_mapping"]


def _table_name(name: str) -> str:
    """A plain table name: a file stem in the data folder or a SQL table, never a path (``../x``,
    ``/etc/x``, ``a/b``), so a mapping cannot read outside ``--data``."""
    if name.strip() in ("", ".", "..") or any(c in name for c in "/\\") or any(ord(c) < 32 for c in name):
        raise rule_error(
            "is not a table name: names are confined to the --data source (no path separators, no '..')",
            "put the file in the data folder and give its name without the extension",
            got=name,
        )
    return name


TableName = Annotated[str, AfterValidator(_table_name)]


@settings("mapping")
class TableMapping:
    """Where one canonical table comes from: a source table (file stem or SQL table) and columns."""

    source: TableName
    # canonical column -> the user's column name
    columns: dict[str, str] = field(default_factory=dict)

    def source_column(self, canonical: str) -> str:
        """The user's name of the ``canonical`` column (the canonical name when unmapped)."""
        return self.columns.get(canonical, canonical)


@settings("mapping")
class Mapping:
    """Maps a user's own table and column names onto the canonical contract (see the module)."""

    tables: dict[str, TableMapping] = field(default_factory=dict)

    def table(self, name: str) -> TableMapping:
        """Where the canonical table ``name`` comes from (a table of that name when unmapped)."""
        return self.tables.get(name, TableMapping(source=name))


class _TableSection(Section):
    """One ``[<table>]`` section of a mapping file."""

    table: TableName | None = None  # None: the canonical name
    columns: dict[str, str] = Field(default_factory=dict)


def _known_tables(sections: dict[str, _TableSection]) -> dict[str, _TableSection]:
    for name, body in sections.items():
        spec = TABLES.get(name)
        if spec is None:
            raise rule_error(
                f"is an unknown table; the canonical tables are {sorted(TABLES)}", "rename the section", key=(name,)
            )
        bad = sorted(set(body.columns) - set(spec.columns))
        if bad and not spec.keep_extra:
            raise rule_error(
                f"maps unknown canonical columns {bad}",
                f"map the canonical columns of {name}: {list(spec.columns)}",
                key=(name, "columns"),
            )
    return sections


_Sections = dict[str, _TableSection]
_FILE = TypeAdapter(Annotated[_Sections, AfterValidator(_known_tables)])


def load_mapping(path: Path | str | None) -> Mapping:
    """Read a TOML mapping file; ``None`` gives the identity mapping."""
    if path is None:
        return Mapping()
    path = Path(path)
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"mapping file {path} does not exist: pass an existing TOML file") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"mapping file {path} is not UTF-8 text (byte {exc.start}): save it as UTF-8") from None
    except OSError as exc:
        raise ConfigError(
            f"mapping file {path} cannot be read ({exc.strerror or exc.__class__.__name__}): pass a readable TOML file"
        ) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"mapping file {path} is not valid TOML ({exc}): fix the syntax") from None
    return parse_mapping(raw, origin=str(path))


def parse_mapping(raw: dict[str, Any], *, origin: str = "mapping") -> Mapping:
    """Validate a mapping given as a dict (the parsed TOML); errors name ``origin`` and the key."""
    try:
        sections = _FILE.validate_python(raw)
    except ValidationError as exc:
        raise ConfigError(format_errors(exc, _Sections, Source(label=f"{origin}: {{key}}"))) from None
    return Mapping(
        tables={
            name: TableMapping(source=body.table or name, columns=dict(body.columns)) for name, body in sections.items()
        }
    )
