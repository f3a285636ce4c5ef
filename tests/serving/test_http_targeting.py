"""The targeting's contact decision in the HTTP answers (``CHURNCLV_TARGETING``): the batch's numbers for
the same customer, model, as-of and campaign arm (score_by_id, per request and from the precomputed
table; /score from the histories); controls never contacted; /model_info names it; null without one; a
targeting the model or the snapshot cannot serve stops ``churnclv serve`` before any server starts."""

from __future__ import annotations

import re
import socket
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pandas as pd
import pytest

from churnclv.campaigns.targeting import UPLIFT_MODEL
from churnclv.campaigns.targeting_files import save_targeting
from churnclv.models.tier_config import default_tier_config
from churnclv.serving.campaign_arms import CampaignArms
from churnclv.serving.feature_snapshot import FeatureSnapshot, score_ids
from churnclv.serving.schemas import CustomerScore, ScoreByIdResponse
from churnclv.serving.score_table import ScoreTableBuilder
from churnclv.serving.scoring import load_checked_model
from churnclv.serving.served_targeting import OPTION
from churnclv.serving.settings import ServiceSettings
from churnclv.serving.snapshots import features_path, read_scores
from churnclv.serving.targeting_decisions import TARGETING_COLUMNS, Targeting, decide_answers

pytestmark = pytest.mark.integration

CAMPAIGN = "crm-pilot"  # the batch_out fixture's
N_IDS = 400
COSTS = default_tier_config().playbook.costs
NO_CONTACT = default_tier_config().playbook.no_contact


@pytest.fixture(scope="module")
def targeted(
    serving_store: dict,
    small_world: Path,
    batch_out: Path,
    kit: Any,
    fit_targeting: Any,
    tmp_path_factory: pytest.TempPathFactory,
) -> SimpleNamespace:
    """An X-learner targeting fitted on the batch output's base, and the batch run again with it (the reference)."""
    from churnclv.serving.batch import run_batch

    tmp = tmp_path_factory.mktemp("http-targeting")
    features = pd.read_parquet(features_path(batch_out, kit.AS_OF))
    scores = read_scores(batch_out, kit.AS_OF)
    saved = save_targeting(fit_targeting(features, scores, (UPLIFT_MODEL,)), tmp / "targeting")
    out = tmp / "out"
    run_batch(
        clean=small_world,
        as_of=kit.AS_OF,
        out=out,
        tracking_uri=serving_store["tracking_uri"],
        progress=False,
        echo=lambda _line: None,
        campaign=CAMPAIGN,
        targeting=saved.folder,
    )
    batch = read_scores(out, kit.AS_OF).set_index("customer_id")
    held = batch.index[batch["holdout"].astype(bool)]
    would = batch.index[(batch["expected_profit"] > 0) & ~batch["action"].isin(NO_CONTACT)]
    rest = batch.index.difference(held).difference(would)
    # some hundreds: every control that a contact would profit, contacted ones, and the others
    ids = sorted({*held.intersection(would), *would[:150], *rest[:150], *held[:50]})[:N_IDS]
    return SimpleNamespace(
        tmp=tmp, saved=saved, out=out, batch=batch, ids=ids, features=features, scores=scores, fit=fit_targeting
    )


def _by_id(client: Any, kit: Any, ids: list[str]) -> pd.DataFrame:
    rows = []
    for start in range(0, len(ids), kit.MAX_CUSTOMERS):
        page = {"customer_ids": ids[start : start + kit.MAX_CUSTOMERS]}
        r = client.post("/score_by_id", json=page, headers=kit.HEADERS)
        assert r.status_code == 200, r.text
        rows += r.json()["scores"]
    return pd.DataFrame(rows).set_index("customer_id")


def _same_decisions(http: pd.DataFrame, batch: pd.DataFrame, saved_id: str) -> None:
    batch = batch.loc[http.index]
    assert http["contact"].tolist() == batch["contact"].tolist()
    assert (http["targeting"] == batch["targeting"]).all() and set(http["targeting"]) == {saved_id}
    for col in ("expected_profit", "expected_incremental_revenue"):
        np.testing.assert_allclose(http[col].to_numpy(float), batch[col].to_numpy(float), rtol=1e-9, atol=1e-9)
    assert http["holdout"].tolist() == batch["holdout"].tolist()
    held = http["holdout"].astype(bool)
    profitable = (http["expected_profit"] > 0) & ~http["action"].isin(NO_CONTACT)
    assert (held & profitable).any() and not http.loc[held, "contact"].any()  # controls never contacted
    assert http["contact"].any() and not http["contact"].all()


def test_score_by_id_carries_the_batchs_decisions_per_request_and_from_the_table(
    serving_store: dict, kit: Any, targeted: SimpleNamespace
) -> None:
    import bentoml

    env = kit.service_env(serving_store, targeted.out, CHURNCLV_TARGETING=str(targeted.saved.folder))
    with kit.running_service({**env, "CHURNCLV_PRECOMPUTE_SCORES": "0"}) as c:
        per_request = _by_id(c, kit, targeted.ids)
        info = c.post("/model_info", headers=kit.HEADERS).json()
    _same_decisions(per_request, targeted.batch, targeted.saved.id)
    assert info["targeting"] == targeted.saved.id
    # the field order: the batch's columns, then the targeting's, as the part files hold them
    assert list(per_request.columns)[-5:] == [*TARGETING_COLUMNS, "rows_after_as_of"]
    with kit.running_service(env) as c:
        service = bentoml.get_current_service()

        async def built() -> None:
            assert service._table_task is not None
            await service._table_task

        c.portal.call(built)
        assert service._table is not None and service._table.targeting is not None
        from_table = _by_id(c, kit, targeted.ids)
    pd.testing.assert_frame_equal(from_table, per_request)


def test_score_carries_the_batchs_decisions_from_the_histories(
    serving_store: dict, kit: Any, small_frames: dict, targeted: SimpleNamespace
) -> None:
    # the snapshot folder for the campaign arms the batch wrote (top-ups included)
    env = kit.service_env(serving_store, targeted.out, CHURNCLV_TARGETING=str(targeted.saved.folder))
    page = targeted.ids[: kit.MAX_CUSTOMERS]
    with kit.running_service(env) as c:
        r = c.post("/score", json=kit.history_body(small_frames, page), headers=kit.HEADERS)
    assert r.status_code == 200, r.text
    http = pd.DataFrame(r.json()["scores"]).set_index("customer_id")
    assert list(http.index) == page
    batch = targeted.batch.loc[page]
    assert http["contact"].tolist() == batch["contact"].tolist()
    np.testing.assert_allclose(http["expected_profit"], batch["expected_profit"], rtol=1e-9, atol=1e-9)
    assert set(http["targeting"]) == {targeted.saved.id}


def test_without_a_targeting_the_fields_are_null(client: Any, kit: Any, targeted: SimpleNamespace) -> None:
    r = client.post("/score_by_id", json={"customer_ids": targeted.ids[:5]}, headers=kit.HEADERS)
    assert r.status_code == 200
    for score in r.json()["scores"]:
        assert all(score[c] is None for c in TARGETING_COLUMNS)
    assert client.post("/model_info", headers=kit.HEADERS).json()["targeting"] is None


def test_the_table_holds_the_decisions_the_request_path_makes(serving_store: dict, targeted: SimpleNamespace) -> None:
    model = load_checked_model(serving_store["model_uri"], serving_store["tracking_uri"])
    snapshot = FeatureSnapshot.load(targeted.out)
    for candidates in ((UPLIFT_MODEL,), ("expected_spend",)):
        folder = targeted.tmp / f"table-{candidates[0]}"
        targeting = Targeting(save_targeting(targeted.fit(targeted.features, targeted.scores, candidates), folder))
        builder = ScoreTableBuilder(model, snapshot, chunk_rows=211, targeting=targeting)
        while not builder.step():
            pass
        asked = [*targeted.ids[:60], "nobody", targeted.ids[0]]
        from_table = builder.table().answers(asked)
        expected = score_ids(model, snapshot, asked)
        scored = [a.customer_id for a in expected if isinstance(a, CustomerScore)]
        rows = snapshot.features.iloc[snapshot.index.get_indexer(scored)]
        decide_answers(targeting, expected, rows)

        def doc(answers: list[Any]) -> str:
            return ScoreByIdResponse(
                as_of=snapshot.as_of, snapshot=snapshot.partition, model_version="1", scores=answers
            ).model_dump_json()

        assert doc(from_table) == doc(expected)
        assert [a.model_fields_set for a in from_table] == [a.model_fields_set for a in expected]
        assert {a.targeting for a in from_table if hasattr(a, "targeting")} == {targeting.id}


def test_a_control_is_never_contacted(targeted: SimpleNamespace) -> None:
    arms = CampaignArms.load(targeted.out, "dt=2025-10-02", None, None)
    model_free = targeted.batch.loc[targeted.ids[:80]]
    answers = []
    for cid, row in model_free.iterrows():
        score = CustomerScore.model_construct(customer_id=cid, action=row["action"])
        score.contact = True  # a targeting would contact every one of them
        answers.append(score)
    arms.apply(answers)
    assert any(a.holdout for a in answers) and not any(a.holdout and a.contact for a in answers)
    assert all(a.contact for a in answers if not a.holdout)


def test_the_setting_and_its_round_trip(tmp_path: Path) -> None:
    settings = ServiceSettings.from_env({"CHURNCLV_TARGETING": str(tmp_path)})
    assert settings.targeting == tmp_path
    assert ServiceSettings.from_env(settings.to_env()).targeting == tmp_path
    assert ServiceSettings.from_env({}).targeting is None


def test_serve_refuses_a_targeting_it_cannot_serve_before_any_server(
    serving_store: dict, targeted: SimpleNamespace, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import churnclv.serving.server as server

    def never(*_args: Any) -> int:
        raise AssertionError("the server was started")

    monkeypatch.setattr(server, "_run_server", never)
    monkeypatch.setenv("CHURNCLV_API_KEY", "k" * 20)
    with socket.socket() as free:  # serve checks its port before the model: not the default 3000, maybe in use
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]
    common = {"port": port, "model_uri": serving_store["model_uri"], "tracking_uri": serving_store["tracking_uri"]}
    with pytest.raises(server.ServeError, match=rf"{re.escape(OPTION)}: targeting .*: not a folder"):
        server.serve(**common, targeting=tmp_path / "nowhere")
    action = sorted(COSTS)[0]
    dearer = save_targeting(
        targeted.fit(targeted.features, targeted.scores, ("expected_spend",), costs={**COSTS, action: 99.0}),
        tmp_path / "d",
    )
    with pytest.raises(server.ServeError, match=r"costs .* in the model's playbook but 99 "):
        server.serve(**common, targeting=dearer.folder)
    lacking = save_targeting(
        targeted.fit(targeted.features.assign(attr_loyalty_card=1.0), targeted.scores, (UPLIFT_MODEL,)), tmp_path / "l"
    )
    with pytest.raises(server.ServeError, match=r"the features the service computes for /score lacks 1 of the"):
        server.serve(**common, targeting=lacking.folder)
