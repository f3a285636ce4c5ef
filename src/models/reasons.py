"""Reasons in plain words: the choice of each customer's reasons and their words.

Each reason is a sentence a CRM agent can read aloud, and says which way it moves the churn risk:
"no purchase for 120 days, 3 times their usual gap — raises the risk". Reasons come, in this order,
from

1. for a customer with no purchase yet, that fact ("signed up 40 days ago, no purchase yet");
2. the churn model's contributions per customer (:func:`churnclv.models.explanations.drivers`:
   ``(feature, contribution[, value])``, strongest first), the sign of each giving its direction;
3. RFM facts (``[[reasons.facts]]``): a feature column whose value lies in a configured range
   ("spend down 50% in the last 90 days on the 90 before") fills the slots left free; its
   direction is ``effect``, or the phrase book's for the feature and the side of the range.

A customer gets one reason per topic (``days_since_last_purchase`` and
``days_since_last_purchase_rel_gap`` say the same thing: the strongest is kept) and never the same
words twice. The words come from the phrase book of every feature family
(:mod:`churnclv.models.reason_book`); ``[[reasons.phrases]]`` in the config override it for the
features they match (the section: :mod:`churnclv.models.reason_config`).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np
import pandas as pd

from churnclv.models.reason_book import NO_PURCHASE, NO_PURCHASE_TOPIC, Family, family_of, topic_of
from churnclv.models.reason_config import EFFECTS, Fact, ReasonsConfig, parse_reasons
from churnclv.models.reason_text import Phrase, PhraseText, generic_phrase, own_fields, render

__all__ = [
    "EFFECTS",
    "Fact",
    "Phrase",
    "PhraseText",
    "ReasonsConfig",
    "parse_reasons",
    "phrase",
    "write_reasons",
]


class _Columns(Mapping[str, np.ndarray]):
    """A frame's columns as object arrays, converted on first use (a wide frame stays cheap)."""

    def __init__(self, frame: pd.DataFrame) -> None:
        self._frame = frame
        self._names = [str(c) for c in frame.columns]
        self._known = set(self._names)
        self._arrays: dict[str, np.ndarray] = {}

    def __getitem__(self, key: str) -> np.ndarray:
        if key not in self._arrays:
            if key not in self._frame.columns:
                raise KeyError(key)
            self._arrays[key] = self._frame[key].to_numpy(dtype=object)
        return self._arrays[key]

    def __contains__(self, key: object) -> bool:
        return key in self._known

    def __iter__(self) -> Iterator[str]:
        return iter(self._names)

    def __len__(self) -> int:
        return len(self._names)


class _Entry(NamedTuple):
    """What the reasons need to know of one feature: its phrases, topic and risk direction."""

    feature: str
    own: tuple[Phrase, dict[str, Any]] | None  # the config's phrase (which wins) and its fields
    family: Family | None
    groups: dict[str, str | None]
    fields: dict[str, Any]  # the book's fields of the feature
    topic: str
    purchases: bool


class _Book:
    """The config's phrases over the phrase book, looked up once per feature."""

    def __init__(self, phrases: Sequence[Phrase]) -> None:
        self._own = [(re.compile(p.feature), p) for p in phrases]
        self._entries: dict[str, _Entry] = {}

    def entry(self, feature: str) -> _Entry:
        found = self._entries.get(feature)
        if found is None:
            own = next(
                ((p, own_fields(feature, m.groupdict())) for c, p in self._own if (m := c.fullmatch(feature))),
                None,
            )
            family, groups = family_of(feature) or (None, {})
            purchases = family is not None and family.purchases
            found = _Entry(feature, own, family, groups, own_fields(feature, groups), topic_of(feature), purchases)
            self._entries[feature] = found
        return found

    def text(self, e: _Entry, value: Any, columns: Mapping[str, np.ndarray], i: int | None) -> str:
        if e.own is not None:
            text = render(e.own[0].texts, value, e.own[1], columns, i)
            if text is not None:
                return text
        if e.family is not None:
            text = render(e.family.phrase.texts, value, e.fields, columns, i)
            if text is not None:
                return text
        return generic_phrase(e.feature, value)


@functools.lru_cache(maxsize=16)
def _book(phrases: tuple[Phrase, ...]) -> _Book:
    """One book per config's phrases, kept: the HTTP path scores a few rows a call."""
    return _Book(phrases)


def phrase(feature: str, value: Any, *, config: ReasonsConfig, row: Mapping[str, Any] | None = None) -> str:
    """One feature and its value in plain words (without the direction).

    Parameters
    ----------
    feature
        Feature (column) name, e.g. ``"days_since_last_purchase"``.
    value
        The customer's value of the feature (``None``/NaN when missing).
    config
        The reasons config (its phrases win over the phrase book).
    row
        Other values of the same customer that templates may use (e.g. the gap ratio).

    Returns
    -------
    str
        The first matching phrase that formats; for a feature the book does not know, a generic
        ``"<feature in words>: <value>"``.
    """
    row = dict(row or {})
    row.setdefault(feature, value)
    columns = {k: np.asarray([v], dtype=object) for k, v in row.items()}
    book = _book(config.phrases)
    e = book.entry(feature)
    if e.purchases and _no_purchase(pd.DataFrame(columns))[0]:
        return _no_purchase_text(columns, 0)
    return book.text(e, value, columns, 0)


def _contribution_parts(item: Any) -> tuple[str, float, Any]:
    """Feature, contribution and value of one contribution: a tuple ``(feature, contribution[,
    value])`` or an object with ``feature``, ``contribution`` (and ``value``) attributes."""
    if isinstance(item, tuple) and len(item) == 3:
        return item  # the common case (drivers' Reason tuples): taken as they are
    feature = getattr(item, "feature", None)
    if feature is not None and hasattr(item, "contribution"):
        return str(feature), float(item.contribution), getattr(item, "value", None)
    if isinstance(item, Sequence) and not isinstance(item, str) and len(item) >= 2:
        return str(item[0]), float(item[1]), item[2] if len(item) >= 3 else None
    raise TypeError(
        f"a contribution must be (feature, contribution[, value]) or have .feature and .contribution, got {item!r}: "
        "the sign of the contribution says whether the reason raises or lowers the risk"
    )


def _no_purchase_text(columns: Mapping[str, np.ndarray], i: int) -> str:
    return render(NO_PURCHASE, None, {}, columns, i) or "no purchase yet"


def _with_effect(text: str, sign: float) -> str:
    return f"{text} — {EFFECTS[1 if sign > 0 else -1]}"


def _numbers(column: pd.Series) -> np.ndarray:
    """A column as floats, NaN where missing or not a number."""
    if column.dtype.kind not in "iufb":
        column = pd.to_numeric(column, errors="coerce")
    return np.asarray(column.to_numpy(dtype=float, na_value=np.nan), dtype=float)


def _no_purchase(frame: pd.DataFrame) -> np.ndarray:
    """Per row: the customer has no purchase day yet (from ``n_purchase_days``, else a missing
    ``days_since_last_purchase``; neither column: nobody)."""
    if "n_purchase_days" in frame.columns:
        return np.asarray(_numbers(frame["n_purchase_days"]) == 0)
    if "days_since_last_purchase" in frame.columns:
        return np.asarray(frame["days_since_last_purchase"].isna().to_numpy(), dtype=bool)
    return np.zeros(len(frame), dtype=bool)


@functools.lru_cache(maxsize=256)
def _matching(pattern: str, columns: tuple[str, ...]) -> tuple[str, ...]:
    """The columns a fact's pattern matches in full (cached: the HTTP path asks for the same ones
    on every call)."""
    compiled = re.compile(pattern)
    return tuple(c for c in columns if compiled.fullmatch(c) is not None)


def _fact_hits(
    frame: pd.DataFrame, names: tuple[str, ...], facts: Sequence[Fact], book: _Book
) -> list[tuple[_Entry, np.ndarray, int]]:
    """Per fact and matching column (of ``names``, the frame's): the column's entry, where the value
    is in range, the direction."""
    hits: list[tuple[_Entry, np.ndarray, int]] = []
    for fact in facts:
        for col in _matching(fact.feature, names):
            e = book.entry(col)
            sign = fact.sign(e.family, e.groups)
            if sign == 0:
                continue  # a column of one's own that the book cannot direct (the config check knows only ours)
            x = _numbers(frame[col])
            with np.errstate(invalid="ignore"):
                hit = np.isfinite(x)
                if fact.low is not None:
                    hit &= x >= fact.low
                if fact.high is not None:
                    hit &= x <= fact.high
            hits.append((e, hit, sign))
    return hits


class _Writer:
    """The reasons of the rows of one frame, row by row (what every row shares is read once)."""

    def __init__(self, frame: pd.DataFrame, config: ReasonsConfig, n_max: int) -> None:
        self.columns = _Columns(frame)
        self.book = _book(config.phrases)
        self.no_purchase = _no_purchase(frame)
        self.facts = _fact_hits(frame, tuple(self.columns), config.facts, self.book)
        self.facts_on: dict[str, list[tuple[np.ndarray, int]]] = {}  # per topic: where a fact holds, its sign
        for e, hit, sign in self.facts:
            self.facts_on.setdefault(e.topic, []).append((hit, sign))
        self.n_max = n_max

    def row(self, i: int, items: Sequence[Any]) -> list[str]:
        texts: list[str] = []
        said: set[str] = set()  # the words, without the direction
        topics: set[str] = set()
        book, columns, no_purchase = self.book, self.columns, bool(self.no_purchase[i])

        def say(topic: str, text: str, sign: float) -> None:
            topics.add(topic)
            if text not in said:
                said.add(text)
                texts.append(_with_effect(text, sign))

        if no_purchase:
            # the strongest purchase feature's sign; without one, having none raises the risk
            parts = (_contribution_parts(item) for item in items)
            say(
                NO_PURCHASE_TOPIC,
                _no_purchase_text(columns, i),
                next((c for f, c, _ in parts if c and book.entry(f).purchases), 1.0),
            )
        for item in items:
            if len(texts) >= self.n_max:
                break
            feature, c, value = _contribution_parts(item)
            e = book.entry(feature)
            topic = NO_PURCHASE_TOPIC if e.purchases and no_purchase else e.topic
            if not c or topic in topics:
                continue
            if any(hit[i] and (sign > 0) != (c > 0) for hit, sign in self.facts_on.get(topic, ())):
                topics.add(topic)  # the model and a configured fact disagree on this topic: neither is said
                continue
            say(topic, book.text(e, columns[feature][i] if feature in columns else value, columns, i), c)
        for e, hit, sign in self.facts:
            if len(texts) >= self.n_max:
                break
            topic = NO_PURCHASE_TOPIC if e.purchases and no_purchase else e.topic
            if hit[i] and topic not in topics:
                say(topic, book.text(e, columns[e.feature][i], columns, i), sign)
        return texts


def write_reasons(
    frame: pd.DataFrame,
    contributions: Sequence[Sequence[Any]] | None = None,
    *,
    config: ReasonsConfig,
    max_reasons: int | None = None,
) -> list[list[str]]:
    """The top reasons per customer, in plain words, each saying whether it raises or lowers the risk.

    Parameters
    ----------
    frame
        One row per customer with the feature columns the phrases and facts read
        (e.g. ``n_purchase_days``, ``tenure_days``, ``days_since_last_purchase``,
        ``days_since_last_purchase_rel_gap``, ``net_spend_trend_90d``). Columns that are absent are
        simply not used.
    contributions
        Optional, aligned with the rows of ``frame``: per customer a list of contributions to the
        churn score, strongest first, each ``(feature, contribution[, value])`` or an object with
        ``feature``, ``contribution`` and ``value`` attributes
        (:func:`churnclv.models.explanations.drivers` output fits). A positive contribution raises
        the risk. The value is taken from ``frame`` when the column is there, else from the item.
    config
        The reasons config.
    max_reasons
        At most this many reasons per customer (default: ``config.max_reasons``).

    Returns
    -------
    list of list of str
        One list per row of ``frame``: "no purchase yet" first for a customer without one, then
        the contributions, then the facts; one reason per topic, no words twice. A contribution
        whose sign a configured fact of its topic contradicts (the model lowers the risk of "no
        purchase for 139 days, 6 times their usual gap", against its average customer) leaves the
        topic out rather than say it both ways.
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
    writer = _Writer(frame, config, n_max)
    return [writer.row(i, contributions[i] if contributions is not None else ()) for i in range(n)]
