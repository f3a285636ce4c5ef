"""Integration: a real training run into a temporary MLflow store (see tests/conftest.py)."""

from __future__ import annotations

import warnings
from dataclasses import replace
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from churnclv.features import compute_features
from churnclv.models.inputs import model_input
from churnclv.models.scorer_config import ScorerConfig
from churnclv.training.backtest import summarize_backtest
from churnclv.training.config import RunConfig, TrainConfig, TrainingError
from churnclv.training.folds import Fold, final_train_cutoffs, plan_folds, plan_training
from churnclv.training.pipeline import train
from churnclv.training.selection import (
    CHURN_BLEND_WEIGHTS,
    OWN_LEVEL_MARGIN_PCT,
    at_learned_level,
    select_churn_blend,
    select_models,
    select_totals_level,
)

pytestmark = pytest.mark.integration


def test_run_logs_metrics_artifacts_and_registers_champion(trained_store: dict, tmp_path: Path) -> None:
    mlflow.set_tracking_uri(trained_store["tracking_uri"])
    mlflow.set_registry_uri(trained_store["tracking_uri"])  # other tests may have moved it
    client = MlflowClient()
    result = trained_store["result"]
    run = client.get_run(result.run_id)
    metrics = run.data.metrics
    for cand in ("recency", "rfm", "btyd", "gbm", "hybrid"):
        assert f"mean.{cand}.churn_auc" in metrics
        history = client.get_metric_history(result.run_id, f"{cand}.churn_auc")
        assert sorted(m.step for m in history) == [1, 2]  # one value per fold
    assert "selected.churn_auc" in metrics and metrics["selected.churn_auc"] > 0.8
    assert run.data.params["as_of"] == "2025-10-02"
    assert run.data.params["data.transactions.rows"].isdigit()
    assert run.data.tags["churnclv.code_version"]
    names = {a.path for a in client.list_artifacts(result.run_id, "report")}
    for png in ("calibration.png", "gain_churn.png", "gain_spend.png", "feature_importance.png", "tier_mix.png"):
        assert f"report/{png}" in names
    assert "report/backtest.csv" in names
    summary = pd.read_csv(client.download_artifacts(result.run_id, "report/tier_summary.csv", str(tmp_path)))
    assert summary["past_spend_share"].sum() == pytest.approx(1.0)  # realized revenue per tier
    assert summary["past_spend"].sum() == pytest.approx(result.snapshot_features["net_spend_365d"].fillna(0).sum())
    assert {a.path for a in client.list_artifacts(result.run_id)} >= {"data_fingerprint.json", "promotion.json"}
    mv = client.get_model_version_by_alias("churnclv", "champion")
    assert str(mv.version) == "1"
    assert str(client.get_model_version_by_alias("churnclv", "challenger").version) == "1"
    assert mv.tags["as_of"] == "2025-10-02" and mv.tags["horizon_days"] == "90"


def test_champion_loads_and_scores_like_the_trained_scorer(trained_store: dict, small_world: Path) -> None:
    mlflow.set_tracking_uri(trained_store["tracking_uri"])
    mlflow.set_registry_uri(trained_store["tracking_uri"])  # other tests may have moved it
    model = mlflow.pyfunc.load_model(trained_store["model_uri"])
    feats = compute_features(small_world, "2025-10-02")
    scores = model.predict(model_input(feats))
    assert len(scores) == len(feats) and scores["customer_id"].tolist() == feats["customer_id"].tolist()
    direct = trained_store["result"].scorer.score(feats)
    pd.testing.assert_series_equal(scores["p_churn"], direct["p_churn"])
    assert scores["tier"].tolist() == direct["tier"].tolist()
    assert set(scores["tier"]) == {"Diamond", "Platinum", "Gold", "Silver", "Bronze"}


def test_two_trainings_give_identical_scores(trained_store: dict, small_world: Path) -> None:
    """Also with the backtest's fits one at a time (the store's ran two side by side, in threads)."""
    config = trained_store["config"]
    assert config.train.backtest_workers == 2
    again = train(small_world, "2025-10-02", replace(config, train=replace(config.train, backtest_workers=1)))
    first = trained_store["result"]
    assert again.selected == first.selected
    pd.testing.assert_frame_equal(again.snapshot_scores, first.snapshot_scores)
    pd.testing.assert_frame_equal(again.backtest.drop(columns="seconds"), first.backtest.drop(columns="seconds"))


def test_fold_plan_respects_point_in_time() -> None:
    cfg = TrainConfig(horizon_days=90, n_folds=3, fold_step_days=30, train_cutoffs=4)
    as_of = pd.Timestamp("2025-10-02")
    folds = plan_folds(pd.Timestamp("2023-01-01"), as_of, cfg)
    assert len(folds) == 3
    for f in folds:
        assert f.eval_cutoff + pd.Timedelta(days=90) <= as_of  # evaluation window closed by as-of
        assert all(c + pd.Timedelta(days=90) <= f.eval_cutoff for c in f.train_cutoffs)  # no peeking
    assert all(c + pd.Timedelta(days=90) <= as_of for c in final_train_cutoffs(pd.Timestamp("2023-01-01"), as_of, cfg))


def test_short_history_trains_what_it_can(small_world: Path) -> None:
    cfg = TrainConfig(horizon_days=90, n_folds=3, train_cutoffs=2)
    folds = plan_folds(pd.Timestamp("2023-01-01"), pd.Timestamp("2023-10-01"), cfg)
    assert 0 < len(folds) < 3
    assert plan_folds(pd.Timestamp("2023-01-01"), pd.Timestamp("2023-04-01"), cfg) == []
    # three months of history and a 90-day horizon: no label window closes, BTYD needs none
    result = train(small_world, "2023-04-01", RunConfig(train=cfg))
    assert result.plan is not None and not result.plan.backtested and result.plan.backtest_horizon_days is None
    assert "not backtested at 90 days" in result.plan.note
    assert result.selected == {"churn": "btyd", "purchases": "btyd", "spend": "btyd"}
    assert result.scorer.metadata_["backtest"]["backtested"] is False
    scores = result.snapshot_scores
    assert scores["p_churn"].between(0, 1).all() and scores["tier"].notna().all()


def test_plan_backtests_a_shorter_horizon_when_the_real_one_does_not_fit() -> None:
    cfg = TrainConfig(horizon_days=180, n_folds=3, min_history_days=60)
    first, as_of = pd.Timestamp("1997-01-01"), pd.Timestamp("1997-11-30")
    plan = plan_training(first, as_of, cfg)
    assert not plan.backtested and plan.backtest_horizon_days == ((as_of - first).days - 60) // 2 == 136
    assert plan.folds and all(
        f.eval_cutoff + pd.Timedelta(days=plan.backtest_horizon_days) <= as_of for f in plan.folds
    )
    # the learned models at the real horizon: only cutoffs whose 180-day windows have closed
    assert plan.final_cutoffs and all(c + pd.Timedelta(days=180) <= as_of for c in plan.final_cutoffs)
    assert plan_training(first, as_of, TrainConfig(horizon_days=90)).backtested


def test_plan_trains_on_a_shorter_horizon_when_too_few_of_its_labels_close() -> None:
    first, as_of = pd.Timestamp("1997-01-01"), pd.Timestamp("1997-11-30")
    cfg = TrainConfig(horizon_days=180, n_folds=3, min_history_days=60, min_label_cutoffs=5)
    plan = plan_training(first, as_of, cfg)
    assert plan.backtest_horizon_days == plan.label_horizon_days == 136
    assert len(plan.final_cutoffs) == 5 and all(c + pd.Timedelta(days=136) <= as_of for c in plan.final_cutoffs)
    assert "carried to 180 days by BTYD" in (plan.note or "")
    assert plan.to_dict()["label_horizon_days"] == 136
    # enough labelled cutoffs of the horizon itself: they are used
    assert plan_training(first, as_of, replace(cfg, min_label_cutoffs=3)).label_horizon_days is None
    with pytest.raises(TrainingError, match="min_label_cutoffs"):
        TrainConfig(min_label_cutoffs=0)


def test_churn_blend_picks_the_btyd_weight_with_the_best_backtest_log_loss() -> None:
    rng = np.random.default_rng(1)
    truth = rng.uniform(0.05, 0.95, 5_000)
    y = rng.random(truth.size) < truth
    noisy = 1 / (1 + np.exp(-(np.log(truth / (1 - truth)) + rng.normal(0, 2.0, truth.size))))

    def preds(p: np.ndarray) -> list[pd.DataFrame]:
        ids = [str(i) for i in range(y.size)]
        return [pd.DataFrame({"fold": f, "customer_id": ids, "churned": y, "p_churn": p}) for f in (1, 2)]

    # BTYD holds the truth: BTYD alone wins
    got = select_churn_blend({"btyd": preds(truth), "hybrid": preds(noisy)}, ["hybrid"])
    tried = {f"hybrid@{w:g}" for w in CHURN_BLEND_WEIGHTS} | {
        f"hybrid@{w:g}+btyd_level" for w in CHURN_BLEND_WEIGHTS[:-1]
    }
    assert got is not None and (got.model, got.btyd_weight, got.recalibrate) == ("btyd", 0.0, False)
    assert set(got.scores) == tried
    # the learned model holds it: the learned model alone, on its own level
    got = select_churn_blend({"btyd": preds(noisy), "hybrid": preds(truth)}, ["hybrid"])
    assert got is not None and (got.model, got.btyd_weight, got.recalibrate) == ("hybrid", 0.0, False)
    assert select_churn_blend({"hybrid": preds(truth)}, ["hybrid"]) is None


def test_churn_blend_takes_btyds_level_when_the_learned_level_drifted_and_needs_two_folds_for_btyd_alone() -> None:
    rng = np.random.default_rng(2)
    truth = rng.uniform(0.05, 0.95, 5_000)
    y = rng.random(truth.size) < truth
    z = np.log(truth / (1 - truth))
    drifted = 1 / (1 + np.exp(-(z + 1.5)))  # the right ranking, every probability too high
    weak = 1 / (1 + np.exp(-(z + rng.normal(0, 1.0, truth.size))))  # BTYD: right level, weaker ranking

    def preds(p: np.ndarray, folds: tuple[int, ...] = (1, 2)) -> list[pd.DataFrame]:
        ids = [str(i) for i in range(y.size)]
        return [pd.DataFrame({"fold": f, "customer_id": ids, "churned": y, "p_churn": p}) for f in folds]

    got = select_churn_blend({"btyd": preds(weak), "gbm": preds(drifted)}, ["gbm"])
    assert got is not None and (got.model, got.recalibrate) == ("gbm", True) and got.btyd_weight < 0.5
    # the recalibrated learned model scores the log loss of the truth's ranking on BTYD's level
    assert got.scores["gbm@0+btyd_level"] < got.scores["gbm@0"]
    # one fold is not evidence enough for BTYD alone: the learned model keeps a weight
    noisy = 1 / (1 + np.exp(-(z + rng.normal(0, 2.0, truth.size))))
    one = select_churn_blend({"btyd": preds(truth, (1,)), "gbm": preds(noisy, (1,))}, ["gbm"])
    assert one is not None and one.model == "gbm" and one.btyd_weight == max(CHURN_BLEND_WEIGHTS[:-1])
    assert all(not k.startswith("gbm@1") for k in one.scores)
    two = select_churn_blend({"btyd": preds(truth), "gbm": preds(noisy)}, ["gbm"])
    assert two is not None and two.model == "btyd"


def test_selection_skips_candidates_missing_a_fold_and_undefined_metrics() -> None:
    folds = [Fold(1, pd.Timestamp("2024-01-01"), []), Fold(2, pd.Timestamp("2024-02-01"), [])]
    rows = [
        {"fold": f, "candidate": c, "churn_auc": auc, "purchases_mae": 1.0, "spend_gini": 0.5}
        for f, c, auc in [
            (1, "btyd", 0.70),
            (2, "btyd", 0.70),
            (1, "gbm", float("nan")),
            (2, "gbm", float("nan")),
            (1, "hybrid", 0.99),
        ]
    ]  # hybrid failed on fold 2
    summary, eligible = summarize_backtest(pd.DataFrame(rows), folds, ("btyd", "gbm", "hybrid"))
    assert eligible == ["btyd", "gbm"]
    assert select_models(summary, ("btyd", "gbm", "hybrid"), eligible)["churn"] == "btyd"  # NaN never wins
    assert select_models(summary, ("btyd",), []) == {"churn": "btyd", "purchases": "btyd", "spend": "btyd"}
    # every metric undefined (an as-of past the data): the simplest, and no numpy warning on stderr
    undefined = summary.assign(churn_auc=np.nan, purchases_mae=np.nan, spend_gini=np.nan)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert select_models(undefined, ("btyd", "gbm"), eligible) == dict.fromkeys(
            ("churn", "purchases", "spend"), "btyd"
        )


def _fold_totals(
    errors: dict[str, list[tuple[float, float]]], candidate: str = "gbm", noise: float = 2.0
) -> pd.DataFrame:
    """Backtest rows of one candidate: per target, each fold's (BTYD level, own level) aggregate % errors,
    the realised totals' standard error ``noise`` (in %)."""
    n = len(next(iter(errors.values())))
    rows = [{"fold": k + 1, "candidate": candidate} for k in range(n)]
    for target, pairs in errors.items():
        for row, (btyd, own) in zip(rows, pairs, strict=True):
            row[f"{target}_agg_pct_error"], row[f"{target}_agg_pct_error_own_level"] = btyd, own
            row[f"{target}_agg_noise_pct"] = noise
    other = [{"fold": k + 1, "candidate": "btyd", "purchases_agg_pct_error": 0.0} for k in range(n)]
    return pd.DataFrame(rows + other)


def test_totals_take_the_learned_level_only_when_it_is_nearer_on_every_fold_by_a_margin() -> None:
    learned = {"churn": "gbm", "purchases": "gbm", "spend": "gbm"}
    # the subscription shop's backtest: BTYD keeps lapsed subscribers buying
    subs = _fold_totals({"purchases": [(70.0, 9.0), (-77.0, 11.0)], "spend": [(70.0, 1.0), (77.0, -3.0)]})
    chosen = select_totals_level(subs, learned)
    assert chosen.level == "learned" and "purchases: mean |error| 10.0 % at the learned level" in chosen.reason
    assert "73.5 % at BTYD's, nearer beyond chance on 2 of 2 folds" in chosen.reason
    assert chosen.errors["purchases"] == {"btyd": [70.0, -77.0], "learned": [9.0, 11.0], "noise": [2.0, 2.0]}
    # one fold where the own level is further: BTYD's, and the reason names the target
    one_worse = _fold_totals({"purchases": [(70.0, 9.0), (5.0, -6.0)], "spend": [(70.0, 1.0), (77.0, -3.0)]})
    chosen = select_totals_level(one_worse, learned)
    assert chosen.level == "btyd" and "nearer beyond chance on 1 of 2 folds" in chosen.reason
    # nearer on both folds but by less than the margin on the mean (the month-to-month noise of CDNOW)
    m = OWN_LEVEL_MARGIN_PCT
    close = _fold_totals(
        {"purchases": [(20.0, 20.0 - m / 2), (-18.0, 18.0 - m / 2)], "spend": [(30.0, 1.0), (30.0, 1.0)]}
    )
    assert select_totals_level(close, learned).level == "btyd"
    # a small base: the realised totals move by chance as much as the levels differ (the zoo's 500
    # CDNOW customers: BTYD -40 and -30 %, the learned level -1 and -26 %, standard errors ~27 %)
    small = _fold_totals({"purchases": [(-39.6, -0.5), (-30.3, -26.1)], "spend": [(-39.6, -0.5), (-30.3, -26.1)]})
    assert select_totals_level(small, learned).level == "learned"  # beyond chance at 2 % ...
    chance = _fold_totals(
        {"purchases": [(-39.6, -0.5), (-30.3, -26.1)], "spend": [(-39.6, -0.5), (-30.3, -26.1)]}, noise=27.0
    )
    assert "nearer beyond chance on 0 of 2 folds" in select_totals_level(chance, learned).reason  # ... not at 27 %
    # one fold is not evidence enough; NaN folds do not count
    assert (
        select_totals_level(_fold_totals({"purchases": [(70.0, 9.0)], "spend": [(70.0, 1.0)]}), learned).level == "btyd"
    )
    nan_fold = _fold_totals({"purchases": [(70.0, 9.0), (np.nan, 1.0)], "spend": [(70.0, 1.0), (77.0, -3.0)]})
    assert "1 fold(s)" in select_totals_level(nan_fold, learned).reason
    # only the learned targets count: spend by BTYD, so its errors do not matter
    purchases_only = _fold_totals({"purchases": [(70.0, 9.0), (-77.0, 11.0)], "spend": [(1.0, 70.0), (1.0, 70.0)]})
    assert select_totals_level(purchases_only, {**learned, "spend": "btyd"}).level == "learned"
    assert select_totals_level(purchases_only, learned).level == "btyd"
    # the rows read are the selected candidate's
    assert select_totals_level(subs, {**learned, "purchases": "hybrid"}).level == "btyd"
    assert select_totals_level(subs, dict.fromkeys(learned, "btyd")).reason == "no learned total"


def test_the_backtest_at_the_learned_level_reports_what_ships() -> None:
    rows = pd.DataFrame(
        {
            "candidate": ["btyd", "gbm"],
            "purchases_mae": [0.5, 0.4],
            "purchases_mae_own_level": [np.nan, 0.3],
            "spend_agg_pct_error": [70.0, 70.0],
            "spend_agg_pct_error_own_level": [np.nan, 2.0],
        }
    )
    shipped = at_learned_level(rows)
    assert shipped["purchases_mae"].tolist() == [0.5, 0.3]
    assert shipped["spend_agg_pct_error"].tolist() == [70.0, 2.0]
    assert shipped["spend_agg_pct_error_own_level"].tolist()[1] == 2.0  # kept beside
    assert rows["purchases_mae"].tolist() == [0.5, 0.4]  # a copy


def test_config_errors(tmp_path: Path) -> None:
    bad = tmp_path / "c.toml"
    bad.write_text("[train]\ncandidates = ['magic']\n")
    with pytest.raises(TrainingError, match="unknown"):
        RunConfig.load(bad)
    bad.write_text("[scorer]\nchurn_model = 'x'\n")
    with pytest.raises(TrainingError, match="churn_model"):
        RunConfig.load(bad)
    # a bad tier policy fails at load, before any backtest, naming the key
    bad.write_text("[features]\nzero_amount_is_purchase = 'yes'\n")
    with pytest.raises(TrainingError, match=r"\[features\].*zero_amount_is_purchase"):
        RunConfig.load(bad)
    bad.write_text("[features]\nwindow = [30]\n")
    with pytest.raises(TrainingError, match=r"\[features\] window: is not a known key"):
        RunConfig.load(bad)
    bad.write_text("[features]\nzero_amount_is_purchase = true\nwindows = [30, 90]\n")
    assert RunConfig.load(bad).features.zero_amount_is_purchase and RunConfig.load(bad).features.windows == (30, 90)
    bad.write_text("[tiers.score.weights]\nclv = -1.0\n")
    with pytest.raises(TrainingError, match=r"config \[tiers\].*score.weights"):
        RunConfig.load(bad)


FAST_RUN = RunConfig(
    train=TrainConfig(n_folds=2, train_cutoffs=2, candidates=("btyd", "gbm", "hybrid")),
    scorer=ScorerConfig(gbm_rounds=30),
)


def test_a_failing_subfit_is_dropped_and_the_run_goes_on(small_world: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from churnclv.training import backtest

    real = backtest.evaluate_candidate
    failing_fold = {"eval": None}

    def flaky(name: str, train_rows: pd.DataFrame, evaluation: pd.DataFrame, base: ScorerConfig) -> pd.DataFrame:
        if name == "hybrid" and failing_fold["eval"] in (None, evaluation["cutoff"].iloc[0]):
            failing_fold["eval"] = evaluation["cutoff"].iloc[0]
            raise FloatingPointError("expected_purchases is not finite (injected)")
        return real(name, train_rows, evaluation, base)

    monkeypatch.setattr(backtest, "evaluate_candidate", flaky)
    result = train(small_world, "2025-10-02", FAST_RUN)
    assert [(d["stage"], d["fold"], d["candidate"]) for d in result.dropped] == [("backtest", 1, "hybrid")]
    assert "FloatingPointError: expected_purchases is not finite" in result.dropped[0]["reason"]
    assert "hybrid" not in result.selected.values()  # scored on one fold of two: not comparable
    assert set(result.backtest["candidate"]) == {"btyd", "gbm", "hybrid"}  # its other fold is still reported
    assert result.scorer.metadata_["dropped"] == result.dropped


def test_the_final_refit_falls_back_hybrid_gbm_btyd(small_world: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from churnclv.models.scorer import Scorer as RealScorer
    from churnclv.training import pipeline

    real_fit = RealScorer.fit

    def fit(self: RealScorer, *args, **kwargs) -> RealScorer:
        c = self.config_
        if "hybrid" in (c.churn_model, c.purchases_model, c.spend_model):
            raise RuntimeError("the bgnbd fit did not converge (injected)")
        return real_fit(self, *args, **kwargs)

    monkeypatch.setattr(RealScorer, "fit", fit)
    monkeypatch.setattr(
        pipeline, "select_models", lambda *a, **k: {"churn": "hybrid", "purchases": "hybrid", "spend": "btyd"}
    )
    result = train(small_world, "2025-10-02", FAST_RUN)
    assert result.selected == {"churn": "gbm", "purchases": "gbm", "spend": "btyd"}
    # the totals' level is the one the backtest showed for the models fitted, not for the hybrid
    totals = result.scorer.metadata_["totals_level"]
    assert set(totals["errors"]) == {"purchases"}
    assert totals["errors"] == select_totals_level(result.backtest, result.selected).errors
    final = [d for d in result.dropped if d["stage"] == "final"]
    assert len(final) == 1 and "fell back to" in final[0]["reason"] and "injected" in final[0]["reason"]
