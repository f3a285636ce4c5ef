"""Answers that are partly errors or carry a warning, over HTTP with the real model (in-process):

- a customer whose features the scorer refuses gets an error entry, the others of the request (and of
  the requests it shares a scoring call with) their scores, and the log names no customer;
- ``/score_by_id`` from a snapshot dated 8 months after the model's training as-of warns, like ``/score``;
  the threshold is ``CHURNCLV_AS_OF_WARNING_DAYS``.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from churnclv.serving.snapshots import LATEST, features_path, partition_name

pytestmark = pytest.mark.integration

LATER = "2026-06-01"  # 242 days after the training as-of 2025-10-02


@pytest.fixture(scope="module")
def later_snapshot(batch_out: Path, kit: Any, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The batch job's feature snapshot, published as of LATER (as a batch run 8 months on would)."""
    out = tmp_path_factory.mktemp("later-out")
    features_path(out, LATER).parent.mkdir(parents=True)
    shutil.copy2(features_path(batch_out, kit.AS_OF), features_path(out, LATER))
    (out / LATEST).write_text(f"{partition_name(LATER)}\n")
    return out


@pytest.fixture(scope="module")
def later_service(serving_store: dict, kit: Any, later_snapshot: Path) -> Iterator[tuple[Any, Any]]:
    """A service on that snapshot, and its service object (to reach its model)."""
    import bentoml

    with kit.running_service(kit.service_env(serving_store, later_snapshot)) as c:
        yield c, bentoml.get_current_service()


def test_score_by_id_warns_when_the_snapshot_is_far_from_training(
    later_service: tuple[Any, Any], kit: Any, later_snapshot: Path
) -> None:
    c, _ = later_service
    known = str(pd.read_parquet(features_path(later_snapshot, LATER))["customer_id"].iloc[0])
    r = c.post("/score_by_id", json={"customer_ids": [known, "no-such-customer"]}, headers=kit.HEADERS)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["as_of"] == LATER and body["scores"][0]["as_of"] == LATER and "error" in body["scores"][1]
    (warning,) = body["warnings"]
    assert warning["code"] == "as_of_far_from_training" and "242 days after" in warning["message"]


def test_the_warning_threshold_is_a_setting(serving_store: dict, kit: Any, later_snapshot: Path) -> None:
    env = kit.service_env(serving_store, later_snapshot, CHURNCLV_AS_OF_WARNING_DAYS="365")
    with kit.running_service(env) as c:
        body = c.post("/score_by_id", json={"customer_ids": ["x"]}, headers=kit.HEADERS).json()
    assert body["as_of"] == LATER and body["warnings"] == []


def test_a_customer_the_scorer_refuses_gets_an_error_and_the_others_are_scored(
    later_service: tuple[Any, Any],
    kit: Any,
    small_frames: dict,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    c, service = later_service
    counts = small_frames["transactions"]["customer_id"].value_counts()
    ids = sorted(counts[counts.between(5, 40)].index)[:3]
    body = kit.history_body(small_frames, ids)
    before = c.post("/score", json=body, headers=kit.HEADERS).json()["scores"]
    scorer = service.state.model.scorer
    score = scorer.score
    refused = ids[1]

    def refusing(features: pd.DataFrame, **kw: Any) -> pd.DataFrame:
        # as the scorer's own checks refuse a row they cannot score (say T missing while frequency is known)
        if features["customer_id"].astype(str).str.endswith(refused).any():
            raise ValueError(f"customer {refused}: T is missing")
        return score(features, **kw)

    monkeypatch.setattr(scorer, "score", refusing)
    with caplog.at_level(logging.DEBUG):
        r = c.post("/score", json=body, headers=kit.HEADERS)
    assert r.status_code == 200, r.text
    first, middle, last = r.json()["scores"]
    assert middle["customer_id"] == refused and set(middle) == {"customer_id", "error"}
    assert middle["error"].startswith("this customer's history cannot be scored (ValueError)")
    assert refused not in middle["error"]  # the scorer's own message may quote data: it is not passed on
    assert [first, last] == [before[0], before[2]]
    logged = "\n".join(f"{rec.getMessage()} {rec.exc_text or ''}" for rec in caplog.records)
    assert "1 of 3 customer(s) could not be scored" in logged and refused not in logged
