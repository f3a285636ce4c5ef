"""``score_by_id``'s answers precomputed: every snapshot customer scored once per (model, snapshot).

A ``score_by_id`` answer depends on the model, the snapshot row and the snapshot's as-of only, so
the service scores the whole snapshot once, in chunks on its scoring thread, through the very
function the per-request path runs (:func:`churnclv.serving.feature_snapshot.score_ids`), and keeps
the answers column by column (numbers as numpy arrays, texts as codes, reasons as one Arrow list
column: about 500 bytes a customer with the id index, measured on the bench world). A request is
then a lookup: ``CustomerScore`` objects rebuilt from the columns, equal to what scoring the ids
would give (a test compares the JSON of both).

With a targeting (``CHURNCLV_TARGETING``), its decision is precomputed too, through the function the
per-request path runs (:func:`churnclv.serving.targeting_decisions.decide_answers`), before the holdout:
the service's :class:`~churnclv.serving.campaign_arms.CampaignArms` then sets the arm on both paths alike.

Until the table of the pair being served is complete, requests are scored as before; a table whose
model or snapshot is no longer served is dropped.
"""

from __future__ import annotations

import datetime as dt
import types
import typing
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa

from churnclv.serving.feature_snapshot import UNKNOWN_ID, FeatureSnapshot, score_ids
from churnclv.serving.model import LoadedModel
from churnclv.serving.schemas import CustomerError, CustomerScore
from churnclv.serving.targeting_decisions import TARGETING_COLUMNS, Targeting, decide_answers

__all__ = ["CHUNK_ROWS", "ScoreTable", "ScoreTableBuilder"]

CHUNK_ROWS = 512  # snapshot rows per scoring call while building: requests queued meanwhile wait one call
# the same for every row of a table (checked while building): kept once
_CONSTANT = ("as_of", "model_version", "rows_after_as_of")
# set afterwards, on every answer, by the service (churnclv.serving.campaign_arms): unset here, as score_ids leaves them
_ARMS = ("campaign", "holdout")
_NO_DATE = -1
_TEXTS = pa.list_(pa.string())
_DTYPES = {"float": np.float64, "int": np.int64, "date": np.int64, "text": np.int32}


def _kind(annotation: Any) -> str:
    """How a CustomerScore field is stored, from its type: float, int, date, text, texts (a list)."""
    args = set(typing.get_args(annotation)) - {type(None)}
    base = args.pop() if isinstance(annotation, types.UnionType) and len(args) == 1 else annotation
    kinds = {float: "float", int: "int", dt.date: "date", str: "text", list[str]: "texts"}
    if base not in kinds:
        raise TypeError(f"CustomerScore field of type {annotation!r}: ScoreTable cannot store it")
    return kinds[base]


_NULLABLE = {name: type(None) in typing.get_args(info.annotation) for name, info in CustomerScore.model_fields.items()}
_KINDS = {
    name: _kind(info.annotation)
    for name, info in CustomerScore.model_fields.items()
    if name not in (*_CONSTANT, *_ARMS, *TARGETING_COLUMNS, "customer_id")
}
_DECIDED = ("expected_incremental_revenue", "expected_profit", "contact")  # per row; the targeting's id is constant


@dataclass
class ScoreTable:
    """Every snapshot customer's ``score_by_id`` answer for one model (build it with :class:`ScoreTableBuilder`).

    Attributes
    ----------
    model, snapshot
        The pair the answers belong to (compared by identity: a reload makes new objects).
    """

    model: LoadedModel
    snapshot: FeatureSnapshot
    constants: dict[str, Any]
    columns: dict[str, Any]
    texts: dict[str, list[str]]  # the values of each text column (its codes index them)
    errors: dict[str, str]  # customer_id -> why, for snapshot rows that cannot be scored
    targeting: Targeting | None = None
    decided: dict[str, np.ndarray] = field(default_factory=dict)  # _DECIDED, with a targeting
    position: dict[str, int] = field(init=False)

    def __post_init__(self) -> None:
        ids = self.snapshot.features["customer_id"].to_numpy(dtype=object)
        self.position = {str(cid): i for i, cid in enumerate(ids)}

    def serves(self, model: LoadedModel, snapshot: FeatureSnapshot) -> bool:
        """Whether these are the answers of ``model`` on ``snapshot``."""
        return self.model is model and self.snapshot is snapshot

    def answers(self, customer_ids: Sequence[str]) -> list[CustomerScore | CustomerError]:
        """One entry per id, in request order: as :func:`~churnclv.serving.feature_snapshot.score_ids` answers."""
        out: list[CustomerScore | CustomerError] = []
        for cid in customer_ids:
            row = self.position.get(cid)
            if row is None or cid in self.errors:
                out.append(CustomerError(customer_id=cid, error=self.errors.get(cid, UNKNOWN_ID)))
            else:
                out.append(self._score(cid, row))
        return out

    def _score(self, cid: str, row: int) -> CustomerScore:
        values: dict[str, Any] = {"customer_id": cid, **self.constants}
        for name, kind in _KINDS.items():
            col = self.columns[name]
            if kind == "float":
                x = float(col[row])
                values[name] = None if _NULLABLE[name] and x != x else x  # NaN: stored for None
            elif kind == "int":
                values[name] = int(col[row])
            elif kind == "date":
                day = int(col[row])
                values[name] = None if day == _NO_DATE else dt.date.fromordinal(day)
            elif kind == "text":
                values[name] = self.texts[name][col[row]]
            else:
                values[name] = col[row].as_py()
        if self.targeting is not None:  # contact before the holdout, as decide_answers sets it
            values["contact"] = bool(self.decided["contact"][row])
            values["expected_incremental_revenue"] = float(self.decided["expected_incremental_revenue"][row])
            values["expected_profit"] = float(self.decided["expected_profit"][row])
            values["targeting"] = self.targeting.id
        # the fields score_ids (and decide_answers) set, no more: the same fields_set, the same JSON
        return CustomerScore.model_construct(**values)


class ScoreTableBuilder:
    """Scores a snapshot for a model, :data:`CHUNK_ROWS` customers per :meth:`step`, into a :class:`ScoreTable`.

    Each step runs :func:`~churnclv.serving.feature_snapshot.score_ids` (call it where that runs: the
    scoring thread), then ``targeting``'s decisions; :meth:`table` returns the table once :attr:`done`.
    """

    def __init__(
        self,
        model: LoadedModel,
        snapshot: FeatureSnapshot,
        chunk_rows: int = CHUNK_ROWS,
        targeting: Targeting | None = None,
    ) -> None:
        self.model = model
        self.snapshot = snapshot
        self.targeting = targeting
        self._decided: dict[str, list[np.ndarray]] = {name: [] for name in _DECIDED}
        self._ids = [str(c) for c in snapshot.features["customer_id"].to_numpy(dtype=object)]
        self._chunk = chunk_rows
        self._next = 0
        self._constants: dict[str, Any] | None = None
        # per column, one array per chunk (Python lists only for the chunk being scored: bounded memory)
        self._parts: dict[str, list[Any]] = {name: [] for name in _KINDS}
        self._codes: dict[str, dict[str, int]] = {n: {} for n, k in _KINDS.items() if k == "text"}
        self._errors: dict[str, str] = {}

    @property
    def done(self) -> bool:
        """Whether every snapshot row has been scored."""
        return self._next >= len(self._ids)

    @property
    def progress(self) -> tuple[int, int]:
        """(rows scored, rows in the snapshot)."""
        return min(self._next, len(self._ids)), len(self._ids)

    def step(self) -> bool:
        """Score the next chunk; True when the table is complete."""
        start = self._next
        chunk = self._ids[start : start + self._chunk]
        self._next += len(chunk)
        rows: dict[str, list[Any]] = {name: [] for name in _KINDS}
        answers = score_ids(self.model, self.snapshot, chunk)
        if self.targeting is not None:
            self._decide(answers, start)
        for cid, answer in zip(chunk, answers, strict=True):
            if isinstance(answer, CustomerError):
                self._errors[cid] = answer.error
                self._add_placeholder(rows)
            else:
                self._add(answer, rows)
        for name, values in rows.items():
            kind = _KINDS[name]
            part = pa.array(values, type=_TEXTS) if kind == "texts" else np.asarray(values, dtype=_DTYPES[kind])
            self._parts[name].append(part)
        return self.done

    def _decide(self, answers: list[CustomerScore | CustomerError], start: int) -> None:
        """The targeting's decisions of a chunk's answers (placeholders for its errors), as the service decides."""
        assert self.targeting is not None
        scored = np.asarray([isinstance(a, CustomerScore) for a in answers], dtype=bool)
        features = None
        if self.targeting.feature_names:  # the chunk's snapshot rows: the chunk is a slice of them, in order
            features = self.snapshot.features.iloc[start : start + len(answers)].iloc[np.flatnonzero(scored)]
        decide_answers(self.targeting, answers, features)
        for name in _DECIDED:
            filler: Any = False if name == "contact" else np.nan
            values = [getattr(a, name) if ok else filler for a, ok in zip(answers, scored, strict=True)]
            self._decided[name].append(np.asarray(values, dtype=bool if name == "contact" else np.float64))

    def _add(self, score: CustomerScore, rows: dict[str, list[Any]]) -> None:
        if any(name in score.model_fields_set for name in _ARMS):
            raise ValueError(f"ScoreTable: score_ids set {_ARMS}: the table would keep one customer's arm for all")
        constants = {name: getattr(score, name) for name in _CONSTANT}
        if self._constants is None:
            self._constants = constants
        elif constants != self._constants:  # a bug upstream: the table would answer wrongly
            differ = sorted(k for k in constants if constants[k] != self._constants[k])
            raise ValueError(f"ScoreTable: the answers differ in {differ}: a bug in the scoring path")
        for name, kind in _KINDS.items():
            value = getattr(score, name)
            if kind == "text":
                codes = self._codes[name]
                value = codes.setdefault(value, len(codes))
            elif kind == "date":
                value = _NO_DATE if value is None else value.toordinal()
            elif kind == "float" and value is None:
                value = np.nan
            rows[name].append(value)

    def _add_placeholder(self, rows: dict[str, list[Any]]) -> None:
        """A row for an id answered with an error (never read: keeps the positions aligned)."""
        for name, kind in _KINDS.items():
            rows[name].append({"texts": [], "float": np.nan, "date": _NO_DATE}.get(kind, 0))

    def table(self) -> ScoreTable:
        """The complete table."""
        if not self.done:
            raise RuntimeError(f"ScoreTable: {self.progress[0]} of {self.progress[1]} rows scored; step() until done")
        columns: dict[str, Any] = {
            name: pa.chunked_array(parts, type=_TEXTS).combine_chunks()
            if _KINDS[name] == "texts"
            else np.concatenate([np.empty(0, dtype=_DTYPES[_KINDS[name]]), *parts])
            for name, parts in self._parts.items()
        }
        texts = {name: list(codes) for name, codes in self._codes.items()}
        return ScoreTable(
            model=self.model,
            snapshot=self.snapshot,
            constants=dict(self._constants or {}),
            columns=columns,
            texts=texts,
            errors=self._errors,
            targeting=self.targeting,
            decided={name: np.concatenate([np.empty(0), *parts]) for name, parts in self._decided.items()}
            if self.targeting is not None
            else {},
        )
