"""The campaign arm of the HTTP answers (:class:`churnclv.serving.campaign_arms.CampaignArms`), on a small
published partition written here: the partition's arm where the customer is in it (top-ups included),
else the draw; the campaign from the settings or the partition's manifest; the settings and the
OpenAPI document."""

from __future__ import annotations

import datetime as dt
import json
import logging
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from churnclv.campaigns.holdout import holdout_draws, is_held_out
from churnclv.serving.campaign_arms import CampaignArms
from churnclv.serving.schemas import CustomerError, CustomerScore
from churnclv.serving.settings import ServiceSettings, SettingsError
from churnclv.serving.snapshots import LATEST, MANIFEST_FILE, NULLABLE_NUMBERS, PART, partition_name, scores_dir

DAY = dt.date(2025, 10, 2)
PARTITION = partition_name(DAY)
SHARE = 0.2
IDS = [f"{i:08d}" for i in range(400)]


def _published(folder: Path, campaign: str | None = "spring") -> dict[str, bool]:
    """A partition of IDS under ``campaign`` whose arms are the draws but for two: the first customer
    with a draw above the share is a top-up, the first below it a release. Returns the arms."""
    draws = holdout_draws("spring", IDS)
    arms = dict(zip(IDS, (draws < SHARE).tolist(), strict=True))
    top_up = next(i for i, d in zip(IDS, draws, strict=True) if d >= SHARE)
    release = next(i for i, d in zip(IDS, draws, strict=True) if d < SHARE)
    arms[top_up], arms[release] = True, False
    part = scores_dir(folder, DAY)
    part.mkdir(parents=True)
    table = pa.table(
        {
            "customer_id": pa.array(IDS, pa.string()),
            "campaign": pa.array([campaign] * len(IDS), pa.string()),
            "holdout": pa.array([arms[i] if campaign else None for i in IDS], pa.bool_()),
        }
    )
    pq.write_table(table.slice(0, 150), part / PART.format(0))
    pq.write_table(table.slice(150), part / PART.format(1))
    doc = None if campaign is None else {"id": campaign, "holdout_share": SHARE, "strata": ["tier", "action"]}
    (part / MANIFEST_FILE).write_text(json.dumps({"campaign": doc}))
    (folder / LATEST).write_text(PARTITION)
    return arms


def _score(customer_id: str) -> CustomerScore:
    numbers = dict.fromkeys(("p_churn", "p_alive", "expected_purchases", "expected_spend", "clv"), 0.5)
    nulls = dict.fromkeys(NULLABLE_NUMBERS)
    return CustomerScore(
        customer_id=customer_id,
        as_of=DAY,
        **numbers,
        **nulls,
        historic_clv=1.0,
        total_clv=1.5,
        risk_band="low",
        clv_at_risk=0.25,
        growth_score=0.5,
        tier="Gold",
        tier_level=2,
        stage="active",
        action="call",
        reasons=[],
        model_version="1",
    )


def test_a_customer_of_the_partition_gets_its_arm_and_another_their_draw(tmp_path: Path) -> None:
    published = _published(tmp_path)
    arms = CampaignArms.load(tmp_path, PARTITION, None, None)
    assert (arms.campaign, arms.share, arms.partition) == ("spring", SHARE, PARTITION)
    assert len(arms.overrides) == 2  # only the top-up and the release are held in memory
    assert all(arms.arm(cid) == held for cid, held in published.items())
    live = [f"new-{i}" for i in range(300)]
    assert [arms.arm(cid) for cid in live] == [is_held_out("spring", cid, SHARE) for cid in live]
    assert any(arms.arm(cid) for cid in live) and not all(arms.arm(cid) for cid in live)


def test_the_answers_carry_the_campaign_and_the_arm(tmp_path: Path) -> None:
    published = _published(tmp_path)
    top_up = next(cid for cid in IDS if published[cid] and not is_held_out("spring", cid, SHARE))
    answers: list[CustomerScore | CustomerError] = [
        _score(top_up),
        CustomerError(customer_id="x", error="unknown customer_id"),
        _score("live-1"),
    ]
    CampaignArms.load(tmp_path, PARTITION, None, None).apply(answers)
    first, error, live = answers
    assert isinstance(first, CustomerScore) and (first.campaign, first.holdout) == ("spring", True)
    assert isinstance(live, CustomerScore) and live.holdout == is_held_out("spring", "live-1", SHARE)
    assert "holdout" not in error.model_dump()
    body = first.model_dump(mode="json")
    # the targeting's fields (null without one) come between, as in the batch output with a targeting
    assert list(body)[-8:-5] == ["campaign", "holdout", "model_version"] and list(body)[-1] == "rows_after_as_of"


def test_the_settings_campaign_wins_and_draws_its_own_holdout(tmp_path: Path) -> None:
    _published(tmp_path)
    other = CampaignArms.load(tmp_path, PARTITION, "autumn", None)
    assert other.campaign == "autumn" and other.share == 0.1 and not other.overrides  # the [campaigns] default
    assert [other.arm(cid) for cid in IDS] == (holdout_draws("autumn", IDS) < 0.1).tolist()
    # the same campaign at another share: the partition's customers keep their arms, the others draw at it
    wider = CampaignArms.load(tmp_path, PARTITION, "spring", 0.4)
    published = CampaignArms.load(tmp_path, PARTITION, None, None)
    assert all(wider.arm(cid) == published.arm(cid) for cid in IDS)
    assert wider.arm("live-7") == is_held_out("spring", "live-7", 0.4)


def test_no_campaign_anywhere_gives_nulls(tmp_path: Path) -> None:
    _published(tmp_path, campaign=None)
    for arms in (CampaignArms.load(tmp_path, PARTITION, None, None), CampaignArms.load(None, None, None, None)):
        answer = _score(IDS[0])
        arms.apply([answer])
        assert answer.campaign is None and answer.holdout is None
    # no snapshot: the settings' campaign by draw alone
    alone = CampaignArms.load(None, None, "spring", SHARE)
    assert alone.arm(IDS[3]) == is_held_out("spring", IDS[3], SHARE)


def test_an_unreadable_partition_falls_back_to_the_draws(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    _published(tmp_path)
    (scores_dir(tmp_path, DAY) / PART.format(1)).write_bytes(b"not parquet")
    with caplog.at_level(logging.ERROR):
        arms = CampaignArms.load(tmp_path, PARTITION, None, None)
    assert arms.campaign == "spring" and not arms.overrides
    assert "cannot be read" in caplog.text and "00000" not in caplog.text  # no customer ids in the log


def test_the_campaign_settings_of_the_service() -> None:
    settings = ServiceSettings.from_env({"CHURNCLV_CAMPAIGN": "spring", "CHURNCLV_HOLDOUT_SHARE": "0.2"})
    assert (settings.campaign, settings.holdout_share) == ("spring", 0.2)
    assert ServiceSettings.from_env({}).campaign is None
    with pytest.raises(SettingsError, match=r"CHURNCLV_HOLDOUT_SHARE: must be <= 0.5.*fix: a share"):
        ServiceSettings.from_env({"CHURNCLV_HOLDOUT_SHARE": "0.6"})
    with pytest.raises(SettingsError, match=r"CHURNCLV_CAMPAIGN: must be non-blank text"):
        ServiceSettings.from_env({"CHURNCLV_CAMPAIGN": "a\x01b"})


def test_the_openapi_document_describes_the_fields(monkeypatch: pytest.MonkeyPatch) -> None:
    from churnclv.serving.service import ChurnCLVService

    monkeypatch.setenv("CHURNCLV_API_KEY", "k" * 24)
    doc = ChurnCLVService.openapi_spec.asdict()
    fields = doc["components"]["schemas"]["CustomerScore"]["properties"]
    # OpenAPI 3.0's form of an optional field (/docs.json is a 3.0 document): the type and nullable
    assert fields["holdout"]["type"] == "boolean" and fields["holdout"]["nullable"] is True
    assert fields["campaign"]["type"] == "string" and fields["campaign"]["nullable"] is True
    assert "CHURNCLV_CAMPAIGN" in fields["campaign"]["description"]
    assert "do not contact" in fields["holdout"]["description"]
    assert "holdout" in doc["info"]["description"]
