"""Reasons in plain words: the ``[reasons]`` section of the tier config and the phrasing.

Reasons come from two sources, in this order:

1. the model's contributions per customer (e.g. ``GBMChurnClassifier.explain``: ``(feature,
   contribution[, value])`` tuples, largest first), each turned into a phrase;
2. RFM facts (``[[reasons.facts]]``): a feature column whose value lies in a configured range
   ("no purchase for 120 days, 3.0x the usual gap") fills the slots the contributions leave free.

A phrase template is an ordinary :meth:`str.format` template. The first alternative whose conditions
hold and that formats without a missing field wins; a feature no phrase matches gets a generic
readable phrase (``"n categories (30 days): 3"``). Equal phrases are given once. The section is
validated when the config is loaded, so a bad phrase fails then, not in the middle of a weekly scoring.
"""

from __future__ import annotations

import functools
import math
import re
import string
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from churnclv.models.tier_config_errors import config_error

__all__ = [
    "Fact",
    "Phrase",
    "PhraseText",
    "ReasonsConfig",
    "parse_reasons",
    "phrase",
    "write_reasons",
]

_FORMATTER = string.Formatter()


def _is_missing(value: Any) -> bool:
    if value is None or value is pd.NA or value is pd.NaT:
        return True
    if isinstance(value, (float, np.floating)):
        return bool(math.isnan(value))
    return False


def _as_number(value: Any) -> float | None:
    if isinstance(value, (bool, np.bool_)) or _is_missing(value):
        return None
    if isinstance(value, (int, float, np.integer, np.floating)):
        return float(value)
    return None


def _plural(words: str) -> str:
    if words.endswith(("s", "x", "ch", "sh")):
        return words + "es"
    return words + "s"


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
        """Whether the fact holds for ``value`` (missing or not, and within the bounds)."""
        is_missing = _is_missing(value)
        if self.missing is not None and self.missing != is_missing:
            return False
        if self.low is None and self.high is None:
            return True
        x = _as_number(value)
        if x is None:
            return False
        return (self.low is None or x >= self.low) and (self.high is None or x <= self.high)


@dataclass(frozen=True)
class Phrase:
    """Templates for the features whose whole name matches the regular expression ``feature``."""

    feature: str
    texts: tuple[PhraseText, ...]


@dataclass(frozen=True)
class Fact:
    """An RFM fact: any column matching ``feature`` whose value lies in ``[low, high]``."""

    feature: str
    low: float | None = None
    high: float | None = None


@dataclass(frozen=True)
class ReasonsConfig:
    """The ``[reasons]`` section: how many reasons, the phrases and the facts."""

    max_reasons: int
    phrases: tuple[Phrase, ...]
    facts: tuple[Fact, ...]


def _check_regex(key: str, pattern: Any) -> str:
    if not isinstance(pattern, str) or not pattern:
        raise config_error(
            key,
            "must be a non-empty regular expression (a string)",
            "e.g. 'net_spend_(?P<w>\\d+)d'",
            pattern,
        )
    try:
        re.compile(pattern)
    except re.error as exc:
        raise config_error(
            key, f"is not a valid regular expression ({exc})", "escape special characters", pattern
        ) from None
    return pattern


def _check_template(key: str, text: Any) -> str:
    if not isinstance(text, str) or not text.strip():
        raise config_error(
            key,
            "must be a non-empty template string",
            'write the phrase, e.g. "no purchase for {value:.0f} days"',
            text,
        )
    try:
        list(_FORMATTER.parse(text))
    except ValueError as exc:
        raise config_error(
            key,
            f"is not a valid format template ({exc})",
            "balance the braces; write {{ for a literal brace",
            text,
        ) from None
    return text


def _bound(key: str, value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise config_error(key, "must be a finite number", "write a number such as 0.5", value)
    return float(value)


def _check_keys(key: str, body: Mapping[str, Any], allowed: Iterable[str]) -> None:
    allowed = tuple(allowed)
    unknown = sorted(set(body) - set(allowed))
    if unknown:
        raise config_error(f"{key}.{unknown[0]}", "is not a known key", f"use one of {list(allowed)}")


def parse_reasons(raw: Mapping[str, Any], *, key: str = "reasons") -> ReasonsConfig:
    """Validate the ``[reasons]`` section (a parsed TOML table) into a :class:`ReasonsConfig`."""
    if not isinstance(raw, Mapping):
        raise config_error(key, "must be a table", f"write [{key}] with max_reasons, phrases and facts")
    _check_keys(key, raw, ("max_reasons", "phrases", "facts"))
    n = raw.get("max_reasons", 3)
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise config_error(f"{key}.max_reasons", "must be a whole number of at least 1", "e.g. max_reasons = 3", n)
    phrases: list[Phrase] = []
    for i, entry in enumerate(raw.get("phrases", [])):
        k = f"{key}.phrases[{i}]"
        if not isinstance(entry, Mapping):
            raise config_error(k, "must be a table with 'feature' and 'text'", "write [[reasons.phrases]] entries")
        _check_keys(k, entry, ("feature", "text"))
        pattern = _check_regex(f"{k}.feature", entry.get("feature"))
        texts_raw = entry.get("text")
        if isinstance(texts_raw, (str, Mapping)):
            texts_raw = [texts_raw]
        if not isinstance(texts_raw, list) or not texts_raw:
            raise config_error(
                f"{k}.text",
                "must be a non-empty list of templates",
                'e.g. text = ["{value:.0f} returns"]',
                texts_raw,
            )
        texts: list[PhraseText] = []
        for j, t in enumerate(texts_raw):
            kt = f"{k}.text[{j}]"
            if isinstance(t, str):
                texts.append(PhraseText(_check_template(kt, t)))
                continue
            if not isinstance(t, Mapping):
                raise config_error(
                    kt,
                    "must be a string or a table with 'text' and conditions",
                    'e.g. { max = 0, text = "no returns" }',
                    t,
                )
            _check_keys(kt, t, ("text", "min", "max", "missing"))
            missing = t.get("missing")
            if missing is not None and not isinstance(missing, bool):
                raise config_error(f"{kt}.missing", "must be true or false", "write missing = true", missing)
            low, high = _bound(f"{kt}.min", t.get("min")), _bound(f"{kt}.max", t.get("max"))
            if low is not None and high is not None and low > high:
                raise config_error(f"{kt}.min", "must not exceed max", "swap min and max", (low, high))
            texts.append(PhraseText(_check_template(f"{kt}.text", t.get("text")), low, high, missing))
        phrases.append(Phrase(pattern, tuple(texts)))
    facts: list[Fact] = []
    for i, entry in enumerate(raw.get("facts", [])):
        k = f"{key}.facts[{i}]"
        if not isinstance(entry, Mapping):
            raise config_error(
                k,
                "must be a table with 'feature' and 'min' and/or 'max'",
                "write [[reasons.facts]] entries",
            )
        _check_keys(k, entry, ("feature", "min", "max"))
        pattern = _check_regex(f"{k}.feature", entry.get("feature"))
        low, high = _bound(f"{k}.min", entry.get("min")), _bound(f"{k}.max", entry.get("max"))
        if low is None and high is None:
            raise config_error(k, "needs 'min' and/or 'max'", "say when the fact holds, e.g. min = 2.0")
        if low is not None and high is not None and low > high:
            raise config_error(f"{k}.min", "must not exceed max", "swap min and max", (low, high))
        facts.append(Fact(pattern, low, high))
    return ReasonsConfig(max_reasons=n, phrases=tuple(phrases), facts=tuple(facts))


class _Fields(Mapping[str, Any]):
    """Template fields for one reason: extras first, then the row's columns; missing values raise."""

    def __init__(self, extras: dict[str, Any], columns: Mapping[str, np.ndarray], i: int | None) -> None:
        self._extras, self._columns, self._i = extras, columns, i

    def __getitem__(self, key: str) -> Any:
        if key in self._extras:
            value = self._extras[key]
        elif self._i is not None and key in self._columns:
            value = self._columns[key][self._i]
        else:
            raise KeyError(key)
        if _is_missing(value):
            raise KeyError(key)
        return value

    def __iter__(self) -> Iterator[str]:  # pragma: no cover - format_map only needs __getitem__
        return iter(self._extras)

    def __len__(self) -> int:  # pragma: no cover
        return len(self._extras)


class _Columns(Mapping[str, np.ndarray]):
    """A frame's columns as object arrays, converted on first use (a wide frame stays cheap)."""

    def __init__(self, frame: pd.DataFrame) -> None:
        self._frame = frame
        self._names = [str(c) for c in frame.columns]
        self._arrays: dict[str, np.ndarray] = {}

    def __getitem__(self, key: str) -> np.ndarray:
        if key not in self._arrays:
            if key not in self._frame.columns:
                raise KeyError(key)
            self._arrays[key] = self._frame[key].to_numpy(dtype=object)
        return self._arrays[key]

    def __contains__(self, key: object) -> bool:
        return key in self._frame.columns

    def __iter__(self) -> Iterator[str]:
        return iter(self._names)

    def __len__(self) -> int:
        return len(self._names)


def _humanize(feature: str) -> str:
    name = re.sub(r"_(\d+)d$", r" (\1 days)", feature)
    return name.removeprefix("attr_").replace("_", " ").strip()


def _value_text(value: Any) -> str:
    if _is_missing(value):
        return "missing"
    x = _as_number(value)
    if x is None:
        return str(value)
    if x.is_integer() and abs(x) < 1e15:
        return f"{int(x):,}"
    return f"{x:,.3g}" if abs(x) < 1000 else f"{x:,.0f}"


def _extras(feature: str, groups: dict[str, str], value: Any) -> dict[str, Any]:
    extras: dict[str, Any] = {k: v for k, v in groups.items() if v is not None}
    extras["feature"] = feature
    extras["value"] = value
    event = groups.get("event")
    if event:
        one = event.replace("_", " ")
        extras["event_one"], extras["event_many"] = one, _plural(one)
    attr = groups.get("attr")
    if attr:
        extras["attr"] = attr.replace("_", " ")
    x = _as_number(value)
    if x is not None:
        extras["dir"] = "up" if x > 1 else ("down" if x < 1 else "unchanged")
        extras["pct"] = abs(x - 1.0) * 100.0
    return extras


def _match(
    feature: str, phrases: Sequence[Phrase], cache: dict[str, tuple[Phrase, dict[str, str]] | None]
) -> tuple[Phrase, dict[str, str]] | None:
    if feature not in cache:
        found = None
        for p in phrases:
            m = re.fullmatch(p.feature, feature)
            if m is not None:
                found = (p, m.groupdict())
                break
        cache[feature] = found
    return cache[feature]


def _phrase(
    feature: str,
    value: Any,
    phrases: Sequence[Phrase],
    columns: Mapping[str, np.ndarray],
    i: int | None,
    cache: dict[str, Any],
) -> str:
    matched = _match(feature, phrases, cache)
    if matched is not None:
        p, groups = matched
        fields = _Fields(_extras(feature, groups, value), columns, i)
        for alt in p.texts:
            if not alt.applies(value):
                continue
            try:
                return alt.text.format_map(fields)
            except (KeyError, ValueError, TypeError, IndexError, AttributeError):
                continue  # a field is missing or of the wrong kind: try the next alternative
    return f"{_humanize(feature)}: {_value_text(value)}"


def phrase(feature: str, value: Any, *, config: ReasonsConfig, row: Mapping[str, Any] | None = None) -> str:
    """One feature and its value in plain words.

    Parameters
    ----------
    feature
        Feature (column) name, e.g. ``"days_since_last_purchase"``.
    value
        The customer's value of the feature (``None``/NaN when missing).
    config
        The reasons config (phrases).
    row
        Other values of the same customer that templates may use (e.g. the gap ratio).

    Returns
    -------
    str
        The first matching phrase that formats, else a generic ``"<feature in words>: <value>"``.
    """
    columns = {k: np.asarray([v], dtype=object) for k, v in (row or {}).items()}
    return _phrase(feature, value, config.phrases, columns, 0, {})


def _contribution_parts(item: Any) -> tuple[str, Any]:
    """Feature name and value of one contribution: a tuple ``(feature, contribution[, value])``,
    an object with ``feature`` (and ``value``) attributes, or a bare feature name."""
    if isinstance(item, str):
        return item, None
    feature = getattr(item, "feature", None)
    if feature is not None:
        return str(feature), getattr(item, "value", None)
    if isinstance(item, Sequence) and len(item) >= 1:
        return str(item[0]), item[2] if len(item) >= 3 else None
    raise TypeError(
        f"a contribution must be (feature, contribution[, value]) or have a .feature attribute, got {item!r}"
    )


@functools.lru_cache(maxsize=256)
def _matching(pattern: str, columns: tuple[str, ...]) -> tuple[str, ...]:
    """The columns a fact's pattern matches in full (cached: the HTTP path asks for the same ones
    on every call)."""
    compiled = re.compile(pattern)
    return tuple(c for c in columns if compiled.fullmatch(c) is not None)


def write_reasons(
    frame: pd.DataFrame,
    contributions: Sequence[Sequence[Any]] | None = None,
    *,
    config: ReasonsConfig,
    max_reasons: int | None = None,
) -> list[list[str]]:
    """The top reasons per customer, in plain words.

    Parameters
    ----------
    frame
        One row per customer with the feature columns the phrases and facts read
        (e.g. ``days_since_last_purchase``, ``days_since_last_purchase_rel_gap``,
        ``net_spend_trend_90d``, ``support_ticket_trend_30d``). Columns that are absent are
        simply not used.
    contributions
        Optional, aligned with the rows of ``frame``: per customer a list of contributions, most
        important first, each ``(feature, contribution[, value])`` or an object with ``feature``
        and ``value`` attributes (``GBMChurnClassifier.explain`` output fits). The value is taken
        from ``frame`` when the column is there, else from the tuple.
    config
        The reasons config.
    max_reasons
        At most this many reasons per customer (default: ``config.max_reasons``).

    Returns
    -------
    list of list of str
        One list per row of ``frame``: contribution phrases first, then facts, no phrase twice.
    """
    n_max = config.max_reasons if max_reasons is None else int(max_reasons)
    if n_max < 1:
        raise ValueError(f"max_reasons must be at least 1, got {n_max}")
    n = len(frame)
    if contributions is not None and len(contributions) != n:
        raise ValueError(
            f"contributions has {len(contributions)} rows but the frame has {n}: pass one list of "
            "contributions per row of the frame, in the same order"
        )
    columns = _Columns(frame)
    cache: dict[str, Any] = {}
    # per fact: the matching columns and where their value is in range
    fact_hits: list[tuple[str, np.ndarray]] = []
    for fact in config.facts:
        for col in _matching(fact.feature, tuple(columns)):
            x = pd.to_numeric(frame[col], errors="coerce").to_numpy(dtype=float, na_value=np.nan)
            with np.errstate(invalid="ignore"):
                hit = np.isfinite(x)
                if fact.low is not None:
                    hit &= x >= fact.low
                if fact.high is not None:
                    hit &= x <= fact.high
            fact_hits.append((col, hit))
    out: list[list[str]] = []
    for i in range(n):
        texts: list[str] = []
        used: set[str] = set()
        for item in contributions[i] if contributions is not None else ():
            if len(texts) >= n_max:
                break
            feature, value = _contribution_parts(item)
            if feature in columns:
                value = columns[feature][i]
            text = _phrase(feature, value, config.phrases, columns, i, cache)
            used.add(feature)
            if text not in texts:
                texts.append(text)
        for col, hit in fact_hits:
            if len(texts) >= n_max:
                break
            if not hit[i] or col in used:
                continue
            used.add(col)
            text = _phrase(col, columns[col][i], config.phrases, columns, i, cache)
            if text not in texts:
                texts.append(text)
        out.append(texts)
    return out
