"""``score_by_id``: the batch job's latest feature snapshot in memory, and customers scored from it by id.

``OUT/LATEST`` names the partition ``dt=YYYY-MM-DD``; ``OUT/features/dt=YYYY-MM-DD/features.parquet``
(:mod:`churnclv.serving.snapshots`) holds one row per customer, the features the batch job scored. A
row that cannot be scored costs its customer an answer (an error entry), never the request nor the
snapshot.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from churnclv.errors import ChurnclvError
from churnclv.models.inputs import model_input, stable_floats
from churnclv.serving.model import LoadedModel
from churnclv.serving.schemas import CustomerError, CustomerScore
from churnclv.serving.scoring import isolate_failures, to_customer_scores
from churnclv.serving.snapshots import (
    FEATURES_FILE,
    LATEST,
    features_path,
    misplaced_output,
    parse_partition,
    partition_name,
    read_latest,
)

log = logging.getLogger(__name__)

__all__ = ["REBUILD", "UNKNOWN_ID", "FeatureSnapshot", "SnapshotError", "score_ids", "score_ids_together"]

UNKNOWN_ID = "unknown customer_id"
REBUILD = "rerun the batch job (churnclv score-batch) to rebuild the snapshot"


class SnapshotError(ChurnclvError, RuntimeError):
    """The feature snapshot folder is missing, incomplete or does not fit the model."""


@dataclass(frozen=True)
class FeatureSnapshot:
    """The batch job's latest feature snapshot, in memory, indexed by ``customer_id``.

    Attributes
    ----------
    folder
        The batch output folder (holding ``LATEST``).
    partition
        The partition read, e.g. ``dt=2025-10-02``.
    as_of
        Its as-of date.
    features
        The features as the model reads them (:func:`churnclv.models.inputs.model_input`).
    invalid
        ``customer_id`` -> why, for the rows that hold infinite values: those customers are
        answered with an error, the others are scored (see :func:`score_ids`).
    """

    folder: Path
    partition: str
    as_of: dt.date
    features: pd.DataFrame
    index: pd.Index
    invalid: dict[str, str] = field(default_factory=dict)

    @staticmethod
    def latest_partition(folder: Path | str) -> str:
        """The partition named in ``folder/LATEST``.

        Raises
        ------
        SnapshotError
            ``LATEST`` is missing or does not name a ``dt=YYYY-MM-DD`` partition.
        """
        return FeatureSnapshot._latest(folder)[0]

    @staticmethod
    def _latest(folder: Path | str) -> tuple[str, dt.date]:
        """:meth:`latest_partition` and its as-of date."""
        path = Path(folder) / LATEST
        try:
            name = read_latest(folder)
        except OSError:
            misplaced = misplaced_output(folder)
            if misplaced is not None:  # not "score-batch --out" into a partition
                raise SnapshotError(f"--snapshot / CHURNCLV_SNAPSHOT: {misplaced}") from None
            raise SnapshotError(
                f"{path} not found: run the batch job (churnclv score-batch --out {folder}) or point "
                "--snapshot / CHURNCLV_SNAPSHOT at its output folder"
            ) from None
        day = parse_partition(name)
        if day is None:
            raise SnapshotError(
                f"{path} holds {name!r}: expected a partition name like {partition_name(dt.date(2025, 10, 2))} "
                f"(an output folder of an earlier churnclv is not read): {REBUILD}"
            )
        return name, day

    @classmethod
    def load(cls, folder: Path | str) -> FeatureSnapshot:
        """Read the latest snapshot of the batch output ``folder``.

        Raises
        ------
        SnapshotError
            No ``LATEST``, no features file, or duplicated customer ids.
        """
        folder = Path(folder)
        partition, as_of = cls._latest(folder)
        path = features_path(folder, as_of)
        if not path.is_file():
            raise SnapshotError(f"{path} not found: LATEST names {partition} but it has no {FEATURES_FILE}: {REBUILD}")
        frame = pd.read_parquet(path)
        if "customer_id" not in frame.columns:
            raise SnapshotError(f"{path}: no customer_id column: not a churnclv feature snapshot")
        # rounded once here, so the scorer finds the rows stable and skips its own rounding per call
        frame = stable_floats(model_input(frame.reset_index(drop=True)))
        frame["customer_id"] = frame["customer_id"].astype("str")
        index = pd.Index(frame["customer_id"].to_numpy(dtype=object))
        if not index.is_unique:
            raise SnapshotError(f"{path}: customer_id is not unique: the snapshot is broken, rerun the batch job")
        invalid = _infinite_rows(frame)
        if invalid:
            log.warning(
                "feature snapshot %s: %d customer(s) have infinite feature values; score_by_id answers "
                "them with an error and scores the others: %s",
                path,
                len(invalid),
                REBUILD,
            )
        log.info("loaded feature snapshot %s (%d customers)", path, len(frame))
        return cls(
            folder=folder,
            partition=partition,
            as_of=as_of,
            features=frame,
            index=index,
            invalid=invalid,
        )

    def check(self, model: LoadedModel) -> None:
        """Raise :class:`SnapshotError` when the snapshot lacks a column the model reads."""
        missing = [c for c in model.input_columns if c not in self.features.columns]
        if missing:
            raise SnapshotError(
                f"feature snapshot {features_path(self.folder, self.as_of)} lacks columns {missing} that model version "
                f"{model.version} reads: rerun the batch job with this model"
            )

    def lookup(self, customer_ids: Sequence[str]) -> tuple[pd.DataFrame, np.ndarray]:
        """The feature rows of the known ids (in request order) and a mask of which ids are known."""
        pos = self.index.get_indexer(list(customer_ids))
        found = pos >= 0
        return self.features.iloc[pos[found]], found


def _infinite_rows(frame: pd.DataFrame) -> dict[str, str]:
    """``customer_id`` -> why, for the rows with an infinite value (column by column: no full copy)."""
    hits: list[tuple[str, np.ndarray]] = []
    for col, series in frame.items():
        if pd.api.types.is_float_dtype(series.dtype):
            mask = np.isinf(series.to_numpy(dtype=np.float64, na_value=np.nan))
            if mask.any():
                hits.append((str(col), mask))
    if not hits:
        return {}
    ids = frame["customer_id"].to_numpy(dtype=object)
    rows = np.flatnonzero(np.logical_or.reduce([mask for _, mask in hits]))
    return {
        str(ids[i]): f"the feature snapshot holds infinite values for this customer in "
        f"{[col for col, mask in hits if mask[i]]}: {REBUILD}"
        for i in rows
    }


def score_ids(
    model: LoadedModel, snapshot: FeatureSnapshot, customer_ids: Sequence[str]
) -> list[CustomerScore | CustomerError]:
    """Score customers by id from the snapshot, in request order; an unknown id gets an error entry.

    A snapshot row that cannot be scored (infinite values, found at load; or refused by the
    scorer's checks) gets an error entry for its customer, and the others are scored: one broken
    row must not turn every request that names it into a 500, nor take the snapshot away from
    everyone (refusing the whole snapshot at load would).
    """
    unique = list(dict.fromkeys(customer_ids))
    rows, found = snapshot.lookup(unique)
    known = dict(zip(unique, found, strict=True))
    failed = {cid: snapshot.invalid[cid] for cid in unique if known[cid] and cid in snapshot.invalid}
    if failed:
        rows = rows[~rows["customer_id"].isin(list(failed))]
    scored: dict[str, CustomerScore] = {}
    if len(rows):
        refused: dict[str, str] = {}
        scored = isolate_failures(
            rows,
            lambda part: to_customer_scores(
                model.scorer.score(part, as_of=snapshot.as_of), model.version, snapshot.as_of
            ),
            lambda one: str(one["customer_id"].iloc[0]),
            lambda exc: (
                f"the feature snapshot's row for this customer cannot be scored ({type(exc).__name__}): {REBUILD}"
            ),
            refused,
        )
        if refused:
            log.warning(
                "score_by_id: %d of %d snapshot row(s) of %s were refused by the scorer and answered with an error: %s",
                len(refused),
                len(rows),
                snapshot.partition,
                REBUILD,
            )
            failed.update(refused)
    return [
        scored[cid] if cid in scored else CustomerError(customer_id=cid, error=failed.get(cid, UNKNOWN_ID))
        for cid in customer_ids
    ]


def score_ids_together(
    requests: Sequence[tuple[LoadedModel, FeatureSnapshot, Sequence[str]]],
) -> list[list[CustomerScore | CustomerError]]:
    """:func:`score_ids` for several requests of one model and snapshot, in one call."""
    model, snapshot, _ = requests[0]
    if len(requests) == 1:
        return [score_ids(model, snapshot, requests[0][2])]
    ids = [cid for _, _, request_ids in requests for cid in request_ids]
    flat = score_ids(model, snapshot, ids)
    out: list[list[CustomerScore | CustomerError]] = []
    pos = 0
    for _, _, request_ids in requests:
        # answers are shared objects when two requests ask for one id: copy so each request owns its own
        out.append([r.model_copy() for r in flat[pos : pos + len(request_ids)]])
        pos += len(request_ids)
    return out
