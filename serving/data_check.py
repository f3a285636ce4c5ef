"""Whether a model fits the data it is about to score: the customer attributes and the events it was
trained with.

Over HTTP a request's attributes are not refused (the customer is still scoreable) but told in the
answer's warnings (:func:`attribute_notes`): names the model does not read, values it was not trained with.

A registered model belongs to one data set (``churnclv train --model-name NAME``). Scoring another data
set with it either fails deep in LightGBM (an attribute column missing) or, worse, runs: attributes
and events the model never saw are ignored, and its tier cut points belong to another population. So
the batch job (before any feature is computed) and ``churnclv serve`` (before BentoML starts) compare
the data with what the model recorded at training, and stop with one line: what differs and the fix.

What the model recorded, in the scorer's metadata: ``data.attributes`` (the customer attributes of the
training data) and ``data.events`` (whether it had events). A model trained before they were recorded
is checked on the attributes of its logged signature (``attr_<name>`` input columns) alone.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Final, Literal

import pyarrow as pa
import pyarrow.parquet as pq

from churnclv.errors import ChurnclvError
from churnclv.serving.model import LoadedModel
from churnclv.serving.snapshots import features_path

__all__ = [
    "UNKNOWN_ATTRIBUTES",
    "UNSEEN_ATTRIBUTE_VALUES",
    "DataMismatchError",
    "attribute_notes",
    "check_fits",
    "check_folder",
    "check_snapshot",
]

UNKNOWN_ATTRIBUTES: Final = "unknown_attributes"
UNSEEN_ATTRIBUTE_VALUES: Final = "unseen_attribute_values"
AttributeNote = tuple[Literal["unknown_attributes", "unseen_attribute_values"], str]
# an answer's note stays short whatever a request sends (up to 100 customers x 50 attributes)
_MAX_LISTED = 10
_MAX_VALUE_CHARS = 40


class DataMismatchError(ChurnclvError, ValueError):
    """The model was trained on data of another shape (another data set): one line, what differs and the fix."""


def check_fits(
    loaded: LoadedModel,
    *,
    attributes: Sequence[str],
    events: bool | None,
    where: str,
    transaction_columns: Sequence[str] | None = None,
) -> None:
    """Refuse to score data whose customer attributes (or events) differ from the model's training data,
    or that lack an optional transaction column (``channel``, ...) the model was trained with.

    Parameters
    ----------
    loaded
        The model.
    attributes
        The data's customer attribute columns (the customers table's columns but ``customer_id`` and
        ``signup_ts``).
    events
        Whether the data has events; None: not known here (not checked).
    where
        The data, as the message names it (e.g. ``the data in work/clean``).
    transaction_columns
        The data's optional transaction columns; None: not known here (not checked).

    Raises
    ------
    DataMismatchError
        What differs, and the fix: a model trained for this data set (``--model-name``).
    """
    problems = []
    recorded = loaded.metadata.get("data") or {}
    # the training snapshot's attributes, recorded since the model name came; else the logged signature's
    trained = set(recorded.get("attributes", loaded.attributes))
    missing, extra = sorted(trained - set(attributes)), sorted(set(attributes) - trained)
    if missing:
        problems.append(f"it reads customer attributes {missing} that {where} lacks")
    if extra:
        problems.append(f"{where} has customer attributes {extra} it was not trained with")
    trained_events = recorded.get("events")
    if events is not None and trained_events is not None and bool(trained_events) != events:
        problems.append(
            f"it was trained with events and {where} has none"
            if trained_events
            else f"{where} has events and it was trained without them"
        )
    trained_columns = recorded.get("transaction_columns")  # recorded since the check came
    lost = sorted(set(trained_columns or ()) - set(transaction_columns or ()))
    if transaction_columns is not None and lost:
        # a column dropped from an export would otherwise be scored as null features for everyone
        problems.append(f"its features read the transaction column(s) {lost} that {where} lacks (restore them)")
    if problems:
        raise DataMismatchError(
            f"model {loaded.name} version {loaded.version} was trained on another data set: {'; '.join(problems)}; "
            "score with the model of this data set (--model-name NAME), or train one for it: "
            "churnclv train --model-name NAME"
        )


def check_folder(loaded: LoadedModel, clean: Path | str) -> None:
    """:func:`check_fits` against a folder of clean tables (the batch job's input)."""
    from churnclv.features import connect, load_tables

    con = connect()
    tables = load_tables(clean, con)
    events = tables.events is not None and int(con.to_pyarrow(tables.events.count()).as_py()) > 0
    check_fits(
        loaded,
        attributes=tables.attributes,
        events=events,
        where=f"the data in {clean}",
        transaction_columns=tables.transaction_columns,
    )


def check_snapshot(loaded: LoadedModel, folder: Path | str, day: dt.date) -> None:
    """:func:`check_fits` against the batch job's feature snapshot of ``day`` in ``folder`` (what
    ``score_by_id`` reads): its ``attr_<name>`` columns are the attributes of the data it was made from.
    A snapshot that cannot be read is left to the service (it answers 503 until a batch run fixes it)."""
    path = features_path(folder, day)
    try:
        columns = pq.read_schema(path).names
    except (OSError, pa.ArrowException):
        return
    attributes = [c.removeprefix("attr_") for c in columns if c.startswith("attr_")]
    check_fits(loaded, attributes=attributes, events=None, where=f"the feature snapshot {path}")


def attribute_notes(loaded: LoadedModel, sent: Iterable[Mapping[str, str | None]]) -> list[AttributeNote]:
    """What the customers' attributes ``sent`` (one mapping per customer) hold that the model cannot use:
    ``(code, message)`` pairs, none when everything is used.

    ``unknown_attributes``: names the model does not read (ignored); ``unseen_attribute_values``: values of
    an attribute it reads that it was not trained with (:attr:`LoadedModel.attribute_levels`; scored as
    missing, as a null). Each names the attributes, the values and how many customers sent them; it goes
    into the answer to the caller that sent them, never into a log.
    """
    read, levels = set(loaded.attributes), loaded.attribute_levels
    unknown: Counter[str] = Counter()
    unseen: dict[str, Counter[str]] = {}
    for attributes in sent:
        for name, value in attributes.items():
            if name not in read:
                unknown[name] += 1
            elif value is not None and name in levels and value not in levels[name]:
                unseen.setdefault(name, Counter())[value] += 1
    notes: list[AttributeNote] = []
    if unknown:
        reads = ", ".join(sorted(read)) or "none"
        notes.append(
            (
                UNKNOWN_ATTRIBUTES,
                f"attributes the model does not read were ignored: {_listed(unknown, str)} (it reads: {reads})",
            )
        )
    if unseen:
        told = "; ".join(f"{name}: {_listed(unseen[name], _quoted)}" for name in sorted(unseen))
        notes.append(
            (
                UNSEEN_ATTRIBUTE_VALUES,
                f"attribute values the model was not trained with are scored as missing: {told}",
            )
        )
    return notes


def _listed(counts: Counter[str], shown: Callable[[str], str]) -> str:
    """``a (2 customers), b (1 customer)``, at most :data:`_MAX_LISTED`, then how many more."""
    items = sorted(counts.items())
    text = ", ".join(f"{shown(key)} ({n} customer{'s' if n > 1 else ''})" for key, n in items[:_MAX_LISTED])
    return text if len(items) <= _MAX_LISTED else f"{text} and {len(items) - _MAX_LISTED} more"


def _quoted(value: str) -> str:
    cut = value if len(value) <= _MAX_VALUE_CHARS else f"{value[:_MAX_VALUE_CHARS]}..."
    return repr(cut)
