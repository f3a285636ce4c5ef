"""The campaign holdout of a batch partition: drawn on the whole scored base, joined onto its rows.

With a campaign (``score-batch --campaign ID`` or ``[campaigns] campaign``), once every chunk is scored
and the counts reconcile, and before the partition is published, the run reads ``customer_id`` and
the strata columns (``[campaigns] strata``, default tier and action) of every part file, assigns the
holdout with :func:`churnclv.campaigns.holdout.assign_holdout` on the whole base (top-ups count the
customers of each cell) and writes ``campaign`` and ``holdout`` into each part file. Without one,
both columns stay null.

The same customer keeps their arm for the life of the campaign: the arms of the newest earlier
partition that drew the same campaign are passed as ``previous`` (its draws are stable anyway; this
keeps its top-ups and releases too, also for customers who changed tier since); a backfill of an
as-of before every partition of the campaign takes the arms of the oldest later one. A partition of
another campaign is skipped, so a new campaign id draws a fresh, independent holdout. The
assignment depends only on the scored rows, the settings and that earlier partition, so a resumed
run writes the same bytes as an uninterrupted one.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from churnclv.campaigns.config import CampaignSettings
from churnclv.campaigns.errors import CampaignError
from churnclv.campaigns.holdout import assign_holdout, assigned_by, check_campaign, holdout_summary
from churnclv.serving.atomic_files import write_parquet
from churnclv.serving.batch_errors import BatchError, first_line
from churnclv.serving.snapshots import HOLDOUT_COLUMNS, MANIFEST_FILE, OUTPUT_SCHEMA, part_files, partitions

log = logging.getLogger(__name__)

__all__ = ["STRATA_COLUMNS", "HoldoutOptions", "PreviousArms", "echo_campaign", "previous_arms", "write_holdout"]

#: The output columns a holdout can be stratified by: the labels (text or whole numbers) of a score.
STRATA_COLUMNS = tuple(
    f.name
    for f in OUTPUT_SCHEMA
    if f.type in (pa.string(), pa.int64()) and f.name not in ("customer_id", "model_version", *HOLDOUT_COLUMNS)
)


@dataclass(frozen=True)
class HoldoutOptions:
    """The campaign of a run and how its holdout is drawn (the ``[campaigns]`` settings)."""

    campaign: str
    share: float
    strata: tuple[str, ...]
    min_controls: int

    def __post_init__(self) -> None:
        try:
            check_campaign(self.campaign)
        except CampaignError as exc:
            raise BatchError(f"--campaign: {exc}") from None
        unknown = [c for c in self.strata if c not in STRATA_COLUMNS]
        if unknown:
            raise BatchError(
                f"[campaigns] strata {unknown}: a holdout is balanced over label columns of the scores; "
                f'fix: use some of {list(STRATA_COLUMNS)}, e.g. strata = ["tier", "action"]'
            )

    @classmethod
    def of(cls, campaign: str | None, settings: CampaignSettings | None) -> HoldoutOptions | None:
        """``campaign`` (else the settings' ``campaign``) with the settings' share, strata and minimum
        controls; None when there is no campaign."""
        settings = settings or CampaignSettings()
        chosen = campaign if campaign is not None else settings.campaign
        if chosen is None:
            return None
        return cls(chosen, settings.holdout_share, tuple(settings.strata), settings.min_controls)

    def doc(self) -> dict[str, Any]:
        """The settings as the manifest records them."""
        return {
            "id": self.campaign,
            "holdout_share": self.share,
            "strata": list(self.strata),
            "min_controls": self.min_controls,
        }


@dataclass(frozen=True)
class PreviousArms:
    """The arms of an earlier partition of the campaign: ``customer_id``, ``holdout``, ``assigned``."""

    partition: str
    arms: pd.DataFrame


def _campaign_of(folder: Path) -> dict[str, Any] | None:
    """The manifest's ``campaign`` entry (None: no campaign, or a manifest that cannot be read)."""
    try:
        doc = json.loads((folder / MANIFEST_FILE).read_text()).get("campaign")
    except (OSError, ValueError, AttributeError) as exc:
        log.warning("holdout: %s cannot be read (%s): its campaign is not known", folder / MANIFEST_FILE, exc)
        return None
    return doc if isinstance(doc, dict) else None


def previous_arms(out: Path, day: dt.date, options: HoldoutOptions) -> PreviousArms | None:
    """The arms of the newest partition before ``day`` that drew ``options.campaign``; for a backfill
    (none before it), of the oldest after it; None: the campaign has no other partition.

    Raises
    ------
    BatchError
        That partition's part files cannot be read: its arms would be lost (read before scoring).
    """
    published = partitions(out)
    nearest = [p for d, p in reversed(published) if d < day] + [p for d, p in published if d > day]
    for folder in nearest:
        doc = _campaign_of(folder)
        if doc is None or doc.get("id") != options.campaign:
            continue
        try:
            table = pa.concat_tables(pq.read_table(f, columns=["customer_id", "holdout"]) for f in part_files(folder))
            share = float(doc["holdout_share"])
        except (OSError, pa.ArrowException, ValueError, KeyError, TypeError) as exc:
            raise BatchError(
                f"campaign {options.campaign!r}: the arms of its earlier partition {folder} cannot be read "
                f"({first_line(exc)}); customers would change arms: run that as-of again with --campaign "
                f"{options.campaign} to rebuild it, or remove it (rm -r OUT/*/{folder.name}); nothing was scored"
            ) from None
        ids = np.asarray(table.column("customer_id").to_pylist(), dtype=object)
        holdout = table.column("holdout")
        if holdout.null_count:
            raise BatchError(f"{folder}: its holdout column has nulls under campaign {options.campaign!r} (a bug)")
        held = holdout.to_numpy().astype(bool)
        arms = pd.DataFrame({"customer_id": ids, "holdout": held})
        arms["assigned"] = assigned_by(options.campaign, ids, held, share)
        return PreviousArms(folder.name, arms)
    return None


def _with_arms(table: pa.Table, campaign: pa.Array, holdout: pa.Array) -> pa.Table:
    for name, values in zip(HOLDOUT_COLUMNS, (campaign, holdout), strict=True):
        table = table.set_column(table.schema.get_field_index(name), OUTPUT_SCHEMA.field(name), values)
    return table


def _clear(files: list[Path]) -> None:
    """Null the holdout columns where a part file holds values (a resumed run of another campaign)."""
    for f in files:
        if all(c.null_count == len(c) for c in pq.read_table(f, columns=list(HOLDOUT_COLUMNS)).columns):
            continue
        table = pq.read_table(f)
        n = table.num_rows
        write_parquet(_with_arms(table, pa.nulls(n, pa.string()), pa.nulls(n, pa.bool_())), f)


def write_holdout(tmp: Path, options: HoldoutOptions | None, previous: PreviousArms | None) -> dict[str, Any] | None:
    """Assign the holdout on the scored partition in ``tmp`` and write it into its part files.

    Returns the manifest's ``campaign`` entry (None without a campaign, when the columns are nulls).
    """
    files = part_files(tmp)
    if options is None:
        _clear(files)
        return None
    strata = list(options.strata)
    base = pa.concat_tables(pq.read_table(f, columns=["customer_id", *strata]) for f in files).to_pandas()
    plan = assign_holdout(
        base,
        options.campaign,
        share=options.share,
        strata=strata,
        min_controls=options.min_controls,
        previous=None if previous is None else previous.arms,
    )
    held = plan["holdout"].to_numpy(dtype=bool)
    start = 0
    for f in files:
        table = pq.read_table(f)
        n = table.num_rows
        campaign = pa.array(np.full(n, options.campaign, dtype=object), type=pa.string())
        table = _with_arms(table, campaign, pa.array(held[start : start + n], type=pa.bool_()))
        write_parquet(table, f)
        start += n
    carried = 0 if previous is None else int(plan["customer_id"].isin(previous.arms["customer_id"]).sum())
    cells = holdout_summary(plan, strata)
    return {
        **options.doc(),
        "customers": len(plan),
        "controls": int(held.sum()),
        "control_share": float(held.mean()) if len(plan) else 0.0,
        "top_ups": int((plan["assigned"] == "top_up").sum()),
        "releases": int((plan["assigned"] == "release").sum()),
        "previous": None if previous is None else previous.partition,
        "carried": carried,
        "cells": json.loads(cells.to_json(orient="records")),
    }


def echo_campaign(doc: dict[str, Any] | None, echo: Callable[[str], Any]) -> None:
    """The summary line of the manifest's ``campaign`` entry (nothing without a campaign)."""
    if not doc:
        return
    kept = f"; arms kept from {doc['previous']} ({doc['carried']:,} customers)" if doc["previous"] else ""
    echo(
        f"  campaign   {doc['id']}: {doc['controls']:,} of {doc['customers']:,} held out "
        f"({doc['control_share']:.1%}, share {doc['holdout_share']:g}) in {len(doc['cells'])} cells, "
        f"{doc['top_ups']:,} by top-up{kept}"
    )
