"""What fit-targeting reads of a past campaign: the scores partition with its manifest (the scoring model, the
feature snapshot beside it), features only of the scores' as-of, several partitions by column name, and a
targeted campaign's arms cut to whom its targeting would contact."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from churnclv.campaigns.errors import CampaignError
from churnclv.campaigns.past_campaign import ScoringModel
from churnclv.serving.snapshots import (
    MANIFEST_FILE,
    features_path,
    manifest_path,
    parse_partition,
    partition_name,
    scores_dir,
)
from churnclv.training.campaign_features import campaign_features
from churnclv.training.campaign_inputs import (
    MANIFEST_FILE as TRAINING_MANIFEST,
)
from churnclv.training.campaign_inputs import (
    partition_day,
    partition_manifest,
    read_table,
    scoring_model,
    targeted_population,
)

DAY = pd.Timestamp("2025-06-30")


def _published(out: Path, day: pd.Timestamp, *, snapshot: bool = True, **columns: object) -> Path:
    """A batch partition as score-batch publishes it: a part file, the manifest and (optionally) the snapshot."""
    folder = scores_dir(out, day.date())
    folder.mkdir(parents=True)
    ids = ["007", "010", "123"]
    pd.DataFrame({"customer_id": ids, "as_of": day.date(), "expected_spend": [1.0, 2.0, 3.0], **columns}).to_parquet(
        folder / "part-00000.parquet"
    )
    model = {"resolved_uri": "models:/shop/7", "version": "7", "horizon_days": 90}
    manifest = {"as_of": str(day.date()), "horizon_days": 90, "model": model}
    manifest["outputs"] = {"features": features_path("", day.date()).as_posix()}
    manifest_path(out, day.date()).write_text(json.dumps(manifest))
    if snapshot:
        features_path(out, day.date()).parent.mkdir(parents=True)
        pd.DataFrame({"customer_id": ids, "frequency": [1.0, 0.0, 4.0]}).to_parquet(features_path(out, day.date()))
    return folder


def test_the_layout_names_agree_with_the_batchs() -> None:
    assert TRAINING_MANIFEST == MANIFEST_FILE
    for day in ("2025-06-30", "1999-01-01"):
        name = partition_name(day)
        assert partition_day(Path("out/scores") / name) == parse_partition(name)
        assert partition_day(Path("out/features") / name / "features.parquet") == parse_partition(name)
    assert partition_day(Path("out/scores/features.parquet")) is None


def test_the_snapshot_beside_the_scores_is_used_and_the_model_read_from_the_manifest(tmp_path: Path) -> None:
    folder = _published(tmp_path, DAY)
    out, manifest = partition_manifest(folder) or (None, {})
    assert out == tmp_path and partition_manifest(folder / "part-00000.parquet") is not None
    frame, source = campaign_features(None, folder, DAY, clean=None, config_path=None, tracking_uri=None)
    assert source == f"the batch's snapshot {features_path(tmp_path, DAY.date())}"
    assert frame["customer_id"].tolist() == ["007", "010", "123"]  # ids stay text
    assert scoring_model(manifest, read_table(folder, "scores")) == ScoringModel("shop", "7", 90)
    assert scoring_model(None, pd.DataFrame({"model_version": ["3", "3"]})) == ScoringModel(version="3")


def test_features_of_another_day_or_of_an_unknown_day_are_refused(tmp_path: Path) -> None:
    folder = _published(tmp_path, DAY)
    week_later = (DAY + pd.Timedelta(days=7)).date()
    _published(tmp_path / "o", pd.Timestamp(week_later))
    other = features_path(tmp_path / "o", week_later).parent  # OUT/features/dt=2025-07-07
    with pytest.raises(CampaignError, match=r"features as of 2025-07-07, but the scores are of 2025-06-30.*fix: pass"):
        campaign_features(other, folder, DAY, clean=None, config_path=None, tracking_uri=None)
    loose = tmp_path / "features.parquet"
    pd.DataFrame({"customer_id": ["007"], "frequency": [1.0]}).to_parquet(loose)
    with pytest.raises(CampaignError, match=r"its as-of is not known .*dt=2025-06-30"):
        campaign_features(loose, folder, DAY, clean=None, config_path=None, tracking_uri=None)
    dated = tmp_path / "dated.parquet"
    pd.DataFrame({"customer_id": ["007"], "as_of": [DAY], "frequency": [1.0]}).to_parquet(dated)
    frame, source = campaign_features(dated, folder, DAY, clean=None, config_path=None, tracking_uri=None)
    assert list(frame.columns) == ["customer_id", "frequency"] and source == f"from {dated}"


def test_a_folder_of_partitions_with_and_without_a_targeting_reads_by_column_name(tmp_path: Path) -> None:
    """pd.read_parquet would take the first file's schema and drop the targeting's columns."""
    _published(tmp_path, DAY, snapshot=False)
    _published(tmp_path, DAY + pd.Timedelta(days=7), snapshot=False, contact=[True, False, True])
    assert "contact" not in pd.read_parquet(tmp_path / "scores").columns  # the trap
    frame = read_table(tmp_path / "scores", "scores")
    assert len(frame) == 6 and frame["contact"].isna().sum() == 3
    assert frame["contact"].dropna().astype(bool).tolist() == [True, False, True]


def test_a_targeted_campaign_is_cut_to_whom_its_targeting_would_contact_in_both_arms() -> None:
    """Treated customers the targeting chose not to contact, and their like in the holdout, leave both arms;
    a customer whose action is no contact too. A campaign without a targeting is left whole."""
    n = 8
    frame = pd.DataFrame(
        {
            "customer_id": [f"{i:03d}" for i in range(n)],
            "action": ["mail"] * 6 + ["none", "mail"],
            "expected_profit": [5.0, -1.0, 2.0, 0.0, 3.0, -2.0, 9.0, np.nan],
            "contact": [True, False, False, False, True, False, False, False],  # 002 and 003 held out
            "targeting": "expected_spend-abc",
        }
    )
    arms = pd.DataFrame({"customer_id": frame["customer_id"], "holdout": [False, False, True, True] + [False] * 4})
    kept, cut, note = targeted_population(frame, arms, {"none"})
    assert kept["customer_id"].tolist() == ["000", "002", "004"] == cut["customer_id"].tolist()
    assert cut["holdout"].tolist() == [False, True, False]
    assert note is not None and "expected_spend-abc" in note and "3 of 8" in note
    plain = frame.drop(columns=["expected_profit", "contact", "targeting"])
    same, same_arms, none = targeted_population(plain, arms, {"none"})
    assert none is None and same is plain and same_arms is arms
