"""One chunk of the batch: its features scored into the output schema, and the order its ids must keep."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from churnclv.models.inputs import model_input
from churnclv.models.next_purchase import DATE_COLUMNS, next_purchase_dates
from churnclv.serving.batch_errors import BatchError
from churnclv.serving.model import LoadedModel
from churnclv.serving.snapshots import OUTPUT_SCHEMA

__all__ = ["check_order", "score_chunk"]


def score_chunk(
    model: LoadedModel, features: pd.DataFrame, *, as_of: dt.date, prev: pd.Series | None = None, reasons: bool = True
) -> pa.Table:
    """Score one chunk of features into the batch's Arrow schema.

    It runs the model's scorer on :func:`~churnclv.models.inputs.model_input` of the features,
    exactly what the pyfunc's ``predict`` (and the HTTP service) runs, without MLflow's per-call
    schema check; reasons stay a list.
    """
    scores = model.scorer.score(model_input(features), as_of=as_of, prev=prev, reasons=reasons)
    n = len(scores)

    def col(name: str, dtype: pa.DataType) -> pa.Array:
        if name not in scores.columns:  # a model without a tier policy: no tiers, stages, actions
            return pa.nulls(n, dtype)
        values = scores[name]
        if dtype == pa.string():
            return pa.array(values.astype(object).where(values.notna(), None).tolist(), type=dtype)
        if dtype == pa.list_(pa.string()):
            return pa.array([list(r) for r in values], type=dtype)
        if dtype == pa.int64():
            return pa.array(values.to_numpy(dtype=np.int64), type=dtype)
        numbers = values.to_numpy(dtype=np.float64)
        # null where undefined (no next purchase expected, no acquisition cost known, CLV intervals off), as in HTTP
        return pa.array(numbers, type=dtype, mask=~np.isfinite(numbers))

    days_of = {date: days for days, date in DATE_COLUMNS.items()}
    arrays = []
    for f in OUTPUT_SCHEMA:
        if f.name == "as_of":
            arrays.append(pa.array(np.full(n, np.datetime64(as_of, "D")), type=pa.date32()))
        elif f.name == "model_version":
            arrays.append(pa.array([model.version] * n, type=pa.string()))
        elif f.name in days_of:
            dates = next_purchase_dates(scores[days_of[f.name]].to_numpy(dtype=np.float64), as_of)
            arrays.append(pa.array(dates, type=pa.date32(), mask=np.isnat(dates)))
        else:
            arrays.append(col(f.name, f.type))
    return pa.Table.from_arrays(arrays, schema=OUTPUT_SCHEMA)


def check_order(ids: pa.ChunkedArray | pa.Array, last: str | None, chunk: int) -> str | None:
    """Ids must rise strictly within and across chunks: one row per customer, nothing repeated.

    Returns the chunk's last id (``last`` for an empty chunk), to pass with the next chunk.
    """
    if len(ids) == 0:
        return last
    if len(ids) > 1 and not pc.all(pc.greater(ids[1:], ids[:-1])).as_py():
        raise BatchError(
            f"chunk {chunk}: customer ids in the feature snapshot are repeated or unsorted: the feature job "
            "must give one row per customer sorted by customer_id (report this as a bug)"
        )
    first = ids[0].as_py()
    if last is not None and not first > last:  # no ids in the message: they are customer data
        raise BatchError(
            f"chunk {chunk}: its first customer id does not follow the last id of chunk {chunk - 1}: "
            "the feature snapshot repeats customers across chunks (report this as a bug)"
        )
    return str(ids[-1].as_py())
