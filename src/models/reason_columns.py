"""The reasons of a whole frame at once, candidate slot by candidate slot.

:func:`churnclv.models.reasons.write_reasons` chooses each customer's reasons row by row; for
drivers given as arrays (:class:`~churnclv.models.explanations.DriverArrays`, what the scorer
passes) this module makes the same choice for all rows at once. A row's candidates come in a fixed
order ("no purchase yet" for a customer without one, the drivers strongest first, then the facts),
so each candidate slot is one numpy step over every row, keeping per row the reasons said, their
topics and their words. The words of a feature are rendered once per distinct value and values of
the columns its templates read (compared bit for bit, so ``-0.0`` and ``0.0`` stay apart), by the
row path's own renderer, for the first row that has them: both paths give the same words.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from churnclv.models.reason_book import NO_PURCHASE_TOPIC
from churnclv.models.reason_config import EFFECTS
from churnclv.models.reason_lookup import Entry, FeatureReads
from churnclv.models.reason_text import number_words

if TYPE_CHECKING:
    from churnclv.models.explanations import DriverArrays

__all__ = ["ReasonWriter", "write_columns"]


class ReasonWriter(Protocol):
    """What this module reads of :class:`churnclv.models.reasons.RowWriter` (a protocol: that
    module imports this one)."""

    @property
    def columns(self) -> Mapping[str, np.ndarray]:
        """The frame's columns (as objects)."""

    @property
    def no_purchase(self) -> np.ndarray:
        """Per row: no purchase yet."""

    @property
    def seen_only(self) -> np.ndarray:
        """Per row: no purchase yet, known by transaction lines (not by a sign-up)."""

    @property
    def facts(self) -> Sequence[tuple[Entry, np.ndarray, int]]:
        """Per fact and column: its entry, where it holds, its direction."""

    @property
    def n_max(self) -> int:
        """Reasons per row at most."""

    def feature(self, feature: str) -> FeatureReads:
        """What the writer reads for ``feature``."""

    def floats(self, name: str) -> np.ndarray | None:
        """A float64 column of the frame (None: none)."""

    def words(self, feature: str, value: Any, i: int) -> str:
        """The feature's words at row ``i`` as the row path makes them."""

    def render(self, feature: str, value: Any, i: int) -> str:
        """The feature's words for ``value`` at row ``i``."""

    def lead(self, i: int) -> str:
        """The words of "no purchase yet" at row ``i``."""


class _State:
    """Per row: the reasons said so far (word ids and directions), their count, the topics taken."""

    def __init__(self, n: int, n_max: int, n_topics: int) -> None:
        self.rows = np.arange(n)
        self.count = np.zeros(n, dtype=np.int64)
        self.words = np.full((n, n_max), -1, dtype=np.int64)
        self.up = np.zeros((n, n_max), dtype=bool)
        self.taken = np.zeros((n, n_topics), dtype=bool)
        self.n_max = n_max

    def open(self) -> np.ndarray:
        return self.count < self.n_max

    def take(self, mask: np.ndarray, topic: np.ndarray) -> None:
        self.taken[self.rows[mask], topic[mask]] = True

    def say(self, mask: np.ndarray, word: np.ndarray, up: np.ndarray) -> None:
        """Add ``word`` with direction ``up`` to the rows of ``mask`` that have not said those words."""
        r = self.rows[mask]
        w = word[mask]
        r = r[~(self.words[r] == w[:, None]).any(axis=1)]
        slot = self.count[r]
        self.words[r, slot] = word[r]
        self.up[r, slot] = up[r]
        self.count[r] += 1


class _Words:
    """Word ids: each distinct text once."""

    def __init__(self) -> None:
        self.ids: dict[str, int] = {}
        self.texts: list[str] = []

    def id(self, text: str) -> int:
        found = self.ids.get(text)
        if found is None:
            found = self.ids[text] = len(self.texts)
            self.texts.append(text)
        return found

    def of_rows(self, rows: np.ndarray, keys: list[np.ndarray] | None, render: Callable[[int], str]) -> np.ndarray:
        """Word ids of ``rows``: ``render(row)`` once per distinct row of ``keys`` (arrays aligned with
        ``rows``, float64 compared bit for bit), or per row when ``keys`` is None."""
        if keys is None:
            return np.fromiter((self.id(render(r)) for r in rows.tolist()), dtype=np.int64, count=len(rows))
        bits = [np.ascontiguousarray(k, dtype=np.float64).view(np.uint64) for k in keys]
        if len(bits) == 1:
            _, first, inverse = np.unique(bits[0], return_index=True, return_inverse=True)
        else:
            _, first, inverse = np.unique(np.stack(bits, axis=1), axis=0, return_index=True, return_inverse=True)
        ids = np.fromiter((self.id(render(r)) for r in rows[first].tolist()), dtype=np.int64, count=len(first))
        return ids[inverse.reshape(-1)]


def _shown(x: np.ndarray, specs: frozenset[str]) -> np.ndarray:
    """Per value of ``x``, a code of what templates show of it with ``specs`` (all missing values one
    code): rows whose codes agree render alike."""
    unique, inverse = np.unique(x.view(np.uint64), return_inverse=True)
    seen: dict[tuple[str, ...] | None, int] = {}
    codes = [
        seen.setdefault(None if v != v else tuple(number_words(v, spec) for spec in sorted(specs)), len(seen))
        for v in unique.view(np.float64).tolist()
    ]
    return np.asarray(codes, dtype=np.float64)[inverse.reshape(-1)]


def write_columns(w: ReasonWriter, d: DriverArrays) -> list[list[str]]:
    """What ``[w.row(i, drivers[i]) for i in range(n)]`` returns, computed slot by slot."""
    n, k = d.feature_index.shape
    entries = [w.feature(name).entry for name in d.names]
    topic_ids: dict[str, int] = {NO_PURCHASE_TOPIC: 0}
    for t in [e.topic for e in entries] + [e.topic for e, _, _ in w.facts]:
        topic_ids.setdefault(t, len(topic_ids))
    f_topic = np.array([topic_ids[e.topic] for e in entries], dtype=np.int64)
    f_purchases = np.array([e.purchases for e in entries], dtype=bool)
    no_purchase = w.no_purchase
    s, words = _State(n, w.n_max, len(topic_ids)), _Words()
    valid = np.arange(k)[None, :] < d.lengths[:, None]
    facts = [(topic_ids[e.topic], hit, sign > 0) for e, hit, sign in w.facts]

    # "no purchase yet" first, in the direction of the strongest purchase driver (none: raises)
    lead_up = np.ones(n, dtype=bool)
    found = ~no_purchase
    for j in range(k):
        c = d.contributions[:, j]
        hit = ~found & valid[:, j] & (c != 0) & f_purchases[d.feature_index[:, j]]
        lead_up[hit] = c[hit] > 0
        found |= hit
    s.take(no_purchase, np.zeros(n, dtype=np.int64))
    word = np.zeros(n, dtype=np.int64)
    tenure = w.floats("tenure_days") if "tenure_days" in w.columns else np.zeros(n)  # what the lead reads
    lead_rows = np.flatnonzero(no_purchase)
    keys = None if tenure is None else [tenure[lead_rows], w.seen_only[lead_rows].astype(np.float64)]
    word[no_purchase] = words.of_rows(lead_rows, keys, w.lead)
    s.say(no_purchase, word, lead_up)

    for j in range(k):
        fi, c = d.feature_index[:, j], d.contributions[:, j]
        topic = np.where(no_purchase & f_purchases[fi], 0, f_topic[fi])
        cand = valid[:, j] & s.open() & (c != 0)
        cand[cand] &= ~s.taken[s.rows[cand], topic[cand]]
        s.take(cand, topic)
        for fact_topic, hit, up in facts:  # the model and a configured fact disagree: neither is said
            cand &= ~((topic == fact_topic) & hit & (up != (c > 0)))
        word = np.zeros(n, dtype=np.int64)
        for f in np.unique(fi[cand]).tolist():
            rows = np.flatnonzero(cand & (fi == f))
            word[rows] = _feature_words(w, words, d, j, f, rows)
        s.say(cand, word, c > 0)

    for (e, _, _), (_, hit_array, up) in zip(w.facts, facts, strict=True):
        topic = np.where(no_purchase, 0, topic_ids[e.topic]) if e.purchases else np.full(n, topic_ids[e.topic])
        cand = s.open() & hit_array
        cand[cand] &= ~s.taken[s.rows[cand], topic[cand]]
        s.take(cand, topic)
        word = np.zeros(n, dtype=np.int64)
        rows = np.flatnonzero(cand)
        word[rows] = _keyed_words(w, words, e.feature, rows, None)
        s.say(cand, word, np.full(n, up))

    said = [f"{text} — {EFFECTS[-1]}" for text in words.texts] + [f"{text} — {EFFECTS[1]}" for text in words.texts]
    table = np.asarray([*said, None], dtype=object)
    codes = np.where(s.words >= 0, s.words + s.up * len(words.texts), len(said))
    out: list[list[str]] = table[codes].tolist()
    short = np.flatnonzero(s.count < s.n_max)
    for i, m in zip(short.tolist(), s.count[short].tolist(), strict=True):
        del out[i][m:]
    return out


def _feature_words(w: ReasonWriter, words: _Words, d: DriverArrays, j: int, f: int, rows: np.ndarray) -> np.ndarray:
    """Word ids of driver slot ``j`` (feature ``f``) at ``rows``; a feature not in the frame reads
    its value from the drivers (the model matrix)."""
    name = d.names[f]
    if name in w.columns:
        return _keyed_words(w, words, name, rows, None)
    return _keyed_words(w, words, name, rows, (d.numbers[:, j], d.objects[:, j]))


def _keyed_words(
    w: ReasonWriter, words: _Words, name: str, rows: np.ndarray, drivers: tuple[np.ndarray, np.ndarray] | None
) -> np.ndarray:
    """Word ids of feature ``name`` at ``rows``, its value from the frame or from ``drivers`` (floats,
    and the values as objects); rendered once per distinct value when the value and the columns its
    templates read are floats, else per row."""
    reads = w.feature(name).reads
    objects = None if drivers is None else drivers[1]
    if drivers is None:
        value = w.floats(name)
    else:  # a number or None (a categorical level is a string: rendered per row)
        value = drivers[0] if all(v is None or type(v) is float for v in drivers[1][rows].tolist()) else None
    keys: list[np.ndarray] | None = None
    if value is not None and reads is not None:
        keys = [value[rows]]
        for c, specs in reads.items():
            x = w.floats(c)
            if x is None:
                keys = None
                break
            keys.append(x[rows] if specs is None else _shown(x[rows], specs))

    def render(r: int) -> str:
        if keys is None or value is None:
            return w.words(name, None if objects is None else objects[r], r)
        # the value as the row path reads it: a float64 column's or the drivers' (None: missing)
        return w.render(name, value[r].item() if objects is None else objects[r], r)

    return words.of_rows(rows, keys, render)
