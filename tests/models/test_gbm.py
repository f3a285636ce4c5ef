"""Tests for churnclv.models.gbm, calibration, feature_matrix and explanations on synthetic data."""

from __future__ import annotations

import ctypes
import json
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from lightgbm import basic as lgb_basic
from scipy.special import expit
from sklearn.exceptions import NotFittedError
from sklearn.metrics import roc_auc_score

from churnclv.models import explanations, gbm_base
from churnclv.models.calibration import IsotonicCalibrator, PlattCalibrator
from churnclv.models.explanations import Reason, explainer
from churnclv.models.gbm import (
    GBMChurnClassifier,
    GBMCountRegressor,
    GBMSpendRegressor,
    model_from_dict,
)
from churnclv.models.gbm_base import lightgbm_threads

REGIONS = np.array(["north", "south", "east", "west"])


def make_data(n: int, seed: int) -> tuple[pd.DataFrame, pd.DataFrame, np.ndarray]:
    """Customers with churn driven by x1 (+), x2 (-) and region == north (+); noise is pure noise.

    Returns features, labels (churned, purchases, spend) and the true churn probability.
    """
    rng = np.random.default_rng(seed)
    x1, x2, noise = rng.normal(size=(3, n))
    region = rng.choice(REGIONS, size=n)
    engagement = rng.poisson(2.0, size=n).astype(float)
    engagement[rng.random(n) < 0.2] = np.nan
    logit = -0.5 + 1.5 * x1 - 1.0 * x2 + np.where(region == "north", 1.0, 0.0)
    p = expit(logit)
    churned = rng.random(n) < p
    rate = np.exp(0.5 - 0.8 * x1)
    purchases = np.where(churned, 0, rng.poisson(rate) + 1)
    spend = purchases * np.exp(3.0 + 0.5 * x2 + rng.normal(0, 0.3, size=n))
    spend[rng.random(n) < 0.01] = -5.0  # returns exceeding purchases
    X = pd.DataFrame(
        {
            "customer_id": [f"{seed:02d}{i:06d}" for i in range(n)],
            "x1": x1,
            "x2": x2,
            "noise": noise,
            "region": region,
            "engagement": pd.array(engagement, dtype="Float64"),  # nullable, with nulls
        }
    )
    y = pd.DataFrame({"churned": churned, "purchases": purchases, "spend": spend})
    return X, y, p


# One training thread: on a busy shared machine OpenMP's spinning threads make 2-thread training of
# tiny data up to 100x slower; results do not depend on the thread count (deterministic=True).
FAST = {"num_boost_round": 200, "early_stopping_rounds": 20, "params": {"num_threads": 1}}


@pytest.fixture(scope="module")
def data():
    return make_data(3000, seed=0)


@pytest.fixture(scope="module")
def test_data():
    return make_data(3000, seed=1)


@pytest.fixture(scope="module")
def clf(data):
    X, y, _ = data
    return GBMChurnClassifier(**FAST).fit(X, y["churned"])


@pytest.fixture(scope="module")
def spend_model(data):
    X, y, _ = data
    return GBMSpendRegressor(**FAST).fit(X, y["spend"])


@pytest.fixture(scope="module")
def count_model(data):
    X, y, _ = data
    return GBMCountRegressor(**FAST).fit(X, y["purchases"])


def brier(p: np.ndarray, y: np.ndarray) -> float:
    return float(np.mean((p - np.asarray(y, dtype=float)) ** 2))


# ---- learning and calibration ---------------------------------------------------------------


def test_learns_the_signal(clf, test_data):
    X, y, _ = test_data
    auc = roc_auc_score(y["churned"], clf.predict_proba(X))
    assert auc > 0.75
    assert clf.feature_names_ == ["x1", "x2", "noise", "region", "engagement"]
    assert clf.categories_ == {"region": ["east", "north", "south", "west"]}


def test_probabilities_in_unit_interval_and_calibration_keeps_brier(clf, test_data):
    X, y, _ = test_data
    p = clf.predict_proba(X)
    assert np.all((p >= 0) & (p <= 1))
    raw = expit(clf.decision_function(X))
    # the booster alone is nearly calibrated here: isotonic must not make it materially worse
    assert brier(p, y["churned"]) <= brier(raw, y["churned"]) + 0.005


@pytest.mark.parametrize("calibration", ["isotonic", "platt"])
def test_calibration_repairs_a_miscalibrated_booster(data, test_data, calibration):
    X, y, _ = data
    # up-weighting churners inflates the booster's probabilities; calibration must undo it
    model = GBMChurnClassifier(
        **{**FAST, "params": {"num_threads": 1, "scale_pos_weight": 4.0}},
        calibration=calibration,
    ).fit(X, y["churned"])
    Xt, yt, _ = test_data
    raw = expit(model.decision_function(Xt))
    cal = model.predict_proba(Xt)
    assert brier(cal, yt["churned"]) < brier(raw, yt["churned"]) - 0.01
    assert abs(cal.mean() - yt["churned"].mean()) < 0.03


def test_isotonic_output_non_decreasing_in_raw_score(clf, test_data):
    X, _, _ = test_data
    raw = clf.decision_function(X)
    p = clf.predict_proba(X)
    assert np.all(np.diff(p[np.argsort(raw, kind="stable")]) >= 0)


@settings(max_examples=min(30, settings.default.max_examples), deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    n=st.integers(2, 200),
    probe=st.lists(st.floats(-50, 50), min_size=2, max_size=50),
)
def test_calibrators_are_monotone_probabilities(seed, n, probe):
    rng = np.random.default_rng(seed)
    raw = rng.normal(size=n)
    y = (rng.random(n) < expit(2 * raw)).astype(float)
    if y.min() == y.max():
        y[0] = 1 - y[0]
    probe = np.sort(np.array(probe))
    for cal in (IsotonicCalibrator.fit(raw, y), PlattCalibrator.fit(raw, y)):
        out = cal.transform(probe)
        assert np.all((out >= 0) & (out <= 1))
        assert np.all(np.diff(out) >= -1e-12)


def test_calibration_holds_out_whole_customers():
    # three cutoffs per customer: a customer's rows must all land on one side
    ids = np.repeat([f"c{i}" for i in range(100)], 3)
    X = pd.DataFrame({"customer_id": ids, "cutoff": np.tile([1, 2, 3], 100), "x": 0.0})
    held = GBMChurnClassifier(seed=3)._split(X, None, 0.2)
    per_customer = pd.Series(held).groupby(ids).agg(["min", "max"])
    assert (per_customer["min"] == per_customer["max"]).all()
    assert held.sum() == 60
    assert np.array_equal(held, GBMChurnClassifier(seed=3)._split(X, None, 0.2))
    assert not np.array_equal(held, GBMChurnClassifier(seed=4)._split(X, None, 0.2))


# ---- reproducibility and persistence --------------------------------------------------------


def test_refit_with_same_seed_is_identical(clf, data, test_data):
    X, y, _ = data
    again = GBMChurnClassifier(**FAST).fit(X, y["churned"])
    Xt, _, _ = test_data
    assert np.array_equal(again.predict_proba(Xt), clf.predict_proba(Xt))
    assert again.booster_.model_to_string() == clf.booster_.model_to_string()


def test_lightgbm_threads_sets_every_fit_and_gives_the_same_booster(data, test_data):
    """What lets the backtest fit side by side on one core each: the context wins over params, and
    the booster does not depend on the thread count (column-wise histograms)."""
    X, y, _ = data
    Xt, _, _ = test_data
    two = GBMSpendRegressor(num_boost_round=60, params={"num_threads": 2})
    with lightgbm_threads(1):
        assert two._train_params()["num_threads"] == 1
        one = GBMSpendRegressor(num_boost_round=60, params={"num_threads": 2}).fit(X, y["spend"])
    assert two._train_params()["num_threads"] == 2  # outside the context: the params again
    two.fit(X, y["spend"])
    assert one.booster_.dump_model()["tree_info"] == two.booster_.dump_model()["tree_info"]  # every split
    assert np.array_equal(one.predict(Xt), two.predict(Xt))


class _ThreadSettingSpy:
    """LightGBM's C library, noting every call that set its process-wide thread setting
    (``LGBM_DEFAULT_NUM_THREADS``: what a call's ``num_threads`` sets, -1 for "all cores") to
    anything but ``want``."""

    def __init__(self, lib: Any, want: int) -> None:
        self._lib, self._want = lib, want
        self._setting = ctypes.c_int.in_dll(lib, "LGBM_DEFAULT_NUM_THREADS")
        self.calls: list[str] = []
        self.changed: list[tuple[str, int]] = []

    def __getattr__(self, name: str) -> Any:
        func = getattr(self._lib, name)

        def call(*args: Any) -> Any:
            before = self._setting.value
            out = func(*args)
            self.calls.append(name)
            if self._setting.value not in (before, self._want):
                self.changed.append((name, self._setting.value))
            return out

        return call


@pytest.mark.parametrize("calibration", ["isotonic", "platt", None])
def test_under_lightgbm_threads_no_call_changes_the_process_thread_setting(data, test_data, monkeypatch, calibration):
    """The backtest fits side by side, one thread each. LightGBM keeps one thread setting for the
    whole process, set by every call that takes ``num_threads`` (absent: all cores), and sizes
    per-thread buffers from it: a call at all cores in one fit while the other built a Dataset at
    one thread wrote past those buffers (a segfault in ``SparseBin::Push``, or memory silently
    corrupted). Every LightGBM call of a fit, a prediction and an explanation made under
    ``lightgbm_threads(1)`` must leave that setting at 1. (The calibration fit predicted without
    ``num_threads`` before.)"""
    X, y, _ = data
    Xt, _, _ = test_data
    spy = _ThreadSettingSpy(lgb_basic._LIB, want=1)
    monkeypatch.setattr(lgb_basic, "_LIB", spy)
    kinds = {"early_stopping_rounds": 10, "num_boost_round": 40}
    with lightgbm_threads(1):
        clf = GBMChurnClassifier(calibration=calibration, **kinds).fit(X, y["churned"])
        clf.predict_proba(Xt)
        clf.explain(Xt.head(20))
        GBMSpendRegressor(**kinds).fit(X, y["spend"]).predict(Xt)
        GBMCountRegressor(**kinds).fit(X, y["purchases"]).predict(Xt)
    assert {"LGBM_DatasetCreateFromMat", "LGBM_BoosterUpdateOneIter", "LGBM_BoosterPredictForMat"} <= set(spy.calls)
    assert spy.changed == []


@pytest.mark.parametrize("name", ["clf", "spend_model", "count_model"])
def test_large_inputs_predict_in_slices_with_the_same_numbers(request, name, test_data, monkeypatch):
    model = request.getfixturevalue(name)
    Xt, _, _ = test_data
    whole = model.predict_proba(Xt) if name == "clf" else model.predict(Xt)
    monkeypatch.setattr(gbm_base, "PREDICT_CHUNK_ROWS", 700)  # 3,000 rows: five slices, the last short
    sliced = model.predict_proba(Xt) if name == "clf" else model.predict(Xt)
    assert np.array_equal(sliced, whole)
    assert np.array_equal(
        model._raw(Xt, pred_contrib=True), model.booster_.predict(model._matrix(Xt), pred_contrib=True)
    )


@pytest.mark.parametrize("name", ["clf", "spend_model", "count_model"])
def test_json_round_trip_gives_identical_predictions(request, name, test_data):
    model = request.getfixturevalue(name)
    X, _, _ = test_data
    restored = model_from_dict(json.loads(json.dumps(model.to_dict())))
    assert type(restored) is type(model)
    assert restored.get_params() == model.get_params()
    if name == "clf":
        assert np.array_equal(restored.predict_proba(X), model.predict_proba(X))
        assert restored.explain(X.head(20)) == model.explain(X.head(20))
    else:
        assert np.array_equal(restored.predict(X), model.predict(X))


def test_from_dict_rejects_other_class(spend_model):
    with pytest.raises(ValueError, match=r"GBMChurnClassifier\.from_dict"):
        GBMChurnClassifier.from_dict(spend_model.to_dict())


# ---- input validation -----------------------------------------------------------------------


def test_use_before_fit_raises():
    X, _, _ = make_data(5, seed=2)
    with pytest.raises(NotFittedError):
        GBMChurnClassifier().predict_proba(X)
    with pytest.raises(NotFittedError):
        GBMSpendRegressor().to_dict()


def test_missing_columns_are_named(clf, test_data):
    X, _, _ = test_data
    with pytest.raises(
        ValueError,
        match=r"X is missing columns \['x2', 'region'\] that GBMChurnClassifier was fitted with",
    ):
        clf.predict_proba(X.drop(columns=["region", "x2"]))


def test_extra_columns_ignored_and_order_irrelevant(clf, test_data):
    X, _, _ = test_data
    shuffled = X[X.columns[::-1]].assign(unrelated=1.0)
    assert np.array_equal(clf.predict_proba(shuffled), clf.predict_proba(X))


def test_unseen_category_is_missing_not_error(clf, test_data):
    X, _, _ = test_data
    rows = X.head(50)
    unseen = clf.predict_proba(rows.assign(region="atlantis"))
    missing = clf.predict_proba(rows.assign(region=None))
    assert np.array_equal(unseen, missing)


def test_category_dtype_maps_to_training_levels(clf, test_data):
    X, _, _ = test_data
    # different category order and an extra level must not change the codes
    as_cat = X.assign(region=pd.Categorical(X["region"], categories=["west", "mars", "south", "north", "east"]))
    assert np.array_equal(clf.predict_proba(as_cat), clf.predict_proba(X))


def test_bad_feature_columns_are_rejected(data):
    X, y, _ = data
    with pytest.raises(TypeError, match=r"'signup_ts'.*add it to exclude"):
        GBMChurnClassifier(**FAST).fit(X.assign(signup_ts=pd.Timestamp("2024-01-01")), y["churned"])
    with pytest.raises(TypeError, match="'region' holds strings but is not in categorical"):
        GBMChurnClassifier(**FAST, categorical=[]).fit(X, y["churned"])
    with pytest.raises(ValueError, match="only one class"):
        GBMChurnClassifier(**FAST).fit(X, np.zeros(len(X), dtype=bool))


def test_numeric_column_with_text_gets_a_clear_error(clf, test_data):
    X, _, _ = test_data
    bad = X.head(3).assign(x1=["1.0", "oops", "2"])
    with pytest.raises(TypeError, match="column 'x1' must be numeric"):
        clf.predict_proba(bad)


# ---- single rows, explanations ----------------------------------------------------------------


def test_single_row_equals_batch_row(clf, spend_model, test_data):
    X, _, _ = test_data
    batch = clf.predict_proba(X)  # >= 1,000 rows: all threads
    for i in (0, 7, 2999):
        assert clf.predict_proba(X.iloc[[i]])[0] == batch[i]
    spend_batch = spend_model.predict(X)
    assert spend_model.predict(X.iloc[[7]])[0] == spend_batch[7]


@settings(max_examples=min(25, settings.default.max_examples), deadline=None)
@given(
    regions=st.lists(
        st.sampled_from(["north", "east", "atlantis", "", None, pd.NA, np.nan, 3]),
        min_size=70,
        max_size=70,
    ),
    engagement=st.lists(
        st.one_of(st.none(), st.just(pd.NA), st.floats(0, 10), st.integers(0, 10)),
        min_size=70,
        max_size=70,
    ),
)
def test_row_path_matches_column_path_on_messy_values(clf, test_data, regions, engagement):
    # <= 64 rows are read row-wise, larger frames column-wise: the numbers must not differ
    X, _, _ = test_data
    X = X.head(70).assign(region=pd.Series(regions, dtype=object), engagement=pd.Series(engagement, dtype=object))
    batch = clf.predict_proba(X)
    singles = np.concatenate([clf.predict_proba(X.iloc[[i]]) for i in range(len(X))])
    assert np.array_equal(singles, batch)


def test_explain_returns_top_k_positive_reasons(clf, test_data):
    X, _, _ = test_data
    rows = X.head(30)
    reasons = clf.explain(rows, top_k=2)
    assert len(reasons) == len(rows)
    for i, row in enumerate(reasons):
        assert len(row) <= 2
        assert all(isinstance(r, Reason) and r.feature in clf.feature_names_ for r in row)
        contribs = [r.contribution for r in row]
        assert all(c > 0 for c in contribs) and contribs == sorted(contribs, reverse=True)
        for r in row:
            expected = rows[r.feature].iloc[i]
            assert r.value == (None if pd.isna(expected) else expected)


def _pred_contrib_reasons(model, X, k):
    contrib = model.booster_.predict(model._matrix(X), pred_contrib=True)[:, :-1]
    order = np.argsort(-contrib, axis=1, kind="stable")[:, :k]
    return [[(model.feature_names_[j], contrib[i, j]) for j in order[i] if contrib[i, j] > 0] for i in range(len(X))]


def test_explain_equals_lightgbm_pred_contrib(clf, test_data, monkeypatch):
    X, _, _ = test_data
    rows = X.head(400)  # above the serial cut-off: the parallel kernel runs too
    assert explainer(clf) is not None  # the compiled tables, not the fallback
    expected = _pred_contrib_reasons(clf, rows, 3)
    got = clf.explain(rows, top_k=3)
    assert [[r.feature for r in row] for row in got] == [[f for f, _ in row] for row in expected]
    np.testing.assert_allclose(
        [r.contribution for row in got for r in row], [c for row in expected for _, c in row], rtol=1e-9, atol=1e-12
    )

    # a model the tables refuse falls back to pred_contrib with the same answer
    def refuse(*args, **kwargs):
        raise explanations.UnsupportedModel("test: refused")

    monkeypatch.setattr(explanations.FastTreeShap, "from_booster", staticmethod(refuse))
    clf.__dict__.pop("_shap_cache", None)
    assert explainer(clf) is None
    fallback = clf.explain(rows, top_k=3)
    assert [[(r.feature, r.value) for r in row] for row in fallback] == [
        [(r.feature, r.value) for r in row] for row in got
    ]
    np.testing.assert_allclose(
        [r.contribution for row in fallback for r in row],
        [r.contribution for row in got for r in row],
        rtol=1e-9,
        atol=1e-12,
    )
    clf.__dict__.pop("_shap_cache", None)


def test_explain_names_the_driver(clf):
    # high x1 drives churn up; that must be the top reason, with its value
    X, _, _ = make_data(1, seed=5)
    X = X.assign(x1=3.0, x2=0.0, region="south")
    top = clf.explain(X, top_k=1)[0]
    assert top[0].feature == "x1" and top[0].value == 3.0


# ---- spend and purchases --------------------------------------------------------------------


def test_spend_predictions_non_negative_and_informative(spend_model, test_data):
    X, y, _ = test_data
    pred = spend_model.predict(X)
    assert np.all(pred >= 0)
    assert np.corrcoef(pred, y["spend"])[0, 1] > 0.3
    # a model of expected spend: the mean is about right
    assert pred.mean() == pytest.approx(np.maximum(y["spend"], 0).mean(), rel=0.15)


def test_purchase_predictions_non_negative_and_calibrated_in_the_large(count_model, test_data):
    X, y, _ = test_data
    pred = count_model.predict(X)
    assert np.all(pred >= 0)
    assert pred.mean() == pytest.approx(y["purchases"].mean(), rel=0.1)
    assert np.corrcoef(pred, y["purchases"])[0, 1] > 0.5


@pytest.mark.parametrize("cls", [GBMSpendRegressor, GBMCountRegressor])
def test_all_zero_labels_train_a_model_of_zero(cls, data, test_data):
    # a shop of free orders (or a quiet window of a tiny cohort): LightGBM's Poisson and Tweedie stop
    # on a label sum of 0; the model learns the only answer the data give, 0, and saves as any other
    X, _, _ = data
    y = np.zeros(len(X))
    y[:5] = -3.0  # returns only: clipped to 0 for the spend model
    model = cls(**FAST).fit(X, np.maximum(y, 0) if cls is GBMCountRegressor else y)
    Xt = test_data[0]
    assert np.all(model.predict(Xt) == 0.0)
    assert np.all(model_from_dict(json.loads(json.dumps(model.to_dict()))).predict(Xt) == 0.0)
    assert model.explain(Xt.head(3)) == [[], [], []]


def test_count_regressor_rejects_negative_counts(data):
    X, _, _ = data
    with pytest.raises(ValueError, match="negative counts"):
        GBMCountRegressor(**FAST).fit(X, -np.ones(len(X)))


def test_spend_variance_power_is_used(data):
    X, y, _ = data
    with pytest.raises(ValueError, match="variance_power"):
        GBMSpendRegressor(variance_power=2.5).fit(X, y["spend"])
    model = GBMSpendRegressor(**FAST, variance_power=1.5).fit(X, y["spend"])
    assert "tweedie_variance_power: 1.5" in model.booster_.model_to_string()
