"""Typed configuration of the data source: the mapping of your tables and columns (TOML).

Nothing is read at import time; call :func:`load_mapping` explicitly. The other settings live with
what they configure: ``[train]`` / ``[scorer]`` / ``[tiers]`` in the training config
(:class:`churnclv.training.config.RunConfig`), the HTTP service's environment variables in
:mod:`churnclv.serving.settings`, the CLI options of each command.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from churnclv.schema import TABLES


class ConfigError(ValueError):
    """A configuration file or value breaks a rule; the message names the key and the fix."""


def check_table_name(name: str, where: str = "mapping") -> str:
    """``name`` when it is a plain table name: a file stem in the data folder or a SQL table, never a
    path (``../x``, ``/etc/x``, ``a/b``), so a mapping cannot read outside ``--data``."""
    if (
        not isinstance(name, str)
        or name.strip() in ("", ".", "..")
        or any(c in name for c in "/\\")
        or any(ord(c) < 32 for c in name)
    ):
        raise ConfigError(
            f"{where}: table = {name!r} is not a table name: names are confined to the --data source (no "
            "path separators, no '..'); put the file in the data folder and give its name without the extension"
        )
    return name


@dataclass(frozen=True)
class TableMapping:
    """Where one canonical table comes from: a source table (file stem or SQL table) and columns."""

    source: str
    # canonical column -> the user's column name
    columns: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        check_table_name(self.source, "TableMapping.source")

    def source_column(self, canonical: str) -> str:
        return self.columns.get(canonical, canonical)


@dataclass(frozen=True)
class Mapping:
    """Maps a user's own table and column names onto the canonical contract.

    TOML form (every key optional; unmapped names are taken as canonical)::

        [transactions]
        table = "orders"              # file stem (orders.csv, orders.parquet) or SQL table
        columns = { customer_id = "cust_no", ts = "ordered_at", amount = "total" }

        [events]
        table = "web_events"
    """

    tables: dict[str, TableMapping] = field(default_factory=dict)

    def table(self, name: str) -> TableMapping:
        return self.tables.get(name, TableMapping(source=name))


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
    """Validate a mapping given as a dict (the parsed TOML)."""
    tables: dict[str, TableMapping] = {}
    for name, body in raw.items():
        if name not in TABLES:
            raise ConfigError(
                f"{origin}: unknown table [{name}]; the canonical tables are {sorted(TABLES)}: rename the section"
            )
        if not isinstance(body, dict):
            raise ConfigError(f"{origin}: [{name}] must be a table with 'table' and/or 'columns'")
        unknown_keys = set(body) - {"table", "columns"}
        if unknown_keys:
            raise ConfigError(
                f"{origin}: [{name}] has unknown keys {sorted(unknown_keys)}; allowed are 'table' and 'columns'"
            )
        columns = body.get("columns", {})
        if not isinstance(columns, dict) or not all(isinstance(v, str) for v in columns.values()):
            raise ConfigError(f"{origin}: [{name}].columns must map canonical names to your column names (strings)")
        spec = TABLES[name]
        bad = sorted(set(columns) - set(spec.columns))
        if bad and not spec.keep_extra:
            raise ConfigError(
                f"{origin}: [{name}].columns maps unknown canonical columns {bad}; "
                f"the canonical columns of {name} are {list(spec.columns)}"
            )
        table = check_table_name(body.get("table", name), f"{origin}: [{name}]")
        tables[name] = TableMapping(source=table, columns=dict(columns))
    return Mapping(tables=tables)
