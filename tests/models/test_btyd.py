"""Tests for churnclv.models.btyd: golden CDNOW figures, formulas against simulation, properties."""

from __future__ import annotations

import json
import logging
import os
import warnings

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy import integrate
from scipy.special import beta as beta_function
from scipy.special import hyp2f1
from sklearn.exceptions import NotFittedError
from sklearn.metrics import roc_auc_score

from churnclv.models import btyd_fitting
from churnclv.models.btyd import PREDICTION_COLUMNS, BTYDModel
from churnclv.models.btyd_fitting import BTYDConvergenceError
from churnclv.models.btyd_spend import monetary_cap
from churnclv.models.btyd_summary import BTYDInputError
from churnclv.models.next_purchase import MAX_WAIT_DAYS as MAX_NEXT_PURCHASE_DAYS

PARAMS = {
    "bgnbd": {"r": 0.5, "alpha": 8.0, "a": 0.8, "b": 2.5},
    "mbgnbd": {"r": 0.5, "alpha": 8.0, "a": 0.8, "b": 2.5},
    "pareto": {"r": 0.5, "alpha": 8.0, "s": 0.6, "beta": 12.0},
}
GG = {"p": 6.0, "q": 4.0, "v": 15.0}


def fake_model(model: str, params: dict | None = None, gg: dict | None = GG) -> BTYDModel:
    """A fitted BTYDModel with fixed parameters (days as the unit), no fitting involved."""
    return BTYDModel.from_dict(
        {
            "format": "churnclv.models.btyd.BTYDModel",
            "version": 1,
            "init": {"model": model},
            "fitted": {
                "params": params or PARAMS[model],
                "log_likelihood": -1.0,
                "gg_params": gg,
                "gg_log_likelihood": None,
                "mean_order_value": 30.0,
                "gg_fallback": None if gg else "test",
                "n_customers": 1,
                "n_unique_rows": 1,
                "n_repeat_buyers": 1,
            },
        }
    )


def simulate(
    model: str, params: dict, n: int, T: np.ndarray | float, h: float, seed: int
) -> tuple[pd.DataFrame, np.ndarray]:
    """Simulate the model in continuous time: calibration summary over (0, T], holdout counts in
    (T, T + h]. Monetary values follow Gamma-Gamma with GG."""
    rng = np.random.default_rng(seed)
    T = np.broadcast_to(np.asarray(T, dtype=float), (n,)).copy()
    lam = rng.gamma(params["r"], 1 / params["alpha"], n)
    if model == "pareto":
        death = rng.exponential(1, n) / rng.gamma(params["s"], 1 / params["beta"], n)
    else:
        p = rng.beta(params["a"], params["b"], n)
    x, tx, hold, t = np.zeros(n), np.zeros(n), np.zeros(n), np.zeros(n)
    alive = np.ones(n, bool)
    if model == "mbgnbd":  # MBG/NBD customers may drop out right at their first purchase
        alive &= rng.random(n) >= p
    idx = np.flatnonzero(alive)
    while idx.size:
        t[idx] += rng.exponential(1, idx.size) / lam[idx]
        end = T[idx] + h
        if model == "pareto":
            end = np.minimum(end, death[idx])
        idx = idx[t[idx] <= end]
        cal = t[idx] <= T[idx]
        x[idx[cal]] += 1
        tx[idx[cal]] = t[idx[cal]]
        hold[idx[~cal]] += 1
        if model != "pareto":
            idx = idx[rng.random(idx.size) >= p[idx]]
    nu = rng.gamma(GG["q"], 1 / GG["v"], n)
    m = np.where(x > 0, rng.gamma(GG["p"] * np.maximum(x, 1), 1 / (nu * np.maximum(x, 1))), 0.0)
    frame = pd.DataFrame({"frequency": x, "recency": tx, "T": T, "monetary_value": m})
    return frame, hold


def simulate_days(model: str, n: int, seed: int) -> pd.DataFrame:
    """A small daily-grained summary (integer T and recency) as the feature job would give."""
    rng = np.random.default_rng(seed)
    T = rng.integers(1, 200, n).astype(float)
    frame, _ = simulate(model, PARAMS[model], n, T, 0.0, seed)
    frame["recency"] = np.floor(frame["recency"])
    return frame


# ---------------------------------------------------------------------------------------------
# golden: CDNOW 1/10 sample, 39-week calibration ending 1997-09-30
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def cdnow() -> tuple[pd.DataFrame, pd.DataFrame]:
    """Raw CDNOW sample -> day-unit calibration summary and holdout purchase days per customer."""
    import lifetimes
    from lifetimes.utils import summary_data_from_transaction_data

    path = os.path.join(os.path.dirname(lifetimes.__file__), "datasets", "CDNOW_sample.txt")
    tx = pd.read_csv(
        path,
        sep=r"\s+",
        header=None,
        names=["master_id", "customer_id", "date", "cds", "amount"],
        dtype={"master_id": str, "customer_id": str, "date": str},
    )
    tx["date"] = pd.to_datetime(tx["date"], format="%Y%m%d")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        summary = summary_data_from_transaction_data(
            tx, "customer_id", "date", "amount", observation_period_end="1997-09-30", freq="D"
        )
    holdout = tx[(tx["date"] > "1997-09-30") & (tx["date"] <= "1998-06-30")]
    summary["holdout_days"] = holdout.groupby("customer_id")["date"].nunique().reindex(summary.index, fill_value=0)
    return summary.reset_index(), tx


@pytest.fixture(scope="module")
def cdnow_model(cdnow) -> BTYDModel:
    return BTYDModel(time_unit_days=7).fit(cdnow[0])


def test_cdnow_summary_is_the_published_one(cdnow):
    """The day-unit summary we derive from the raw sample, in weeks, is lifetimes' published file."""
    from lifetimes.datasets import load_cdnow_summary_data_with_monetary_value

    published = load_cdnow_summary_data_with_monetary_value()
    ours = (
        cdnow[0]
        .assign(customer_id=lambda d: d["customer_id"].astype(int))
        .set_index("customer_id")
        .loc[published.index]
    )
    assert len(ours) == len(published) == 2357
    np.testing.assert_array_equal(ours["frequency"], published["frequency"])
    np.testing.assert_allclose(ours["recency"] / 7, published["recency"], atol=0.005)
    np.testing.assert_allclose(ours["T"] / 7, published["T"], atol=0.005)
    np.testing.assert_allclose(ours["monetary_value"], published["monetary_value"], atol=0.005)


def test_cdnow_bgnbd_matches_published(cdnow_model):
    """Fader, Hardie and Lee (2005): r=0.243, alpha=4.414, a=0.793, b=2.426, LL=-9582.4 (weeks)."""
    p = cdnow_model.params_
    assert (round(p["r"], 3), round(p["alpha"], 3), round(p["a"], 3), round(p["b"], 3)) == (0.243, 4.414, 0.793, 2.426)
    assert round(cdnow_model.log_likelihood_, 1) == -9582.4
    assert cdnow_model.n_customers_ == 2357


def test_cdnow_gamma_gamma_matches_published(cdnow_model):
    """Fader and Hardie (2013, note 025): p=6.25, q=3.74, gamma=15.44."""
    gg = cdnow_model.gg_params_
    assert (round(gg["p"], 2), round(gg["q"], 2), round(gg["v"], 2)) == (6.25, 3.74, 15.44)
    assert cdnow_model.gg_fallback_ is None
    assert cdnow_model.n_repeat_buyers_ == 946


def test_cdnow_pareto_matches_published(cdnow):
    """Pareto/NBD on CDNOW (Fader, Hardie and Lee 2005): r=0.55, alpha=10.58, s=0.61, beta=11.67,
    LL=-9595.0."""
    m = BTYDModel(model="pareto", time_unit_days=7).fit(cdnow[0])
    p = m.params_
    assert (round(p["r"], 2), round(p["alpha"], 2), round(p["s"], 2), round(p["beta"], 2)) == (0.55, 10.58, 0.61, 11.67)
    assert round(m.log_likelihood_, 1) == -9595.0


def test_cdnow_holdout_churn_ranks_better_than_one_minus_p_alive(cdnow, cdnow_model):
    """39-week holdout: p_churn ranks who buys nothing well; 1 - P(alive) ranks it far worse."""
    summary = cdnow[0]
    scores = cdnow_model.predict(summary, 39 * 7)
    churned = summary["holdout_days"].to_numpy() == 0
    auc_churn = roc_auc_score(churned, scores["p_churn"])
    auc_alive = roc_auc_score(churned, 1 - scores["p_alive"])
    assert auc_churn > 0.75
    assert auc_churn > auc_alive + 0.1
    # Aggregate holdout purchases in the right units (a days/weeks slip would be off 7x); BG/NBD
    # under-predicts CDNOW's holdout by ~12%, so only a loose tolerance holds.
    assert scores["expected_purchases"].sum() == pytest.approx(summary["holdout_days"].sum(), rel=0.15)


# ---------------------------------------------------------------------------------------------
# formulas against simulation and independent derivations
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("model", ["bgnbd", "mbgnbd", "pareto"])
def test_p_churn_and_expected_purchases_match_simulation(model):
    """Conditioning on any function of the history keeps E[1{no purchase}] = E[p_churn]."""
    frame, hold = simulate(model, PARAMS[model], 60_000, 30.0, 20.0, seed=11)
    scores = fake_model(model).predict(frame, 20.0, clv_months=0)
    groups = np.minimum(frame["frequency"], 4) * 2 + (frame["recency"] > 15)
    table = (
        pd.DataFrame(
            {
                "g": groups,
                "empirical": hold == 0,
                "p_churn": scores["p_churn"],
                "naive": 1 - scores["p_alive"],
                "hold": hold,
                "expected": scores["expected_purchases"],
            }
        )
        .groupby("g")
        .mean()
    )
    n = groups.value_counts().sort_index()
    se = np.sqrt(table["empirical"] * (1 - table["empirical"]) / n) + 1e-3
    assert (np.abs(table["empirical"] - table["p_churn"]) < 4.5 * se).all(), table
    # 1 - P(alive) is not the churn probability: far off in some group
    assert (np.abs(table["empirical"] - table["naive"]) > 10 * se).any()
    # holdout counts are noisier: compare overall and per group within 10%
    assert scores["expected_purchases"].mean() == pytest.approx(hold.mean(), rel=0.03)
    assert np.allclose(table["expected"], table["hold"], rtol=0.1, atol=0.02), table


@pytest.mark.parametrize(
    ("x", "tx", "T", "h"), [(0, 0.0, 0.0, 30.0), (0, 0.0, 40.0, 10.0), (3, 20.0, 60.0, 45.0), (25, 300.0, 310.0, 7.0)]
)
def test_pareto_p_churn_matches_posterior_integral(x, tx, T, h):
    """Pareto/NBD: given alive, lambda ~ Gamma(r+x, alpha+T) and mu ~ Gamma(s, beta+T) independently,
    so P(no purchase | alive) = 1 - int_0^h E[lambda e^{-lambda u}] E[e^{-mu u}] du."""
    p = PARAMS["pareto"]
    k, A, B = p["r"] + x, p["alpha"] + T, p["beta"] + T

    def density(u: float) -> float:
        return k / A * (A / (A + u)) ** (k + 1) * (B / (B + u)) ** p["s"]

    frame = pd.DataFrame({"frequency": [x], "recency": [tx], "T": [T], "monetary_value": [0.0]})
    scores = fake_model("pareto").predict(frame, h, clv_months=0)
    p_alive = scores["p_alive"].iloc[0]
    expected = 1 - p_alive * integrate.quad(density, 0, h)[0]
    assert scores["p_churn"].iloc[0] == pytest.approx(expected, abs=1e-9)


@pytest.mark.parametrize("model", ["bgnbd", "mbgnbd", "pareto"])
def test_next_purchase_days_is_the_median_waiting_time(model):
    frame = pd.DataFrame(
        {
            "frequency": [0, 2, 8, 30, 1],
            "recency": [0, 25, 60, 100, 1],
            "T": [10, 40, 70, 101, 300],
            "monetary_value": [0, 20, 30, 25, 10],
        },
        dtype=float,
    )
    est = fake_model(model)
    scores = est.predict(frame, 30.0)
    days = scores["expected_next_purchase_days"].to_numpy()
    defined = ~np.isnan(days)
    assert defined.sum() >= 3
    # Undefined when buying again at all is less likely than not: for BG/MBG that is P(alive) <= 1/2,
    # under Pareto/NBD an alive customer may still die before buying again.
    if model == "pareto":
        assert (scores["p_alive"].to_numpy()[defined] > 0.5).all()
        never = est.predict(frame.iloc[~defined], MAX_NEXT_PURCHASE_DAYS, clv_months=0)
        assert (never["p_churn"] > 0.5).all()
    else:
        np.testing.assert_array_equal(defined, scores["p_alive"].to_numpy() > 0.5)
    for i in np.flatnonzero(defined):
        at_median = est.predict(frame.iloc[[i]], float(days[i]), clv_months=0)["p_churn"].iloc[0]
        assert at_median == pytest.approx(0.5, abs=1e-9 if model != "pareto" else 2e-3)


def test_clv_is_discounted_monthly_spend():
    est = fake_model("bgnbd")
    frame = pd.DataFrame({"frequency": [3.0], "recency": [50.0], "T": [80.0], "monetary_value": [40.0]})
    month = 365.25 / 12
    cumulative = [0.0] + [est.predict(frame, k * month, clv_months=0)["expected_purchases"].iloc[0] for k in (1, 2, 3)]
    value = est.expected_order_value(frame).iloc[0]
    expected = sum((cumulative[k] - cumulative[k - 1]) * value / 1.2 ** (k / 12) for k in (1, 2, 3))
    scores = est.predict(frame, 10.0, clv_months=3, annual_discount_rate=0.2)
    assert scores["clv"].iloc[0] == pytest.approx(expected, rel=1e-12)
    assert scores["expected_spend"].iloc[0] == pytest.approx(scores["expected_purchases"].iloc[0] * value, rel=1e-12)


def test_mbgnbd_expected_purchases_stay_finite_where_lifetimes_overflows():
    """Large frequency and a long horizon overflow lifetimes' MBG/NBD hypergeometric term; the
    Euler-transformed form takes over and agrees with lifetimes wherever both are finite."""
    from churnclv.models.btyd_conditionals import expected_purchases
    from churnclv.models.lifetimes_fitters import fitter_with_params

    params = PARAMS["mbgnbd"]
    lifetimes_fitter = fitter_with_params("mbgnbd", params)

    class Overflowing:
        def conditional_expected_number_of_purchases_up_to_time(self, h, x, tx, t):
            return np.full(np.shape(x), np.inf)

    x, tx, t = np.array([0.0, 1, 5, 40, 900]), np.array([0.0, 3, 30, 100, 1050]), np.array([5.0, 10, 60, 120, 2000])
    for h in (1.0, 30.0, 400.0):
        with np.errstate(all="ignore"):
            reference = lifetimes_fitter.conditional_expected_number_of_purchases_up_to_time(h, x, tx, t)
        stable = expected_purchases("mbgnbd", Overflowing(), params, x, tx, t, h)
        finite = np.isfinite(reference)
        np.testing.assert_allclose(stable[finite], reference[finite], rtol=1e-10)
    big = pd.DataFrame({"frequency": [919.0], "recency": [1054.0], "T": [2006.0], "monetary_value": [20.0]})
    scores = fake_model("mbgnbd").predict(big, 3650)
    assert np.isfinite(scores["expected_purchases"]).all() and scores["expected_purchases"].iloc[0] > 0


# CDNOW master, BG/NBD fitted at as-of 1997-02-28 (days): a + b < 1, so lifetimes' log(2F1) is NaN
# for one-time buyers with small T (2F1(r, b; a+b-1; z) < 0 there).
CDNOW_FEB = {"r": 0.274, "alpha": 30.1, "a": 0.208, "b": 0.463}


def beta_gamma_expectation(params: dict, x: float, T: float, h: float, beta: float) -> float:
    """E[purchases in h | alive] written out: given alive, lambda ~ Gamma(r + x, alpha + T) and
    p ~ Beta(a, beta) (beta = b + x for BG/NBD, b + x + 1 for MBG/NBD); an alive customer makes
    (1 - exp(-lambda p h)) / p purchases in expectation, and E_lambda[exp(-lambda p h)] is
    ((alpha + T) / (alpha + T + p h))^(r + x). Integrated over p against the Beta weight."""
    a, k, A = params["a"], params["r"] + x, params["alpha"] + T

    def per_p(p: float) -> float:
        return -np.expm1(-k * np.log1p(p * h / A)) / p if p > 0 else k * h / A

    value, _ = integrate.quad(
        per_p, 0.0, 1.0, weight="alg", wvar=(a - 1.0, beta - 1.0), epsabs=0.0, epsrel=1e-12, limit=200
    )
    return value / beta_function(a, beta)


def test_bgnbd_expected_purchases_with_a_plus_b_below_one_match_the_integral():
    """The CDNOW crash: one-time buyers (x = 0) with T from 0 to 500 days, horizons 30 to 365 days."""
    p = CDNOW_FEB
    assert hyp2f1(p["r"], p["b"], p["a"] + p["b"] - 1, 90 / (p["alpha"] + 90)) < 0  # the cause
    T = np.concatenate([[0.0, 0.5, 1.0, 2.0, 5.0], np.linspace(10, 500, 50)])
    frame = pd.DataFrame({"frequency": 0.0, "recency": 0.0, "T": T, "monetary_value": 0.0})
    est = fake_model("bgnbd", p)
    for h in (30.0, 90.0, 180.0, 365.0):
        scores = est.predict(frame, h)
        assert np.isfinite(scores[list(PREDICTION_COLUMNS[:-1])].to_numpy()).all()
        e = scores["expected_purchases"].to_numpy()
        assert (scores["p_alive"] == 1.0).all()  # BG/NBD: nobody drops out before a repeat purchase
        assert (e > 0).all() and (e <= p["r"] / (p["alpha"] + T) * h).all()
        reference = [beta_gamma_expectation(p, 0.0, Ti, h, p["b"]) for Ti in T]
        np.testing.assert_allclose(e, reference, rtol=1e-6)


@pytest.mark.parametrize("model", ["bgnbd", "mbgnbd"])
@pytest.mark.parametrize(
    "params",
    [
        CDNOW_FEB,
        {"r": 0.243, "alpha": 30.9, "a": 0.793, "b": 2.426},  # the published fit, in days
        {"r": 1e-3, "alpha": 900.0, "a": 0.05, "b": 0.3},  # tiny r, large alpha, a + b < 1
        {"r": 2.0, "alpha": 0.05, "a": 4.0, "b": 0.07},  # b < 1, a > 1, tiny alpha
        {"r": 0.5, "alpha": 10.0, "a": 1.0, "b": 1.5},  # a = 1: the closed form is 0/0
        {"r": 0.5, "alpha": 10.0, "a": 1.0 + 3e-7, "b": 1.5},  # a near 1: it cancels
        {"r": 0.5, "alpha": 10.0, "a": 0.25, "b": 0.75},  # a + b = 1: c = 0 at x = 0
    ],
)
def test_expected_purchases_match_the_beta_gamma_integral(model, params):
    """P(alive) times the integral, for BG/NBD and MBG/NBD (MBG/NBD: p ~ Beta(a, b + x + 1) given
    alive, since its customers may drop out at the first purchase too), 1 day to 3 years."""
    rows = [
        (0, 0.0, 0.0),
        (0, 0.0, 3650.0),
        (1, 0.0, 0.0),
        (1, 5.0, 40.0),
        (4, 100.0, 100.0),
        (15, 300.0, 3650.0),
        (40, 700.0, 720.0),
    ]
    frame = pd.DataFrame(rows, columns=["frequency", "recency", "T"]).assign(monetary_value=10.0)
    est = fake_model(model, params)
    for h in (1.0, 30.0, 365.0, 1095.0):
        scores = est.predict(frame, h, clv_months=0)
        for (x, _, T), p_alive, e in zip(rows, scores["p_alive"], scores["expected_purchases"], strict=True):
            beta = params["b"] + x + (1.0 if model == "mbgnbd" else 0.0)
            assert e == pytest.approx(p_alive * beta_gamma_expectation(params, x, T, h, beta), rel=1e-6)


def test_mbgnbd_p_alive_counts_dropout_at_the_first_purchase():
    """MBG/NBD: P(alive) = 1 / (1 + a / (b + x) ((alpha + T) / (alpha + t_x))^(r + x)), below 1
    even for one-time buyers (Batislam et al. 2007)."""
    p = PARAMS["mbgnbd"]
    frame = pd.DataFrame(
        {"frequency": [0.0, 3.0], "recency": [0.0, 20.0], "T": [30.0, 50.0], "monetary_value": [0.0, 10.0]}
    )
    scores = fake_model("mbgnbd").predict(frame, 30.0)
    for (x, tx, T), value in zip([(0, 0, 30), (3, 20, 50)], scores["p_alive"], strict=True):
        odds = p["a"] / (p["b"] + x) * ((p["alpha"] + T) / (p["alpha"] + tx)) ** (p["r"] + x)
        assert value == pytest.approx(1 / (1 + odds), rel=1e-12)


def test_pareto_scores_stay_finite_where_lifetimes_gives_nan():
    """CDNOW master at as-of 1997-03-31 fits s = 169, beta = 20424 days (a dropout rate with almost
    no spread): lifetimes' P(alive) and pmf are NaN at T = 0 (A_0 is log(0 - 0)). Quadrature takes
    over there, and agrees with lifetimes wherever lifetimes is finite."""
    from churnclv.models.btyd_conditionals import _pareto_p_alive_by_quadrature, _pareto_purchase_within
    from churnclv.models.lifetimes_fitters import fitter_with_params

    p = {"r": 0.5154, "alpha": 58.84, "s": 169.1, "beta": 20424.0}
    rows = [
        (0.0, 0.0, 0.0),
        (0.0, 0.0, 1.0),
        (0.0, 0.0, 30.0),
        (1.0, 3.0, 30.0),
        (5.0, 50.0, 60.0),
        (100.0, 55.0, 3000.0),
    ]
    x, tx, T = (np.array(c) for c in zip(*rows, strict=True))
    fitter = fitter_with_params("pareto", p)
    with np.errstate(all="ignore"):
        alive = fitter.conditional_probability_alive(x, tx, T)
        none = fitter.conditional_probability_of_n_purchases_up_to_time(0, 30.0, x, tx, T)
    assert np.isnan(alive[0]) and np.isnan(none[0])
    quad_alive = [_pareto_p_alive_by_quadrature(p, *row) for row in rows]
    np.testing.assert_allclose(quad_alive[1:], alive[1:], rtol=1e-8)
    quad_none = [1 - pa * _pareto_purchase_within(p, xi, Ti, 30.0) for pa, xi, Ti in zip(quad_alive, x, T, strict=True)]
    np.testing.assert_allclose(quad_none[1:], none[1:], rtol=1e-8)
    frame = pd.DataFrame({"frequency": x, "recency": tx, "T": T, "monetary_value": 10.0})
    scores = fake_model("pareto", p).predict(frame, 30.0)
    assert np.isfinite(scores[list(PREDICTION_COLUMNS[:-1])].to_numpy()).all()
    assert scores["p_alive"].iloc[0] == 1.0
    assert scores["p_churn"].iloc[0] == pytest.approx(quad_none[0], rel=1e-10)


def test_gamma_gamma_order_value_shrinks_to_population_mean():
    est = fake_model("bgnbd")
    frame = pd.DataFrame(
        {
            "frequency": [0.0, 1.0, 50.0, 2.0],
            "recency": [0.0, 5.0, 90.0, 9.0],
            "T": [10.0, 10.0, 100.0, 10.0],
            "monetary_value": [0.0, 100.0, 100.0, -5.0],
        }
    )
    value = est.expected_order_value(frame).to_numpy()
    population = GG["p"] * GG["v"] / (GG["q"] - 1)
    assert value[0] == pytest.approx(population)
    assert population < value[1] < value[2] < 100.0  # more history, less shrinkage
    assert 0 < value[3] < population  # net returns count as 0 spend, shrunk towards the mean


# ---------------------------------------------------------------------------------------------
# estimator contract
# ---------------------------------------------------------------------------------------------


def test_predict_output_keeps_index_order_and_customer_id():
    frame = pd.DataFrame(
        {
            "customer_id": ["007", "001", "042"],
            "frequency": [2.0, 0.0, 2.0],
            "recency": [30.0, 0.0, 30.0],
            "T": [60.0, 5.0, 60.0],
            "monetary_value": [10.0, 0.0, 10.0],
        },
        index=[9, 3, 5],
    )
    scores = fake_model("bgnbd").predict(frame, 30.0)
    assert list(scores.index) == [9, 3, 5]
    assert list(scores.columns) == ["customer_id", *PREDICTION_COLUMNS]
    assert list(scores["customer_id"]) == ["007", "001", "042"]
    pd.testing.assert_series_equal(
        scores.loc[9, PREDICTION_COLUMNS], scores.loc[5, PREDICTION_COLUMNS], check_names=False
    )
    assert fake_model("pareto").predict(frame.iloc[:0], 30).shape == (0, 1 + len(PREDICTION_COLUMNS))


@pytest.mark.parametrize("model", ["bgnbd", "mbgnbd", "pareto"])
def test_never_purchased_customers_score_as_new_customers(model):
    frame = pd.DataFrame(
        {"frequency": [np.nan, 0.0], "recency": [np.nan, 0.0], "T": [np.nan, 0.0], "monetary_value": [np.nan, 0.0]}
    )
    scores = fake_model(model).predict(frame, 60.0)
    assert np.isfinite(scores[list(PREDICTION_COLUMNS[:-1])].to_numpy()).all()
    pd.testing.assert_series_equal(scores.iloc[0], scores.iloc[1], check_names=False)
    assert 0 < scores["p_churn"].iloc[0] < 1


@pytest.mark.parametrize("model", ["bgnbd", "mbgnbd", "pareto"])
def test_never_purchased_customers_silent_for_longer_churn_more(model):
    nan = [np.nan] * 3
    frame = pd.DataFrame(
        {"frequency": nan, "recency": nan, "T": nan, "monetary_value": nan, "tenure_days": [0.0, 30.0, 300.0]}
    )
    p = fake_model(model).predict(frame, 60.0)["p_churn"].to_numpy()
    assert p[0] < p[1] < p[2]
    new = fake_model(model).predict(frame.drop(columns="tenure_days").iloc[:1], 60.0)["p_churn"].to_numpy()
    assert p[0] == new[0]  # no tenure: a brand-new customer


def test_the_class_docstring_says_how_never_purchased_customers_are_scored():
    # its Notes said T = 0 for every one of them, while predict reads tenure_days (the test above)
    notes = " ".join((BTYDModel.__doc__ or "").split("Notes")[-1].split())
    assert "``T = tenure_days`` when the frame has that column" in notes


def test_one_time_buyers_only_are_refused_naming_the_missing_repeat_purchases():
    # it ran every start and penalizer and then blamed a short history ("too few customers seen to lapse")
    rng = np.random.default_rng(0)
    t = rng.uniform(10, 300, 500)
    frame = pd.DataFrame({"frequency": 0.0, "recency": 0.0, "T": t, "monetary_value": 0.0})
    with pytest.raises(BTYDInputError, match=r"no repeat purchase .*nobody bought on two different days"):
        BTYDModel().fit(frame)


def test_predict_before_fit_raises_naming_the_estimator():
    frame = pd.DataFrame({"frequency": [1.0], "recency": [1.0], "T": [2.0], "monetary_value": [1.0]})
    with pytest.raises(NotFittedError, match="BTYDModel"):
        BTYDModel().predict(frame, 30)
    with pytest.raises(NotFittedError, match="BTYDModel"):
        BTYDModel().expected_order_value(frame)


@pytest.mark.parametrize(
    ("change", "column", "rule"),
    [
        (lambda d: d.drop(columns="T"), "T", "missing"),
        (lambda d: d.assign(recency=[5.0, 50.0]), "recency", "recency <= T"),
        (lambda d: d.assign(recency=[0.0, 3.0], frequency=[0.0, 0.0]), "recency", "frequency == 0"),
        (lambda d: d.assign(frequency=[1.5, 1.0]), "frequency", "integer"),
        (lambda d: d.assign(T=[np.nan, 20.0]), "frequency/recency/T", "all three are NaN"),
        (lambda d: d.assign(monetary_value=[np.nan, 1.0]), "monetary_value", "not NaN"),
    ],
)
def test_bad_input_names_column_and_rule(change, column, rule):
    frame = pd.DataFrame(
        {"frequency": [1.0, 1.0], "recency": [5.0, 5.0], "T": [10.0, 20.0], "monetary_value": [3.0, 4.0]}
    )
    with pytest.raises(ValueError, match=rule) as info:
        fake_model("bgnbd").predict(change(frame), 30)
    assert column in str(info.value)


@pytest.mark.parametrize("kwargs", [{"model": "bgnbdx"}, {"time_unit_days": 0}, {"penalizer": -1}])
def test_bad_settings_raise_at_fit(kwargs):
    est = BTYDModel(**kwargs)
    assert est.get_params()[next(iter(kwargs))] == next(iter(kwargs.values()))  # __init__ only stores
    with pytest.raises(ValueError, match=next(iter(kwargs))):
        est.fit(simulate_days("bgnbd", 50, 0))


def test_to_dict_round_trips_through_json(cdnow, cdnow_model):
    data = json.loads(json.dumps(cdnow_model.to_dict()))
    loaded = BTYDModel.from_dict(data)
    assert loaded.get_params() == cdnow_model.get_params()
    assert loaded.params_ == cdnow_model.params_ and loaded.gg_params_ == cdnow_model.gg_params_
    frame = cdnow[0].head(50)
    pd.testing.assert_frame_equal(loaded.predict(frame, 90), cdnow_model.predict(frame, 90))
    assert (
        BTYDModel.from_dict(json.loads(json.dumps(BTYDModel(model="pareto").to_dict()))).get_params()["model"]
        == "pareto"
    )
    with pytest.raises(ValueError, match="format"):
        BTYDModel.from_dict({"init": {}})


def test_one_outlier_order_value_moves_nobody_else(cdnow, cdnow_model, caplog):
    """A repeat buyer whose mean order value is 1e7 (a one-off order, or a typo) is taken at the cap:
    the Gamma-Gamma fit, the fallback mean and every other customer's expected spend barely move."""
    frame = cdnow[0].copy()
    assert cdnow_model.monetary_cap_ is not None and frame["monetary_value"].max() < cdnow_model.monetary_cap_
    big = int(frame.index[(frame["frequency"] >= 2).to_numpy()][0])
    frame.loc[big, "monetary_value"] = 1e7
    with caplog.at_level(logging.WARNING, logger="churnclv.models.btyd"):
        est = BTYDModel(time_unit_days=7).fit(frame)
    assert "1 repeat buyer(s) with a mean order value above" in caplog.text
    assert any("taken as" in note for note in est.fit_notes_)
    for k in ("p", "q", "v"):
        assert est.gg_params_[k] == pytest.approx(cdnow_model.gg_params_[k], rel=0.1)
    others = frame.index != big
    before = cdnow_model.predict(cdnow[0], 90)["expected_spend"].to_numpy()[others]
    after = est.predict(frame, 90)["expected_spend"].to_numpy()[others]
    moved = np.abs(after / before - 1)  # the cap (780 here) is still above any other customer's (max 300)
    assert np.median(moved) < 0.02 and moved.max() < 0.06
    assert est.expected_order_value(frame).iloc[big] <= est.monetary_cap_
    fallback = BTYDModel(time_unit_days=7, gg_min_repeat_buyers=10**6).fit(frame)
    assert fallback.mean_order_value_ < 100  # not the plain mean, which the 1e7 makes thousands
    again = BTYDModel.from_dict(json.loads(json.dumps(est.to_dict())))
    assert again.monetary_cap_ == est.monetary_cap_
    old = est.to_dict()
    del old["fitted"]["monetary_cap"]  # saved before the cap: no cap
    assert BTYDModel.from_dict(old).monetary_cap_ is None


def test_the_cap_holds_when_most_order_values_are_equal():
    """A subscription shop: most mean order values equal (IQR 0); the cap is then 10 x Q3, not Q3."""
    f = np.array([3.0] * 30 + [2.0])
    m = np.array([29.99] * 30 + [59.98])
    assert monetary_cap(f, m) == pytest.approx(299.9)
    assert monetary_cap(f[:3], m[:3]) is None  # too few repeat buyers to say what is usual


def test_gamma_gamma_falls_back_to_population_mean_with_few_repeat_buyers(caplog):
    frame = simulate_days("bgnbd", 400, seed=3)
    est = BTYDModel(gg_min_repeat_buyers=10_000)
    with caplog.at_level(logging.WARNING, logger="churnclv.models.btyd"):
        est.fit(frame)
    assert est.gg_params_ is None and "repeat buyers" in est.gg_fallback_
    assert "Gamma-Gamma not used" in caplog.text
    repeat = frame[frame["frequency"] > 0]
    mean = (repeat["frequency"] * repeat["monetary_value"]).sum() / repeat["frequency"].sum()
    assert est.mean_order_value_ == pytest.approx(mean)
    np.testing.assert_allclose(est.predict(frame, 30)["expected_order_value"], mean)


def test_unidentified_fit_raises_clear_error_without_printing(capsys):
    frame = pd.DataFrame(
        {"frequency": [2.0] * 30, "recency": [10.0] * 30, "T": [20.0] * 30, "monetary_value": [5.0] * 30}
    )
    with pytest.raises(BTYDConvergenceError, match="penalizer"):
        BTYDModel().fit(frame)
    out = capsys.readouterr()
    assert out.out == ""


def failing_fit(monkeypatch, cls_name: str, fails) -> list[tuple[float, bool]]:
    """Make lifetimes' ``cls_name.fit`` raise ConvergenceError whenever ``fails(penalizer, start)``;
    returns the (penalizer, start given) of every call."""
    import lifetimes
    from lifetimes.utils import ConvergenceError

    from churnclv.models import fit_memo

    cls = getattr(lifetimes, cls_name)
    real_fit = cls.fit
    calls: list[tuple[float, bool]] = []

    def fit(self, *args, **kwargs):
        calls.append((self.penalizer_coef, kwargs.get("initial_params") is not None))
        if fails(self.penalizer_coef, kwargs.get("initial_params")):
            raise ConvergenceError("The model did not converge.")
        return real_fit(self, *args, **kwargs)

    monkeypatch.setattr(cls, "fit", fit)
    fit_memo.clear()  # lifetimes behaves differently from here on: no fit from before it
    return calls


def test_fit_retries_from_other_starts_and_records_it(monkeypatch, caplog):
    frame = simulate_days("bgnbd", 400, seed=3)
    plain = BTYDModel().fit(frame)
    assert plain.fit_notes_ == []
    failing_fit(monkeypatch, "BetaGeoFitter", lambda pen, start: start is None)
    with caplog.at_level(logging.WARNING, logger="churnclv.models.btyd"):
        est = BTYDModel().fit(frame)
    assert len(est.fit_notes_) == 1
    note = est.fit_notes_[0]
    assert note.startswith("bgnbd at penalizer 0 from lifetimes' default start did not converge (ConvergenceError); ")
    assert note.endswith("fitted at penalizer 0 from the typical start")
    assert "fallback" in caplog.text and note in caplog.text
    for k, v in plain.params_.items():  # another start, the same optimum
        assert est.params_[k] == pytest.approx(v, rel=1e-4)
    loaded = BTYDModel.from_dict(json.loads(json.dumps(est.to_dict())))
    assert loaded.fit_notes_ == est.fit_notes_
    old = est.to_dict()
    del old["fitted"]["fit_notes"]  # saved before fit_notes existed
    assert BTYDModel.from_dict(old).fit_notes_ == []


def test_fit_falls_back_to_a_larger_penalizer(monkeypatch):
    frame = simulate_days("bgnbd", 400, seed=3)
    calls = failing_fit(monkeypatch, "BetaGeoFitter", lambda pen, start: pen < 1e-3)
    est = BTYDModel().fit(frame)
    assert est.fit_notes_[0].endswith("fitted at penalizer 0.001 from lifetimes' default start")
    assert (
        "bgnbd at penalizer 0.0001 from lifetimes' default start did not converge (ConvergenceError)"
        in (est.fit_notes_[0])
    )
    assert [pen for pen, _ in calls if pen > 0] == [1e-4, 1e-4, 1e-3]  # 1e-4 also at lifetimes' tol
    assert np.isfinite(est.predict(frame, 90).to_numpy(dtype=float)[:, :-1]).all()


def test_fit_retries_on_degenerate_parameters(monkeypatch):
    """A fit that 'converges' to a parameter at 0 is retried like one that does not converge."""
    import lifetimes

    frame = simulate_days("mbgnbd", 400, seed=4)
    real_fit = lifetimes.ModifiedBetaGeoFitter.fit

    def fit(self, *args, **kwargs):
        out = real_fit(self, *args, **kwargs)
        if kwargs.get("initial_params") is None and self.penalizer_coef == 0:
            out.params_ = out.params_.copy()
            out.params_["a"] = 1e-9
        return out

    monkeypatch.setattr(lifetimes.ModifiedBetaGeoFitter, "fit", fit)
    est = BTYDModel(model="mbgnbd").fit(frame)
    assert "gave degenerate parameters" in est.fit_notes_[0]
    assert est.params_["a"] > 1e-3


def test_fit_raises_naming_every_attempt_when_all_fail(monkeypatch):
    frame = simulate_days("bgnbd", 400, seed=3)
    failing_fit(monkeypatch, "BetaGeoFitter", lambda pen, start: True)
    with pytest.raises(BTYDConvergenceError) as info:
        BTYDModel().fit(frame)
    message = str(info.value)
    for attempt in (
        "at penalizer 0 from lifetimes' default start",
        "at penalizer 0 from the typical start",
        "at penalizer 0 from the flat start",
        "at penalizer 0.0001",
        "at penalizer 0.001 ",
        "at penalizer 0.01 ",
        "at penalizer 0.1 ",
    ):
        assert attempt in message
    assert message.startswith("BTYDModel: every BG/NBD fit failed on ") and "at penalizers up to 1," in message
    assert "Use a later as-of date or more history" in message and "[scorer] btyd_penalizer" not in message
    with pytest.raises(BTYDConvergenceError) as info:  # only penalizers above the user's are tried
        BTYDModel(penalizer=0.01).fit(frame)
    assert "penalizer 0.001 " not in str(info.value) and "at penalizer 0.1 " in str(info.value)


@pytest.mark.slow  # two Pareto/NBD fits
def test_pareto_fit_ignores_first_purchases_on_the_as_of_day():
    """T = 0 rows have likelihood 1 under any parameters (and a NaN A_0 in lifetimes)."""
    frame = simulate_days("pareto", 300, seed=21)
    new = pd.DataFrame({"frequency": 0.0, "recency": 0.0, "T": [0.0] * 25, "monetary_value": 0.0})
    with_new = BTYDModel(model="pareto").fit(pd.concat([frame, new], ignore_index=True))
    without = BTYDModel(model="pareto").fit(frame)
    for k, v in without.params_.items():
        assert with_new.params_[k] == pytest.approx(v, rel=1e-6)
    assert with_new.log_likelihood_ == pytest.approx(without.log_likelihood_, rel=1e-10)
    assert with_new.fit_notes_ == []


def test_fit_leaves_warnings_state_and_stdout_alone(capsys):
    frame = simulate_days("bgnbd", 300, seed=5)
    BTYDModel().fit(frame)  # lifetimes imported by now
    before = list(warnings.filters)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        inner = list(warnings.filters)
        est = BTYDModel(model="mbgnbd").fit(frame)
        est.predict(frame, 30)
        assert list(warnings.filters) == inner
    assert caught == []
    assert list(warnings.filters) == before
    assert capsys.readouterr().out == ""


@pytest.mark.parametrize("model", ["bgnbd", "mbgnbd"])
def test_warm_started_compressed_fit_equals_plain_fit(model, monkeypatch):
    """The warm start used at scale changes where the optimizer starts, not where it ends."""
    frame = simulate_days(model, 3000, seed=8)
    plain = BTYDModel(model=model, compress=False).fit(frame)
    monkeypatch.setattr(btyd_fitting, "_WARM_START_MIN_ROWS", 0)
    starts = []
    real_warm_start = btyd_fitting._warm_start_counts

    def spy(*args, **kwargs):
        starts.append(real_warm_start(*args, **kwargs))
        return starts[-1]

    monkeypatch.setattr(btyd_fitting, "_warm_start_counts", spy)
    warm = BTYDModel(model=model).fit(frame)
    assert len(starts) == 1 and {"initial_params", "hess_inv0"} <= set(starts[0])
    for k, v in plain.params_.items():
        assert warm.params_[k] == pytest.approx(v, rel=1e-6)
    for k, v in plain.gg_params_.items():
        assert warm.gg_params_[k] == pytest.approx(v, rel=1e-6)
    assert warm.log_likelihood_ == pytest.approx(plain.log_likelihood_, rel=1e-10)


# ---------------------------------------------------------------------------------------------
# properties
# ---------------------------------------------------------------------------------------------

MODEL = st.sampled_from(["bgnbd", "mbgnbd", "pareto"])


@st.composite
def summaries(draw, max_rows: int = 8) -> pd.DataFrame:
    rows = []
    for _ in range(draw(st.integers(1, max_rows))):
        if draw(st.integers(0, 9)) == 0:
            rows.append((np.nan, np.nan, np.nan, np.nan))
            continue
        T = draw(st.floats(0, 3650))
        # daily grain: f repeat purchase days need at least f days of recency
        f = draw(st.integers(0, int(min(T, 400))))
        r = 0.0 if f == 0 else draw(st.floats(float(f), T))
        m = 0.0 if f == 0 else draw(st.floats(-50, 1e4))
        rows.append((float(f), r, T, m))
    return pd.DataFrame(rows, columns=["frequency", "recency", "T", "monetary_value"])


PROPERTY = settings(
    max_examples=min(60, settings.default.max_examples), deadline=None, suppress_health_check=[HealthCheck.too_slow]
)


@PROPERTY
@given(model=MODEL, frame=summaries(), horizon=st.floats(0.1, 3650))
def test_scores_are_finite_and_probabilities_in_unit_interval(model, frame, horizon):
    scores = fake_model(model).predict(frame, horizon)
    values = scores[list(PREDICTION_COLUMNS[:-1])].to_numpy()
    assert np.isfinite(values).all()
    for c in ("p_alive", "p_churn"):
        assert ((scores[c] >= 0) & (scores[c] <= 1)).all()
    assert (scores[["expected_purchases", "expected_spend", "clv"]] >= 0).all().all()
    nxt = scores["expected_next_purchase_days"].dropna()
    assert (nxt > 0).all()


@PROPERTY
@given(model=MODEL, frame=summaries(), h1=st.floats(0.1, 2000), extra=st.floats(0.01, 2000))
def test_more_horizon_means_more_purchases_and_less_churn(model, frame, h1, extra):
    est = fake_model(model)
    short, long = est.predict(frame, h1, clv_months=0), est.predict(frame, h1 + extra, clv_months=0)
    assert (long["expected_purchases"] >= short["expected_purchases"] * (1 - 1e-9)).all()
    assert (long["p_churn"] <= short["p_churn"] + 1e-9).all()


@PROPERTY
@given(
    model=MODEL,
    frame=summaries(),
    d1=st.floats(0, 1),
    extra_d=st.floats(0.001, 1),
    months=st.integers(0, 24),
    extra_m=st.integers(1, 24),
)
def test_clv_falls_with_discount_rate_and_grows_with_horizon(model, frame, d1, extra_d, months, extra_m):
    est = fake_model(model)
    base = est.predict(frame, 30, clv_months=months, annual_discount_rate=d1)["clv"]
    dearer = est.predict(frame, 30, clv_months=months, annual_discount_rate=d1 + extra_d)["clv"]
    longer = est.predict(frame, 30, clv_months=months + extra_m, annual_discount_rate=d1)["clv"]
    assert (dearer <= base * (1 + 1e-12)).all()
    assert (longer >= base * (1 - 1e-12)).all()


@PROPERTY
@given(model=MODEL, T=st.floats(0, 3650), horizon=st.floats(1, 3650))
def test_one_time_buyers_churn_is_not_one_minus_p_alive(model, T, horizon):
    frame = pd.DataFrame({"frequency": [0.0], "recency": [0.0], "T": [T], "monetary_value": [0.0]})
    scores = fake_model(model).predict(frame, horizon, clv_months=0)
    p_churn, p_alive = scores["p_churn"].iloc[0], scores["p_alive"].iloc[0]
    assert p_churn > (1 - p_alive) + 1e-6  # even if alive, they may well not buy within H
    assert p_churn < 1


@pytest.mark.slow  # two fits on 400 customers per example
@settings(max_examples=6, deadline=None)
@given(model=st.sampled_from(["bgnbd", "mbgnbd"]), seed=st.integers(0, 10_000))
def test_compressed_fit_equals_uncompressed_fit(model, seed):
    frame = simulate_days(model, 400, seed)
    full = BTYDModel(model=model, compress=False).fit(frame)
    compressed = BTYDModel(model=model).fit(frame)
    assert compressed.n_unique_rows_ < full.n_customers_
    # The likelihoods are the same function, so the optimum's value must agree tightly. On a flat
    # surface (400 customers, MBG/NBD) BFGS can stop within its tolerance at points 1.5e-6 apart
    # (seen: seed 9483, after the precision-loss retry at tol 1e-7), hence 1e-5 on the parameters.
    for k, v in full.params_.items():
        assert compressed.params_[k] == pytest.approx(v, rel=1e-5)
    for k, v in (full.gg_params_ or {}).items():
        assert compressed.gg_params_[k] == pytest.approx(v, rel=1e-5)
    assert compressed.log_likelihood_ == pytest.approx(full.log_likelihood_, rel=1e-10)


@pytest.mark.slow  # two Pareto/NBD fits
def test_compressed_pareto_fit_equals_uncompressed_fit():
    frame = simulate_days("pareto", 400, seed=21)
    full = BTYDModel(model="pareto", compress=False).fit(frame)
    compressed = BTYDModel(model="pareto").fit(frame)
    for k, v in full.params_.items():
        assert compressed.params_[k] == pytest.approx(v, rel=1e-5)


@settings(max_examples=min(60, settings.default.max_examples), deadline=None)
@given(
    st.lists(
        st.tuples(st.sampled_from([0.0, -0.0, 1.0, 2.5]), st.sampled_from([0.0, 3.0, 7.0])), min_size=1, max_size=300
    )
)
def test_small_unique_rows_group_like_pandas(rows: list[tuple[float, float]]) -> None:
    from churnclv.models.btyd_summary import _small_inverse

    a = np.array([r[0] for r in rows])
    b = np.array([r[1] for r in rows])
    expected = pd.DataFrame({"0": a, "1": b}).groupby(["0", "1"], sort=False).ngroup().to_numpy()
    np.testing.assert_array_equal(_small_inverse((a, b)), expected)


def test_a_fit_of_the_same_customers_is_looked_up_not_run_again(monkeypatch):
    """models.fit_memo: same arrays and settings -> the memoised fit (lifetimes not called);
    another value or setting -> a new fit; what a caller edits does not reach the memo."""
    import lifetimes

    frame = simulate_days("bgnbd", 400, seed=4)
    first = BTYDModel().fit(frame)
    calls = []
    real = lifetimes.BetaGeoFitter.fit

    def counting(self, *args, **kwargs):
        calls.append(1)
        return real(self, *args, **kwargs)

    monkeypatch.setattr(lifetimes.BetaGeoFitter, "fit", counting)
    again = BTYDModel().fit(frame.copy())
    assert calls == [] and again.params_ == first.params_ and again.gg_params_ == first.gg_params_
    again.params_["r"] = -1.0  # a copy: the memo keeps its own
    assert BTYDModel().fit(frame).params_ == first.params_ and calls == []
    changed = frame.copy()
    changed.loc[changed.index[0], "T"] += 1.0
    BTYDModel().fit(changed)
    assert len(calls) >= 1
    n = len(calls)
    BTYDModel(penalizer=0.001).fit(frame)
    assert len(calls) > n


def test_a_fit_asked_for_by_two_threads_at_once_runs_once(monkeypatch):
    """The backtest's candidates fit BTYD on the same evaluation rows side by side."""
    import threading

    import lifetimes

    frame = simulate_days("bgnbd", 300, seed=6)
    real = lifetimes.BetaGeoFitter.fit
    calls = []
    both_asked = threading.Barrier(2)  # both ask at once: a fit takes far longer than the ask

    def counting(self, *args, **kwargs):
        calls.append(1)
        return real(self, *args, **kwargs)

    monkeypatch.setattr(lifetimes.BetaGeoFitter, "fit", counting)
    results = []

    def one() -> None:
        both_asked.wait()
        results.append(BTYDModel().fit(frame).params_)

    threads = [threading.Thread(target=one) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 2 and results[0] == results[1]
    assert len(calls) == 1


def test_quiet_blocks_of_two_threads_leave_stdout_as_it_was():
    """lifetimes_fitters.quiet swaps sys.stdout process-wide; the backtest fits in threads. A block that
    ended inside another thread's restored that thread's buffer: the CLI's summary went nowhere."""
    import sys
    import threading

    from churnclv.models.lifetimes_fitters import quiet

    before = sys.stdout
    a_inside, b_asked = threading.Event(), threading.Event()

    def a() -> None:
        with quiet():
            a_inside.set()
            b_asked.wait()

    def b() -> None:
        a_inside.wait()
        b_asked.set()
        with quiet():
            print("lifetimes says")

    threads = [threading.Thread(target=a), threading.Thread(target=b)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sys.stdout is before


def test_purchases_without_spend_fit_bgnbd_and_expect_no_spend(cdnow, cdnow_model):
    """Every amount 0 with ``zero_amount_is_purchase`` (free items): BG/NBD is fitted as before,
    Gamma-Gamma has nothing to learn, and every expected spend and CLV is 0 instead of no model."""
    free = cdnow[0].assign(monetary_value=0.0)
    model = BTYDModel(time_unit_days=7).fit(free)
    assert model.params_ == cdnow_model.params_  # the transaction model does not read spend
    assert model.gg_params_ is None and "no repeat buyer with monetary_value > 0" in model.gg_fallback_
    out = model.predict(free, 90)
    assert (out["expected_spend"] == 0).all() and (out["clv"] == 0).all()
    assert out["expected_purchases"].sum() > 0
