"""The ``[monitor]`` section, the breaches it finds, and the report's files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from churnclv.config import ConfigError
from churnclv.monitoring.report import render_markdown, write_files
from churnclv.monitoring.thresholds import MonitorConfig, find_breaches, parse_monitor


def _quality(**metrics: float | None) -> dict:
    return {"partition": "dt=2025-01-01", "metrics": metrics}


def _drift(**extra: object) -> dict:
    base = {
        "partition": "dt=2025-04-01",
        "as_of": "2025-04-01",
        "model": {"name": "churnclv", "version": "2"},
        "reference": {"partition": "dt=2025-01-01", "kind": "training_snapshot", "note": "the training as-of"},
        "features": [
            {"column": "tenure_days", "kind": "numeric", "psi": 0.4, "ks": 0.3},
            {"column": "recency", "kind": "numeric", "psi": 0.3, "ks": 0.2},
        ],
        "scores": [{"column": "p_churn", "kind": "numeric", "psi": 0.01, "ks": 0.02}],
        "tier_mix": {"psi": 0.02, "shares": []},
        "max_feature_psi": 0.4,
        "unseen_share": 0.1,
    }
    return base | extra


def test_defaults_and_errors_name_key_rule_and_fix() -> None:
    assert parse_monitor({}) == MonitorConfig()
    assert parse_monitor({"min_auc": 0.7}).min_auc == 0.7
    with pytest.raises(ConfigError, match=r"\[monitor\] max_psi: must be > 0 \(got -1\); fix: a PSI > 0"):
        parse_monitor({"max_psi": -1})
    with pytest.raises(ConfigError, match=r"\[monitor\] max_auc: is not a known key.*min_auc"):
        parse_monitor({"max_auc": 0.5})
    with pytest.raises(
        ConfigError, match=r"\[monitor\] min_auc: input should be a valid number \(got .high.\); fix: a share"
    ):
        parse_monitor({"min_auc": "high"})
    with pytest.raises(ConfigError, match=r"\[monitor\]: must be a table"):
        parse_monitor(3)


def test_each_quality_threshold_is_checked_at_its_edge() -> None:
    c = MonitorConfig()
    ok = _quality(churn_auc=0.8, churn_ece=0.1, purchases_agg_pct_error=-25.0, spend_agg_pct_error=25.0)
    assert find_breaches(ok, None, c, backtest_auc=0.85) == []
    bad = _quality(churn_auc=0.59, churn_ece=0.11, purchases_agg_pct_error=-25.1, spend_agg_pct_error=30.0)
    found = {b.check: b for b in find_breaches(bad, None, c, backtest_auc=0.85)}
    assert set(found) == {"churn_auc", "churn_auc_drop", "churn_ece", "purchases_agg_pct_error", "spend_agg_pct_error"}
    assert found["churn_auc_drop"].value == pytest.approx(0.26)
    assert found["churn_auc"].key == "[monitor] min_auc" and found["churn_auc"].partition == "dt=2025-01-01"
    assert "under-predicted" in found["purchases_agg_pct_error"].fix
    # not measurable (no churner in the window): no verdict rather than a false breach
    assert find_breaches(_quality(churn_auc=None, churn_ece=None), None, c) == []


def test_drift_thresholds_and_ignored_features() -> None:
    found = {b.check for b in find_breaches(None, _drift(unseen_share=0.6), MonitorConfig(drift_ignore=()))}
    assert found == {"psi.feature.tenure_days", "psi.feature.recency", "unseen_share"}
    # by default the ages (tenure_days, T) are reported, never a breach
    assert "psi.feature.tenure_days" not in {b.check for b in find_breaches(None, _drift(), MonitorConfig())}
    quiet = MonitorConfig(drift_ignore=("tenure_days",), max_unseen_share=0.7)
    assert {b.check for b in find_breaches(None, _drift(unseen_share=0.6), quiet)} == {"psi.feature.recency"}


def test_breach_message_is_one_line_with_value_threshold_and_fix() -> None:
    (b,) = find_breaches(_quality(churn_auc=0.55), None, MonitorConfig())
    line = b.message()
    assert "\n" not in line
    assert line.startswith("breach: churn_auc = 0.55 on dt=2025-01-01 crosses [monitor] min_auc = 0.6; fix: retrain")


def test_report_files(tmp_path: Path) -> None:
    (b,) = find_breaches(_quality(churn_auc=0.55), None, MonitorConfig())
    doc = {
        "as_of": "2025-04-01",
        "model_versions": [{"name": "churnclv", "version": "2"}],
        "partitions": [],
        "drift": _drift(),
        "breaches": [b.to_dict() | {"scored_as_of": "2025-01-01"}],
        "notes": ["no partition's horizon has closed by 2025-04-01: drift only"],
    }
    paths = write_files(doc, tmp_path / "m", max_psi=0.25)
    assert {p.name for p in paths} == {"monitor.json", "report.md", "drift.png"}
    assert json.loads((tmp_path / "m" / "monitor.json").read_text()) == doc
    md = render_markdown(doc)
    assert b.message() in md and "drift only" in md and "| tenure_days | numeric | 0.400 |" in md
