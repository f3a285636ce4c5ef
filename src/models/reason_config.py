"""The ``[reasons]`` section of the tier config: how many reasons, own phrases and the RFM facts.

A fact (``[[reasons.facts]]``) is a feature column whose value lies in a configured range; it says
whether it raises or lowers the churn risk (``effect``, or the phrase book's direction for the
feature and the side of the range). The section is validated when the config is loaded, so a bad
phrase or a fact of unknown direction fails then, not in the middle of a weekly scoring.
"""

from __future__ import annotations

import functools
import math
import re
import string
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from churnclv.features.catalogue import expand
from churnclv.features.config import FeatureConfig
from churnclv.models.reason_book import BOOK, Family, family_of
from churnclv.models.reason_text import Phrase, PhraseText
from churnclv.models.tier_config_errors import config_error

__all__ = ["EFFECTS", "Fact", "ReasonsConfig", "parse_reasons"]

_FORMATTER = string.Formatter()

#: How a reason says which way it moves the churn risk, by the sign of its contribution.
EFFECTS: dict[int, str] = {1: "raises the risk", -1: "lowers the risk"}
_EFFECT_NAMES = {"raises": 1, "lowers": -1}


@dataclass(frozen=True)
class Fact:
    """An RFM fact: any column matching ``feature`` whose value lies in ``[low, high]``.

    ``effect``: +1 when the fact raises the churn risk, -1 when it lowers it, None to take it from
    the phrase book (the feature's direction, reversed for a range with only an upper bound).
    """

    feature: str
    low: float | None = None
    high: float | None = None
    effect: int | None = None

    def sign(self, family: Family | None, groups: Mapping[str, str | None]) -> int:
        """+1 or -1 (raises or lowers the risk); 0 when neither the fact nor the book says."""
        if self.effect is not None:
            return self.effect
        if family is None:
            return 0
        risk = family.risk_of(groups)
        return risk if self.low is not None else -risk


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
            'write the phrase, e.g. "no purchase for {value:days}"',
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


def _parse_phrase(k: str, entry: Any) -> Phrase:
    if not isinstance(entry, Mapping):
        raise config_error(k, "must be a table with 'feature' and 'text'", "write [[reasons.phrases]] entries")
    _check_keys(k, entry, ("feature", "text"))
    pattern = _check_regex(f"{k}.feature", entry.get("feature"))
    texts_raw = entry.get("text")
    if isinstance(texts_raw, (str, Mapping)):
        texts_raw = [texts_raw]
    if not isinstance(texts_raw, list) or not texts_raw:
        raise config_error(
            f"{k}.text", "must be a non-empty list of templates", 'e.g. text = ["{value:num} returns"]', texts_raw
        )
    texts: list[PhraseText] = []
    for j, t in enumerate(texts_raw):
        kt = f"{k}.text[{j}]"
        if isinstance(t, str):
            texts.append(PhraseText(_check_template(kt, t)))
            continue
        if not isinstance(t, Mapping):
            raise config_error(
                kt, "must be a string or a table with 'text' and conditions", 'e.g. { max = 0, text = "no returns" }', t
            )
        _check_keys(kt, t, ("text", "min", "max", "missing"))
        missing = t.get("missing")
        if missing is not None and not isinstance(missing, bool):
            raise config_error(f"{kt}.missing", "must be true or false", "write missing = true", missing)
        low, high = _bound(f"{kt}.min", t.get("min")), _bound(f"{kt}.max", t.get("max"))
        if low is not None and high is not None and low > high:
            raise config_error(f"{kt}.min", "must not exceed max", "swap min and max", (low, high))
        texts.append(PhraseText(_check_template(f"{kt}.text", t.get("text")), low, high, missing))
    return Phrase(pattern, tuple(texts))


@functools.lru_cache(maxsize=1)
def _known_features() -> tuple[str, ...]:
    """Names the book is checked against: the catalogue's (default windows and events, one
    attribute) and the book's own literal names (the BTYD columns)."""
    names = [f.name for f in expand(FeatureConfig(), attributes=("x",)) if f.name != "customer_id"]
    names += [f.phrase.feature for f in BOOK if re.fullmatch(r"\w+", f.phrase.feature)]
    return tuple(dict.fromkeys(names))


def _parse_fact(k: str, entry: Any) -> Fact:
    if not isinstance(entry, Mapping):
        raise config_error(
            k, "must be a table with 'feature' and 'min' and/or 'max'", "write [[reasons.facts]] entries"
        )
    _check_keys(k, entry, ("feature", "min", "max", "effect"))
    pattern = _check_regex(f"{k}.feature", entry.get("feature"))
    low, high = _bound(f"{k}.min", entry.get("min")), _bound(f"{k}.max", entry.get("max"))
    if low is None and high is None:
        raise config_error(k, "needs 'min' and/or 'max'", "say when the fact holds, e.g. min = 2.0")
    if low is not None and high is not None and low > high:
        raise config_error(f"{k}.min", "must not exceed max", "swap min and max", (low, high))
    effect = entry.get("effect")
    if effect is not None and effect not in _EFFECT_NAMES:
        raise config_error(
            f"{k}.effect", "must be 'raises' or 'lowers' (the churn risk)", 'e.g. effect = "raises"', effect
        )
    fact = Fact(pattern, low, high, None if effect is None else _EFFECT_NAMES[effect])
    if fact.effect is None:
        # a plain name is checked as it is (e.g. an attribute of one's own), a pattern against our names
        compiled = re.compile(pattern)
        names = [pattern] if re.fullmatch(r"\w+", pattern) else [n for n in _known_features() if compiled.fullmatch(n)]
        known = [(name, found) for name in names if (found := family_of(name)) is not None]
        undirected = [name for name, (family, groups) in known if fact.sign(family, groups) == 0]
        if not known or undirected:
            what = f"which way {undirected[0]} moves the risk" if undirected else "no feature matching it"
            raise config_error(
                f"{k}.effect",
                f"is needed: the phrase book knows {what}",
                'say whether the fact raises or lowers the churn risk: effect = "raises" or "lowers"',
            )
    return fact


def parse_reasons(raw: Mapping[str, Any], *, key: str = "reasons") -> ReasonsConfig:
    """Validate the ``[reasons]`` section (a parsed TOML table) into a :class:`ReasonsConfig`."""
    if not isinstance(raw, Mapping):
        raise config_error(key, "must be a table", f"write [{key}] with max_reasons, phrases and facts")
    _check_keys(key, raw, ("max_reasons", "phrases", "facts"))
    n = raw.get("max_reasons", 3)
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise config_error(f"{key}.max_reasons", "must be a whole number of at least 1", "e.g. max_reasons = 3", n)
    phrases = tuple(_parse_phrase(f"{key}.phrases[{i}]", e) for i, e in enumerate(raw.get("phrases", [])))
    facts = tuple(_parse_fact(f"{key}.facts[{i}]", e) for i, e in enumerate(raw.get("facts", [])))
    return ReasonsConfig(max_reasons=n, phrases=phrases, facts=facts)
