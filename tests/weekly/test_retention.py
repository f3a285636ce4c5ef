"""[weekly] keep_days: old as-ofs go, what a later run reads stays."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from pathlib import Path

import pytest

from churnclv.config import ConfigError
from churnclv.weekly.config import WeeklyConfig
from churnclv.weekly.retention import prune

AS_OF = dt.date(2025, 6, 1)
H = 28


def _publish(out: Path, day: dt.date, version: str, trained: dt.date, campaign: str | None = None) -> None:
    name = f"dt={day}"
    scores = out / "scores" / name
    scores.mkdir(parents=True)
    model = {"uri": "models:/churnclv@champion", "version": version, "trained_as_of": trained.isoformat()}
    manifest = {"model": model, "horizon_days": H, "campaign": {"id": campaign} if campaign else None}
    (scores / "_manifest.json").write_text(json.dumps(manifest))
    for folder in ("features", "reports", "monitoring", "weekly"):
        (out / folder / name).mkdir(parents=True)
    (out / "weekly" / "validated" / day.isoformat() / "rejects").mkdir(parents=True)


def _weeks(n: int) -> list[dt.date]:
    return [AS_OF - dt.timedelta(weeks=k) for k in range(n)][::-1]


@pytest.fixture
def out(tmp_path: Path) -> Callable[..., Path]:
    def make(campaign_at: dt.date | None = None) -> Path:
        root = tmp_path / "out"
        v1 = _weeks(60)[0]  # a year and more of weeks: v1 trained at the first, v2 half a year ago
        v2 = AS_OF - dt.timedelta(weeks=26)
        for day in _weeks(60):
            version, trained = ("1", v1) if day < v2 else ("2", v2)
            _publish(root, day, version, trained, "winback" if day == campaign_at else None)
        (root / "LATEST").write_text(f"dt={AS_OF}")
        return root

    return make


def _left(out: Path) -> list[dt.date]:
    return sorted(dt.date.fromisoformat(p.name[3:]) for p in (out / "scores").iterdir())


def test_old_as_ofs_go_everywhere_and_what_runs_read_stays(out: Callable[..., Path]) -> None:
    root = out()
    removed, note = prune(root, AS_OF, keep_days=91, lookback_days=35)
    left = _left(root)
    cutoff = AS_OF - dt.timedelta(days=91)
    assert note is None and removed and all(dt.date.fromisoformat(n[3:]) < cutoff for n in removed)
    # v2's drift reference (its training as-of) is older than the cutoff and stays; v1 has no partition kept
    v2 = AS_OF - dt.timedelta(weeks=26)
    assert v2 in left and min(left) == v2
    assert [d for d in left if d != v2] == [d for d in _weeks(60) if d >= cutoff]
    for folder in ("features", "reports", "monitoring", "weekly"):  # each as-of goes from every folder
        names = {p.name for p in (root / folder).iterdir() if p.name.startswith("dt=")}
        assert names == {f"dt={d}" for d in left}, folder
    assert {p.name for p in (root / "weekly" / "validated").iterdir()} == {d.isoformat() for d in left}
    assert prune(root, AS_OF, keep_days=91, lookback_days=35) == ([], None)  # nothing more to do


def test_the_monitor_lookback_and_a_campaign_keep_their_partitions(out: Callable[..., Path]) -> None:
    campaign = AS_OF - dt.timedelta(weeks=40)
    root = out(campaign_at=campaign)
    prune(root, AS_OF, keep_days=7, lookback_days=70)
    left = _left(root)
    assert campaign in left  # the campaign's newest partition: a later one carries its arms
    # evaluated until D + H + lookback passes the as-of
    assert all(d in left for d in _weeks(60) if d + dt.timedelta(days=H + 70) >= AS_OF)


def test_a_damaged_manifest_removes_nothing(out: Callable[..., Path]) -> None:
    root = out()
    (root / "scores" / f"dt={_weeks(60)[3]}" / "_manifest.json").write_text("{")
    removed, note = prune(root, AS_OF, keep_days=91, lookback_days=35)
    assert removed == [] and note is not None and "nothing removed" in note
    assert len(_left(root)) == 60


def test_keep_days_is_checked() -> None:
    assert WeeklyConfig().keep_days is None  # keep everything unless asked
    with pytest.raises(ConfigError, match="keep_days"):
        WeeklyConfig(keep_days=3)


def test_the_version_latest_names_keeps_its_reference(out: Callable[..., Path]) -> None:
    """Long after the last run (nothing recent, nothing left to evaluate), LATEST and its version's
    training snapshot still stay: the next week's drift is measured against it."""
    root = out()
    prune(root, AS_OF + dt.timedelta(days=400), keep_days=7, lookback_days=1)
    assert _left(root) == [AS_OF - dt.timedelta(weeks=26), AS_OF]
