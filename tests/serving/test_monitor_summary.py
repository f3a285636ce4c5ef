"""What ``/model_info`` and the manifest show of a version's monitoring, from ``monitor.json`` files
written by hand (the end-to-end run is in ``test_monitor_command.py``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from churnclv.serving.monitor_summary import latest_monitoring
from churnclv.serving.schemas import ModelInfo

MODEL = {"name": "churnclv", "version": "3"}


def _write(out: Path, day: str, drift: dict[str, Any]) -> None:
    folder = out / "monitoring" / f"dt={day}"
    folder.mkdir(parents=True)
    doc = {
        "as_of": day,
        "partitions": [],
        "drift": {
            "partition": "dt=2025-12-25",
            "as_of": "2025-12-25",
            "model": MODEL,
            "reference": {"partition": "dt=2025-10-02", "kind": "training_snapshot", "note": None},
            "tier_mix": {"psi": 0.01, "shares": []},
            "unseen_share": 0.0,
            **drift,
        },
        "breaches": [],
        "model_versions": [MODEL | {"latest_quality": None}],
    }
    (folder / "monitor.json").write_text(json.dumps(doc), encoding="utf-8")


def test_the_max_feature_psi_comes_with_its_feature(tmp_path: Path) -> None:
    _write(tmp_path, "2025-12-31", {"max_feature": "days_since_last_purchase", "max_feature_psi": 2.204})
    info = latest_monitoring(tmp_path, "churnclv", "3")
    assert info is not None
    assert info["drift"]["max_feature_psi"] == 2.204
    assert info["drift"]["max_feature"] == "days_since_last_purchase"
    assert ModelInfo.model_fields["monitoring"].description is not None
    assert "max_feature" in ModelInfo.model_fields["monitoring"].description.replace("max_feature_psi", "")


def test_a_report_written_before_the_feature_was_named_gives_null(tmp_path: Path) -> None:
    _write(tmp_path, "2025-12-31", {"max_feature_psi": 0.802})
    info = latest_monitoring(tmp_path, "churnclv", "3")
    assert info is not None
    assert info["drift"]["max_feature_psi"] == 0.802 and info["drift"]["max_feature"] is None
