"""The campaign arm of each HTTP answer: ``campaign`` and ``holdout``, as the batch job writes them.

The service's campaign is ``CHURNCLV_CAMPAIGN``, else the campaign the snapshot's partition drew
(its manifest), else none (both fields null). A customer in that partition gets the partition's arm,
top-ups included; any other customer (scored live, new since) gets the draw alone,
:func:`churnclv.campaigns.holdout.is_held_out` at the share (``CHURNCLV_HOLDOUT_SHARE``, else the
partition's, else the ``[campaigns]`` default). Only the partition's customers whose arm differs from
their draw are kept in memory (the top-ups and releases, a few per cell): the others' arm is their draw.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from churnclv.campaigns.config import CampaignSettings
from churnclv.campaigns.holdout import holdout_draws, is_held_out
from churnclv.redaction import redact_text
from churnclv.serving.schemas import CustomerError, CustomerScore
from churnclv.serving.snapshots import manifest_path, parse_partition, part_files, scores_dir

log = logging.getLogger(__name__)

__all__ = ["CampaignArms"]


@dataclass(frozen=True)
class CampaignArms:
    """The campaign served and each customer's arm.

    Attributes
    ----------
    campaign
        The campaign id (None: no campaign; every arm is null).
    share
        The holdout share of customers drawn live.
    partition
        The snapshot partition these arms were read for (None: no snapshot).
    overrides
        ``customer_id`` -> arm, for the partition's customers whose arm is not their draw's.
    """

    campaign: str | None
    share: float
    partition: str | None = None
    overrides: Mapping[str, bool] = field(default_factory=dict)

    def arm(self, customer_id: str) -> bool | None:
        """Whether ``customer_id`` is held out (None without a campaign)."""
        if self.campaign is None:
            return None
        held = self.overrides.get(customer_id)
        return is_held_out(self.campaign, customer_id, self.share) if held is None else held

    def apply(self, answers: Iterable[CustomerScore | CustomerError]) -> None:
        """Set ``campaign`` and ``holdout`` on each score of ``answers`` (errors are left alone); a control is
        never contacted: a targeting's ``contact`` (set before) turns false, as in the batch output."""
        for answer in answers:
            if isinstance(answer, CustomerScore):
                answer.campaign = self.campaign
                answer.holdout = self.arm(answer.customer_id)
                if answer.holdout and answer.contact:
                    answer.contact = False

    @classmethod
    def load(
        cls, folder: Path | None, partition: str | None, campaign: str | None, share: float | None
    ) -> CampaignArms:
        """The arms of ``campaign`` (None: the partition's) served with the snapshot ``partition`` of the
        batch output ``folder`` (either None: draws alone); ``share`` None: the partition's, else the default.

        A partition whose arms cannot be read is logged, and its customers get their draw.
        """
        drawn = _drawn(folder, partition)
        chosen = campaign if campaign is not None else (drawn or {}).get("id")
        same = drawn is not None and drawn.get("id") == chosen
        if share is None:
            share = float(drawn["holdout_share"]) if same and drawn else CampaignSettings().holdout_share
        if chosen is None or not same or folder is None or partition is None:
            return cls(chosen, share, partition)
        try:
            overrides = _overrides(folder, partition, chosen, share)
        except (OSError, pa.ArrowException, ValueError, KeyError) as exc:
            log.error(
                "campaign %s: the arms of %s cannot be read (%s): its top-ups get their draw; rerun the batch job",
                chosen,
                partition,
                redact_text(type(exc).__name__),
            )
            overrides = {}
        return cls(chosen, share, partition, overrides)


def _drawn(folder: Path | None, partition: str | None) -> dict[str, Any] | None:
    """The ``campaign`` entry of the partition's manifest (None: none, or no partition)."""
    day = None if partition is None else parse_partition(partition)
    if folder is None or day is None:
        return None
    try:
        doc = json.loads(manifest_path(folder, day).read_text()).get("campaign")
    except (OSError, ValueError, AttributeError) as exc:
        log.error("the manifest of %s cannot be read (%s): no campaign from it", partition, type(exc).__name__)
        return None
    return doc if isinstance(doc, dict) else None


def _overrides(folder: Path, partition: str, campaign: str, share: float) -> dict[str, bool]:
    """The partition's customers of ``campaign`` whose arm differs from their draw at ``share``."""
    day = parse_partition(partition)
    assert day is not None
    columns = ["customer_id", "campaign", "holdout"]
    table = pa.concat_tables(pq.read_table(f, columns=columns) for f in part_files(scores_dir(folder, day)))
    ids = np.asarray(table.column("customer_id").to_pylist(), dtype=object)
    mine = np.asarray([c == campaign for c in table.column("campaign").to_pylist()], dtype=bool)
    held = table.column("holdout").fill_null(False).to_numpy().astype(bool)
    ids, held = ids[mine], held[mine]
    differ = held != (holdout_draws(campaign, ids) < share)
    return dict(zip(ids[differ].tolist(), held[differ].tolist(), strict=True))
