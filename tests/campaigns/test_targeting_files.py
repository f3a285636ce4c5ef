"""A fitted targeting saved to a folder (JSON and LightGBM text) and read back decides exactly as before; a
missing, damaged, edited or other-version folder is refused naming the file and the fix."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from churnclv.campaigns.errors import CampaignError
from churnclv.campaigns.past_campaign import ScoringModel
from churnclv.campaigns.targeting import UPLIFT_MODEL, CampaignTargeting, PastCampaign
from churnclv.campaigns.targeting_files import MODEL_FILE, TARGETING_FILE, load_targeting, save_targeting

COSTS = {"mail": 0.5, "call": 5.0}


def _campaign(name: str, seed: int, n: int = 1500, model: ScoringModel | None = None) -> PastCampaign:
    rng = np.random.default_rng(seed)
    ids = [f"{seed:02d}{i:06d}" for i in range(n)]
    value = rng.lognormal(3.0, 0.8, n)
    features = pd.DataFrame({"customer_id": ids, "x1": np.log(value), "x2": rng.normal(size=n)})
    scores = pd.DataFrame(
        {"customer_id": ids, "action": np.where(rng.random(n) < 0.7, "mail", "call"), "expected_spend": value}
    )
    treated = rng.random(n) < 0.5
    outcome = value * rng.gamma(2.0, 0.5, n) + treated * 0.3 * value + rng.normal(0, 5, n)
    return PastCampaign.from_frames(name, features, scores, treated, outcome, horizon_days=60, model=model)


@pytest.fixture(scope="module")
def generated(generated_campaign, evaluated_campaign, tmp_path_factory: pytest.TempPathFactory):
    """Two evaluated generated campaigns, the X-learner chosen on them, saved; and a next base to decide on."""
    campaigns = []
    for seed in (41, 42):
        c = generated_campaign(seed, n_customers=1200, share=0.5)
        learned = evaluated_campaign(c)
        campaigns.append(learned.past)
    features = learned.features
    targeting = CampaignTargeting(candidates=(UPLIFT_MODEL,), uplift_params={"num_boost_round": 30}).fit(
        campaigns, c.costs
    )
    folder = tmp_path_factory.mktemp("targeting")
    saved = save_targeting(targeting, folder)
    scores = c.scores.set_index("customer_id").loc[features["customer_id"]].reset_index()
    return targeting, saved, features, scores


def test_a_loaded_uplift_model_targeting_decides_exactly_as_the_fitted_one(generated) -> None:
    targeting, saved, features, scores = generated
    assert {p.name for p in saved.folder.iterdir()} == {TARGETING_FILE, MODEL_FILE}
    loaded = load_targeting(saved.folder)
    assert loaded.id == saved.id and loaded.id.startswith("uplift_model-")
    before, after = targeting.decide(features, scores), loaded.targeting.decide(features, scores)
    pd.testing.assert_frame_equal(before, after, check_exact=True)
    assert before["contact"].any() and not before["contact"].all()
    pd.testing.assert_frame_equal(targeting.summary(), loaded.targeting.summary(), check_exact=True)
    assert loaded.targeting.feature_names_ == targeting.feature_names_
    assert loaded.targeting.costs_ == targeting.costs_


def test_a_value_targeting_round_trips_with_its_choice_and_backtest(tmp_path: Path) -> None:
    campaigns = [_campaign(f"c{k}", k) for k in range(2)]
    targeting = CampaignTargeting(candidates=("expected_spend",), margin=0.4).fit(campaigns, COSTS)
    saved = save_targeting(targeting, tmp_path / "t")
    assert not (tmp_path / "t" / MODEL_FILE).exists()
    doc = json.loads((tmp_path / "t" / TARGETING_FILE).read_text())
    assert doc["chosen"] == "expected_spend" and doc["fitted"] == targeting.fitted_ and doc["params"]["margin"] == 0.4
    assert [c["campaign"] for c in doc["campaigns"]] == ["c0", "c1"] and doc["costs"] == COSTS
    loaded = load_targeting(tmp_path / "t").targeting
    new = _campaign("new", 9).customers
    pd.testing.assert_frame_equal(targeting.decide(new, new), loaded.decide(new, new), check_exact=True)
    pd.testing.assert_frame_equal(targeting.backtest_, loaded.backtest_, check_exact=True)
    assert loaded.margin == 0.4
    # refitting on other data gives another id; saving the same fit again gives the same one
    assert save_targeting(targeting, tmp_path / "again").id == saved.id
    other = CampaignTargeting(candidates=("expected_spend",), margin=0.5).fit(campaigns, COSTS)
    assert save_targeting(other, tmp_path / "other").id != saved.id


def test_a_bad_folder_is_refused_naming_the_file_and_the_fix(tmp_path: Path) -> None:
    targeting = CampaignTargeting(candidates=("expected_spend",)).fit([_campaign("c0", 0)], COSTS)
    folder = tmp_path / "t"
    save_targeting(targeting, folder)
    path = folder / TARGETING_FILE
    good = path.read_text()
    with pytest.raises(CampaignError, match="not a folder"):
        load_targeting(tmp_path / "nowhere")
    with pytest.raises(CampaignError, match=rf"{TARGETING_FILE}: missing.*fit-targeting"):
        load_targeting(tmp_path)
    path.write_text(good[: len(good) // 2])
    with pytest.raises(CampaignError, match=r"cannot be read.*damaged.*fit-targeting"):
        load_targeting(folder)
    doc = json.loads(good)
    path.write_text(json.dumps({**doc, "format_version": 99}))
    with pytest.raises(CampaignError, match=r"version 99, this .* reads churnclv\.targeting version 2;"):
        load_targeting(folder)
    # version 1 recorded neither the outcome window, the scoring model nor the actions that are no contact
    old = {k: v for k, v in doc.items() if k not in ("no_contact", "horizon_days", "scores_model")}
    path.write_text(json.dumps({**old, "format_version": 1}))
    with pytest.raises(CampaignError, match=r"version 1, this .* version 2; fix: fit it again"):
        load_targeting(folder)
    path.write_text(json.dumps({**doc, "params": {**doc["params"], "margin": 0.1}}))
    with pytest.raises(CampaignError, match="does not match its id"):
        load_targeting(folder)
    path.write_text(json.dumps([1, 2]))
    with pytest.raises(CampaignError, match="not a JSON object"):
        load_targeting(folder)


def test_an_uplift_model_file_missing_or_from_another_fit_is_refused(generated, tmp_path: Path) -> None:
    _, saved, _, _ = generated
    folder = tmp_path / "copy"
    folder.mkdir()
    (folder / TARGETING_FILE).write_text((saved.folder / TARGETING_FILE).read_text())
    with pytest.raises(CampaignError, match=rf"{MODEL_FILE}: missing; {TARGETING_FILE} chose the uplift model"):
        load_targeting(folder)
    model = json.loads((saved.folder / MODEL_FILE).read_text())
    model["treated_share"] = 0.25
    (folder / MODEL_FILE).write_text(json.dumps(model))
    with pytest.raises(CampaignError, match="does not match its id"):
        load_targeting(folder)


def test_the_outcome_window_and_the_scoring_model_are_saved_and_must_agree(tmp_path: Path) -> None:
    """targeting.json records the window the uplift was measured over and the model that scored the campaigns
    (score-batch refuses a model of another horizon); campaigns of different horizons are refused at fit."""
    models = [ScoringModel("shop", "3", 90), ScoringModel("shop", "4", 90)]
    campaigns = [_campaign(f"c{k}", k, model=m) for k, m in enumerate(models)]
    targeting = CampaignTargeting(candidates=("expected_spend",)).fit(campaigns, COSTS, ("none",))
    save_targeting(targeting, tmp_path / "t")
    doc = json.loads((tmp_path / "t" / TARGETING_FILE).read_text())
    assert doc["horizon_days"] == 60 and doc["no_contact"] == ["none"]
    assert doc["scores_model"] == {
        "horizon_days": 90,
        "models": [
            {"campaign": "c0", "name": "shop", "version": "3"},
            {"campaign": "c1", "name": "shop", "version": "4"},
        ],
    }
    loaded = load_targeting(tmp_path / "t").targeting
    assert (
        loaded.horizon_days_ == 60 and loaded.scores_model_ == doc["scores_model"] and loaded.no_contact_ == ("none",)
    )
    mixed = [campaigns[0], _campaign("c2", 2, model=ScoringModel("shop", "5", 30))]
    with pytest.raises(CampaignError, match=r"scoring models' horizons \(days\) differ \(c0: 90, c2: 30\)"):
        CampaignTargeting(candidates=("expected_spend",)).fit(mixed, COSTS)
    unknown = CampaignTargeting(candidates=("expected_spend",)).fit([_campaign("c3", 3)], COSTS)
    assert unknown.scores_model_ == {
        "horizon_days": None,
        "models": [{"campaign": "c3", "name": None, "version": None}],
    }
