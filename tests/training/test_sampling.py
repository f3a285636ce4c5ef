"""Training on a large base: a fixed customer sample for the backtest and LightGBM, the whole base
for BTYD, the tier policy and the snapshot scores; the data fingerprint computed in DuckDB."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import ibis
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

from churnclv.features import compute_features
from churnclv.features.inputs import in_sample, in_sample_ids
from churnclv.fingerprint import BackgroundFingerprint, clean_fingerprint
from churnclv.models.gbm_base import usable_cores
from churnclv.models.inputs import stable_floats
from churnclv.models.scorer_config import ScorerConfig
from churnclv.training import pipeline
from churnclv.training.config import RunConfig, TrainConfig, TrainingError
from churnclv.training.pipeline import train

AS_OF = "2025-10-02"


def _sampled(customer_id: str, fraction: float) -> bool:
    return int(hashlib.md5(customer_id.encode()).hexdigest()[:8], 16) < fraction * 16**8


@pytest.mark.integration
def test_sampled_training_backtests_on_the_sample_and_scores_everyone(small_world: Path) -> None:
    snapshot = compute_features(small_world, AS_OF)
    n = len(snapshot)  # the sample's share is of the customers known at as-of, not of every row
    config = RunConfig(
        train=TrainConfig(
            horizon_days=90,
            n_folds=1,
            train_cutoffs=2,
            candidates=("btyd", "gbm"),
            sample_customers=500,
            backtest_customers=300,
        ),
        scorer=ScorerConfig(horizon_days=90, gbm_rounds=30, seed=1),
    )
    result = train(small_world, AS_OF, config)
    info = result.scorer.metadata_["training_sample"]
    assert info["customers"] == n and info["fraction"] == pytest.approx(500 / n)
    assert info["backtest_fraction"] == pytest.approx(300 / n)
    # the backtest's candidates trained on ~300 of the 500 (the same md5 rule, nested), the refit on all
    # 500, while every customer of the sample was evaluated
    n_train = result.backtest["n_train"].max()
    assert 0 < n_train < 0.8 * result.scorer.metadata_["train_rows"]
    # the backtest evaluated only the sampled customers (the md5 rule), and the refit trained on them
    evaluated = set(result.fold_predictions["gbm"]["customer_id"])
    assert evaluated and all(_sampled(c, 500 / n) for c in evaluated)
    assert 350 < info["sampled_customers"] < 650
    assert result.backtest["n_eval"].max() <= info["sampled_customers"]
    assert result.scorer.metadata_["train_rows"] <= 2 * info["sampled_customers"]
    # BTYD, the tier policy and the scores see the whole base
    assert result.scorer.metadata_["snapshot_customers"] == len(snapshot)
    assert len(result.snapshot_scores) == len(snapshot) > 2 * info["sampled_customers"]
    assert result.snapshot_scores["tier"].notna().all()
    # the stage timings add up: the models' time holds every candidate's seconds (fits run side by
    # side, at most one per core)
    t, seconds = result.timings, result.backtest["seconds"]
    assert t["backtest_models_s"] >= seconds.max() - 0.05
    assert t["backtest_models_s"] * usable_cores() >= seconds.sum() - 0.05
    assert t["training_frame_s"] + t["backtest_models_s"] <= t["backtest_s"] <= t["total_s"]


def test_backtest_sample_setting() -> None:
    cfg = TrainConfig(sample_customers=50_000, backtest_customers=25_000)
    assert cfg.backtest_fraction(1_000_000) == pytest.approx(0.025)
    assert cfg.backtest_fraction(50_000) == pytest.approx(0.5)  # a base of 50k: the frame is everyone
    assert cfg.backtest_fraction(25_000) is None and cfg.backtest_fraction(20_000) is None  # small bases: all
    assert TrainConfig(backtest_customers=0).backtest_fraction(10**7) is None
    # a frame no larger than the backtest's sample: no second sample
    assert TrainConfig(sample_customers=20_000, backtest_customers=25_000).backtest_fraction(10**6) is None
    assert TrainConfig(sample_customers=0, backtest_customers=25_000).backtest_fraction(10**6) == pytest.approx(0.025)
    with pytest.raises(TrainingError, match=r"backtest_customers: must be 0 .* or at least 100"):
        TrainConfig(backtest_customers=5)


@given(st.lists(st.text(max_size=12), max_size=40), st.floats(0.01, 1.0))
def test_sample_of_ids_in_memory_is_the_expressions_sample(ids: list[str], fraction: float) -> None:
    """The backtest's sample in pandas picks exactly the customers the feature job's DuckDB filter picks
    (so it nests in the training frame's sample)."""
    ids = [i.replace("\x00", "") for i in ids] + ["007", "7", "Ülker-42"]
    ours = in_sample_ids(ids, fraction)
    assert ours.tolist() == [_sampled(i, fraction) for i in ids]
    table = ibis.memtable(pd.DataFrame({"customer_id": ids}, dtype=object))
    flags = ibis.duckdb.connect().execute(table.select(keep=in_sample(table.customer_id, fraction)))["keep"]
    assert ours.tolist() == flags.astype(bool).tolist()
    assert not in_sample_ids(ids, fraction / 2)[~ours].any()  # a smaller sample nests in a larger one


def test_sample_setting() -> None:
    cfg = TrainConfig(sample_customers=50_000)
    assert cfg.sample_fraction(1_000_000) == pytest.approx(0.05)
    assert cfg.sample_fraction(50_000) is None and cfg.sample_fraction(10) is None  # small bases: everyone
    assert TrainConfig(sample_customers=0).sample_fraction(10**7) is None
    for bad in (-1, 1, 99):
        with pytest.raises(TrainingError, match=r"sample_customers: must be 0 .* or at least 100"):
            TrainConfig(sample_customers=bad)


def test_fingerprint_is_the_content_not_the_file_layout(small_world: Path, tmp_path: Path) -> None:
    tx = pd.read_parquet(small_world / "transactions.parquet")
    one = tmp_path / "one"
    one.mkdir()
    tx.to_parquet(one / "transactions.parquet", index=False)
    parts = tmp_path / "parts" / "transactions"
    parts.mkdir(parents=True)
    shuffled = tx.sample(frac=1.0, random_state=3)
    shuffled.iloc[:1000].to_parquet(parts / "p0.parquet", index=False)
    shuffled.iloc[1000:].to_parquet(parts / "p1.parquet", index=False)
    fp = clean_fingerprint(one)
    assert fp == clean_fingerprint(tmp_path / "parts")
    t = fp["transactions"]
    assert t["rows"] == len(tx) and t["customers"] == tx["customer_id"].nunique()
    assert pd.Timestamp(t["ts_min"]) == tx["ts"].min() and pd.Timestamp(t["ts_max"]) == tx["ts"].max()

    def digest(frame: pd.DataFrame, name: str) -> str:
        d = tmp_path / name
        d.mkdir()
        frame.to_parquet(d / "transactions.parquet", index=False)
        return clean_fingerprint(d)["transactions"]["sha256_16"]

    changed = tx.copy()
    changed.loc[changed.index[5], "amount"] += 0.01
    assert digest(changed, "changed") != t["sha256_16"]
    assert digest(tx.iloc[1:], "dropped") != t["sha256_16"]
    assert digest(pd.concat([tx, tx.iloc[:1]]), "duplicated") != t["sha256_16"]
    assert digest(tx.rename(columns={"channel": "channel_x"}), "renamed") != t["sha256_16"]
    assert set(clean_fingerprint(small_world)) == {"transactions", "events", "customers"}
    with BackgroundFingerprint(small_world) as background:  # what a training runs beside itself
        assert background.result() == clean_fingerprint(small_world)
    with BackgroundFingerprint(small_world) as left:  # a training that failed leaves it at once
        pass
    assert not left._thread.is_alive()


def test_the_background_fingerprint_takes_less_memory_than_the_training(small_world: Path, monkeypatch) -> None:
    import churnclv.features

    real, seen = churnclv.features.connect, []

    def spy(**settings):
        con = real(**settings)
        seen.append(con.raw_sql("SELECT current_setting('memory_limit')").fetchone()[0])
        return con

    monkeypatch.setattr(churnclv.features, "connect", spy)
    for limit in (None, "2GB", "1.5 GiB", "80%", "100MB", "0.2GB"):
        with BackgroundFingerprint(small_world, memory_limit=limit) as background:
            assert background.result()["transactions"]["rows"] > 0
    # DuckDB's own reading of each limit (in MiB): 512MB unless the training's is a smaller size
    assert seen == ["488.2 MiB"] * 4 + ["95.3 MiB", "190.7 MiB"]


@pytest.mark.integration
def test_training_as_of_ignores_rows_after_it_sample_included(small_world: Path, tmp_path: Path) -> None:
    """Same data up to as-of, same training: rows after as-of change neither the sample nor the models."""
    as_of = "2024-06-30"  # customers still signing up: a quarter of the world is not known yet
    end = pd.Timestamp(as_of) + pd.Timedelta(days=1)
    cut = tmp_path / "cut"
    cut.mkdir()
    for name, col in (("transactions", "ts"), ("events", "ts"), ("customers", "signup_ts")):
        frame = pd.read_parquet(small_world / f"{name}.parquet")
        frame[frame[col].isna() | (frame[col] < end)].to_parquet(cut / f"{name}.parquet", index=False)
    config = RunConfig(
        train=TrainConfig(
            horizon_days=90, n_folds=1, train_cutoffs=2, candidates=("btyd", "gbm"), sample_customers=500
        ),
        scorer=ScorerConfig(horizon_days=90, gbm_rounds=30, seed=1),
    )
    full, truncated = train(small_world, as_of, config), train(cut, as_of, config)
    assert full.scorer.metadata_["training_sample"] == truncated.scorer.metadata_["training_sample"]
    assert full.scorer.metadata_["training_sample"]["customers"] < 1_500
    pd.testing.assert_frame_equal(full.backtest.drop(columns="seconds"), truncated.backtest.drop(columns="seconds"))
    pd.testing.assert_frame_equal(full.snapshot_scores, truncated.snapshot_scores)


def _recorded(calls: list[str], name: str, func: Callable[..., Any]) -> Callable[..., Any]:
    """``func``, noting ``name`` in ``calls`` when called."""

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        calls.append(name)
        return func(*args, **kwargs)

    return wrapper


@pytest.mark.integration
def test_a_snapshot_read_in_chunks_fits_the_same_scorer(
    small_world: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Above [train] snapshot_in_memory customers the snapshot is written out of core and read in chunks
    (BTYD on its summary columns, the level factors, the season and the tier policy over the chunks):
    the scorer's files and the training's scores are those of the snapshot held whole, and the
    out-of-core folder is gone when training returns. Either way the snapshot's DuckDB job runs
    before the backtest's, while the process holds little (the run's peak memory otherwise)."""
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    monkeypatch.setattr(pipeline, "WHOLE_SNAPSHOT_READ_ROWS", 300)  # held whole, it is read back in pieces too
    calls: list[str] = []
    for step in ("write_feature_chunks", "run_backtest"):
        monkeypatch.setattr(pipeline, step, _recorded(calls, step, getattr(pipeline, step)))
    results, said = {}, []
    for chunk in (0, 350):
        config = RunConfig(
            train=TrainConfig(
                horizon_days=90,
                n_folds=1,
                train_cutoffs=2,
                candidates=("btyd", "gbm", "hybrid"),
                snapshot_in_memory=chunk,
            ),
            scorer=ScorerConfig(horizon_days=90, gbm_rounds=30, seed=1),
        )
        results[chunk] = train(small_world, AS_OF, config, progress=said.append)
        results[chunk].scorer.save(tmp_path / f"scorer-{chunk}")
    whole, chunked = results[0], results[350]
    assert calls == ["write_feature_chunks", "run_backtest"] * 2
    # held whole, the snapshot read back piece by piece is the feature job's frame, made stable
    assert len(whole.snapshot_features) > 3 * 300
    pd.testing.assert_frame_equal(whole.snapshot_features, stable_floats(compute_features(small_world, AS_OF)))
    assert any("read in chunks of 350" in m for m in said)
    assert chunked.scorer.metadata_["fit_notes"] and chunked.scorer.seasonal_ is not None  # a season was fitted
    for name in sorted(p.name for p in (tmp_path / "scorer-0").iterdir()):
        assert (tmp_path / "scorer-0" / name).read_bytes() == (tmp_path / "scorer-350" / name).read_bytes(), name
    cols = list(chunked.snapshot_scores.columns)
    assert len(chunked.snapshot_scores) == len(whole.snapshot_scores) > 3 * 350
    pd.testing.assert_frame_equal(chunked.snapshot_scores, whole.snapshot_scores[cols])
    pd.testing.assert_frame_equal(chunked.snapshot_features, whole.snapshot_features[["customer_id", "net_spend_365d"]])
    pd.testing.assert_frame_equal(chunked.example_features, whole.snapshot_features.head(20))
    assert list((tmp_path / "tmp").iterdir()) == []
    # the default: whole up to 1M customers, above in chunks of 250k; 0 never chunks
    assert TrainConfig().snapshot_chunk_rows(1_000_000) is None
    assert TrainConfig().snapshot_chunk_rows(10_000_000) == 250_000
    assert TrainConfig(snapshot_in_memory=0).snapshot_chunk_rows(10**9) is None
