"""What fit-targeting reads of a past campaign: the scores partition with its manifest (the scoring model, the
feature snapshot beside it), features only of the scores' as-of, several partitions by column name, and a
targeted campaign's arms cut to whom its targeting would contact."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from churnclv.campaigns.errors import CampaignError
from churnclv.campaigns.past_campaign import ScoringModel
from churnclv.cli import cli
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


@pytest.mark.parametrize(("sep", "said"), [(";", "';'"), ("\t", "tab"), ("|", "'|'")])
def test_a_csv_of_another_separator_is_refused_naming_it(tmp_path: Path, sep: str, said: str) -> None:
    """A log exported with semicolons was "cannot be read (ParserError); fix: pass Parquet or CSV"."""
    log = tmp_path / "contacts.csv"
    rows = [["customer_id", "campaign", "date", "action"], ["007", "c", "2025-07-01", "No contact: a, b"]]
    log.write_text("".join(sep.join(row) + "\n" for row in rows))
    with pytest.raises(CampaignError) as err:
        read_table(log, "contact log")
    message = str(err.value)
    assert f"contact log {log}: the header was read as one column, so the file is not comma-separated" in message
    assert f"(it looks {said}-separated); fix: export it with commas as the separator" in message
    assert "007" not in message and "Parquet or CSV" not in message


def test_a_broken_csv_is_said_to_be_a_broken_csv(tmp_path: Path) -> None:
    log = tmp_path / "contacts.csv"
    log.write_text("customer_id,campaign,date,action\n007,c,2025-07-01,mail\n010,c,2025-07-01,a, b\n")
    with pytest.raises(CampaignError, match=r"contact log .*: not valid CSV \(ParserError\); fix: .*comma-separated"):
        read_table(log, "contact log")


def _campaign_files(tmp_path: Path) -> list[str]:
    """``campaign evaluate``'s arguments on a tiny clean folder whose data ends on 2025-09-30 (scores of DAY)."""
    data = tmp_path / "data"
    data.mkdir()
    ids = ["007", "010", "123"]
    ts = pd.to_datetime(["2025-01-05", "2025-06-01", "2025-09-30"])
    pd.DataFrame({"customer_id": ids, "ts": ts, "amount": [1.0, 2.0, 3.0]}).to_parquet(data / "transactions.parquet")
    scores = tmp_path / "scores.csv"
    pd.DataFrame({"customer_id": ids, "as_of": DAY.date(), "tier": "Gold", "action": "mail"}).to_csv(
        scores, index=False
    )
    log = tmp_path / "contacts.csv"
    pd.DataFrame({"customer_id": ids, "campaign": "c", "date": "2025-07-01", "action": "mail"}).to_csv(log, index=False)
    args = ["campaign", "evaluate", "--data", str(data), "--trusted", "--scores", str(scores), "--contacts", str(log)]
    return [*args, "--campaign", "c", "--out", str(tmp_path / "report"), "--no-mlflow"]


def test_an_outcome_window_the_data_cannot_answer_is_refused_in_the_commands_words(tmp_path: Path) -> None:
    """The label job's error named compute_labels and its parameters (as_of, cutoff and horizon)."""
    args = _campaign_files(tmp_path)
    long = CliRunner().invoke(cli, [*args, "--horizon-days", "200"])
    assert long.exit_code == 1, long.output
    assert (
        "--horizon-days 200: the outcome window (200 days after the scores' as-of 2025-06-30) ends on 2026-01-16, "
        "108 days after the data's last transaction (2025-09-30)" in long.stderr
    )
    assert "fix: --horizon-days 123 or fewer" in long.stderr and "compute_labels" not in long.stderr
    early = CliRunner().invoke(cli, [*args, "--as-of", "2025-08-01"])
    assert early.exit_code == 1, early.output
    assert "--as-of 2025-08-01: the outcome window (90 days after the scores' as-of 2025-06-30) ends on 2025-09-28" in (
        early.stderr
    )
    assert "has not closed; fix: pass --as-of 2025-09-28 or later" in early.stderr and "cutoff" not in early.stderr
