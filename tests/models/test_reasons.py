"""Reasons in plain words: the phrase book, the choice of reasons, their direction, and whole bases.

A reason is a sentence a CRM agent can read aloud that says which way it moves the churn risk; never a
column name, a ``_``-joined token, "missing", "nan" or "None". The last tests render every reason of
a generated shop and of CDNOW, with a learned churn model and with BTYD's.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from scipy.special import expit

from churnclv.config import ConfigError
from churnclv.datasets import load_cdnow
from churnclv.features import compute_features, compute_training_frame
from churnclv.features.catalogue import expand
from churnclv.features.config import FeatureConfig
from churnclv.generate import generate_world_to_parquet
from churnclv.generator.world import WorldConfig
from churnclv.models.explanations import Reason, _top_columns, drivers
from churnclv.models.gbm import GBMChurnClassifier
from churnclv.models.reason_book import family_of, topic_of
from churnclv.models.reasons import EFFECTS, phrase, write_reasons
from churnclv.models.scorer import BTYD_FEATURES, Scorer
from churnclv.models.scorer_config import ScorerConfig
from churnclv.models.tier_config import default_tier_config, parse_tier_config

ATTRIBUTES = ("region", "acquisition_channel")
#: Every column a reason could be about: the catalogue's (default windows and events) and BTYD's.
NAMES = tuple(f.name for f in expand(FeatureConfig(), ATTRIBUTES) if f.name != "customer_id") + BTYD_FEATURES
_RAW_WORDS = {"missing", "nan", "none", "null", "inf", "btyd"}
_EFFECT_ENDS = tuple(f" — {e}" for e in EFFECTS.values())


def raw_parts(text: str) -> list[str]:
    """What in a reason is not plain words: a column name (as is or with spaces for ``_``), a
    ``_``-joined token, "missing" / "nan" / "None" / "btyd", a number in e-notation."""
    found = [t for t in re.findall(r"\w+", text) if "_" in t]
    found += [w for w in re.findall(r"[A-Za-z]+", text) if w.lower() in _RAW_WORDS]
    for name in NAMES:
        for form in {name, name.replace("_", " ")}:
            if re.search(rf"(?<!\w){re.escape(form)}(?!\w)", text, flags=0 if name == "T" else re.IGNORECASE):
                found.append(form)
    found += re.findall(r"\d[eE][-+]?\d+", text)
    return found


def check_plain(reasons: pd.Series | list[list[str]]) -> None:
    """Every reason plain words with one direction; no reason twice for one customer."""
    bad = [r for rs in reasons for r in rs if raw_parts(r) or not r.endswith(_EFFECT_ENDS) or r.count(" — ") != 1]
    assert not bad, f"{len(bad)} reasons are not plain words with a direction, e.g. {bad[:5]}"
    repeated = [rs for rs in reasons if len(set(rs)) != len(rs)]
    assert not repeated, f"reasons repeated: {repeated[:3]}"


@pytest.fixture(scope="module")
def config():
    return default_tier_config().reasons


def test_the_checker_catches_what_the_issue_saw() -> None:
    seen = ["T: missing", "gap mean days: missing", "n lines: 11", "btyd p alive: 0.966", "x: 1.1e-05"]
    assert all(raw_parts(r) for r in seen)
    assert raw_parts("days_since_last_purchase_rel_gap is high") and raw_parts("frequency: 3")
    assert raw_parts("no purchase for 120 days, 3 times their usual gap — raises the risk") == []


# -- the phrase book ------------------------------------------------------------------------------


def test_the_book_knows_every_catalogue_and_btyd_column() -> None:
    assert [n for n in NAMES if family_of(n) is None] == []


@pytest.mark.parametrize("feature", NAMES)
def test_every_feature_reads_in_plain_words_whatever_its_value(feature: str, config) -> None:
    values = [None, np.nan, pd.NA, 0, 1, 0.004, 0.5, 2.5, 40, 1234.5, -3.0, 1e-5]
    if feature.startswith("attr_"):
        values = [None, np.nan, "north", "paid_search"]
    buyer = {"days_since_last_purchase": 120, "days_since_last_purchase_rel_gap": 3.0, "n_purchase_days": 5}
    signup = {"days_since_last_purchase": None, "n_purchase_days": 0, "tenure_days": 40}
    for row in (buyer, signup, {}):
        for value in values:
            text = phrase(feature, value, config=config, row={k: v for k, v in row.items() if k != feature})
            assert text and raw_parts(text) == [], (feature, value, row, text)


@pytest.mark.parametrize(
    ("feature", "value", "row", "expected"),
    [
        (
            "days_since_last_purchase",
            120,
            {"days_since_last_purchase_rel_gap": 3.0},
            "no purchase for 120 days, 3 times their usual gap",
        ),
        ("days_since_last_purchase", 120, {}, "no purchase for 120 days"),
        (
            "days_since_last_purchase_rel_gap",
            3.04,
            {"days_since_last_purchase": 120},
            "no purchase for 120 days, 3 times their usual gap",
        ),
        (
            "days_since_last_purchase",
            10,
            {"days_since_last_purchase_rel_gap": 0.5},
            "last purchase 10 days ago, within their usual gap",
        ),
        ("days_since_last_purchase", 0, {}, "last purchase today"),
        ("T", None, {"n_purchase_days": 0, "tenure_days": 40}, "signed up 40 days ago, no purchase yet"),
        ("days_since_last_purchase", None, {"tenure_days": 1}, "signed up yesterday, no purchase yet"),
        # lines but no purchase (a zero amount, returns only): no sign-up to speak of
        (
            "T",
            None,
            {"n_purchase_days": 0, "n_lines": 1, "tenure_days": 214},
            "first seen 214 days ago, no paid purchase yet",
        ),
        ("T", None, {"n_purchase_days": 0, "n_lines": 0, "tenure_days": 40}, "signed up 40 days ago, no purchase yet"),
        ("gap_mean_days", None, {"n_purchase_days": 1, "days_since_last_purchase": 40}, "bought only once so far"),
        ("gap_mean_days", 14.8, {}, "usually buys every 15 days"),
        ("frequency", 7.0, {}, "7 repeat purchases so far"),
        ("n_lines", 11, {}, "11 order lines so far, returns included"),
        ("btyd_p_alive", 0.966, {}, "their buying pattern says 97% likely still an active customer"),
        ("btyd_p_churn", 0.04, {}, "their buying pattern gives a 96% chance of a purchase in the coming period"),
        (
            "btyd_expected_purchases",
            1.11e-05,
            {},
            "their buying pattern expects hardly any purchase in the coming period",
        ),
        ("net_spend_trend_90d", 0.5, {}, "spend down 50% in the last 90 days on the 90 before"),
        ("net_spend_trend_90d", 102.5, {}, "spent far more in the last 90 days than in the 90 before"),
        ("purchase_days_trend_90d", 1.0, {}, "no change in how often they buy over the last 90 days"),
        ("net_spend_30d", 1234.4, {}, "spent 1,234 in the last 30 days"),
        ("net_spend_30d", 12.5, {}, "spent 12.50 in the last 30 days"),
        ("purchase_days_90d", 1, {}, "bought on 1 day in the last 90 days"),
        ("return_share", 0.25, {}, "returned 25% of what they bought"),
        ("support_ticket_trend_30d", 2.0, {}, "more support tickets in the last 30 days than in the 30 before"),
        ("complaint_count_30d", 1, {}, "1 complaint in the last 30 days"),
        ("login_count_90d", 0, {}, "no logins in the last 90 days"),
        ("email_open_days_since_last", 1, {}, "last email open yesterday"),
        ("email_click_count_30d", None, {}, "email clicks not tracked"),
        ("complaint_days_since_last", None, {}, "no complaint so far"),
        ("attr_acquisition_channel", "paid_search", {}, "acquisition channel is paid search"),
        ("attr_region", None, {}, "region not recorded"),
        ("widget_score_30d", 2.5, {}, "widget score (30 days): 2.5"),
        ("widget_count", None, {}, "widget count not recorded"),
    ],
)
def test_phrases(feature, value, row, expected, config) -> None:
    assert phrase(feature, value, config=config, row=row) == expected


def test_one_topic_for_what_says_the_same_thing() -> None:
    assert topic_of("days_since_last_purchase") == topic_of("days_since_last_purchase_rel_gap")
    assert len({topic_of(n) for n in BTYD_FEATURES}) == 1
    assert topic_of("login_count_30d") == topic_of("login_days_since_last") != topic_of("session_count_30d")
    assert topic_of("tenure_days") != topic_of("days_since_last_purchase")


def test_own_phrase_overrides_the_book() -> None:
    own = {"feature": "net_spend_trend_(?P<tw>\\d+)d", "text": ["spend ratio {value:.2f} over {tw} days"]}
    cfg = parse_tier_config({"reasons": {"phrases": [own]}}).reasons
    assert phrase("net_spend_trend_90d", 0.5, config=cfg) == "spend ratio 0.50 over 90 days"
    assert phrase("frequency", 0, config=cfg) == "bought only once so far"  # the book for the others
    # an own phrase that does not apply leaves the book's words, never a raw value
    only_high = {"feature": "gap_mean_days", "text": [{"min": 100, "text": "slow buyer ({value:days})"}]}
    cfg = parse_tier_config({"reasons": {"phrases": [only_high]}}).reasons
    assert phrase("gap_mean_days", 120, config=cfg) == "slow buyer (120 days)"
    assert phrase("gap_mean_days", 30, config=cfg) == "usually buys every 30 days"


# -- choosing the reasons -------------------------------------------------------------------------


def _frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "n_purchase_days": [6, 0, 5, 4],
            "tenure_days": [500, 40, 800, 300],
            "days_since_last_purchase": [120.0, np.nan, 139.0, 10.0],
            "days_since_last_purchase_rel_gap": [3.0, np.nan, 6.0, 0.4],
            "net_spend_trend_90d": [0.5, 1.0, 1.0, 1.5],
            "support_ticket_trend_30d": [1.0, 1.0, 1.0, 2.0],
        }
    )


def test_reasons_say_which_way_once_per_topic(config) -> None:
    contributions = [
        [  # two topics: the strongest feature of each speaks; facts fill the rest
            Reason("days_since_last_purchase", 0.9, 120.0),
            ("days_since_last_purchase_rel_gap", 0.5, 3.0),
            ("btyd_p_alive", -0.4, 0.3),
            ("btyd_p_churn", 0.3, 0.8),
        ],
        [("days_since_last_purchase", 0.8, None), ("frequency", 0.5, None), ("login_count_30d", -0.2, 3.0)],
        [("days_since_last_purchase", -0.7, 139.0), ("tenure_days", 0.2, 800)],
        [],
    ]
    got = write_reasons(_frame(), contributions, config=config)
    assert got[0] == [
        "no purchase for 120 days, 3 times their usual gap — raises the risk",
        "their buying pattern says 30% likely still an active customer — lowers the risk",
        "spend down 50% in the last 90 days on the 90 before — raises the risk",  # fact: trend <= 0.7
    ]
    # a sign-up: that first; their purchase features say nothing more
    assert got[1] == [
        "signed up 40 days ago, no purchase yet — raises the risk",
        "3 logins in the last 30 days — lowers the risk",
    ]
    # the model lowers the risk where a configured fact (6 times the usual gap) raises it: neither is said
    assert got[2] == ["customer for 800 days — raises the risk"]
    assert got[3] == [
        "spend up 50% in the last 90 days on the 90 before — lowers the risk",
        "more support tickets in the last 30 days than in the 30 before — raises the risk",
    ]
    assert write_reasons(_frame(), contributions, config=config, max_reasons=1) == [r[:1] for r in got]
    check_plain(got)


def test_a_customer_known_by_lines_without_a_purchase_is_first_seen_not_signed_up(config) -> None:
    # one tenure, three customers: a sign-up, one with a zero-amount line, one with returns only
    frame = pd.DataFrame(
        {
            "n_purchase_days": [0, 0, 0, 0],
            "n_lines": [0, 1, 3, 0],
            "tenure_days": [214, 214, 214, 214],
            "days_since_last_purchase": [np.nan] * 4,
        }
    )
    signed_up = "signed up 214 days ago, no purchase yet — raises the risk"
    first_seen = "first seen 214 days ago, no paid purchase yet — raises the risk"
    expected = [[signed_up], [first_seen], [first_seen], [signed_up]]
    assert write_reasons(frame, None, config=config) == expected
    assert write_reasons(frame.iloc[::-1], None, config=config) == expected[::-1]  # whichever comes first
    # a purchase feature of a customer with no purchase says only the lead, whatever the model's sign
    contributions = [[("T", -0.3, None), ("frequency", 0.2, None)]] * 4
    lowers = [[r[0].replace("raises", "lowers")] for r in expected]
    assert write_reasons(frame, contributions, config=config) == lowers


def test_without_contributions_facts_and_the_signup_speak(config) -> None:
    # a BTYD churn model gives no contributions
    got = write_reasons(_frame(), None, config=config)
    assert got == [
        [
            "no purchase for 120 days, 3 times their usual gap — raises the risk",
            "spend down 50% in the last 90 days on the 90 before — raises the risk",
        ],
        ["signed up 40 days ago, no purchase yet — raises the risk"],
        ["no purchase for 139 days, 6 times their usual gap — raises the risk"],
        [
            "spend up 50% in the last 90 days on the 90 before — lowers the risk",
            "more support tickets in the last 30 days than in the 30 before — raises the risk",
        ],
    ]


def test_bad_contributions_are_clear_errors(config) -> None:
    with pytest.raises(ValueError, match="one list of contributions per row"):
        write_reasons(_frame(), [[]], config=config)
    with pytest.raises(TypeError, match="raises or lowers"):
        write_reasons(_frame(), [["tenure_days"], [], [], []], config=config)


@pytest.mark.parametrize(
    ("fact", "message"),
    [
        ({"feature": "T", "min": 400}, "which way T moves the risk"),
        ({"feature": "widget_.*", "min": 1}, "no feature matching it"),
        ({"feature": "attr_region", "min": 1}, "which way attr_region moves the risk"),
        ({"feature": "tenure_days", "min": 1, "effect": "up"}, "must be 'raises' or 'lowers'"),
    ],
)
def test_a_fact_of_unknown_direction_is_a_config_error(fact: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=r"reasons\.facts") as info:
        parse_tier_config({"reasons": {"facts": [fact]}})
    assert message in str(info.value) and "fix:" in str(info.value)


def test_a_fact_says_its_own_effect() -> None:
    cfg = parse_tier_config({"reasons": {"facts": [{"feature": "tenure_days", "max": 60, "effect": "raises"}]}}).reasons
    frame = pd.DataFrame({"tenure_days": [30, 400], "n_purchase_days": [2, 2]})
    assert write_reasons(frame, None, config=cfg) == [["customer for 30 days — raises the risk"], []]


# -- drivers: the contributions behind the reasons ------------------------------------------------


@pytest.fixture(scope="module")
def churn_model() -> tuple[GBMChurnClassifier, pd.DataFrame]:
    """A churn model on columns named like ours: two of one topic, the four BTYD ones, a category."""
    rng = np.random.default_rng(4)
    n = 3000
    days = rng.gamma(2.0, 40.0, n)
    gap = rng.gamma(3.0, 15.0, n)
    alive = expit(rng.normal(1.0, 1.5, n))
    logins = rng.poisson(3.0, n).astype(float)
    region = rng.choice(["north", "south_east"], n)
    logit = 0.02 * (days - 80) - 2.0 * (alive - 0.6) - 0.3 * (logins - 3) + np.where(region == "north", 0.8, 0.0)
    X = pd.DataFrame(
        {
            "days_since_last_purchase": days,
            "days_since_last_purchase_rel_gap": days / gap,
            "btyd_p_alive": alive,
            "btyd_p_churn": 1 - alive * rng.uniform(0.8, 1.0, n),
            "btyd_expected_purchases": alive * rng.gamma(2.0, 0.5, n),
            "login_count_30d": logins,
            "attr_region": region,
        }
    )
    y = rng.random(n) < expit(logit)
    model = GBMChurnClassifier(num_boost_round=60, params={"num_threads": 1}).fit(X, y)
    return model, X


def test_drivers_are_the_strongest_contributions_one_per_topic(churn_model) -> None:
    model, X = churn_model
    rows = X.head(300)
    got = drivers(model, rows, top_k=2)
    exact = model.booster_.predict(model._matrix(rows), pred_contrib=True)[:, :-1]
    names = list(model.feature_names_)
    topics = [topic_of(c) for c in names]
    assert len(got) == len(rows) and got[0:2] == [got[0], got[1]]
    signs = set()
    for i, row in enumerate(got):
        assert 1 <= len(row) <= 4  # top_k plus as many spare candidates
        assert len({topic_of(r.feature) for r in row}) == len(row)
        # per topic its strongest feature; the strongest topics, strongest first, signed
        best = {}
        for j, t in enumerate(topics):
            if exact[i, j] != 0 and abs(exact[i, j]) > abs(best.get(t, (0, 0.0))[1]):
                best[t] = (names[j], exact[i, j])
        expected = sorted(best.values(), key=lambda fc: -abs(fc[1]))[: len(row)]
        assert [r.feature for r in row] == [f for f, _ in expected]
        np.testing.assert_allclose([r.contribution for r in row], [c for _, c in expected], rtol=1e-9, atol=1e-12)
        for r in row:
            want = rows[r.feature].iloc[i]
            assert r.value == (want if r.feature == "attr_region" else pytest.approx(want))
            signs.add(np.sign(r.contribution))
    assert signs == {-1.0, 1.0}  # both ways: a reason may lower the risk


@settings(max_examples=200, deadline=None)
@given(
    hnp.arrays(
        np.float64,
        st.tuples(st.integers(1, 20), st.integers(1, 12)),
        elements=st.sampled_from([0.0, 0.5, 1.0, 2.0, 3.25]),  # few values: ties everywhere, zeros too
    ),
    st.integers(1, 12),
)
def test_top_columns_are_the_largest_first_ties_to_the_lower_column(strength: np.ndarray, k: int) -> None:
    k = min(k, strength.shape[1])
    before = strength.copy()
    got = _top_columns(strength, k)
    columns = np.arange(strength.shape[1])
    for i, row in enumerate(strength):
        want = sorted(columns, key=lambda j: (-row[j], j))[:k]  # the order drivers promises
        assert got[i].tolist() == want
    np.testing.assert_array_equal(strength, before)  # the caller's strengths are left as they were


def test_drivers_give_readable_reasons(churn_model, config) -> None:
    model, X = churn_model
    got = write_reasons(X, drivers(model, X, top_k=3), config=config)
    assert all(len(r) == 3 for r in got)
    check_plain(got)
    assert any(r.startswith("region is south east") for rs in got for r in rs)


# -- whole bases ----------------------------------------------------------------------------------


def _score(source, as_of: pd.Timestamp, **config) -> pd.DataFrame:
    train = compute_training_frame(source, as_of, 90, n_cutoffs=2)
    snapshot = compute_features(source, as_of)
    scorer = Scorer(config=ScorerConfig(horizon_days=90, gbm_rounds=30, seed=3, **config))
    scores = scorer.fit(train, snapshot, as_of=as_of).score(snapshot, as_of=as_of)
    return scores.assign(
        no_purchase=snapshot["n_purchase_days"].eq(0).to_numpy(), lines=snapshot["n_lines"].gt(0).to_numpy()
    )


def _check_base(scores: pd.DataFrame, *, learned: bool) -> None:
    check_plain(scores["reasons"])
    if learned:  # the churn model always has something to say
        assert scores["reasons"].map(len).eq(3).mean() > 0.99
    assert scores["no_purchase"].any()
    signups = scores.loc[scores["no_purchase"] & ~scores["lines"], "reasons"]
    assert all(re.fullmatch(r"signed up .+, no purchase yet — raises the risk", r[0]) for r in signups)
    # zero amounts or returns only (CDNOW has no sign-ups: its customers without a purchase are these)
    lines_only = scores.loc[scores["no_purchase"] & scores["lines"], "reasons"]
    assert all(re.fullmatch(r"first seen .+, no paid purchase yet — raises the risk", r[0]) for r in lines_only)
    said = pd.Series([r.split(" — ")[0] for rs in scores["reasons"] for r in rs])
    assert said.str.startswith("no purchase for").any() or said.str.startswith("last purchase").any()


@pytest.mark.slow
def test_every_reason_of_a_generated_shop_is_plain_words(tmp_path: Path) -> None:
    generate_world_to_parquet(WorldConfig(n_customers=20_000, seed=5), tmp_path, horizon_days=90)
    as_of = pd.Timestamp("2025-10-02")
    scores = _score(tmp_path, as_of)
    _check_base(scores, learned=True)
    ways = {r.rsplit(" — ", 1)[1] for rs in scores["reasons"] for r in rs}
    assert ways == set(EFFECTS.values())
    _check_base(_score(tmp_path, as_of, churn_model="btyd"), learned=False)


@pytest.mark.slow
def test_every_reason_of_cdnow_is_plain_words() -> None:
    cdnow = {"transactions": load_cdnow("master")[["customer_id", "ts", "amount"]]}
    scores = _score(cdnow, pd.Timestamp("1998-06-30"))
    assert len(scores) == 23_570
    _check_base(scores, learned=True)
