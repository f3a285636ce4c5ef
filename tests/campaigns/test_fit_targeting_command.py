"""``churnclv campaign fit-targeting`` end to end: two generated campaigns (scores, contact logs, the data after
them) in, a saved targeting that decides like one fitted in Python on the same inputs (evaluated and joined with
the features of each as-of as the command does), a summary and a real MLflow run out; an outcome or text column
as a candidate, and features of another as-of, are refused."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import mlflow
import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from churnclv.campaigns.evaluate import campaign_outcomes, evaluate_campaign
from churnclv.campaigns.holdout import assign_holdout
from churnclv.campaigns.targeting import CampaignTargeting, PastCampaign
from churnclv.campaigns.targeting_files import load_targeting
from churnclv.cli import cli
from churnclv.features import compute_features
from churnclv.generate import generate_world
from churnclv.generator.campaign import simulate_campaign
from churnclv.generator.world import WorldConfig
from churnclv.models.tier_config import default_tier_config

HORIZON = 60
AS_OFS = (pd.Timestamp("2025-03-31"), pd.Timestamp("2025-06-30"))  # windows do not overlap
COSTS = default_tier_config().playbook.costs
NO_CONTACT = default_tier_config().playbook.no_contact
CALL = "Early warning: retention offer and a check on service issues"  # 4.0 a contact
MAIL = "Win-back reminder: an automated email with a modest incentive to come back"  # 0.3


def _scores(transactions: pd.DataFrame, customers: pd.DataFrame, as_of: pd.Timestamp) -> pd.DataFrame:
    """Rule-based scores (tier and action by past spend) of the customers known at ``as_of``."""
    day_after = as_of + pd.Timedelta(days=1)
    known = customers[customers["signup_ts"] < day_after]
    history = transactions[transactions["ts"] < day_after]
    spend = known["customer_id"].map(history.groupby("customer_id")["amount"].sum()).fillna(0.0)
    rank = spend.rank(method="first", pct=True).to_numpy()
    return pd.DataFrame(
        {
            "customer_id": known["customer_id"].to_numpy(),
            "as_of": as_of,
            "tier": np.where(rank > 0.5, "Gold", "Bronze"),
            "action": np.where(rank > 0.5, CALL, MAIL),
            "past_spend": spend.to_numpy(),
            "expected_spend": spend.to_numpy(),  # a value column the batch writes: past spend stands in for it
        }
    )


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> SimpleNamespace:
    """A data folder holding two simulated campaigns' windows, their scores (with arms) and contact logs."""
    tmp = tmp_path_factory.mktemp("fit-targeting")
    world = generate_world(
        WorldConfig(n_customers=2000, seed=21, start=pd.Timestamp("2024-01-01"), end=pd.Timestamp("2025-12-31"))
    )
    tx = world.transactions
    parts, scores, logs = [], [], []
    start = pd.Timestamp("1900-01-01")
    for k, as_of in enumerate(AS_OFS):
        parts.append(tx[(tx["ts"] >= start) & (tx["ts"] < as_of + pd.Timedelta(days=1))])
        frame = _scores(pd.concat(parts), world.customers, as_of)
        plan = assign_holdout(frame, f"spring{k}", share=0.5)
        frame = frame.assign(campaign=f"spring{k}", holdout=plan["holdout"].to_numpy())
        sim = simulate_campaign(
            world, as_of, plan.assign(action=frame["action"]), campaign=f"spring{k}", horizon_days=HORIZON, seed=k
        )
        parts.append(sim.transactions)
        start = sim.end + pd.Timedelta(days=1)
        scores.append(tmp / f"scores{k}.parquet")
        frame.to_parquet(scores[-1])
        logs.append(tmp / f"contacts{k}.csv")
        sim.contact_log.to_csv(logs[-1], index=False)
    data = tmp / "data"
    data.mkdir()
    pd.concat(parts, ignore_index=True).to_parquet(data / "transactions.parquet")
    world.customers.to_parquet(data / "customers.parquet")
    config = tmp / "run.toml"
    config.write_text("[campaigns]\nmargin = 0.8\nseed = 3\n")
    return SimpleNamespace(data=data, scores=scores, logs=logs, config=config, tmp=tmp, customers=world.customers)


def _args(files: SimpleNamespace, out: Path, *extra: str) -> list[str]:
    args = ["campaign", "fit-targeting", "--data", str(files.data), "--trusted", "--out", str(out)]
    for s in files.scores:
        args += ["--scores", str(s)]
    for log in files.logs:
        args += ["--contacts", str(log)]
    return [*args, "--horizon-days", str(HORIZON), "--config", str(files.config), *extra]


@pytest.mark.slow
def test_fit_targeting_saves_a_targeting_the_summary_and_an_mlflow_run(files: SimpleNamespace) -> None:
    uri = f"sqlite:///{files.tmp / 'mlruns' / 'mlflow.db'}"
    out = files.tmp / "targeting"
    args = _args(files, out, "--candidate", "expected_spend", "--candidate", "uplift_model", "--tracking-uri", uri)
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    saved = load_targeting(out)
    t = saved.targeting
    assert list(t.campaigns_["campaign"]) == ["spring0", "spring1"]  # from the scores' campaign column
    assert set(t.backtest_["held_out"]) == {"spring0", "spring1"} and t.margin == 0.8 and t.seed == 3
    assert t.costs_ == COSTS  # the playbook's
    assert f"targeting {saved.id}: learned from 2 campaign(s)" in result.output
    for name in ("expected_spend", "uplift_model"):
        assert f"  {name} " in result.output
    assert "<- chosen" in result.output and ("kept over" in result.output or "replaced" in result.output)
    assert f"score-batch --targeting {out}" in result.output
    assert "spring0 (2025-03-31): features computed with the config's [features]" in result.output
    assert "uplift measured over 60 days" in result.output
    # the arms are the scores' own (a batch partition's holdout), not a draw of another share
    controls = int(pd.read_parquet(files.scores[0])["holdout"].sum())
    assert t.campaigns_["controls"].iloc[0] == controls
    mlflow.set_tracking_uri(uri)
    runs = mlflow.search_runs(experiment_names=["churnclv-campaigns"])
    assert len(runs) == 1 and runs["params.targeting"].iloc[0] == saved.id
    assert runs["params.chosen"].iloc[0] == t.chosen_
    assert np.isfinite(runs["metrics.profit_expected_spend"].iloc[0])
    run_id = runs["run_id"].iloc[0]
    artifacts = {a.path for a in mlflow.MlflowClient(uri).list_artifacts(run_id, "targeting")}
    assert "targeting/targeting.json" in artifacts
    # the same inputs fitted in Python decide alike on the next base, customer for customer
    python = _fitted_in_python(files)
    features, scores = _next_base(files)
    saved_decisions, python_decisions = t.decide(features, scores), python.decide(features, scores)
    assert python.chosen_ == t.chosen_
    pd.testing.assert_frame_equal(saved_decisions, python_decisions, check_exact=False, rtol=1e-9)
    assert saved_decisions["expected_profit"].nunique() > len(features) // 2  # per customer, not one constant
    pd.testing.assert_frame_equal(t.summary(), python.summary(), check_exact=False, rtol=1e-9)


def _fitted_in_python(files: SimpleNamespace) -> CampaignTargeting:
    """What the command does, in Python: each campaign evaluated against its holdout (the scores' own), joined
    with the features of its as-of (the data up to it), and the targeting fitted with the config's settings."""
    data = {"transactions": pd.read_parquet(files.data / "transactions.parquet"), "customers": files.customers}
    log = pd.concat([pd.read_csv(f, dtype={"customer_id": str}) for f in files.logs], ignore_index=True)
    past = []
    for path, as_of in zip(files.scores, AS_OFS, strict=True):
        scores = pd.read_parquet(path)
        outcomes = campaign_outcomes(data, as_of, HORIZON, known_at=as_of + pd.Timedelta(days=HORIZON))
        evaluation = evaluate_campaign(
            scores,
            scores,
            log,
            outcomes,
            campaign=scores["campaign"].iloc[0],
            as_of=as_of,
            horizon_days=HORIZON,
            costs=COSTS,
            margin=0.8,
        )
        past.append(PastCampaign.from_evaluation(evaluation, compute_features(data, as_of)))
    candidates = ("expected_spend", "uplift_model")
    return CampaignTargeting(candidates=candidates, margin=0.8, seed=3).fit(past, COSTS, NO_CONTACT)


def _next_base(files: SimpleNamespace) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The features and scores of the customers at the day after the last window."""
    data = {"transactions": pd.read_parquet(files.data / "transactions.parquet"), "customers": files.customers}
    day = AS_OFS[-1] + pd.Timedelta(days=HORIZON + 1)
    features = compute_features(data, day)
    scores = _scores(data["transactions"], files.customers, day).set_index("customer_id")
    return features, scores.loc[features["customer_id"]].reset_index()


def test_fit_targeting_refuses_too_few_campaigns_and_unpaired_options(files: SimpleNamespace) -> None:
    runner = CliRunner()
    one = _args(SimpleNamespace(**{**vars(files), "scores": files.scores[:1]}), files.tmp / "x", "--no-mlflow")
    result = runner.invoke(cli, one)
    assert result.exit_code == 2 and "1 past campaign(s) given" in result.output
    assert "needs at least 2" in result.output and "--min-campaigns 1" in result.output
    assert not (files.tmp / "x").exists()
    result = runner.invoke(cli, [*_args(files, files.tmp / "y", "--no-mlflow"), "--campaign", "spring0"])
    assert result.exit_code == 2 and "1 --campaign for 2 --scores" in result.output
    result = runner.invoke(cli, [*_args(files, files.tmp / "y", "--no-mlflow"), "--features", str(files.scores[0])])
    assert result.exit_code == 2 and "1 --features for 2 --scores" in result.output
    twice = SimpleNamespace(**{**vars(files), "scores": [files.scores[0], files.scores[0]]})
    result = runner.invoke(cli, _args(twice, files.tmp / "z", "--no-mlflow", "--candidate", "expected_spend"))
    assert result.exit_code == 1 and "given twice" in result.output and "Traceback" not in result.output


@pytest.mark.parametrize("column", ["revenue", "tier"])
def test_fit_targeting_refuses_an_outcome_or_a_text_as_candidate(files: SimpleNamespace, column: str) -> None:
    """revenue is measured after the campaign (a leak), tier is text: refused before the data is read."""
    result = CliRunner().invoke(cli, _args(files, files.tmp / "c", "--no-mlflow", "--candidate", column))
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert f"candidate '{column}' is neither 'uplift_model' nor a value column" in result.output
    assert "expected_spend" in result.output and not (files.tmp / "c").exists()


def test_fit_targeting_refuses_features_of_another_as_of(files: SimpleNamespace) -> None:
    late = files.tmp / "features" / "dt=2025-04-07"
    late.mkdir(parents=True)
    pd.DataFrame({"customer_id": ["1"], "frequency": [1.0]}).to_parquet(late / "features.parquet")
    args = [*_args(files, files.tmp / "f", "--no-mlflow"), "--features", str(late), "--features", str(late)]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert "features as of 2025-04-07, but the scores are of 2025-03-31" in result.output
    assert not (files.tmp / "f").exists()
