"""Reasons in plain words: the choice of each customer's reasons and their words.

Each reason is a sentence a CRM agent can read aloud, and says which way it moves the churn risk:
"no purchase for 120 days, 3 times their usual gap — raises the risk". Reasons come, in this order,
from

1. for a customer with no purchase yet, that fact: "signed up 40 days ago, no purchase yet", or,
   for one with transaction lines but none a purchase (zero amounts, returns only; from
   ``n_lines``), "first seen 214 days ago, no paid purchase yet": no sign-up is invented;
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
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from churnclv.models.reason_book import FIRST_SEEN, NO_PURCHASE, NO_PURCHASE_TOPIC
from churnclv.models.reason_columns import write_columns
from churnclv.models.reason_config import EFFECTS, Fact, ReasonsConfig, parse_reasons
from churnclv.models.reason_lookup import Book, Entry, FeatureReads, FrameColumns, book_of
from churnclv.models.reason_text import (
    Phrase,
    PhraseText,
    render,
    value_key,
)

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
    book = book_of(config.phrases)
    e = book.entry(feature)
    frame = pd.DataFrame(columns)
    no_purchase = _no_purchase(frame)
    if e.purchases and no_purchase[0]:
        return _no_purchase_text(columns, 0, seen=bool(_seen_only(frame, no_purchase)[0]))
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


def _no_purchase_text(columns: Mapping[str, np.ndarray], i: int, *, seen: bool) -> str:
    """The lead reason of row ``i``; ``seen``: known by transaction lines, not by a sign-up."""
    if seen:
        return render(FIRST_SEEN, None, {}, columns, i) or "no paid purchase yet"
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


def _seen_only(frame: pd.DataFrame, no_purchase: np.ndarray) -> np.ndarray:
    """Per row: no purchase yet, but transaction lines (``n_lines > 0``: zero amounts or returns), so
    the tenure counts from the first line, not from a sign-up. Without ``n_lines``: nobody (the
    frame cannot tell)."""
    if "n_lines" not in frame.columns:
        return np.zeros(len(frame), dtype=bool)
    return no_purchase & (_numbers(frame["n_lines"]) > 0)


@functools.lru_cache(maxsize=256)
def _matching(pattern: str, columns: tuple[str, ...]) -> tuple[str, ...]:
    """The columns a fact's pattern matches in full (cached: the HTTP path asks for the same ones
    on every call)."""
    compiled = re.compile(pattern)
    return tuple(c for c in columns if compiled.fullmatch(c) is not None)


def _fact_hits(
    frame: pd.DataFrame, names: tuple[str, ...], facts: Sequence[Fact], book: Book
) -> list[tuple[Entry, np.ndarray, int]]:
    """Per fact and matching column (of ``names``, the frame's): the column's entry, where the value
    is in range, the direction."""
    hits: list[tuple[Entry, np.ndarray, int]] = []
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


class RowWriter:
    """The reasons of the rows of one frame, row by row (what every row shares is read once).

    A phrase's words depend only on the feature, its value and the few columns its templates read
    (:func:`~churnclv.models.reason_text.row_fields`), so each distinct combination is rendered once
    per frame: a chunk of 200,000 customers has a few thousand (whole days, counts), not 600,000.
    """

    def __init__(self, frame: pd.DataFrame, config: ReasonsConfig, n_max: int, *, rows: bool = True) -> None:
        self.columns = FrameColumns(frame)
        self.book = book_of(config.phrases)
        self.no_purchase = _no_purchase(frame)
        self.seen_only = _seen_only(frame, self.no_purchase)
        self.facts = _fact_hits(frame, tuple(self.columns), config.facts, self.book)
        self.n_max = n_max
        self._frame = frame
        self._floats: dict[str, np.ndarray | None] = {}
        self._read: dict[str, FeatureReads] = {}
        self._words: dict[Any, str] = {}
        if rows:  # what row() reads per row, as lists: indexing one is 10x cheaper than an array
            self._no_purchase = self.no_purchase.tolist()
            self._facts = [(e, hit.tolist(), sign) for e, hit, sign in self.facts]
            self._any_fact = np.logical_or.reduce([h for _, h, _ in self.facts]).tolist() if self.facts else []
            self._facts_on: dict[str, list[tuple[list[bool], bool]]] = {}  # per topic: where a fact holds, raises?
            for e, hit, sign in self._facts:
                self._facts_on.setdefault(e.topic, []).append((hit, sign > 0))

    def floats(self, name: str) -> np.ndarray | None:
        """A float64 column of the frame as an array (None: not in the frame, or not float64)."""
        if name not in self._floats:
            col = self._frame[name] if name in self.columns else None
            self._floats[name] = None if col is None or col.dtype != np.float64 else col.to_numpy()
        return self._floats[name]

    def feature(self, feature: str) -> FeatureReads:
        """A feature's :class:`FeatureReads` (built once)."""
        found = self._read.get(feature)
        if found is None:
            e, reads = self.book.entry(feature), self.book.reads(feature)
            columns = self.columns
            read = None if reads is None else {c: reads[c] for c in sorted(reads) if c in columns}
            arrays = () if read is None else tuple(columns[c] for c in read)
            found = FeatureReads(e, feature in columns, read, arrays)
            self._read[feature] = found
        return found

    def words(self, feature: str, value: Any, i: int) -> str:
        """The feature's words for row ``i`` (``value``: when the feature is not a column of the frame)."""
        e, in_frame, read, arrays = self.feature(feature)
        if in_frame:
            value = self.columns[feature][i]
        if read is None:
            return self.book.text(e, value, self.columns, i)
        try:
            key = (feature, value_key(value), *[value_key(a[i]) for a in arrays])
            return self._words[key]
        except KeyError:
            text = self._words[key] = self.book.text(e, value, self.columns, i)
            return text
        except TypeError:  # an unhashable value: words made for this row alone
            return self.book.text(e, value, self.columns, i)

    def render(self, feature: str, value: Any, i: int) -> str:
        """The feature's words for ``value`` (the row's own, as the frame's column holds it) at row ``i``."""
        return self.book.text(self.feature(feature).entry, value, self.columns, i)

    def lead(self, i: int) -> str:
        """The words of "no purchase yet" (they read ``tenure_days`` and whether the row is :attr:`seen_only`)."""
        columns = self.columns
        seen = bool(self.seen_only[i])
        key = (NO_PURCHASE_TOPIC, seen, value_key(columns["tenure_days"][i]) if "tenure_days" in columns else None)
        text = self._words.get(key)
        if text is None:
            text = self._words[key] = _no_purchase_text(columns, i, seen=seen)
        return text

    def row(self, i: int, items: Sequence[Any]) -> list[str]:
        texts: list[str] = []
        said: set[str] = set()  # the words, without the direction
        topics: set[str] = set()
        no_purchase = self._no_purchase[i]
        parts = [_contribution_parts(item) for item in items]
        if no_purchase:
            # the strongest purchase feature's sign; without one, having none raises the risk
            sign = next((c for f, c, _ in parts if c and self.feature(f).entry.purchases), 1.0)
            topics.add(NO_PURCHASE_TOPIC)
            text = self.lead(i)
            said.add(text)
            texts.append(_with_effect(text, sign))
        n_max, facts_on = self.n_max, self._facts_on
        for feature, c, value in parts:
            if len(texts) >= n_max:
                break
            e = self.feature(feature).entry
            topic = NO_PURCHASE_TOPIC if no_purchase and e.purchases else e.topic
            if not c or topic in topics:
                continue
            topics.add(topic)
            against = facts_on.get(topic)
            if against is not None and any(hit[i] and up != (c > 0) for hit, up in against):
                continue  # the model and a configured fact disagree on this topic: neither is said
            text = self.words(feature, value, i)
            if text not in said:
                said.add(text)
                texts.append(_with_effect(text, c))
        if self._any_fact and self._any_fact[i]:
            for e, hit, sign in self._facts:
                if len(texts) >= n_max:
                    break
                topic = NO_PURCHASE_TOPIC if no_purchase and e.purchases else e.topic
                if hit[i] and topic not in topics:
                    topics.add(topic)
                    text = self.words(e.feature, None, i)
                    if text not in said:
                        said.add(text)
                        texts.append(_with_effect(text, sign))
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
        (e.g. ``n_purchase_days``, ``n_lines``, ``tenure_days``, ``days_since_last_purchase``,
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
        One list per row of ``frame``: "no purchase yet" first for a customer without one ("signed
        up ..." or, with transaction lines, "first seen ..., no paid purchase yet"), then
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
    arrays = getattr(contributions, "arrays", None)
    if callable(arrays):  # drivers as arrays: every row at once (the same choice and words)
        return write_columns(RowWriter(frame, config, n_max, rows=False), arrays())
    writer = RowWriter(frame, config, n_max)
    return [writer.row(i, contributions[i] if contributions is not None else ()) for i in range(n)]
