"""The phrase book looked up for the features of one frame: what the reason writers read per feature.

:class:`Book` is the config's own phrases over the phrase book (:mod:`churnclv.models.reason_book`),
each feature looked up once; :class:`FrameColumns` a frame's columns as object arrays, converted
when first read; :class:`FeatureReads` what a writer keeps per feature (its entry, whether the frame
has it, the columns its words read).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np
import pandas as pd

from churnclv.models.reason_book import Family, family_of, topic_of
from churnclv.models.reason_text import Phrase, generic_phrase, own_fields, render, row_fields

__all__ = ["Book", "Entry", "FeatureReads", "FrameColumns", "book_of"]


class FrameColumns(Mapping[str, np.ndarray]):
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


class Entry(NamedTuple):
    """What the reasons need to know of one feature: its phrases, topic and risk direction."""

    feature: str
    own: tuple[Phrase, dict[str, Any]] | None  # the config's phrase (which wins) and its fields
    family: Family | None
    groups: dict[str, str | None]
    fields: dict[str, Any]  # the book's fields of the feature
    topic: str
    purchases: bool


class FeatureReads(NamedTuple):
    """What the writer reads for one feature: its entry, whether it is a column of the frame, the
    columns its words read with their word specs (None: not known) and those columns."""

    entry: Entry
    in_frame: bool
    reads: dict[str, frozenset[str] | None] | None
    arrays: tuple[np.ndarray, ...]


class Book:
    """The config's phrases over the phrase book, looked up once per feature."""

    def __init__(self, phrases: Sequence[Phrase]) -> None:
        self._own = [(re.compile(p.feature), p) for p in phrases]
        self._entries: dict[str, Entry] = {}
        self._reads: dict[str, dict[str, frozenset[str] | None] | None] = {}

    def entry(self, feature: str) -> Entry:
        """The feature's phrases, topic and risk direction (looked up once)."""
        found = self._entries.get(feature)
        if found is None:
            own = next(
                ((p, own_fields(feature, m.groupdict())) for c, p in self._own if (m := c.fullmatch(feature))),
                None,
            )
            family, groups = family_of(feature) or (None, {})
            purchases = family is not None and family.purchases
            found = Entry(feature, own, family, groups, own_fields(feature, groups), topic_of(feature), purchases)
            self._entries[feature] = found
        return found

    def reads(self, feature: str) -> dict[str, frozenset[str] | None] | None:
        """The row fields the feature's phrases read, each with its word specs (:func:`row_fields`,
        merged over its own and its family's phrase; None: not known). Parsed once per feature: the
        HTTP path writes the reasons of one row a call."""
        if feature in self._reads:
            return self._reads[feature]
        e = self.entry(feature)
        reads: dict[str, frozenset[str] | None] | None = {}
        phrases = [(e.own[0].texts, e.own[1])] if e.own is not None else []
        if e.family is not None:
            phrases.append((e.family.phrase.texts, e.fields))
        for texts, own in phrases:
            fields = row_fields(texts, own)
            if fields is None or reads is None:
                reads = None
                continue
            for name, specs in fields.items():
                had = reads.get(name, frozenset())
                reads[name] = None if specs is None or had is None else had | specs
        self._reads[feature] = reads
        return reads

    def text(self, e: Entry, value: Any, columns: Mapping[str, np.ndarray], i: int | None) -> str:
        """The words of ``value`` of the feature of ``e`` (its row ``i`` of ``columns`` for the other fields)."""
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
def book_of(phrases: tuple[Phrase, ...]) -> Book:
    """One book per config's phrases, kept: the HTTP path scores a few rows a call."""
    return Book(phrases)
