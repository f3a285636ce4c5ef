"""Typed checks of configuration sections: the types come from the settings dataclasses, pydantic
checks them strictly (no ``"3"`` for 3, no 1.5 for a whole number) and one formatter turns its
errors into "key, rule, fix" lines.

The dataclasses keep their own ``__post_init__`` rules (ranges, choices); this module only makes sure
each value has the right type first, so those rules never meet a string or a float by surprise.
"""

from __future__ import annotations

import dataclasses
import tomllib
import typing
from pathlib import Path
from typing import Any

from pydantic import ConfigDict, ValidationError, create_model

from churnclv.config import ConfigError

__all__ = ["RUN_SECTIONS", "format_errors", "parse_section", "read_run_config"]

RUN_SECTIONS = ("train", "scorer", "tiers", "features")  # the sections of a training configuration file

_FIXES = {
    "int_type": "write a whole number without quotes, e.g. 3",
    "int_from_float": "write a whole number, e.g. 3",
    "float_type": "write a number without quotes, e.g. 0.1",
    "bool_type": "write true or false without quotes",
    "string_type": "write a quoted string",
    "tuple_type": 'write a list, e.g. ["a", "b"]',
    "dict_type": "write a table, e.g. { key = 1.0 }",
    "extra_forbidden": "remove it, or check its spelling",
}


def format_errors(section: str, exc: ValidationError) -> str:
    """One line per error: ``[section] key: rule (got value); fix``."""
    lines = []
    for err in exc.errors():
        key = ".".join(str(p) for p in err["loc"]) or "(section)"
        got = "" if err["type"] == "missing" else f" (got {err.get('input')!r:.60})"
        fix = _FIXES.get(err["type"], "see the README's configuration section")
        lines.append(f"[{section}] {key}: {err['msg'].lower()}{got}; {fix}")
    return "; ".join(lines)


def parse_section(cls: type, raw: Any, section: str) -> dict[str, Any]:
    """Check ``raw`` (a parsed TOML table) against the fields of the dataclass ``cls``.

    Returns the keyword arguments for ``cls`` (TOML lists given to tuple fields become tuples).
    Raises :class:`~churnclv.config.ConfigError` naming the key, the rule and the fix; unknown keys
    are refused.
    """
    if not isinstance(raw, dict):
        raise ConfigError(f"[{section}] must be a table of settings (got {type(raw).__name__})")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    values = {}
    for name, value in raw.items():
        hint = hints.get(name)
        if isinstance(value, list) and hint is not None and typing.get_origin(hint) is tuple:
            value = tuple(value)
        values[name] = value
    spec: dict[str, Any] = {name: (hints[name], ...) for name in fields}
    model = create_model(f"{cls.__name__}Check", __config__=ConfigDict(strict=True, extra="forbid"), **spec)
    try:
        # the given keys are checked against the types; the rest keep the dataclass defaults
        checked = model.model_validate({**_defaults(cls), **values})
    except ValidationError as exc:
        raise ConfigError(format_errors(section, exc)) from None
    return {name: getattr(checked, name) for name in values}


def _defaults(cls: type) -> dict[str, Any]:
    out = {}
    for f in dataclasses.fields(cls):
        if f.default is not dataclasses.MISSING:
            out[f.name] = f.default
        elif f.default_factory is not dataclasses.MISSING:
            out[f.name] = f.default_factory()
    return out


def read_run_config(path: Path | str | None) -> dict[str, Any]:
    """The sections of a training configuration file (``{}`` for None); a file that is not UTF-8
    TOML or holds an unknown section is a :class:`~churnclv.config.ConfigError` saying so."""
    if path is None:
        return {}
    try:
        raw = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"config {path}: {exc}: fix the file (TOML, UTF-8)") from None
    unknown = set(raw) - set(RUN_SECTIONS)
    if unknown:
        raise ConfigError(
            f"config {path}: unknown sections {sorted(unknown)}; use [train], [scorer], [tiers], [features]"
        )
    return raw
