"""How long the weekly job keeps its outputs: ``[weekly] keep_days`` (unset: everything, forever).

Once an as-of is complete, every as-of more than ``keep_days`` before it goes: its partition
(``scores/``, ``features/``, ``reports/``), its ``monitoring/`` report, its journal and its validated
rejects. Kept whatever their age, because a later run reads them:

- partitions the monitor still evaluates (``D + horizon + [monitor] lookback_days >= as-of``);
- each version's drift reference (the partition at its training as-of, else its first), for every
  version with a partition kept;
- the newest partition of each campaign (a later partition carries its holdout arms);
- the partition ``LATEST`` names, and anything dated after the as-of (a backfill).

The scores folder of a partition goes last, so a run killed half way leaves a partition that is still
listed and removed by the next run. The database table (``--db``) and MLflow are not pruned.
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
from pathlib import Path

from churnclv.serving.monitor_inputs import MonitorError, Partition, choose_reference, published
from churnclv.serving.monitor_summary import MONITORING_DIR
from churnclv.serving.snapshots import (
    FEATURES_DIR,
    LATEST,
    MANIFEST_FILE,
    REPORTS_DIR,
    SCORES_DIR,
    parse_partition,
    partition_name,
    read_latest,
)
from churnclv.weekly.journal import WEEKLY_DIR, validated_dir

__all__ = ["prune"]


def _kept(parts: list[Partition], out: Path, as_of: dt.date, cutoff: dt.date, lookback_days: int) -> set[dt.date]:
    keep = {
        p.day for p in parts if p.day >= cutoff or p.day + dt.timedelta(days=p.horizon_days + lookback_days) >= as_of
    }
    latest = parse_partition(read_latest(out)) if (out / LATEST).is_file() else None
    keep |= {latest} if latest else set()  # before the references: its version's reference must stay too
    for version in {p.version for p in parts if p.day in keep}:  # one model name per output folder
        newest = [p for p in parts if p.version == version][-1]
        keep.add(choose_reference(parts, newest)[0].day)
    campaigns: dict[str, dt.date] = {}
    for p in parts:
        campaign = json.loads((out / SCORES_DIR / p.name / MANIFEST_FILE).read_text()).get("campaign") or {}
        if campaign.get("id"):
            campaigns[str(campaign["id"])] = p.day  # oldest first: the newest wins
    return keep | set(campaigns.values())


def _iso_day(name: str) -> dt.date | None:
    try:
        return dt.date.fromisoformat(name)
    except ValueError:
        return None


def prune(out: Path, as_of: dt.date, keep_days: int, lookback_days: int) -> tuple[list[str], str | None]:
    """Remove the as-ofs older than ``keep_days`` before ``as_of`` that no later run reads (see the module).

    Returns the removed partition names (oldest first) and a note when nothing could be pruned.
    """
    out = Path(out)
    cutoff = as_of - dt.timedelta(days=keep_days)
    try:
        parts = published(out, as_of)
        keep = _kept(parts, out, as_of, cutoff, lookback_days)
    except (MonitorError, OSError, ValueError) as exc:  # a damaged manifest: remove nothing, say why
        return [], f"nothing removed: {' '.join(str(exc).split())}"
    days: set[dt.date] = set()
    for folder in (SCORES_DIR, FEATURES_DIR, REPORTS_DIR, MONITORING_DIR, WEEKLY_DIR):
        root = out / folder
        days |= {d for d in (parse_partition(p.name) for p in root.iterdir()) if d} if root.is_dir() else set()
    validated = validated_dir(out, as_of).parent
    days |= {d for d in (_iso_day(p.name) for p in validated.iterdir()) if d} if validated.is_dir() else set()
    gone = sorted(d for d in days if d < cutoff and d not in keep)
    for day in gone:
        name = partition_name(day)
        for folder in (FEATURES_DIR, REPORTS_DIR, MONITORING_DIR, WEEKLY_DIR):
            shutil.rmtree(out / folder / name, ignore_errors=True)
        shutil.rmtree(validated_dir(out, day), ignore_errors=True)
        shutil.rmtree(out / SCORES_DIR / name, ignore_errors=True)  # last: a half-pruned partition stays listed
    return [partition_name(d) for d in gone], None
