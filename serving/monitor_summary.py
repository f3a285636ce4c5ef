"""A model version's latest monitored quality, read from ``OUT/monitoring/dt=DATE/monitor.json``: what
``/model_info`` and the batch manifest show (None when the version was never monitored)."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from churnclv.monitoring.files import MONITOR_FILE
from churnclv.serving.snapshots import parse_partition

__all__ = ["MONITORING_DIR", "latest_monitoring", "monitoring_dir"]

log = logging.getLogger(__name__)

MONITORING_DIR = "monitoring"


def monitoring_dir(out: str | Path) -> Path:
    """``OUT/monitoring``: one folder ``dt=DATE`` per monitor as-of."""
    return Path(out) / MONITORING_DIR


def latest_monitoring(out: str | Path | None, name: str, version: str) -> dict[str, Any] | None:
    """The newest monitor run in ``out`` that evaluated ``name`` v``version``: its as-of, the partition
    of its latest quality (None: none closed yet), those metrics, the drift summary (``partition``,
    ``reference``, ``max_feature_psi`` and ``max_feature``, the feature it is of: None in reports written
    before it was recorded; ``tier_mix_psi``, ``unseen_share``) and the breaches found for the version.
    None without ``out``, without such a run, or when the file cannot be read (logged: a damaged report
    never breaks scoring)."""
    if out is None:
        return None
    root = monitoring_dir(out)
    found = (
        sorted((d, p) for p in root.glob("dt=*") if (d := parse_partition(p.name)) is not None) if root.is_dir() else []
    )
    for _, folder in reversed(found):
        try:
            doc = json.loads((folder / MONITOR_FILE).read_text(encoding="utf-8"))
            entry = next((v for v in doc["model_versions"] if v["name"] == name and v["version"] == version), None)
        except (OSError, ValueError, KeyError, TypeError) as exc:
            log.warning("monitoring report %s cannot be read (%s): skipped", folder / MONITOR_FILE, type(exc).__name__)
            continue
        if entry is None:
            continue
        drift = doc.get("drift")
        mine = drift is not None and drift["model"] == {"name": name, "version": version}
        return {
            "as_of": doc["as_of"],
            "quality": entry.get("latest_quality"),
            "drift": None
            if not mine
            else {
                "partition": drift["partition"],
                "reference": drift["reference"]["partition"],
                "max_feature_psi": drift["max_feature_psi"],
                "max_feature": drift.get("max_feature"),  # absent in reports written before it was named
                "tier_mix_psi": drift["tier_mix"]["psi"],
                "unseen_share": drift["unseen_share"],
            },
            "breaches": [b for b in doc["breaches"] if b["model"] == {"name": name, "version": version}],
        }
    return None
