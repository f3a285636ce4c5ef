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
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from churnclv.campaigns.candidates import UPLIFT_MODEL, VALUE_COLUMNS
from churnclv.campaigns.config import CampaignSettings
from churnclv.campaigns.errors import CampaignError
from churnclv.campaigns.targeting_files import SavedTargeting, load_targeting
from churnclv.serving.atomic_files import write_parquet
from churnclv.serving.batch_errors import BatchError
from churnclv.serving.model import LoadedModel
from churnclv.serving.snapshots import part_files

__all__ = ["TARGETING_COLUMNS", "TARGETING_SCHEMA", "TargetingOptions", "echo_targeting", "write_targeting"]

#: The columns a targeting adds after the scores' own (:data:`~churnclv.serving.snapshots.OUTPUT_SCHEMA`).
TARGETING_SCHEMA = pa.schema(
    [
        pa.field("contact", pa.bool_()),
        pa.field("expected_incremental_revenue", pa.float64()),
        pa.field("expected_profit", pa.float64()),
        pa.field("targeting", pa.string()),
    ]
)
TARGETING_COLUMNS = tuple(TARGETING_SCHEMA.names)
_FIT = "churnclv campaign fit-targeting"
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TargetingOptions:
    """The targeting a run decides with, read and checked when the run's options are made."""

    saved: SavedTargeting

    @classmethod
    def of(cls, folder: str | Path | None, settings: CampaignSettings | None) -> TargetingOptions | None:
        """``folder`` (else the settings' ``targeting``) read; None when there is none."""
        chosen = folder if folder is not None else (settings or CampaignSettings()).targeting
        if chosen is None:
            return None
        try:
            return cls(load_targeting(Path(chosen)))
        except CampaignError as exc:
            raise BatchError(f"--targeting: {exc}") from None

    @property
    def id(self) -> str:
        """The targeting's id, the ``targeting`` column."""
        return self.saved.id

    def check_model(self, model: LoadedModel) -> None:
        """Refuse, before any feature is computed, a chosen value column the scores do not carry as a
        number, a model of another horizon than the one that scored the campaigns, or a model whose
        playbook writes an action the targeting has no cost for, another cost for, or contacts though the
        playbook says it is no contact (a model trained before actions had ``contact`` marks none: the
        targeting's own marks decide)."""
        t = self.saved.targeting
        where = f"--targeting {self.saved.folder}"
        if t.chosen_ != UPLIFT_MODEL and t.chosen_ not in VALUE_COLUMNS:
            raise BatchError(
                f"{where}: its candidate {t.chosen_!r} is not a value column the batch writes {list(VALUE_COLUMNS)}; "
                f"fix: fit it with one of those ({_FIT} --candidate ...)"
            )
        fitted_on = t.scores_model_.get("horizon_days")
        if fitted_on is not None and int(fitted_on) != model.horizon_days:
            raise BatchError(
                f"{where}: fitted on scores of a model with a {fitted_on}-day horizon, but model "
                f"{model.resolved_uri} predicts over {model.horizon_days} days (its {t.chosen_} is on another "
                f"scale); fix: score with a model of a {fitted_on}-day horizon, or fit the targeting again on "
                f"campaigns scored by this one ({_FIT})"
            )
        tiers = model.scorer.tiers_
        if tiers is None:
            raise BatchError(
                f"{where}: model {model.resolved_uri} has no tier policy, so its scores "
                "carry no action to cost; fix: score with a model trained with tiers, or drop --targeting"
            )
        playbook = tiers.tier_config.playbook
        fix = (
            f"fix: fit the targeting again with the --config whose [tiers] playbook the model was trained with ({_FIT})"
        )
        unknown = sorted(set(playbook.costs) - set(t.costs_))
        if unknown:
            raise BatchError(
                f"{where}: no cost for {len(unknown)} action(s) the model's playbook writes, e.g. {unknown[0][:60]!r}; "
                f"{fix}"
            )
        for action, cost in sorted(playbook.costs.items()):
            if not math.isclose(cost, t.costs_[action], rel_tol=1e-9, abs_tol=1e-12):
                raise BatchError(
                    f"{where}: action {action[:60]!r} costs {cost:g} in the model's playbook but {t.costs_[action]:g} "
                    f"in the targeting's fit (its expected profits and its choice used that cost); {fix}, or train "
                    "the model with the targeting's costs"
                )
        contacted = sorted(playbook.no_contact - set(t.no_contact_))
        if contacted:
            raise BatchError(
                f"{where}: the model's playbook marks {contacted[0][:60]!r} as no contact (contact = false) but the "
                f"targeting was fitted to contact it; {fix}"
            )

    def check_features(self, names: list[str], where: str) -> None:
        """Refuse a feature snapshot (its column ``names``) that lacks a feature the uplift model reads."""
        t = self.saved.targeting
        if t.chosen_ != UPLIFT_MODEL:
            return
        missing = [n for n in t.feature_names_ if n not in set(names)]
        if missing:
            raise BatchError(
                f"--targeting {self.saved.folder}: the feature snapshot ({where}) lacks {len(missing)} of the "
                f"{len(t.feature_names_)} features its uplift model reads, e.g. {missing[:5]} (the data has no "
                "such table or attribute, or the model computes features otherwise); nothing was scored; fix: fit "
                f"the targeting on campaigns of this data set ({_FIT} --features OUT/features/dt=D), or choose a "
                "value candidate (--candidate expected_spend)"
            )

    def doc(self) -> dict[str, Any]:
        """What the manifest records of the targeting itself."""
        t = self.saved.targeting
        return {
            "id": self.id,
            "chosen": t.chosen_,
            "margin": t.margin,
            "campaigns": list(t.campaigns_["campaign"]),
        }


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
    t = options.saved.targeting
    options.check_features(pq.read_schema(features_file).names, features_file.parent.name)  # the Spark engine's
    uses_features = t.chosen_ == UPLIFT_MODEL
    rows = _Rows(_feature_rows(features_file, list(t.feature_names_) if uses_features else []))
    totals = {"customers": 0, "contacted": 0, "held_out": 0, "expected_profit": 0.0, "expected_revenue": 0.0}
    campaign_drawn = False
    for f in files:
        table = _without(pq.read_table(f))
        scores = table.select(["customer_id", "action", *([] if uses_features else [t.chosen_])])
        frame = scores.to_pandas()
        features = rows.take(len(frame))
        if not np.array_equal(features["customer_id"].to_numpy(str), frame["customer_id"].to_numpy(str)):
            raise BatchError(f"{f.name}: its customers are not the feature snapshot's in order (a bug)")
        try:
            uplift = t.expected_uplift(features, frame)
            decided = t.decisions(frame["customer_id"], uplift, frame["action"])
        except CampaignError as exc:
            raise BatchError(f"--targeting {options.saved.folder}: {exc}; nothing was published") from None
        decided = decided.set_index("customer_id").loc[frame["customer_id"]]
        profit, chosen = decided["expected_profit"].to_numpy(float), decided["contact"].to_numpy(bool)
        campaign_drawn |= table.column("holdout").null_count < table.num_rows
        held = pc.fill_null(table.column("holdout"), False).to_numpy(zero_copy_only=False).astype(bool)
        contact = chosen & ~held
        columns = [
            pa.array(contact, type=pa.bool_()),
            pa.array(np.asarray(uplift, dtype=float), type=pa.float64()),
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
        totals["expected_revenue"] += float(np.asarray(uplift, dtype=float)[contact].sum())
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
