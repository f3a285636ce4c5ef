"""Property tests for churnclv.models.btyd: the scores hold for every parameter set a fit can return.

Parameters are drawn over wide ranges (r in [1e-3, 50], alpha and beta in [1e-2, 1e3] days, a, b and s
in [0.05, 20], with a + b < 1, a = 1, a near 1 and a + b = 1 drawn on purpose) and summaries over
x in 0..200, 0 <= t_x <= T <= 3650 days; horizons from 1 day to 3 years.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy import integrate, special

from churnclv.models.btyd import PREDICTION_COLUMNS, BTYDModel

SETTINGS = settings(
    max_examples=min(100, settings.default.max_examples), deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
HORIZONS = (1.0, 30.0, 90.0, 365.0, 1095.0)


def log_uniform(lo: float, hi: float) -> st.SearchStrategy[float]:
    return st.floats(math.log(lo), math.log(hi)).map(math.exp)


NEAR_ONE = st.one_of(
    st.just(1.0), st.floats(-1e-3, 1e-3).map(lambda d: 1.0 + d), st.floats(-1e-9, 1e-9).map(lambda d: 1.0 + d)
)


@st.composite
def beta_geometric_params(draw) -> dict[str, float]:
    r, alpha = draw(log_uniform(1e-3, 50)), draw(log_uniform(1e-2, 1e3))
    kind = draw(st.sampled_from(["any", "a+b<1", "a+b=1", "a~1"]))
    if kind == "a~1":
        a, b = draw(NEAR_ONE), draw(log_uniform(0.05, 20))
    elif kind == "any":
        a, b = draw(log_uniform(0.05, 20)), draw(log_uniform(0.05, 20))
    else:
        a = draw(st.floats(0.05, 0.85))
        b = 1.0 - a if kind == "a+b=1" else draw(st.floats(0.05, 0.95 - a))
    return {"r": r, "alpha": alpha, "a": a, "b": b}


@st.composite
def pareto_params(draw) -> dict[str, float]:
    return {
        "r": draw(log_uniform(1e-3, 50)),
        "alpha": draw(log_uniform(1e-2, 1e3)),
        "s": draw(st.one_of(log_uniform(0.05, 20), NEAR_ONE)),
        "beta": draw(log_uniform(1e-2, 1e3)),
    }


@st.composite
def summaries(draw, max_rows: int = 6) -> pd.DataFrame:
    rows = []
    for _ in range(draw(st.integers(1, max_rows))):
        T = draw(st.one_of(st.just(0.0), st.floats(0, 1), st.floats(0, 3650)))
        x = draw(st.integers(0, 200))
        tx = 0.0 if x == 0 else draw(st.one_of(st.just(T), st.floats(0, T)))
        rows.append((float(x), tx, T))
    frame = pd.DataFrame(rows, columns=["frequency", "recency", "T"])
    return frame.assign(monetary_value=np.where(frame["frequency"] > 0, 25.0, 0.0))


def fitted(model: str, params: dict[str, float]) -> BTYDModel:
    return BTYDModel.from_dict(
        {
            "format": "churnclv.models.btyd.BTYDModel",
            "version": 1,
            "init": {"model": model},
            "fitted": {
                "params": params,
                "log_likelihood": -1.0,
                "gg_params": {"p": 6.0, "q": 4.0, "v": 15.0},
                "gg_log_likelihood": None,
                "mean_order_value": 30.0,
                "gg_fallback": None,
                "n_customers": 1,
                "n_unique_rows": 1,
                "n_repeat_buyers": 1,
            },
        }
    )


def check_scores(model: str, params: dict[str, float], frame: pd.DataFrame, horizons) -> None:
    est = fitted(model, params)
    rate = (params["r"] + frame["frequency"].to_numpy()) / (params["alpha"] + frame["T"].to_numpy())
    previous = None
    for h in horizons:
        scores = est.predict(frame, h, clv_months=3)
        values = scores[list(PREDICTION_COLUMNS[:-1])].to_numpy()
        assert np.isfinite(values).all(), scores
        p_alive, p_churn = scores["p_alive"].to_numpy(), scores["p_churn"].to_numpy()
        e = scores["expected_purchases"].to_numpy()
        assert ((p_alive >= 0) & (p_alive <= 1) & (p_churn >= 0) & (p_churn <= 1)).all()
        assert (p_churn >= 1 - p_alive - 1e-9).all()  # the dead never buy
        assert (e >= 0).all() and (scores["clv"] >= 0).all()
        # alive, a customer buys at most at rate lambda: E <= P(alive) E[lambda | alive] h
        assert (e <= p_alive * rate * h * (1 + 1e-9) + 1e-300).all(), (h, e, p_alive * rate * h)
        if previous is not None:
            assert (e >= previous["expected_purchases"].to_numpy() * (1 - 1e-9)).all()
            assert (p_churn <= previous["p_churn"].to_numpy() + 1e-9).all()
        previous = scores


@SETTINGS
@given(
    model=st.sampled_from(["bgnbd", "mbgnbd"]),
    params=beta_geometric_params(),
    frame=summaries(),
    extra=st.floats(1.0, 1095.0),
)
def test_beta_geometric_scores_are_bounded_and_monotone_in_the_horizon(model, params, frame, extra):
    check_scores(model, params, frame, sorted({*HORIZONS, extra}))


@settings(
    max_examples=min(30, settings.default.max_examples), deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
@given(params=pareto_params(), frame=summaries(max_rows=3))
def test_pareto_scores_are_bounded_and_monotone_in_the_horizon(params, frame):
    check_scores("pareto", params, frame, (1.0, 90.0, 1095.0))


@pytest.mark.filterwarnings("ignore::scipy.integrate.IntegrationWarning")  # the reference's roundoff
@SETTINGS
@given(
    model=st.sampled_from(["bgnbd", "mbgnbd"]),
    params=beta_geometric_params(),
    x=st.integers(0, 30),
    T=st.floats(0, 3650),
    h=st.floats(1.0, 1095.0),
)
def test_expected_purchases_equal_the_integral_given_alive(model, params, x, T, h):
    """E / P(alive) is E_p[(1 - ((alpha+T)/(alpha+T+p h))^(r+x)) / p] for p ~ Beta(a, b + x) (MBG/NBD:
    b + x + 1), integrated here with QUADPACK's algebraic weight (accurate for these exponents)."""
    frame = pd.DataFrame({"frequency": [float(x)], "recency": [T if x else 0.0], "T": [T], "monetary_value": [0.0]})
    scores = fitted(model, params).predict(frame, h, clv_months=0)
    a, k, A = params["a"], params["r"] + x, params["alpha"] + T
    beta = params["b"] + x + (1.0 if model == "mbgnbd" else 0.0)

    def per_p(p: float) -> float:
        return -np.expm1(-k * np.log1p(p * h / A)) / p if p > 0 else k * h / A

    reference = integrate.quad(per_p, 0, 1, weight="alg", wvar=(a - 1, beta - 1), epsabs=0, epsrel=1e-12, limit=400)[
        0
    ] / special.beta(a, beta)
    got = scores["expected_purchases"].iloc[0] / scores["p_alive"].iloc[0]
    assert got == pytest.approx(reference, rel=1e-6)
