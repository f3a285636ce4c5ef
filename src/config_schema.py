"""Configuration as pydantic models, and the one formatter of their errors.

Every settings class is a frozen pydantic model with strict types (no ``"3"`` for 3, no 1.5 for a
whole number), its ranges as field constraints (``Field(ge=, le=)``) or validators, and unknown keys
refused. The classes callers build (``ScorerConfig``, ``RunConfig``, ...) are pydantic dataclasses
made by :func:`settings`, so the dataclasses API (``replace``, ``asdict``, ``fields``) keeps
working; the sections of a file that are only read (the tier config's tables) are
:class:`Section` models, which take nested tables as dicts.

:func:`format_errors` turns a validation error into one line per problem, in the one form of a
configuration error (:func:`message`): ``<key>: <rule> (got <value>); fix: <fix>``. The key is
named as the user writes it (:class:`Source`: ``[scorer] gbm_rounds``, ``tier config key
'score.horizon_days'``, ``CHURNCLV_WORKERS``); the rule comes from the constraint or the
validator; the fix is a field's :class:`Fix`, or the range and an example built from the default.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import tomllib
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any, TypeVar, dataclass_transform

from annotated_types import Ge, Gt, Le, Lt
from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, ValidationError
from pydantic.dataclasses import dataclass as pydantic_dataclass
from pydantic.fields import FieldInfo
from pydantic_core import PydanticCustomError, PydanticUndefined

from churnclv.config import ConfigError

__all__ = [
    "RUN_SECTIONS",
    "Array",
    "Fix",
    "Section",
    "Source",
    "check_table",
    "environment",
    "format_errors",
    "message",
    "one_of",
    "read_run_config",
    "rule_error",
    "section",
    "settings",
]

RUN_SECTIONS = (
    "train",
    "scorer",
    "tiers",
    "features",
    "monitor",
    "weekly",
    "campaigns",
)  # the sections of a training configuration file

_T = TypeVar("_T")
_STRICT = ConfigDict(strict=True, extra="forbid")
_NOTHING: Any = object()  # no value to show: a missing key, a rule across keys


def message(key: str, rule: str, fix: str, got: Any = _NOTHING) -> str:
    """The one form of a configuration error: ``<key>: <rule> (got <value>); fix: <fix>``."""
    got_text = "" if got is _NOTHING else f" (got {got!r:.60})"
    return f"{key}: {rule}{got_text}; fix: {fix}"


@dataclasses.dataclass(frozen=True)
class Fix:
    """The fix a message suggests when a field breaks its rule (``Annotated`` metadata)."""

    text: str


def rule_error(rule: str, fix: str, *, key: Sequence[str | int] = (), got: Any = _NOTHING) -> PydanticCustomError:
    """The error a validator raises for a rule of its own; ``key`` extends the location (a rule
    across keys, raised by the model, names the key it blames), ``got`` is the value shown."""
    context: dict[str, Any] = {"fix": fix, "key": tuple(key)}
    if got is not _NOTHING:
        context["got"] = got
    return PydanticCustomError("config_rule", rule, context)  # pydantic fills in only {fix}, {key}, {got}


def one_of(choices: Sequence[str]) -> AfterValidator:
    """A validator that accepts only ``choices`` (``Annotated[str, one_of(SOURCES)]``)."""

    def check(value: str) -> str:
        if value not in choices:
            raise rule_error(f"must be one of {list(choices)}", "", got=value)  # fix: the default
        return value

    return AfterValidator(check)


def _as_tuple(value: Any) -> Any:
    return tuple(value) if isinstance(value, list) else value


#: A list in TOML or JSON, a tuple in Python: ``Array[int]``.
Array = Annotated[tuple[_T, ...], BeforeValidator(_as_tuple)]


class Section(BaseModel):
    """A table of a configuration file that is only read: strict, frozen, unknown keys refused."""

    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    if isinstance(value, Mapping):
        return "{ " + ", ".join(f"{k} = {_toml(v)}" for k, v in value.items()) + " }"
    return _number(value) if isinstance(value, (int, float)) else str(value)


def _env(value: Any) -> str:
    if isinstance(value, bool):
        return "1" if value else "0"
    return str(value)


@dataclasses.dataclass(frozen=True)
class Source:
    """Where settings are written, for the messages: how a key is named and how a value is set.

    ``label`` names a key (``{key}`` is its dotted path, list items as ``[i]``); ``names`` maps a
    field to what the user writes instead (an environment variable); ``assign`` and ``render``
    write an example.
    """

    label: str
    names: Mapping[str, str] = dataclasses.field(default_factory=dict)
    assign: str = "{key} = {value}"
    render: Callable[[Any], str] = _toml

    def key(self, loc: Sequence[str | int]) -> str:
        """The key at ``loc`` as the user writes it: ``score.weights.clv``, ``tiers[1].name``."""
        out = ""
        for i, part in enumerate(loc):
            if isinstance(part, int):
                out += f"[{part}]"
            else:
                out += ("." if out else "") + (self.names.get(part, part) if i == 0 else part)
        return out

    def example(self, name: str, value: Any) -> str:
        """``name`` set to ``value``, as the user would write it: ``n_folds = 3``."""
        return self.assign.format(key=self.names.get(name, name), value=self.render(value))


def section(name: str) -> Source:
    """The keys of a TOML section: ``[scorer] gbm_rounds``."""
    return Source(label=f"[{name}] {{key}}")


def environment(names: Mapping[str, str]) -> Source:
    """Environment variables: ``names`` maps each field to its variable (``CHURNCLV_WORKERS``)."""
    return Source(label="{key}", names=names, assign="{key}={value}", render=_env)


@dataclass_transform(frozen_default=True, field_specifiers=(dataclasses.field, Field))
def settings(where: Source | str, *, error: type[ValueError] = ConfigError) -> Callable[[type[_T]], type[_T]]:
    """Make ``cls`` a frozen, strict pydantic dataclass that refuses unknown keys; a bad value raises
    ``error`` (a :class:`~churnclv.config.ConfigError` by default) with :func:`format_errors`'
    message, keys named as in ``where`` (a :class:`Source` or a section name)."""
    source = section(where) if isinstance(where, str) else where

    def build(cls: type[_T]) -> type[_T]:
        model: Any = pydantic_dataclass(frozen=True, config=_STRICT)(cls)
        validate = model.__init__

        @functools.wraps(validate)
        def init(self: Any, *args: Any, **kwargs: Any) -> None:
            try:
                validate(self, *args, **kwargs)
            except ValidationError as exc:
                raise error(format_errors(exc, model, source)) from None

        model.__init__ = init
        return typing.cast(type[_T], model)

    return build


def check_table(raw: Any, source: Source) -> dict[str, Any]:
    """``raw`` when it is a table (a dict) of settings, else the error saying so."""
    if not isinstance(raw, dict):
        raise ConfigError(
            message(source.label.format(key="").strip(), "must be a table of settings", "write key = value lines", raw)
        )
    return raw


# pydantic's error types -> what to write instead
_KINDS = {
    "int_type": "write a whole number",
    "int_from_float": "write a whole number",
    "int_parsing": "write a whole number",
    "float_type": "write a number",
    "float_parsing": "write a number",
    "finite_number": "write a finite number",
    "bool_type": "write true or false",
    "bool_parsing": "write true or false",
    "string_type": "write a quoted string",
    "tuple_type": "write a list",
    "list_type": "write a list",
    "dict_type": "write a table",
    "model_type": "write a table",
}
_RULES = {"model_type": "must be a table"}  # pydantic's names the internal class
_BOUNDS = {"greater_than": ">", "greater_than_equal": ">=", "less_than": "<", "less_than_equal": "<="}


def format_errors(exc: ValidationError, model: type, source: Source) -> str:
    """One line per problem of ``exc`` (a validation of ``model``), in the form of :func:`message`,
    joined by ``"; "``: the key as ``source`` names it, the rule, the value given and the fix."""
    return "; ".join(_describe(err, model, source) for err in exc.errors(include_url=False))


def _describe(err: Any, model: type, source: Source) -> str:
    ctx = err.get("ctx") or {}
    kind = err["type"]
    loc = (*err["loc"], *ctx.get("key", ()))
    known, info = _field(model, loc)
    name = str(loc[-1]) if loc else ""
    hint = next((m.text for m in (info.metadata if info else ()) if isinstance(m, Fix)), None)
    default = _default(info)
    example = "" if default is _NOTHING else f"e.g. {source.example(name, default)}"
    got = err["input"]
    if kind == "config_rule":
        rule, fix = err["msg"], ctx["fix"] or hint or example or "see the README's configuration"
        got = ctx.get("got", _NOTHING if ctx["key"] else got)
    elif kind in _BOUNDS:
        bound = next(v for k, v in ctx.items() if k in ("gt", "ge", "lt", "le"))
        rule = f"must be {_BOUNDS[kind]} {_number(bound)}"
        fix = hint or ", ".join(filter(None, [f"a value {_range(info)}", example]))
    elif kind in ("extra_forbidden", "unexpected_keyword_argument"):
        rule, fix = "is not a known key", f"check the spelling; the known keys are {list(known or ())}"
    elif kind in ("missing", "missing_argument"):
        rule, fix, got = "is required", hint or example or f"add {name}", _NOTHING
    else:
        rule = _RULES.get(kind) or err["msg"][:1].lower() + err["msg"][1:]
        fix = hint or ", ".join(filter(None, [_KINDS.get(kind, ""), example])) or "see the README's configuration"
    return message(source.label.format(key=source.key(loc)), rule, fix, got)


def _field(model: Any, loc: Sequence[str | int]) -> tuple[Mapping[str, FieldInfo] | None, FieldInfo | None]:
    """The fields of the model that holds ``loc``'s last key, and that key's field (None: not a field)."""
    tp, fields, info = model, None, None
    for part in loc:
        container, args = typing.get_origin(_bare(tp)), typing.get_args(_bare(tp))
        if isinstance(part, int) or container is dict:
            # an item of a tuple (tuple[X, ...]) or a value of a table (dict[str, X]): X's rules and fix
            info = FieldInfo.from_annotation(args[-1 if container is dict else 0] if args else Any)
            tp = info.annotation
            continue
        fields = getattr(_bare(tp), "__pydantic_fields__", None)
        if fields is None or part not in fields:
            return fields, None
        info = fields[part]
        tp = info.annotation
    return fields, info


def _bare(tp: Any) -> Any:
    """``tp`` without ``Annotated`` and ``| None``."""
    while True:
        origin = typing.get_origin(tp)
        if origin is Annotated:
            tp = typing.get_args(tp)[0]
        elif origin in (typing.Union, types.UnionType):
            tp = next(a for a in typing.get_args(tp) if a is not type(None))
        else:
            return tp


def _default(info: FieldInfo | None) -> Any:
    if info is None or (info.default is PydanticUndefined and info.default_factory is None):
        return _NOTHING
    value = info.get_default(call_default_factory=True, validated_data={})
    return _NOTHING if value is None else value


def _range(info: FieldInfo | None) -> str:
    meta = info.metadata if info else []
    low = next(((m.ge, "[") for m in meta if isinstance(m, Ge)), None) or next(
        ((m.gt, "(") for m in meta if isinstance(m, Gt)), None
    )
    high = next(((m.le, "]") for m in meta if isinstance(m, Le)), None) or next(
        ((m.lt, ")") for m in meta if isinstance(m, Lt)), None
    )
    if low and high:
        if low[1] == "[" and high[1] == "]":
            return f"between {_number(low[0])} and {_number(high[0])}"
        return f"in {low[1]}{_number(low[0])}, {_number(high[0])}{high[1]}"
    if low:
        return f"{'>=' if low[1] == '[' else '>'} {_number(low[0])}"
    if high:
        return f"{'<=' if high[1] == ']' else '<'} {_number(high[0])}"
    return "in range"


def _number(x: Any) -> str:
    return str(int(x)) if isinstance(x, float) and x.is_integer() else str(x)


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
            f"config {path}: unknown sections {sorted(unknown)}; use " + ", ".join(f"[{name}]" for name in RUN_SECTIONS)
        )
    return raw
