"""``churnclv campaign fit-targeting`` end to end: two generated campaigns (scores, contact logs, the data after
them) in, a saved targeting that decides like one fitted in Python, a summary and a real MLflow run out."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import mlflow
import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from churnclv.campaigns.holdout import assign_holdout
from churnclv.campaigns.targeting_files import load_targeting
from churnclv.cli import cli
from churnclv.generate import generate_world
from churnclv.generator.campaign import simulate_campaign
from churnclv.generator.world import WorldConfig
from churnclv.models.tier_config import default_tier_config

HORIZON = 60
AS_OFS = (pd.Timestamp("2025-03-31"), pd.Timestamp("2025-06-30"))  # windows do not overlap
COSTS = default_tier_config().playbook.costs
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
    return SimpleNamespace(data=data, scores=scores, logs=logs, config=config, tmp=tmp)


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
    args = _args(files, out, "--candidate", "past_spend", "--candidate", "uplift_model", "--tracking-uri", uri)
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    saved = load_targeting(out)
    t = saved.targeting
    assert list(t.campaigns_["campaign"]) == ["spring0", "spring1"]  # from the scores' campaign column
    assert set(t.backtest_["held_out"]) == {"spring0", "spring1"} and t.margin == 0.8 and t.seed == 3
    assert t.costs_ == COSTS  # the playbook's
    assert f"targeting {saved.id}: learned from 2 campaign(s)" in result.output
    for name in ("past_spend", "uplift_model"):
        assert f"  {name} " in result.output
    assert "<- chosen" in result.output and ("kept over" in result.output or "replaced" in result.output)
    assert f"score-batch --targeting {out}" in result.output
    # the arms are the scores' own (a batch partition's holdout), not a draw of another share
    controls = int(pd.read_parquet(files.scores[0])["holdout"].sum())
    assert t.campaigns_["controls"].iloc[0] == controls
    mlflow.set_tracking_uri(uri)
    runs = mlflow.search_runs(experiment_names=["churnclv-campaigns"])
    assert len(runs) == 1 and runs["params.targeting"].iloc[0] == saved.id
    assert runs["params.chosen"].iloc[0] == t.chosen_
    assert np.isfinite(runs["metrics.profit_past_spend"].iloc[0])
    run_id = runs["run_id"].iloc[0]
    artifacts = {a.path for a in mlflow.MlflowClient(uri).list_artifacts(run_id, "targeting")}
    assert "targeting/targeting.json" in artifacts


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
    result = runner.invoke(cli, _args(twice, files.tmp / "z", "--no-mlflow", "--candidate", "past_spend"))
    assert result.exit_code == 1 and "given twice" in result.output and "Traceback" not in result.output
