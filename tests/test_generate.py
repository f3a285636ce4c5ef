"""Tests for the synthetic world generator and its ground truth."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from churnclv.generate import generate_world, generate_world_to_parquet, write_world
from churnclv.generator import blocks
from churnclv.generator.truth import default_truth_as_of, truth_at
from churnclv.generator.world import Latent, World, WorldConfig
from churnclv.schema import KNOWN_EVENT_TYPES

DAY = pd.Timedelta(days=1)


@pytest.fixture(scope="module")
def small() -> World:
    return generate_world(WorldConfig(n_customers=2_000, seed=11))


@pytest.fixture(scope="module")
def large() -> World:
    # big enough that truth-vs-realised means are tight (standard error ~1 %)
    return generate_world(WorldConfig(n_customers=30_000, seed=12))


def _assert_worlds_equal(a: World, b: World) -> None:
    for name in ("transactions", "events", "customers"):
        pd.testing.assert_frame_equal(getattr(a, name), getattr(b, name))
    for name in Latent.__dataclass_fields__:
        np.testing.assert_array_equal(getattr(a.latent, name), getattr(b.latent, name))


# --- reproducibility


def test_same_seed_gives_identical_world(small: World) -> None:
    _assert_worlds_equal(small, generate_world(WorldConfig(n_customers=2_000, seed=11)))


def test_different_seed_gives_different_world(small: World) -> None:
    other = generate_world(WorldConfig(n_customers=2_000, seed=13))
    assert len(other.transactions) != len(small.transactions) or not other.transactions.equals(small.transactions)
    assert not np.array_equal(other.latent.satisfaction, small.latent.satisfaction)


def test_threads_do_not_change_the_world(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(blocks, "BLOCK", 300)  # several blocks on a tiny world
    config = WorldConfig(n_customers=1_000, seed=3)
    serial = generate_world(config)
    threaded = generate_world(config, n_jobs=3)
    _assert_worlds_equal(serial, threaded)
    # blocks are concatenated in customer order, so sorting holds across block seams
    assert serial.customers["customer_id"].is_monotonic_increasing
    assert serial.transactions["customer_id"].is_monotonic_increasing


# --- the contract


def test_tables_have_contract_columns_and_dtypes(small: World) -> None:
    expected = {
        "transactions": ["customer_id", "ts", "amount", "order_id", "channel", "category"],
        "events": ["customer_id", "ts", "event_type", "value"],
        "customers": ["customer_id", "signup_ts", "region", "acquisition_channel"],
    }
    for name, columns in expected.items():
        frame = getattr(small, name)
        assert list(frame.columns) == columns
        for col in columns:
            if col in ("ts", "signup_ts"):
                assert frame[col].dtype in ("datetime64[us]", "datetime64[ns]"), (name, col)
            elif col in ("amount", "value"):
                assert frame[col].dtype == np.float64, (name, col)
            else:
                assert pd.api.types.is_string_dtype(frame[col]), (name, col)
                assert frame[col].notna().all(), (name, col)
    assert small.transactions["ts"].notna().all() and small.events["ts"].notna().all()


def test_customer_ids_are_zero_padded_strings(small: World) -> None:
    ids = small.customers["customer_id"]
    assert ids.tolist() == [f"{i:08d}" for i in range(2_000)]
    assert small.transactions["customer_id"].str.len().eq(8).all()
    assert small.transactions["customer_id"].isin(ids).all()
    assert small.events["customer_id"].isin(ids).all()


def test_rows_sorted_by_customer_and_ts(small: World) -> None:
    for frame in (small.transactions, small.events):
        key = frame[["customer_id", "ts"]]
        assert key.equals(key.sort_values(["customer_id", "ts"], kind="stable"))


def test_no_row_after_end_or_before_signup(small: World) -> None:
    config = small.config
    signup = small.customers.set_index("customer_id")["signup_ts"]
    for frame in (small.transactions, small.events):
        assert frame["ts"].max() <= config.end
        assert (frame["ts"].to_numpy() >= signup.loc[frame["customer_id"]].to_numpy()).all()
    assert small.customers["signup_ts"].max() < config.start + config.signup_days * DAY


def test_timestamps_have_a_realistic_time_of_day(small: World) -> None:
    ts = small.transactions["ts"]
    assert (ts != ts.dt.normalize()).mean() > 0.99
    hours = ts.dt.hour
    assert hours.between(18, 21).mean() > 2 * hours.between(1, 4).mean()


def test_event_types_and_session_values(small: World) -> None:
    ev = small.events
    assert set(ev["event_type"]) == set(KNOWN_EVENT_TYPES)
    session = ev["event_type"] == "session"
    assert (ev.loc[session, "value"] > 0).all()
    assert ev.loc[~session, "value"].isna().all()


def test_orders_have_one_to_three_lines_sharing_ts_and_channel(small: World) -> None:
    tx = small.transactions
    buys = tx[tx["amount"] > 0]
    per_order = buys.groupby("order_id").agg(
        lines=("amount", "size"), n_ts=("ts", "nunique"), n_channel=("channel", "nunique")
    )
    assert set(per_order["lines"]) == {1, 2, 3}
    assert (per_order["n_ts"] == 1).all() and (per_order["n_channel"] == 1).all()
    assert set(tx["channel"]) == {"web", "app", "store"}
    assert (tx["order_id"].str.slice(0, 8) == tx["customer_id"]).all()


def test_returns_are_negative_later_lines_of_an_earlier_order(small: World) -> None:
    tx = small.transactions
    returns = tx[tx["amount"] < 0]
    assert 0.02 < len(returns) / len(tx) < 0.15
    bought = tx[tx["amount"] > 0].groupby("order_id").agg(ts=("ts", "first"), total=("amount", "sum"))
    order_ts = bought["ts"].reindex(returns["order_id"]).to_numpy()
    assert not pd.isna(order_ts).any()
    assert (returns["ts"].to_numpy() >= order_ts + DAY).all()
    returned = -returns.groupby("order_id")["amount"].sum()
    assert (returned <= bought["total"].reindex(returned.index) + 1e-9).all()


def test_some_customers_never_purchase(small: World) -> None:
    buyers = small.transactions.loc[small.transactions["amount"] > 0, "customer_id"].unique()
    share = 1 - len(buyers) / small.config.n_customers
    assert 0.05 < share < 0.5


def test_purchases_are_seasonal(large: World) -> None:
    """Orders per unit of latent purchase exposure peak in December, trough in June."""
    config, latent, tx = large.config, large.latent, large.transactions
    orders = tx[tx["amount"] > 0].drop_duplicates("order_id")

    def rate(month_start: str) -> float:
        lo = pd.Timestamp(month_start)
        hi = lo + pd.offsets.MonthBegin(1)
        a, b = (lo - config.start) / DAY, (hi - config.start) / DAY
        overlap = np.clip(np.minimum(latent.death_day, b) - np.maximum(latent.signup_day, a), 0, None)
        n = orders["ts"].between(lo, hi, inclusive="left").sum()
        return n / float(np.sum(latent.purchase_rate * overlap))

    assert rate("2024-12-01") / rate("2024-06-01") > 1.3


# --- ground truth


def _realised(world: World, truth: pd.DataFrame, horizon: int) -> pd.DataFrame:
    """Per truth row: realised orders and net spend in (as_of, as_of + horizon]."""
    tx = world.transactions
    rows = []
    for as_of, part in truth.groupby("as_of"):
        win = tx[(tx["ts"] > as_of) & (tx["ts"] <= as_of + horizon * DAY)]
        orders = win[win["amount"] > 0].groupby("customer_id")["order_id"].nunique()
        spend = win.groupby("customer_id")["amount"].sum()
        rows.append(
            part.assign(
                orders=orders.reindex(part["customer_id"], fill_value=0).to_numpy(),
                spend=spend.reindex(part["customer_id"], fill_value=0.0).to_numpy(),
            )
        )
    return pd.concat(rows, ignore_index=True)


def test_truth_frame_shape_and_rules(small: World) -> None:
    dates = default_truth_as_of(small.config, 90)
    truth = truth_at(small, dates, 90)
    assert list(truth.columns) == [
        "customer_id",
        "as_of",
        "horizon_days",
        "alive",
        "p_no_purchase",
        "expected_purchases",
        "expected_spend",
        "satisfaction",
    ]
    assert truth["as_of"].dtype in ("datetime64[us]", "datetime64[ns]")
    assert pd.api.types.is_string_dtype(truth["customer_id"])
    assert truth[["customer_id", "as_of"]].equals(truth[["customer_id", "as_of"]].sort_values(["customer_id", "as_of"]))
    # only customers signed up by as_of, every one of them
    signup = small.customers.set_index("customer_id")["signup_ts"]
    for as_of in dates:
        got = truth.loc[truth["as_of"] == as_of, "customer_id"]
        assert set(got) == set(signup.index[signup <= as_of])
    assert truth["p_no_purchase"].between(0, 1).all()
    dead = ~truth["alive"]
    assert (truth.loc[dead, "p_no_purchase"] == 1).all()
    assert (truth.loc[dead, ["expected_purchases", "expected_spend"]] == 0).all().all()
    assert dead.any() and truth["alive"].any()


def test_default_truth_windows_close_within_the_data() -> None:
    config = WorldConfig(n_customers=10)
    dates = default_truth_as_of(config, 90)
    assert dates == [
        pd.Timestamp("2025-08-03"),
        pd.Timestamp("2025-09-02"),
        pd.Timestamp("2025-10-02"),
    ]
    assert max(dates) + 90 * DAY == config.end


def test_truth_matches_realised_no_purchase_by_bin(large: World) -> None:
    truth = _realised(large, truth_at(large, default_truth_as_of(large.config, 90), 90), 90)
    realised_none = (truth["orders"] == 0).astype(float)
    assert abs(realised_none.mean() - truth["p_no_purchase"].mean()) < 0.01
    # calibrated across the range, not only on average
    alive = truth[truth["alive"]]
    bins = pd.cut(alive["p_no_purchase"], [0, 0.2, 0.4, 0.6, 0.8, 1.0])
    calib = (
        alive.assign(none=(alive["orders"] == 0))
        .groupby(bins, observed=True)
        .agg(p=("p_no_purchase", "mean"), real=("none", "mean"), n=("none", "size"))
    )
    assert (calib["n"] > 500).all()
    assert (abs(calib["p"] - calib["real"]) < 0.04).all(), calib


def test_truth_matches_realised_orders_and_spend(large: World) -> None:
    truth = _realised(large, truth_at(large, default_truth_as_of(large.config, 60), 60), 60)
    assert truth["orders"].mean() == pytest.approx(truth["expected_purchases"].mean(), rel=0.03)
    assert truth["spend"].mean() == pytest.approx(truth["expected_spend"].mean(), rel=0.03)
    # the truth ranks customers: the top decile of expected spend buys far more than the rest
    top = truth["expected_spend"] >= truth["expected_spend"].quantile(0.9)
    assert truth.loc[top, "spend"].mean() > 5 * truth.loc[~top, "spend"].mean()


def test_dead_customers_never_buy_after_death(large: World) -> None:
    tx = large.transactions
    buys = tx[tx["amount"] > 0]
    death = large.latent.death_ts(large.config.start)
    cust = buys["customer_id"].astype(int).to_numpy()
    assert (buys["ts"].to_numpy() <= death[cust].to_numpy()).all()
    truth = _realised(large, truth_at(large, [pd.Timestamp("2025-06-01")], 120), 120)
    assert (truth.loc[~truth["alive"], "orders"] == 0).all()


@settings(
    max_examples=min(20, settings.default.max_examples),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    day=st.integers(min_value=0, max_value=1200),
    hour=st.integers(min_value=0, max_value=23),
    horizon=st.integers(min_value=1, max_value=200),
)
def test_truth_is_monotone_in_horizon(small: World, day: int, hour: int, horizon: int) -> None:
    as_of = small.config.start + day * DAY + pd.Timedelta(hours=hour)
    short = truth_at(small, [as_of], horizon)
    longer = truth_at(small, [as_of], horizon + 30)
    assert short["customer_id"].equals(longer["customer_id"])
    assert short["p_no_purchase"].between(0, 1).all()
    assert (longer["p_no_purchase"] <= short["p_no_purchase"] + 1e-12).all()
    assert (longer["expected_purchases"] >= short["expected_purchases"] - 1e-12).all()
    assert (short["expected_spend"] >= 0).all()


def test_truth_rejects_bad_arguments(small: World) -> None:
    with pytest.raises(ValueError, match="horizon_days"):
        truth_at(small, [pd.Timestamp("2025-01-01")], 0)
    with pytest.raises(ValueError, match="as_of_dates is empty"):
        truth_at(small, [], 30)
    with pytest.raises(ValueError, match="timezone"):
        truth_at(small, [pd.Timestamp("2025-01-01", tz="UTC")], 30)


# --- signal beyond RFM


def test_logins_collapse_after_silent_death(large: World) -> None:
    as_of = pd.Timestamp("2025-06-01")
    truth = truth_at(large, [as_of], 30)
    ev = large.events
    recent = ev[(ev["event_type"] == "login") & (ev["ts"] > as_of - 30 * DAY) & (ev["ts"] <= as_of)]
    logins = recent.groupby("customer_id").size().reindex(truth["customer_id"], fill_value=0)
    alive = truth["alive"].to_numpy()
    assert logins[~alive].mean() < 0.25 * logins[alive].mean()


def test_complaints_come_from_unsatisfied_customers(large: World) -> None:
    ev = large.events
    per_customer = ev[ev["event_type"] == "complaint"].groupby("customer_id").size()
    counts = per_customer.reindex(large.customers["customer_id"], fill_value=0).to_numpy()
    z = large.latent.satisfaction
    assert counts[z < -1].mean() > 3 * counts[z > 1].mean()


def test_acquisition_channel_predicts_survival(large: World) -> None:
    alive_at_end = large.latent.death_day > large.config.n_days
    channel = large.customers["acquisition_channel"].to_numpy()
    share = pd.Series(alive_at_end).groupby(channel).mean()
    assert share["referral"] > share["affiliate"] + 0.1


# --- scales


def test_rate_scales_multiply_row_counts(small: World) -> None:
    base_buys = (small.transactions["amount"] > 0).sum()
    base_events = len(small.events)
    more = generate_world(WorldConfig(n_customers=2_000, seed=11, purchase_rate_scale=2.0, event_rate_scale=3.0))
    assert (more.transactions["amount"] > 0).sum() / base_buys == pytest.approx(2.0, rel=0.1)
    assert len(more.events) / base_events == pytest.approx(3.0, rel=0.1)


def test_default_rows_per_customer() -> None:
    world = generate_world(WorldConfig(n_customers=5_000, seed=5))
    assert 10 <= len(world.transactions) / 5_000 <= 20
    assert 20 <= len(world.events) / 5_000 <= 40


# --- files


def test_write_world_round_trips(small: World, tmp_path) -> None:
    paths = write_world(small, tmp_path)
    assert {p.name for p in paths.values()} == {
        "transactions.parquet",
        "events.parquet",
        "customers.parquet",
        "truth.parquet",
    }
    for name in ("transactions", "events", "customers"):
        pd.testing.assert_frame_equal(pd.read_parquet(paths[name]), getattr(small, name))
    truth = pd.read_parquet(paths["truth"])
    pd.testing.assert_frame_equal(truth, truth_at(small, default_truth_as_of(small.config), 90))


def test_streaming_writer_matches_write_world(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    monkeypatch.setattr(blocks, "BLOCK", 400)
    config = WorldConfig(n_customers=1_000, seed=4)
    as_of = [pd.Timestamp("2025-03-01")]
    expected = write_world(generate_world(config), tmp_path / "a", truth_as_of=as_of, horizon_days=30)
    got = generate_world_to_parquet(config, tmp_path / "b", truth_as_of=as_of, horizon_days=30, n_jobs=2)
    for name, path in expected.items():
        pd.testing.assert_frame_equal(pd.read_parquet(got[name]), pd.read_parquet(path))


# --- config


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"start": "2023-01-01 10:00"}, "start"),
        ({"end": "2022-01-01"}, "end"),
        ({"n_customers": 0}, "n_customers"),
        ({"signup_days": 5000}, "signup_days"),
        ({"purchase_rate_scale": 0.0}, "purchase_rate_scale"),
        ({"return_prob": 1.5}, "return_prob"),
    ],
)
def test_config_rejects_bad_values(kwargs: dict, field: str) -> None:
    with pytest.raises(ValueError, match=field):
        WorldConfig(**kwargs)


def test_config_coerces_string_dates() -> None:
    config = WorldConfig(start="2024-01-01", end="2024-12-31", signup_days=100)
    assert config.start == pd.Timestamp("2024-01-01") and config.n_days == 365


def test_generated_world_passes_validation_without_rejects() -> None:
    from churnclv.ingest import validate_frames

    world = generate_world(WorldConfig(n_customers=4_000, seed=7))
    result = validate_frames(world.transactions, world.events, world.customers)
    assert {name: r.rejected for name, r in result.reports.items()} == {"customers": 0, "transactions": 0, "events": 0}


# --- the season, through the command line


def _monthly_orders(tmp_path, name: str, *season: str) -> pd.Series:
    """Orders per calendar month of 2024-2025 in a small world generated by ``churnclv generate``."""
    from click.testing import CliRunner

    from churnclv.cli import cli

    out = tmp_path / name
    args = ["generate", "--customers", "1500", "--seed", "8", "--out", str(out), *season]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    tx = pd.read_parquet(out / "transactions.parquet", columns=["ts", "amount", "order_id"])
    orders = tx[(tx["amount"] > 0) & (tx["ts"] >= pd.Timestamp("2024-01-01"))].drop_duplicates("order_id")
    return orders.groupby(orders["ts"].dt.month).size()


def test_generate_season_options_reach_the_world(tmp_path) -> None:
    # Same seed, same latent state: dividing by the flat world's months leaves only the season.
    flat = _monthly_orders(tmp_path, "flat", "--seasonality-amplitude", "0")
    peaked = _monthly_orders(tmp_path, "peaked", "--seasonality-amplitude", "0.6")
    june = _monthly_orders(tmp_path, "june", "--seasonality-amplitude", "0.6", "--season-peak-day", "152")
    # flat: December and June differ only by the customer base (about 1 when nobody signs up or dies)
    assert 0.7 < flat[12] / flat[6] < 1.4
    # 1 + 0.6 cos(...) averages about 1.56 over December and 0.43 over June
    season = (peaked / flat)[12] / (peaked / flat)[6]
    assert 2.5 < season < 5.5
    flipped = (june / flat)[6] / (june / flat)[12]
    assert 2.5 < flipped < 5.5


@pytest.mark.parametrize(
    ("args", "option", "says"),
    [
        (["--seasonality-amplitude", "1"], "--seasonality-amplitude", "0<=x<1"),
        (["--seasonality-amplitude", "-0.1"], "--seasonality-amplitude", "0<=x<1"),
        (["--seasonality-amplitude", "strong"], "--seasonality-amplitude", "is not a valid float"),
        (["--season-peak-day", "0"], "--season-peak-day", "1<=x<=366"),
        (["--season-peak-day", "367"], "--season-peak-day", "1<=x<=366"),
    ],
)
def test_generate_refuses_out_of_range_season(tmp_path, args: list[str], option: str, says: str) -> None:
    from click.testing import CliRunner

    from churnclv.cli import cli

    result = CliRunner().invoke(cli, ["generate", "--customers", "10", "--out", str(tmp_path / "out"), *args])
    assert result.exit_code == 2, result.output
    message = " ".join(result.output.split())
    assert f"Invalid value for '{option}'" in message and says in message
    assert not (tmp_path / "out").exists()


def test_generate_season_help_matches_the_world_defaults() -> None:
    from click.testing import CliRunner

    from churnclv.cli import cli

    result = CliRunner().invoke(cli, ["generate", "--help"])
    text = " ".join(result.output.split())
    config = WorldConfig()
    assert f"Default: {config.seasonality_amplitude}." in text
    assert f"Default: {config.season_peak_day_of_year} (1 December)" in text


# --- a change in behaviour half way (shift_date, shift_purchase_rate, shift_hazard)

SHIFT = pd.Timestamp("2025-07-01")


def _digest(frame: pd.DataFrame) -> str:
    import hashlib

    h = hashlib.sha256(",".join(frame.columns).encode())
    h.update(pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes())
    return h.hexdigest()[:16]


def _digests(world: World, truth: pd.DataFrame) -> dict[str, str]:
    return {name: _digest(getattr(world, name)) for name in ("transactions", "events", "customers")} | {
        "truth": _digest(truth)
    }


# Content digests of worlds generated before the shift knob existed (commit 44be935): a world
# without a shift must stay identical, row for row and bit for bit.
_BEFORE_THE_KNOB = [
    (
        {"n_customers": 700, "seed": 5},
        {"transactions": "8fee7c7b7d526736", "events": "278d2d50569cd220", "customers": "9cee7167fa79b28d",
         "truth": "f411adb000c4ecff"},
    ),
    (
        {"n_customers": 300, "seed": 9, "purchase_rate_scale": 2.0, "seasonality_amplitude": 0.0},
        {"transactions": "f3ed90ce3d081a7f", "events": "fa14deaa1bce12cf", "customers": "1178bbfcd06ce164",
         "truth": "3792ac47e6f3092f"},
    ),
]  # fmt: skip


@pytest.mark.parametrize(("kwargs", "expected"), _BEFORE_THE_KNOB)
def test_a_world_without_shift_is_unchanged(kwargs: dict, expected: dict) -> None:
    world = generate_world(WorldConfig(**kwargs))
    truth = truth_at(world, [pd.Timestamp("2025-03-01"), pd.Timestamp("2025-09-15")], 28)
    assert _digests(world, truth) == expected


def test_generate_command_without_shift_writes_the_same_world(tmp_path) -> None:
    from click.testing import CliRunner

    from churnclv.cli import cli

    args = ["generate", "--customers", "300", "--seed", "3", "--horizon-days", "28", "--out", str(tmp_path)]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    assert "shift" not in result.output
    got = {n: _digest(pd.read_parquet(tmp_path / f"{n}.parquet")) for n in ("transactions", "events", "customers")}
    got["truth"] = _digest(pd.read_parquet(tmp_path / "truth.parquet"))
    assert got == {"transactions": "d403708e7e24324c", "events": "eb2b4f139805ce10", "customers": "b4f8e6623e59fd88",
                   "truth": "a3acba13305afb75"}  # fmt: skip


def _orders(world: World) -> pd.Series:
    tx = world.transactions
    return tx[tx["amount"] > 0].drop_duplicates("order_id")["ts"]


def test_shift_purchase_rate_changes_only_what_comes_after(small: World) -> None:
    shifted = generate_world(WorldConfig(n_customers=2_000, seed=11, shift_date=SHIFT, shift_purchase_rate=0.5))

    # same latent state, same proposals, same thinning draws: the orders before the shift are unchanged
    # (their lines and amounts are drawn after the thinning, so they may differ)
    def orders_before(world: World) -> pd.DataFrame:
        tx = world.transactions
        keys = tx[(tx["amount"] > 0) & (tx["ts"] < SHIFT)][["customer_id", "ts"]].drop_duplicates()
        return keys.reset_index(drop=True)

    pd.testing.assert_frame_equal(orders_before(shifted), orders_before(small))
    np.testing.assert_array_equal(shifted.latent.death_day, small.latent.death_day)
    after_base, after_shift = (_orders(w)[_orders(w) >= SHIFT + DAY].size for w in (small, shifted))
    # the orders after it are a thinned half of the unshifted world's
    assert after_shift / after_base == pytest.approx(0.5, abs=0.06)


def test_shift_hazard_shortens_the_remaining_life_after_the_date(small: World) -> None:
    shifted = generate_world(WorldConfig(n_customers=2_000, seed=11, shift_date=SHIFT, shift_hazard=4.0))
    s = float((SHIFT - small.config.start) / DAY)
    base, new = small.latent.death_day, shifted.latent.death_day
    since = np.maximum(small.latent.signup_day, s)
    later = base > since
    np.testing.assert_array_equal(new[~later], base[~later])  # dead before the shift (or sign-up): unchanged
    np.testing.assert_allclose(new[later] - since[later], (base[later] - since[later]) / 4.0, rtol=1e-12)
    assert (new[later] < base[later]).all()
    buys = shifted.transactions[shifted.transactions["amount"] > 0]
    last_buy_day = ((buys.groupby("customer_id")["ts"].max() - shifted.config.start) / DAY).to_numpy()
    death = pd.Series(new, index=shifted.customers["customer_id"]).reindex(buys.groupby("customer_id").size().index)
    assert (last_buy_day <= death.to_numpy() + 1e-6).all()  # nobody buys after the new death time


def test_truth_follows_the_shift_when_the_window_straddles_it() -> None:
    world = generate_world(
        WorldConfig(n_customers=20_000, seed=21, shift_date=SHIFT, shift_purchase_rate=0.5, shift_hazard=3.0)
    )
    as_of = [SHIFT - 14 * DAY, SHIFT + 30 * DAY]  # a window across the change, one after it
    truth = _realised(world, truth_at(world, as_of, 28), 28)
    for _, part in truth.groupby("as_of"):
        assert (part["orders"] == 0).mean() == pytest.approx(part["p_no_purchase"].mean(), abs=0.015)
        assert part["orders"].mean() == pytest.approx(part["expected_purchases"].mean(), rel=0.05)
    unshifted = truth_at(generate_world(WorldConfig(n_customers=20_000, seed=21)), as_of, 28)
    # the shift is visible in the truth: fewer expected orders after it
    assert truth["expected_purchases"].mean() < 0.8 * unshifted["expected_purchases"].mean()


@pytest.mark.parametrize(
    ("kwargs", "says"),
    [
        ({"shift_hazard": 2.0}, "needs shift_date"),
        ({"shift_purchase_rate": 0.5}, "needs shift_date"),
        ({"shift_date": "2026-01-02", "shift_hazard": 2.0}, "shift_date"),
        ({"shift_date": "2023-01-01"}, "shift_date"),
        ({"shift_date": SHIFT, "shift_hazard": 0.0}, "shift_hazard"),
        ({"shift_date": SHIFT, "shift_purchase_rate": float("inf")}, "shift_purchase_rate"),
        ({"shift_date": "2025-07-01 12:00"}, "shift_date"),
    ],
)
def test_config_rejects_bad_shift(kwargs: dict, says: str) -> None:
    with pytest.raises(ValueError, match=says):
        WorldConfig(**kwargs)


def test_generate_shift_options_reach_the_world(tmp_path) -> None:
    from click.testing import CliRunner

    from churnclv.cli import cli

    args = ["generate", "--customers", "2000", "--seed", "11", "--out", str(tmp_path), "--shift-date", "2025-07-01"]
    result = CliRunner().invoke(cli, [*args, "--shift-purchase-rate", "0.5", "--shift-hazard", "2"])
    assert result.exit_code == 0, result.output
    assert "behaviour shift from 2025-07-01: purchase rates x 0.5, dropout hazard x 2" in result.output
    expected = generate_world(WorldConfig(n_customers=2_000, seed=11, shift_date=SHIFT, shift_purchase_rate=0.5,
                                          shift_hazard=2.0))  # fmt: skip
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "transactions.parquet"), expected.transactions)


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--shift-hazard", "2"], "need --shift-date"),
        (["--shift-date", "2027-01-01", "--shift-hazard", "2"], "Invalid value for '--shift-date'"),
        (["--shift-date", "2025-07-01", "--shift-purchase-rate", "0"], "Invalid value for '--shift-purchase-rate'"),
    ],
)
def test_generate_refuses_bad_shift(tmp_path, args: list[str], says: str) -> None:
    from click.testing import CliRunner

    from churnclv.cli import cli

    result = CliRunner().invoke(cli, ["generate", "--customers", "10", "--out", str(tmp_path / "out"), *args])
    assert result.exit_code == 2, result.output
    assert says in " ".join(result.output.split())
    assert not (tmp_path / "out").exists()
