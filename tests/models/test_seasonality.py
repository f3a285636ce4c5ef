"""The yearly season of the totals (models.seasonality): fitted on daily purchases, applied as
operational time."""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from churnclv.features import compute_features, compute_label_totals, compute_labels, compute_training_frame
from churnclv.features.engine import compute_daily_purchases
from churnclv.generate import generate_world_to_parquet
from churnclv.generator.world import WorldConfig
from churnclv.models.btyd import BTYDModel
from churnclv.models.scorer import Scorer
from churnclv.models.scorer_config import ScorerConfig
from churnclv.models.seasonality import (
    LevelWindow,
    Season,
    SeasonalBTYD,
    fit_season,
    fit_seasonal_btyd,
    to_operational,
)

YEAR = pd.date_range("2001-01-01", periods=365, freq="D")


def test_a_season_averages_one_over_a_year_and_time_warps_consistently() -> None:
    season = Season(coef=(0.5, -0.3, 0.05, 0.1))
    s = season.multiplier(YEAR)
    assert s.mean() == pytest.approx(1.0, abs=1e-9) and s.max() > 1.4 and s.min() < 0.7
    # a year of operational time is a year; a window's length is the sum of its days' multipliers
    assert season.forward("2024-12-31", 365) == pytest.approx(365, rel=2e-3)
    days = pd.date_range("2025-03-01", periods=30, freq="D")
    assert season.forward("2025-02-28", 30) == pytest.approx(season.multiplier(days).sum())
    assert season.backward("2025-03-30", np.array([30.0]))[0] == pytest.approx(season.multiplier(days).sum())
    assert np.isnan(season.backward("2025-03-30", np.array([np.nan])))[0]


def test_the_season_carries_a_long_silent_customer_within_its_range() -> None:
    """Both BTYD expectations near 0 (a customer silent for years): their ratio means nothing and is
    held within level / B .. level x B, B the season's highest multiplier over its lowest."""
    season = Season(coef=(0.5, -0.3, 0.05, 0.1))
    s = season.multiplier(YEAR)
    spread = s.max() / s.min()
    model = SeasonalBTYD(season, BTYDModel(), {"purchases": 1.1, "spend": 0.9})
    window = pd.DataFrame({"expected_purchases": [9.95e-30, 1.2, 0.5, 3.0], "expected_spend": [1e-28, 30.0, 0.0, 1.0]})
    calendar = pd.DataFrame(
        {"expected_purchases": [1.06e-32, 1.0, 0.0, 3.0], "expected_spend": [1e-32, 20.0, 0.0, 0.5]}
    )
    purchases = model.carry(window, calendar, "purchases")
    np.testing.assert_allclose(purchases, [1.1 * spread, 1.2, 1.0, 1.0])  # 938 held; 0 / 0 is 1
    spend = model.carry(window, calendar, "spend")
    np.testing.assert_allclose(spend, [0.9 * spread, 1.5, 1.0, 2.0])
    assert (spend <= 0.9 * spread).all() and (purchases >= 1.1 / spread).all()


@settings(max_examples=25, deadline=None)
@given(t=st.floats(0, 2000), share=st.floats(0, 1))
def test_operational_time_keeps_recency_within_t(t: float, share: float) -> None:
    season = Season(coef=(0.6, 0.2))
    frame = pd.DataFrame({"customer_id": ["1"], "frequency": [2.0], "recency": [t * share], "T": [t]})
    op = to_operational(frame, "2025-06-30", season)
    assert 0 <= op["recency"].iloc[0] <= op["T"].iloc[0] + 1e-9
    flat = to_operational(frame, "2025-06-30", Season(coef=(0.0, 0.0)))
    assert flat["T"].iloc[0] == pytest.approx(t) and flat["recency"].iloc[0] == pytest.approx(t * share)


def _daily(amplitude: float, n_days: int, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    """Births every day and repeat purchases from a known per-customer curve times a season."""
    rng = np.random.default_rng(seed)
    days = pd.date_range("2022-01-01", periods=n_days, freq="D")
    births = rng.poisson(40, n_days).astype(float)
    per_day = 0.02 * np.exp(-np.arange(n_days) / 400)
    expected = np.convolve(births, np.concatenate([[0.0], per_day[: n_days - 1]]))[:n_days]
    season = 1 + amplitude * np.cos(2 * np.pi * (days.day_of_year - 335) / 365.25)
    repeat = rng.poisson(expected * season)
    daily = pd.DataFrame({"day": days, "purchase_days": births + repeat, "first_purchases": births})
    return daily, per_day


def test_fit_season_recovers_a_known_season() -> None:
    daily, per_day = _daily(0.5, 900)
    season, message = fit_season(daily, per_day, daily["day"].iloc[-1])
    assert season is not None, message
    s = pd.Series(season.multiplier(YEAR), index=YEAR)
    truth = 1 + 0.5 * np.cos(2 * np.pi * (YEAR.day_of_year - 335) / 365.25)
    assert np.abs(s.to_numpy() - truth).max() < 0.12  # the whole curve, within 0.12 of the truth
    assert s.idxmax().month in (11, 12) and s.idxmin().month in (5, 6)


def test_no_season_without_one_or_without_enough_history() -> None:
    flat, per_day = _daily(0.0, 900, seed=3)
    season, message = fit_season(flat, per_day, flat["day"].iloc[-1])
    assert season is None and "not significant" in message
    short, per_day = _daily(0.5, 400)
    season, message = fit_season(short, per_day, short["day"].iloc[-1])
    assert season is None and "400 days of history (" in message and "both counted), a season needs 540" in message


def test_perfectly_regular_daily_buyers_make_no_season() -> None:
    """Twenty customers buying every day, all from the first day, among ~1,500 buying at random: no
    season. BTYD's average customer under-predicts them early and over-predicts them later, a misfit
    that persists from day to day; measured day by day the noise hid it and the harmonics fitted it
    (p = 2.3e-19, a season of 0.92-1.13). Their curve is the population's, as BTYD fitted on all gives."""
    n_days, heavy = 900, 20
    rng = np.random.default_rng(0)
    days = pd.date_range("2022-01-01", periods=n_days, freq="D")
    births = rng.poisson(1.7, n_days).astype(float)
    per_day = 0.01 * np.exp(-np.arange(n_days) / 400)
    expected = np.convolve(births, np.concatenate([[0.0], per_day[: n_days - 1]]))[:n_days]
    repeat = rng.poisson(expected) + np.r_[0.0, np.full(n_days - 1, heavy)]
    births[0] += heavy
    average = (births.sum() - heavy) / births.sum() * per_day + heavy / births.sum()
    daily = pd.DataFrame({"day": days, "purchase_days": births + repeat, "first_purchases": births})
    season, message = fit_season(daily, average, days[-1])
    assert season is None and "not significant" in message, message


def test_a_base_with_daily_buyers_and_no_season_gets_none(tmp_path: Path) -> None:
    """The same through the features and BTYD's fit: 1,500 customers buying at random over 900 days
    and 20 buying every day (one in ~75 customers, ~73 % of the repeat purchases): a season of
    0.92-1.13 at p = 1.4e-16 before, p = 0.55 now."""
    rng = np.random.default_rng(7)
    n, heavy, n_days = 1_500, 20, 900
    first = rng.integers(0, n_days, n)
    lives = [np.unique(np.r_[f, rng.integers(f, n_days, rng.poisson(0.01 * (n_days - f)))]) for f in first]
    offsets = np.concatenate([*lives, np.tile(np.arange(n_days), heavy)])
    ids = [f"C{i}" for i, d in enumerate(lives) for _ in d] + [f"H{i}" for i in range(heavy) for _ in range(n_days)]
    ts = pd.Timestamp("2022-01-01") + pd.to_timedelta(offsets, unit="D") + pd.to_timedelta(12, unit="h")
    pd.DataFrame({"customer_id": ids, "ts": ts, "amount": 5.0}).to_parquet(tmp_path / "transactions.parquet")
    as_of = "2024-06-18"
    snapshot = compute_features(tmp_path, as_of)
    seasonal, message = fit_seasonal_btyd(
        BTYDModel().fit(snapshot), snapshot, as_of, compute_daily_purchases(tmp_path, as_of)
    )
    assert seasonal is None and "not significant" in message, message


@pytest.fixture(scope="module")
def seasonal_world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("seasonal")
    generate_world_to_parquet(WorldConfig(n_customers=3_000, seed=5, seasonality_amplitude=0.6), out)
    return out


def test_scorer_carries_btyd_to_the_season_of_the_window(seasonal_world: Path, tmp_path: Path) -> None:
    as_of = "2025-06-30"
    snapshot = compute_features(seasonal_world, as_of)
    daily = compute_daily_purchases(seasonal_world, as_of)
    assert daily["day"].max() <= pd.Timestamp(as_of)  # point in time
    config = ScorerConfig(churn_model="btyd", purchases_model="btyd", spend_model="btyd", horizon_days=30)
    train = snapshot.assign(cutoff=pd.Timestamp(as_of), churned=False, purchases=0, spend=0.0)
    scorer = Scorer(config=config, tiers=False).fit(train, snapshot, as_of=as_of, daily=daily)
    assert scorer.seasonal_ is not None, scorer.metadata_["fit_notes"]
    assert any(n.startswith("season fitted") for n in scorer.metadata_["fit_notes"])
    peak = scorer.score(snapshot, as_of="2025-11-20", reasons=False)  # the same customers, two windows
    low = scorer.score(snapshot, as_of="2025-05-20", reasons=False)
    assert peak["expected_purchases"].sum() > 1.8 * low["expected_purchases"].sum()
    # a window in the peak: fewer without a purchase (per customer not always: the same silence
    # just before a peak says more than before a low season)
    assert peak["p_churn"].mean() < low["p_churn"].mean() - 0.05
    # without a season the window does not matter
    plain = Scorer(config=replace(config, seasonality=False), tiers=False)
    plain.fit(train, snapshot, as_of=as_of, daily=daily)
    a = plain.score(snapshot, as_of="2025-11-20", reasons=False)
    b = plain.score(snapshot, as_of="2025-05-20", reasons=False)
    pd.testing.assert_frame_equal(a, b)
    # saved and loaded: the same scores
    scorer.save(tmp_path / "m")
    again = Scorer.load(tmp_path / "m")
    pd.testing.assert_frame_equal(again.score(snapshot, as_of="2025-11-20", reasons=False), peak)


def test_level_factors_are_what_the_model_got_wrong_on_the_last_closed_window(seasonal_world: Path) -> None:
    as_of, cutoff, h = "2025-06-30", "2025-04-01", 90
    snapshot = compute_features(seasonal_world, as_of)
    daily = compute_daily_purchases(seasonal_world, as_of)
    seasonal, message = fit_seasonal_btyd(BTYDModel().fit(snapshot), snapshot, as_of, daily)
    assert seasonal is not None, message
    at_cutoff = compute_features(seasonal_world, cutoff)
    labels = compute_labels(seasonal_world, cutoff, h, as_of=as_of)
    levelled, said = seasonal.with_levels(daily, LevelWindow.from_labels(pd.Timestamp(cutoff), at_cutoff, labels), h)
    assert said.startswith("level factors from the window after 2025-04-01")
    past, _ = fit_seasonal_btyd(BTYDModel().fit(at_cutoff), at_cutoff, cutoff, daily)  # reads days <= cutoff only
    assert past is not None
    predicted = past.predict(at_cutoff, cutoff, h)
    for target in ("purchases", "spend"):
        want = labels[target].sum() / predicted[f"expected_{target}"].sum()
        assert levelled.levels[target] == pytest.approx(min(max(want, 0.5), 2.0))
    plain, scaled = seasonal.predict(snapshot, as_of, h), levelled.predict(snapshot, as_of, h)
    ratio = scaled["expected_purchases"].sum() / plain["expected_purchases"].sum()
    assert ratio == pytest.approx(levelled.levels["purchases"])
    pd.testing.assert_series_equal(scaled["p_churn"], plain["p_churn"])  # levels move totals, not churn
    again = SeasonalBTYD.from_dict(json.loads(json.dumps(levelled.to_dict())))
    assert again is not None
    pd.testing.assert_frame_equal(again.predict(snapshot, as_of, h), scaled)


def test_training_scores_of_its_snapshot_are_what_score_gives(seasonal_world: Path) -> None:
    """score_fitted reuses the fit's predictions (season, learned models, tiers): the same frame as
    score(), and only for the snapshot it kept."""
    as_of = "2025-06-30"
    snapshot = compute_features(seasonal_world, as_of)
    daily = compute_daily_purchases(seasonal_world, as_of)
    train = compute_training_frame(seasonal_world, as_of, 90, n_cutoffs=3)
    scorer = Scorer(config=ScorerConfig(gbm_rounds=40, seed=2, churn_recalibrate=True))
    scorer.fit(train, snapshot, as_of=as_of, daily=daily, keep_parts=True)
    assert scorer.seasonal_ is not None and scorer.churn_ is not None and scorer.tiers_ is not None
    kept = scorer.score_fitted(snapshot, as_of=as_of)
    pd.testing.assert_frame_equal(kept, scorer.score(snapshot, as_of=as_of, reasons=False))
    assert kept["reasons"].map(len).eq(0).all()
    assert scorer.score(snapshot, as_of=as_of)["reasons"].map(len).gt(0).any()
    with pytest.raises(ValueError, match="once"):  # released after one use
        scorer.score_fitted(snapshot, as_of=as_of)
    scorer.fit(train, snapshot, as_of=as_of, daily=daily, keep_parts=True)
    with pytest.raises(ValueError, match="pass the snapshot"):
        scorer.score_fitted(snapshot.iloc[::-1], as_of=as_of)


def test_a_season_levelled_on_the_last_window_sets_the_totals_whatever_learned_totals_says(
    seasonal_world: Path,
) -> None:
    """The season's window levelled on what happened in the last closed window is stronger evidence
    than the learned models' own level, which the backtest (no season) chose against BTYD's alone.
    A season whose level was not measured (no window closed in its history) leaves "learned" alone."""
    as_of, cutoff, h = "2025-06-30", "2025-04-01", 90
    snapshot = compute_features(seasonal_world, as_of)
    daily = compute_daily_purchases(seasonal_world, as_of)
    train = compute_training_frame(seasonal_world, as_of, h, n_cutoffs=3)
    window = LevelWindow(
        pd.Timestamp(cutoff),
        compute_features(seasonal_world, cutoff),
        compute_label_totals(seasonal_world, cutoff, h, as_of=as_of),
    )
    no_levels = {"purchases": 1.0, "spend": 1.0}

    def fit(level: str, seasonality: bool = True, level_window: LevelWindow | None = window) -> Scorer:
        config = ScorerConfig(gbm_rounds=40, seed=2, learned_totals=level, seasonality=seasonality)
        return Scorer(config=config, tiers=False).fit(
            train, snapshot, as_of=as_of, daily=daily, level_window=level_window
        )

    btyd, learned = fit("btyd"), fit("learned")
    assert learned.seasonal_ is not None and learned.seasonal_.levels_from == cutoff
    assert learned.level_factors_ == btyd.level_factors_ != no_levels
    unmeasured = fit("learned", level_window=None)  # no closed window in the season's history
    assert unmeasured.seasonal_ is not None and unmeasured.seasonal_.levels_from is None
    assert unmeasured.level_factors_ == no_levels
    assert fit("learned", seasonality=False).level_factors_ == no_levels
    again = SeasonalBTYD.from_dict(json.loads(json.dumps(learned.seasonal_.to_dict())))
    assert again is not None and again.levels_from == cutoff


def test_a_level_window_given_as_a_function_is_made_only_for_a_season(seasonal_world: Path) -> None:
    """Training passes the level window as a function (~1 GB at 10M customers, held only while read):
    called once when a season is found, never without one, and the same factors as the window itself."""
    from churnclv.models.seasonality import fit_seasonal_model

    as_of, cutoff, h = "2025-06-30", "2025-04-01", 90
    snapshot = compute_features(seasonal_world, as_of)
    daily = compute_daily_purchases(seasonal_world, as_of)
    btyd = BTYDModel().fit(snapshot)
    window = LevelWindow(
        pd.Timestamp(cutoff),
        compute_features(seasonal_world, cutoff),
        compute_label_totals(seasonal_world, cutoff, h, as_of=as_of),
    )
    calls: list[int] = []

    def make() -> LevelWindow:
        calls.append(1)
        return window

    made, said = fit_seasonal_model(btyd, snapshot, as_of, daily, make, h)
    given, said_given = fit_seasonal_model(btyd, snapshot, as_of, daily, window, h)
    assert calls == [1] and made is not None and given is not None
    assert made.levels == given.levels and said == said_given and said[1].startswith("level factors")
    none, said_none = fit_seasonal_model(btyd, snapshot, as_of, daily.iloc[:0], make, h)
    assert none is None and calls == [1] and said_none == ["no season: no purchase before as-of"]


@settings(max_examples=60, deadline=None)
@given(
    spans=st.lists(st.floats(0, 3_000, allow_nan=False) | st.just(float("nan")), min_size=1, max_size=6),
    horizon=st.floats(0.5, 400),
    as_of=st.dates(dt.date(2019, 1, 1), dt.date(2030, 12, 31)),
)
def test_operational_lengths_are_the_day_by_day_sums(spans: list[float], horizon: float, as_of: dt.date) -> None:
    """The season's sums come from blocks of days kept per as-of: the day-by-day sums over exactly
    each span, to the last bit or so (numpy's vectorised exp can round the tail of an array its own
    way, so a day's multiplier may move by an ulp with the length of the range: hypothesis found
    1.156325447283503 against 1.1563254472835027), and a customer's value does not depend on the
    other customers of the call (before, the range ran to the longest span of the batch)."""
    season = Season(coef=(0.31, -0.2, 0.05, 0.013))
    end = pd.Timestamp(as_of)

    def back(x: float) -> float:
        n = max(int(np.ceil(x)), 1)
        s = season.multiplier(pd.date_range(end - pd.Timedelta(days=n - 1), end, freq="D"))[::-1]
        cum = np.concatenate([[0.0], np.cumsum(s)])
        return float(np.interp(x, np.arange(cum.size), cum))

    x = np.asarray(spans)
    got = season.backward(as_of, x)
    np.testing.assert_allclose(got, [np.nan if np.isnan(v) else back(v) for v in x], rtol=1e-14, atol=0)
    np.testing.assert_array_equal(got, [season.backward(as_of, np.array([v]))[0] for v in x])  # alone: the same
    n = max(int(np.ceil(horizon)), 1)
    s = season.multiplier(pd.date_range(end + pd.Timedelta(days=1), periods=n, freq="D"))
    ahead = float(np.interp(horizon, np.arange(n + 1), np.concatenate([[0.0], np.cumsum(s)])))
    assert season.forward(as_of, horizon) == pytest.approx(ahead, rel=1e-14, abs=0)
