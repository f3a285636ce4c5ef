"""Whom to contact, in the batch output: a saved targeting's decision per customer, written with the scores.

With a targeting (``score-batch --targeting DIR`` or ``[campaigns] targeting``; a folder written by
``churnclv campaign fit-targeting``, :mod:`churnclv.campaigns.targeting_files`), once every chunk is
scored and the campaign's holdout is written, the run adds four columns to each part file
(:data:`TARGETING_SCHEMA`, after ``model_version``):

- ``expected_incremental_revenue``: the chosen candidate's expected revenue uplift of a contact over
  the campaign window (currency);
- ``expected_profit``: ``margin x expected_incremental_revenue - cost of the row's action`` (currency;
  the margin and the action costs the targeting was fitted with);
- ``contact``: ``expected_profit > 0``, and never for a customer the campaign holds out nor for an action
  that is no contact (``contact = false`` in the playbook, e.g. the default ``no_contact``; a cost of 0
  is a free contact, not none);
- ``targeting``: the targeting's id (``<candidate>-<12 hex digits>``).

The numbers are :meth:`~churnclv.campaigns.targeting.CampaignTargeting.decide`'s, customer for
customer. Its checks run before the expensive stages: the folder when the options are made; once
the model is loaded, its horizon (the value columns' scale is per unit of that horizon's values) and
the cost and contact flag of every action its playbook can write (each as the targeting was fitted
with); the features an uplift model reads once the feature snapshot is written (before any chunk is
scored). Without a targeting the part files are left exactly as the chunks wrote them (a resumed
run's extra columns are dropped): a folder of partitions with and without the columns is read with
a unified schema (see :mod:`churnclv.serving.snapshots`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from churnclv.campaigns.config import CampaignSettings
from churnclv.campaigns.targeting_files import SavedTargeting
from churnclv.serving.atomic_files import write_parquet
from churnclv.serving.batch_errors import BatchError
from churnclv.serving.model import LoadedModel
from churnclv.serving.snapshots import part_files
from churnclv.serving.targeting_decisions import TARGETING_COLUMNS, TARGETING_SCHEMA, Targeting, TargetingError

__all__ = ["TARGETING_COLUMNS", "TARGETING_SCHEMA", "TargetingOptions", "echo_targeting", "write_targeting"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TargetingOptions:
    """The targeting a run decides with, read and checked when the run's options are made (the checks are
    :class:`~churnclv.serving.targeting_decisions.Targeting`'s, as a :class:`BatchError`)."""

    targeting: Targeting

    @classmethod
    def of(cls, folder: str | Path | None, settings: CampaignSettings | None) -> TargetingOptions | None:
        """``folder`` (else the settings' ``targeting``) read; None when there is none."""
        chosen = folder if folder is not None else (settings or CampaignSettings()).targeting
        if chosen is None:
            return None
        try:
            return cls(Targeting.load(chosen))
        except TargetingError as exc:
            raise BatchError(str(exc)) from None

    @property
    def saved(self) -> SavedTargeting:
        """The targeting as read from its folder."""
        return self.targeting.saved

    @property
    def id(self) -> str:
        """The targeting's id, the ``targeting`` column."""
        return self.targeting.id

    def check_model(self, model: LoadedModel) -> None:
        """:meth:`Targeting.check_model <churnclv.serving.targeting_decisions.Targeting.check_model>`, before
        any feature is computed."""
        try:
            self.targeting.check_model(model)
        except TargetingError as exc:
            raise BatchError(str(exc)) from None

    def check_features(self, names: list[str], where: str) -> None:
        """Refuse a feature snapshot (its column ``names``) that lacks a feature the uplift model reads."""
        try:
            self.targeting.check_features(names, f"the feature snapshot ({where})", "nothing was scored")
        except TargetingError as exc:
            raise BatchError(str(exc)) from None

    def doc(self) -> dict[str, Any]:
        """What the manifest records of the targeting itself."""
        return self.targeting.doc()


def _feature_rows(path: Path, columns: list[str]) -> Iterator[pa.RecordBatch]:
    """The snapshot's ``customer_id`` and ``columns``, batch by batch, in its (customer) order."""
    yield from pq.ParquetFile(path).iter_batches(batch_size=65_536, columns=["customer_id", *columns])


class _Rows:
    """Take the next ``n`` rows of a stream of record batches as one pandas frame."""

    def __init__(self, batches: Iterator[pa.RecordBatch]) -> None:
        self._batches = batches
        self._left: pa.Table | None = None

    def take(self, n: int) -> pd.DataFrame:
        parts, have = [], 0
        if self._left is not None:
            parts.append(self._left)
            have = self._left.num_rows
        while have < n:
            batch = next(self._batches, None)
            if batch is None:
                break
            parts.append(pa.Table.from_batches([batch]))
            have += batch.num_rows
        table = pa.concat_tables(parts) if parts else pa.table({})
        self._left = table.slice(n) if table.num_rows > n else None
        return table.slice(0, n).to_pandas()


def _without(table: pa.Table) -> pa.Table:
    return table.drop_columns([c for c in TARGETING_COLUMNS if c in table.column_names])


def _clear(files: list[Path]) -> None:
    """Drop the targeting columns where a part file holds them (a resumed run of another targeting)."""
    for f in files:
        if any(c in pq.read_schema(f).names for c in TARGETING_COLUMNS):
            write_parquet(_without(pq.read_table(f)), f)


def write_targeting(tmp: Path, options: TargetingOptions | None, features_file: Path) -> dict[str, Any] | None:
    """Decide per customer of the scored partition in ``tmp`` and add the columns to its part files.

    Returns the manifest's ``targeting`` entry (None without a targeting: the part files are left as
    the chunks wrote them).
    """
    files = part_files(tmp)
    if options is None:
        _clear(files)
        return None
    options.check_features(pq.read_schema(features_file).names, features_file.parent.name)  # the Spark engine's
    rows = _Rows(_feature_rows(features_file, list(options.targeting.feature_names)))
    value = options.targeting.saved.targeting.chosen_
    totals = {"customers": 0, "contacted": 0, "held_out": 0, "expected_profit": 0.0, "expected_revenue": 0.0}
    campaign_drawn = False
    for f in files:
        table = _without(pq.read_table(f))
        scores = table.select(["customer_id", "action", *([] if options.targeting.feature_names else [value])])
        frame = scores.to_pandas()
        features = rows.take(len(frame))
        if not np.array_equal(features["customer_id"].to_numpy(str), frame["customer_id"].to_numpy(str)):
            raise BatchError(f"{f.name}: its customers are not the feature snapshot's in order (a bug)")
        try:
            decided = options.targeting.decide(features, frame)
        except TargetingError as exc:
            raise BatchError(f"{exc}; nothing was published") from None
        uplift, profit, chosen = decided.expected_incremental_revenue, decided.expected_profit, decided.chosen
        campaign_drawn |= table.column("holdout").null_count < table.num_rows
        held = pc.fill_null(table.column("holdout"), False).to_numpy(zero_copy_only=False).astype(bool)
        contact = chosen & ~held
        columns = [
            pa.array(contact, type=pa.bool_()),
            pa.array(uplift, type=pa.float64()),
            pa.array(profit, type=pa.float64()),
            pa.array(np.full(len(frame), options.id, dtype=object), type=pa.string()),
        ]
        for field, values in zip(TARGETING_SCHEMA, columns, strict=True):
            table = table.append_column(field, values)
        write_parquet(table, f)
        totals["customers"] += len(frame)
        totals["contacted"] += int(contact.sum())
        totals["held_out"] += int((chosen & held).sum())
        totals["expected_profit"] += float(profit[contact].sum())
        totals["expected_revenue"] += float(uplift[contact].sum())
    if not campaign_drawn:
        log.warning(
            "--targeting without a campaign: nobody is held out, so campaign fit-targeting cannot learn from these "
            "contacts; fix: pass --campaign ID (or [campaigns] campaign)"
        )
    return {
        **options.doc(),
        "customers": totals["customers"],
        "contacted": totals["contacted"],
        "held_out_not_contacted": totals["held_out"],
        "expected_profit": totals["expected_profit"],
        "expected_incremental_revenue": totals["expected_revenue"],
    }


def echo_targeting(doc: dict[str, Any] | None, echo: Callable[[str], Any]) -> None:
    """The summary line of the manifest's ``targeting`` entry (nothing without a targeting)."""
    if not doc:
        return
    held = f"; {doc['held_out_not_contacted']:,} held out though profitable" if doc["held_out_not_contacted"] else ""
    echo(
        f"  targeting  {doc['id']}: contact {doc['contacted']:,} of {doc['customers']:,}, expected profit "
        f"{doc['expected_profit']:,.0f} (incremental revenue {doc['expected_incremental_revenue']:,.0f}){held}"
    )
