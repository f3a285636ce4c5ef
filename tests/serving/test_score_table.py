"""score_by_id's precomputed answers (churnclv.serving.score_table): the same JSON as scoring the ids
when the request comes, one id at a time or many; errors kept per customer; served by the service once
built, and not built when turned off."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from churnclv.serving.feature_snapshot import UNKNOWN_ID, FeatureSnapshot, score_ids
from churnclv.serving.schemas import ScoreByIdResponse
from churnclv.serving.score_table import ScoreTable, ScoreTableBuilder
from churnclv.serving.scoring import load_checked_model
from churnclv.serving.snapshots import features_path

pytestmark = pytest.mark.integration


def _json(snapshot: FeatureSnapshot, answers: list[Any]) -> str:
    return ScoreByIdResponse(
        as_of=snapshot.as_of, snapshot=snapshot.partition, model_version="1", scores=answers
    ).model_dump_json()


def _table(model: Any, snapshot: FeatureSnapshot, chunk_rows: int = 97) -> ScoreTable:
    builder = ScoreTableBuilder(model, snapshot, chunk_rows=chunk_rows)  # several chunks, the last one short
    with pytest.raises(RuntimeError, match="step"):
        builder.table()
    steps = 1
    while not builder.step():
        steps += 1
    assert steps == -(-len(snapshot.features) // chunk_rows) and builder.progress == (len(snapshot.features),) * 2
    return builder.table()


@pytest.fixture(scope="module")
def model(serving_store: dict) -> Any:
    return load_checked_model(serving_store["model_uri"], serving_store["tracking_uri"])


def test_the_table_answers_exactly_what_scoring_the_ids_answers(model: Any, batch_out: Path) -> None:
    snapshot = FeatureSnapshot.load(batch_out)
    table = _table(model, snapshot)
    ids = snapshot.features["customer_id"].tolist()
    pick = [ids[i] for i in np.random.default_rng(3).choice(len(ids), 50, replace=False)]
    asked = [ids[0], *pick, "no-such-customer", ids[-1], pick[0]]
    from_table = table.answers(asked)
    assert _json(snapshot, from_table) == _json(snapshot, score_ids(model, snapshot, asked))  # one call
    assert _json(snapshot, from_table) == _json(snapshot, [score_ids(model, snapshot, [c])[0] for c in asked])
    assert [a.model_fields_set for a in from_table] == [a.model_fields_set for a in score_ids(model, snapshot, asked)]
    assert from_table[-3].error == UNKNOWN_ID
    assert from_table[1] is not from_table[-1]  # each answer its own object: the arms are set on it
    assert table.serves(model, snapshot) and not table.serves(model, FeatureSnapshot.load(batch_out))


def test_rows_that_cannot_be_scored_keep_their_error_and_the_others_their_scores(
    model: Any, batch_out: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    shutil.copytree(batch_out, out, ignore=shutil.ignore_patterns("part-*", "tier_report"))
    path = features_path(out, "2025-10-02")
    frame = pd.read_parquet(path)
    known = frame[frame["frequency"].notna() & (frame["frequency"] > 0)]["customer_id"].astype(str).tolist()
    frame.loc[frame["customer_id"].astype(str) == known[0], "frequency"] = np.inf  # found at load
    frame.loc[frame["customer_id"].astype(str) == known[1], "T"] = np.nan  # refused by the scorer
    frame.to_parquet(path, index=False)
    snapshot = FeatureSnapshot.load(out)
    table = _table(model, snapshot, chunk_rows=256)
    asked = [known[2], known[0], known[1], known[3]]
    answers = table.answers(asked)
    assert "infinite values" in answers[1].error and "cannot be scored" in answers[2].error
    assert set(table.errors) == {known[0], known[1]}
    assert _json(snapshot, answers) == _json(snapshot, score_ids(model, snapshot, asked))


def _built(client: Any, service: Any) -> None:
    """Wait for the service's table: its build task, awaited on the app's own loop (no sleep)."""

    async def wait() -> None:
        assert service._table_task is not None
        await asyncio.shield(service._table_task)

    client.portal.call(wait)


def test_the_service_answers_from_the_table_once_built_and_the_same_without_it(
    serving_store: dict, kit: Any, batch_out: Path
) -> None:
    import bentoml

    ids = pd.read_parquet(features_path(batch_out, kit.AS_OF))["customer_id"].astype(str).tolist()
    asked = {"customer_ids": [*ids[:40:3], "nobody", ids[-1]]}
    with kit.running_service(kit.service_env(serving_store, batch_out, CHURNCLV_PRECOMPUTE_SCORES="0")) as c:
        assert bentoml.get_current_service()._table_task is None  # off: never built
        without = c.post("/score_by_id", json=asked, headers=kit.HEADERS)
    with kit.running_service(kit.service_env(serving_store, batch_out)) as c:
        service = bentoml.get_current_service()
        _built(c, service)
        model, snapshot = service.state.model, service.state.snapshot
        assert service._table is not None and service._table.serves(model, snapshot)
        with_table = c.post("/score_by_id", json=asked, headers=kit.HEADERS)
        calls = service._ids.calls
        assert c.post("/score_by_id", json=asked, headers=kit.HEADERS).status_code == 200
        assert service._ids.calls == calls  # a lookup: no scoring call
    assert without.status_code == with_table.status_code == 200
    assert with_table.json() == without.json()
    assert {s.get("campaign") for s in with_table.json()["scores"][:-2]} == {"crm-pilot"}  # the arms are set


def test_an_empty_snapshot_gives_an_empty_table_that_knows_nobody() -> None:
    empty = pd.DataFrame({"customer_id": pd.Series([], dtype=object)})
    snapshot = FeatureSnapshot(Path("."), "dt=2025-10-02", dt.date(2025, 10, 2), empty, pd.Index([]))
    builder = ScoreTableBuilder(model=None, snapshot=snapshot)  # type: ignore[arg-type]  # never scores
    assert builder.done and builder.progress == (0, 0)
    (answer,) = builder.table().answers(["x"])
    assert (answer.customer_id, answer.error) == ("x", UNKNOWN_ID)


def test_a_failed_build_leaves_score_by_id_scoring_each_request(
    serving_store: dict, kit: Any, batch_out: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    import bentoml

    import churnclv.serving.score_table as score_table

    def broken(*_args: Any) -> list[Any]:
        raise RuntimeError("customer 00000002 broke it")  # a bug's message may quote data: never logged

    monkeypatch.setattr(score_table, "score_ids", broken)
    ids = pd.read_parquet(features_path(batch_out, kit.AS_OF))["customer_id"].astype(str).tolist()[:3]
    with caplog.at_level(logging.INFO), kit.running_service(kit.service_env(serving_store, batch_out)) as c:
        service = bentoml.get_current_service()
        _built(c, service)
        assert service._table is None
        task = service._table_task
        r = c.post("/score_by_id", json={"customer_ids": ids}, headers=kit.HEADERS)
        assert service._table_task is task and service._ids.calls == 1  # scored per request, not built again
    assert r.status_code == 200 and [s["customer_id"] for s in r.json()["scores"]] == ids
    assert all("p_churn" in s for s in r.json()["scores"])
    logged = "\n".join(rec.getMessage() for rec in caplog.records)
    assert "precomputing the answers of snapshot dt=2025-10-02 failed (RuntimeError)" in logged
    assert "00000002" not in logged
