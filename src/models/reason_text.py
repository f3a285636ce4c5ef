"""Features in plain words: phrase templates, their alternatives and the words for numbers.

A phrase is a list of alternatives (:class:`PhraseText`): an ordinary :meth:`str.format` template
and conditions on the feature's value; the first that applies and formats wins (a template field
that is missing fails the alternative). Besides the usual format specs, numbers take
``{x:days}`` ("1 day", "40 days"), ``{x:ago}`` ("today", "yesterday", "40 days ago"), ``{x:num}``
(one decimal at most: "3", "2.5"), ``{x:money}`` and ``{x:gap}`` (a ratio to the usual gap in
words: "3 times their usual gap"); text values read with spaces for underscores. The phrases of
every feature are in :mod:`churnclv.models.reason_book`.
"""

from __future__ import annotations

import math
import re
import string
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

__all__ = [
    "Phrase",
    "PhraseText",
    "as_number",
    "generic_phrase",
    "is_missing",
    "number_words",
    "own_fields",
    "render",
    "row_fields",
    "value_key",
]


def is_missing(value: Any) -> bool:
    """None, NA, NaT or a NaN float."""
    kind = type(value)
    if kind is float or kind is np.float64:
        return bool(value != value)  # NaN; the common case first: a reason per row costs ~10 of these
    if value is None or value is pd.NA or value is pd.NaT:
        return True
    if isinstance(value, (float, np.floating)):
        return bool(math.isnan(value))
    return False


def as_number(value: Any) -> float | None:
    """The value as a float, or None when it is missing or not a number."""
    kind = type(value)
    if kind is float or kind is np.float64 or kind is _Number:
        return None if value != value else float(value)
    if isinstance(value, (bool, np.bool_)) or is_missing(value):
        return None
    if isinstance(value, (int, float, np.integer, np.floating)):
        return float(value)
    return None


def _num(x: float) -> str:
    if abs(x) >= 10:
        return f"{x:,.0f}"
    return f"{x:.1f}".removesuffix(".0")


def _days(x: float) -> str:
    n = round(x)
    return "1 day" if n == 1 else f"{n:,} days"


def _ago(x: float) -> str:
    n = round(x)
    return "today" if n == 0 else "yesterday" if n == 1 else f"{n:,} days ago"


def _money(x: float) -> str:
    return f"{x:,.0f}" if abs(x) >= 100 else f"{x:,.2f}".removesuffix(".00")


def _gap(x: float) -> str:
    if x >= 1.5:
        return f"{_num(x)} times their usual gap"
    if x >= 1.15:
        return "a little over their usual gap"
    return "about their usual gap" if x >= 0.85 else "within their usual gap"


_SPECS = {"num": _num, "days": _days, "ago": _ago, "money": _money, "gap": _gap}


class _Number(float):
    """A number in a template: the usual format specs plus ``days``, ``ago``, ``num``, ``money``, ``gap``."""

    __slots__ = ()

    def __format__(self, spec: str) -> str:
        words = _SPECS.get(spec)
        return words(float(self)) if words is not None else float.__format__(self, spec)


def _template_value(value: Any) -> Any:
    """A value as templates read it: a :class:`_Number`, text with spaces for underscores, or None
    when it is missing."""
    kind = type(value)
    if kind is float:
        return None if value != value else _Number(value)
    if kind is int:
        return _Number(value)
    if kind is str:
        return value.replace("_", " ")
    if is_missing(value):
        return None
    x = as_number(value)
    return value if x is None else _Number(x)


_DERIVED = {
    "dir": lambda x: "up" if x > 1 else ("down" if x < 1 else "unchanged"),
    "pct": lambda x: abs(x - 1.0) * 100.0,
    "complement": lambda x: 1.0 - x,
}


class _Fields(Mapping[str, Any]):
    """Template fields of one phrase: ``value``, the feature's own fields, fields derived from the
    value, then the row's columns; a missing value raises (the alternative does not format)."""

    __slots__ = ("_columns", "_i", "_own", "_value", "_x")

    def __init__(
        self, own: Mapping[str, Any], value: Any, x: float | None, columns: Mapping[str, np.ndarray], i: int | None
    ) -> None:
        # value: as templates read it (None when missing); x: as a number (None when not one)
        self._own, self._value, self._x, self._columns, self._i = own, value, x, columns, i

    def __getitem__(self, key: str) -> Any:
        if key == "value":
            if self._value is None:
                raise KeyError(key)
            return self._value
        if key in self._own:
            value = self._own[key]
        elif key in _DERIVED:
            if self._x is None:
                raise KeyError(key)
            value = _DERIVED[key](self._x)
        elif self._i is not None and key in self._columns:
            value = self._columns[key][self._i]
        else:
            raise KeyError(key)
        shown = _template_value(value)
        if shown is None:
            raise KeyError(key)
        return shown

    def __iter__(self) -> Iterator[str]:  # pragma: no cover - format_map only needs __getitem__
        return iter(self._own)

    def __len__(self) -> int:  # pragma: no cover
        return len(self._own)


@dataclass(frozen=True)
class PhraseText:
    """One alternative of a phrase: a template and the conditions on the value under which it applies.

    ``low``/``high`` bound the value (inclusive); ``missing=True`` applies only to a missing value,
    ``missing=False`` only to a present one, ``None`` to both.
    """

    text: str
    low: float | None = None
    high: float | None = None
    missing: bool | None = None

    def applies(self, value: Any) -> bool:
        """Whether the alternative holds for ``value`` (missing or not, and within the bounds)."""
        missing = is_missing(value)
        return self.holds(missing, None if missing else as_number(value))

    def holds(self, missing: bool, x: float | None) -> bool:
        """:meth:`applies`, for a value known to be missing or not and read as a number ``x``."""
        if self.missing is not None and self.missing != missing:
            return False
        if self.low is None and self.high is None:
            return True
        if x is None:
            return False
        return (self.low is None or x >= self.low) and (self.high is None or x <= self.high)


@dataclass(frozen=True)
class Phrase:
    """Templates for the features whose whole name matches the regular expression ``feature``."""

    feature: str
    texts: tuple[PhraseText, ...]


def _plural(words: str) -> str:
    return words + "es" if words.endswith(("s", "x", "ch", "sh")) else words + "s"


def own_fields(feature: str, groups: Mapping[str, str | None]) -> dict[str, Any]:
    """A feature's own template fields (the same for every row): the pattern's groups,
    ``event_one`` / ``event_many`` and ``attr`` in words."""
    own: dict[str, Any] = {k: v for k, v in groups.items() if v is not None}
    own["feature"] = feature
    event = groups.get("event")
    if event:
        one = event.replace("_", " ")
        own["event_one"], own["event_many"] = one, _plural(one)
    attr = groups.get("attr")
    if attr:
        own["attr"] = attr.replace("_", " ")
    return own


def render(
    texts: Sequence[PhraseText],
    value: Any,
    own: Mapping[str, Any],
    columns: Mapping[str, np.ndarray],
    i: int | None,
) -> str | None:
    """The first alternative that applies to ``value`` and formats; None if none does.

    Template fields: ``value``, the feature's :func:`own_fields`, ``dir`` / ``pct`` of a ratio and
    ``complement`` (1 - value), then the columns of row ``i``.
    """
    shown = _template_value(value)
    missing = shown is None
    x = float(shown) if type(shown) is _Number else None
    values = _Fields(own, shown, x, columns, i)
    for alt in texts:
        if not alt.holds(missing, x):
            continue
        try:
            return alt.text.format_map(values)
        except (KeyError, ValueError, TypeError, IndexError, AttributeError):
            continue  # a field is missing or of the wrong kind: try the next alternative
    return None


def row_fields(texts: Sequence[PhraseText], own: Mapping[str, Any]) -> dict[str, frozenset[str] | None] | None:
    """The fields of ``texts`` that :func:`render` reads from the row's columns (not ``value``, not
    one of ``own``, not derived from the value), each with the word specs it is shown with
    (``{x:gap}``: its words are all a number shows of it) or None (shown some other way). None for
    the whole when a format spec holds a field of its own (``{value:{width}}``), which this does not follow."""
    specs: dict[str, set[str] | None] = {}
    for alt in texts:
        for _, field, spec, conversion in string.Formatter().parse(alt.text):
            if field is None:
                continue
            if spec and "{" in spec:
                return None
            root = re.split(r"[.\[]", field, maxsplit=1)[0]
            if root == "value" or root in own or root in _DERIVED:
                continue
            seen = specs.setdefault(root, set())
            if field != root or conversion is not None or spec not in _SPECS or seen is None:
                specs[root] = None
            else:
                seen.add(spec)
    return {name: None if s is None else frozenset(s) for name, s in specs.items()}


def number_words(x: float, spec: str) -> str:
    """A number in a template with one of the word specs (``days``, ``ago``, ``num``, ``money``, ``gap``)."""
    return _SPECS[spec](float(x))


_MISSING = ("missing",)  # every missing value reads the same in a template
_ZERO, _MINUS_ZERO = ("zero",), ("minus zero",)


def value_key(value: Any) -> Any:
    """A hashable key that equal renderings share: missing values one key, others their type and
    value (``-0.0`` apart from ``0.0``: ``{x:num}`` shows "-0")."""
    if is_missing(value):
        return _MISSING
    if value == 0 and isinstance(value, (float, np.floating)):
        return _ZERO if math.copysign(1.0, value) > 0 else _MINUS_ZERO
    return (type(value), value)


def generic_phrase(feature: str, value: Any) -> str:
    """A feature the book does not know (a column of one's own), in words: ``"widget score (30 days): 2.5"``."""
    name = re.sub(r"_(\d+)d$", r" (\1 days)", feature).removeprefix("attr_").replace("_", " ").strip()
    if is_missing(value):
        return f"{name} not recorded"
    x = as_number(value)
    if x is None:
        return f"{name}: {str(value).replace('_', ' ')}"
    return f"{name}: {_num(x)}"
