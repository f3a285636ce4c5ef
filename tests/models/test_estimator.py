"""ChurnCLV keeps scikit-learn's estimator contract on point-in-time frames, and is a front: what it
fits, predicts and saves is the Scorer's."""

from __future__ import annotations

import dataclasses
import inspect
import re
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.metrics import roc_auc_score
from sklearn.utils.estimator_checks import check_estimator
from sklearn.utils.validation import check_is_fitted

from churnclv.config import ConfigError
from churnclv.features import compute_features, compute_labels, compute_training_frame
from churnclv.features.errors import FeatureError
from churnclv.models.estimator import ChurnCLV, EstimatorInputError
from churnclv.models.scorer import SCORE_COLUMNS, Scorer
from churnclv.models.scorer_config import ScorerConfig
from churnclv.models.tier_policy import TierPolicy

AS_OF = pd.Timestamp("2025-10-02")
LATER = AS_OF + pd.Timedelta(days=90)  # the small world's data end there: the label window is closed
SMALL_SCORER = Path(__file__).with_name("small_scorer")  # a real fitted Scorer (make_small_scorer.py)
BTYD_ONLY = {"churn_model": "btyd", "purchases_model": "btyd", "spend_model": "btyd"}  # fits in ~0.3 s

# scikit-learn's common checks that cannot apply, and why. They build numeric arrays (np.ndarray,
# sparse, memmap, complex, 1-sample or 1-feature matrices) and fit on them; ChurnCLV reads a training
# frame with named columns (customer_id, cutoff, features, three labels) and refuses anything else with
# an error naming the columns. What each stands for is tested below on real frames (noted "<- test").
NOT_APPLICABLE = {
    "check_fit_score_takes_y": "fits a numeric array (fit and score take y: test_fit_and_score_take_y)",
    "check_estimators_overwrite_params": "fits a numeric array (<- test_fit_is_a_front_over_the_scorer)",
    "check_dont_overwrite_parameters": "fits a numeric array (<- test_fit_is_a_front_over_the_scorer)",
    "check_estimators_fit_returns_self": "fits a numeric array (<- test_fit_is_a_front_over_the_scorer)",
    "check_readonly_memmap_input": "fits a memmapped array; X is a DataFrame",
    "check_n_features_in_after_fitting": "fits a numeric array; the scorer checks its feature columns by name",
    "check_positive_only_tag_during_fit": "fits a numeric array",
    "check_estimators_dtypes": "fits numeric arrays of several dtypes",
    "check_complex_data": "expects a complex-number message; ours says X must be a DataFrame",
    "check_dtype_object": "fits an object array",
    "check_estimators_empty_data_messages": "expects a 0-feature message; ours names the missing columns",
    "check_pipeline_consistency": "fits a numeric array inside a Pipeline",
    "check_estimator_sparse_tag": "fits sparse matrices",
    "check_estimator_sparse_array": "fits sparse arrays",
    "check_estimator_sparse_matrix": "fits sparse matrices",
    "check_estimators_pickle": "fits a numeric array, then pickles; persistence is save/load (<- test)",
    "check_f_contiguous_array_estimator": "fits a Fortran-ordered numeric array",
    "check_methods_sample_order_invariance": "fits a numeric array (<- test_predict_is_row_order_and_subset_invariant)",
    "check_methods_subset_invariance": "fits a numeric array (<- test_predict_is_row_order_and_subset_invariant)",
    "check_fit2d_1sample": "expects a 1-sample message from a numeric array",
    "check_fit2d_1feature": "expects a 1-feature message from a numeric array",
    "check_dict_unchanged": "fits a numeric array (<- test_fit_is_a_front_over_the_scorer)",
    "check_fit_idempotent": "fits a numeric array (<- test_fit_is_a_front_over_the_scorer)",
    "check_fit_check_is_fitted": "fits a numeric array (<- test_fit_is_a_front_over_the_scorer)",
    "check_n_features_in": "fits a numeric array",
    "check_fit2d_predict1d": "fits a numeric array",
}


class _AsIfNumeric(ChurnCLV):
    """ChurnCLV with the tag saying it reads 2-D arrays: without it the suite skips every check but one."""

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.input_tags.two_d_array = True
        return tags


@pytest.fixture(scope="module")
def snapshot(small_world: Path) -> pd.DataFrame:
    return compute_features(small_world, AS_OF)


@pytest.fixture(scope="module")
def train(small_world: Path) -> pd.DataFrame:
    return compute_training_frame(small_world, AS_OF, 90, n_cutoffs=2)


@pytest.fixture(scope="module")
def labelled(small_world: Path, snapshot: pd.DataFrame) -> pd.DataFrame:
    labels = compute_labels(small_world, AS_OF, 90, as_of=LATER)
    return snapshot.merge(labels, on="customer_id", validate="one_to_one")


@pytest.fixture(scope="module")
def loaded() -> ChurnCLV:
    return ChurnCLV.load(SMALL_SCORER)


def test_parameters_are_the_scorer_configs_fields_with_its_defaults() -> None:
    params = inspect.signature(ChurnCLV).parameters
    fields = {f.name: getattr(ScorerConfig(), f.name) for f in dataclasses.fields(ScorerConfig)}
    assert set(params) == {*fields, "tiers"}, "a ScorerConfig field is missing from ChurnCLV.__init__ (or extra)"
    assert all(params[name].default == default for name, default in fields.items())
    assert all(p.kind is inspect.Parameter.KEYWORD_ONLY for p in params.values())
    assert ChurnCLV().scorer_config() == ScorerConfig()


def test_the_choices_the_docstring_lists_are_the_ones_the_parameters_take() -> None:
    # btyd_model listed "paretonbd", which the configuration refuses: Pareto/NBD is "pareto"
    listed = re.findall(r"^    ([\w, ]+) : \{(.+)\}$", ChurnCLV.__doc__ or "", flags=re.MULTILINE)
    assert len(listed) == 5
    for names, choices in listed:
        for name in names.split(", "):
            for choice in re.findall(r'"(\w+)"', choices):
                assert getattr(ChurnCLV(**{name: choice}).scorer_config(), name) == choice  # refused: ConfigError


def test_init_stores_parameters_as_given_and_fit_checks_them(train: pd.DataFrame) -> None:
    est = ChurnCLV(gbm_num_leaves=1, tiers="no such file")  # no validation in __init__ (sklearn's rule)
    assert est.get_params()["gbm_num_leaves"] == 1 and est.tiers == "no such file"
    with pytest.raises(ConfigError, match=r"ChurnCLV parameter gbm_num_leaves: must be >= 2 \(got 1\); fix"):
        est.fit(train)
    with pytest.raises(ConfigError, match="ChurnCLV parameter churn_model: must be one of"):
        ChurnCLV(churn_model="xgboost").scorer_config()


def test_get_params_set_params_and_clone() -> None:
    est = ChurnCLV(gbm_rounds=50, seed=4)
    assert est.set_params(gbm_num_leaves=7, gbm_learning_rate=0.05) is est
    twin = clone(est)
    assert twin is not est and twin.get_params() == est.get_params()
    assert twin.get_params()["gbm_num_leaves"] == 7 and twin.get_params()["gbm_rounds"] == 50
    # what notebook 02 does instead of dataclasses.replace on the config
    changed = clone(est).set_params(gbm_num_leaves=15).scorer_config()
    assert changed == dataclasses.replace(est.scorer_config(), gbm_num_leaves=15)
    with pytest.raises(ValueError, match="Invalid parameter 'num_leaves'"):
        est.set_params(num_leaves=3)
    assert repr(ChurnCLV(gbm_rounds=50)) == "ChurnCLV(gbm_rounds=50)"


def test_applicable_sklearn_checks_pass_and_the_rest_are_named() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the suite warns about each skipped check
        results = check_estimator(_AsIfNumeric(), expected_failed_checks=NOT_APPLICABLE, on_fail=None)
    status = {r["check_name"]: r["status"] for r in results}
    passed = {name for name, s in status.items() if s == "passed"}
    assert {
        "check_estimator_cloneable",
        "check_no_attributes_set_in_init",
        "check_estimators_unfitted",
        "check_do_not_raise_errors_in_init_or_set_params",
        "check_parameters_default_constructible",
        "check_get_params_invariance",
        "check_set_params",
        "check_estimator_repr",
        "check_mixin_order",
    } <= passed
    failed = {name for name, s in status.items() if s == "failed"}
    assert not failed, f"checks that should pass failed: {sorted(failed)}"
    assert {name for name, s in status.items() if s == "xfail"} == set(NOT_APPLICABLE), "update NOT_APPLICABLE"


def test_an_unfitted_estimator_says_so(snapshot: pd.DataFrame, tmp_path: Path) -> None:
    est = ChurnCLV()
    for call in (
        lambda: check_is_fitted(est),
        lambda: est.predict(snapshot, as_of=AS_OF),
        lambda: est.score(snapshot, np.zeros(len(snapshot)), as_of=AS_OF),
        lambda: est.save(tmp_path),
        lambda: ChurnCLV.from_scorer(Scorer()),
    ):
        with pytest.raises(NotFittedError):
            call()


@pytest.mark.slow
def test_fit_is_a_front_over_the_scorer(train: pd.DataFrame, snapshot: pd.DataFrame) -> None:
    est = ChurnCLV(gbm_rounds=20, seed=3)
    before = est.get_params()
    assert est.fit(train, snapshot=snapshot, as_of=AS_OF) is est
    check_is_fitted(est)
    assert est.get_params() == before  # fit changes no parameter
    assert {k for k in vars(est) if k.endswith("_")} == {"scorer_", "config_"}
    assert est.config_ == ScorerConfig(gbm_rounds=20, seed=3)
    scorer = Scorer(config=ScorerConfig(gbm_rounds=20, seed=3)).fit(train, snapshot, as_of=AS_OF)
    state = dict(vars(est))
    ours = est.predict(snapshot, as_of=AS_OF)
    assert vars(est).keys() == state.keys() and all(vars(est)[k] is v for k, v in state.items())  # predict keeps it
    pd.testing.assert_frame_equal(ours, scorer.score(snapshot, as_of=AS_OF))
    assert list(ours.columns) == list(SCORE_COLUMNS) and ours["customer_id"].equals(snapshot["customer_id"])
    refit = clone(est).fit(train, snapshot=snapshot, as_of=AS_OF)  # idempotent
    pd.testing.assert_frame_equal(refit.predict(snapshot, as_of=AS_OF), ours)


def test_a_learned_model_that_cannot_split_is_refused_with_the_fix(train: pd.DataFrame, snapshot: pd.DataFrame) -> None:
    # 80 customers at 2 cutoffs: fewer rows than two leaves of gbm_min_data_in_leaf=100, so every tree was a
    # single leaf and every customer got the same p_churn (churn AUC 0.5 on a 50-customer shop, BTYD 0.96)
    few = snapshot["customer_id"].iloc[:80]
    small_train, small_snapshot = train[train["customer_id"].isin(few)], snapshot[snapshot["customer_id"].isin(few)]
    with pytest.raises(EstimatorInputError, match="made no split on 160 training rows") as refused:
        ChurnCLV(gbm_rounds=20).fit(small_train, snapshot=small_snapshot, as_of=AS_OF)
    assert "gbm_min_data_in_leaf=100" in str(refused.value) and "churn_model='btyd'" in str(refused.value)
    est = ChurnCLV(gbm_rounds=20, gbm_min_data_in_leaf=5).fit(small_train, snapshot=small_snapshot, as_of=AS_OF)
    assert est.scorer_.unsplit_targets() == []
    assert est.predict(small_snapshot, as_of=AS_OF, reasons=False)["p_churn"].nunique() > 10


def test_fit_without_a_snapshot_fits_btyd_at_the_latest_cutoff(train: pd.DataFrame) -> None:
    est = ChurnCLV(**BTYD_ONLY).fit(train)
    last = pd.to_datetime(train["cutoff"]).max()
    assert est.scorer_.metadata_["as_of"] == str(last.date())
    rows = train[pd.to_datetime(train["cutoff"]) == last]
    assert est.scorer_.metadata_["snapshot_customers"] == len(rows)
    expected = Scorer(config=ScorerConfig(**BTYD_ONLY)).fit(train, rows.drop(columns=["cutoff"]), as_of=last)
    assert est.scorer_.btyd_.params_ == expected.btyd_.params_


def test_a_tier_policy_parameter_is_not_fitted_in_place(train: pd.DataFrame) -> None:
    policy = TierPolicy()
    est = ChurnCLV(**BTYD_ONLY, tiers=policy).fit(train)
    assert not hasattr(policy, "cut_points_") and est.tiers is policy
    assert hasattr(est.scorer_.tiers_, "cut_points_")


@pytest.fixture(scope="module")
def batch_scores(loaded: ChurnCLV, snapshot: pd.DataFrame) -> pd.DataFrame:
    return loaded.predict(snapshot, as_of=AS_OF, reasons=False).set_index("customer_id")


@settings(
    max_examples=min(15, settings.default.max_examples), deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
@given(rows=st.lists(st.integers(0, 1_499), min_size=1, max_size=80, unique=True))
def test_predict_is_row_order_and_subset_invariant(
    rows: list[int], loaded: ChurnCLV, snapshot: pd.DataFrame, batch_scores: pd.DataFrame
) -> None:
    """A customer's score never depends on who else is scored, nor in which order."""
    part = snapshot.iloc[rows]
    scores = loaded.predict(part, as_of=AS_OF, reasons=False)
    assert scores["customer_id"].tolist() == part["customer_id"].tolist()  # the input's order
    pd.testing.assert_frame_equal(scores.set_index("customer_id"), batch_scores.loc[part["customer_id"]])


def test_score_is_the_churn_roc_auc(loaded: ChurnCLV, labelled: pd.DataFrame) -> None:
    p_churn = loaded.predict(labelled, as_of=AS_OF, reasons=False)["p_churn"]
    expected = roc_auc_score(labelled["churned"].astype(int), p_churn)
    assert loaded.score(labelled, as_of=AS_OF) == pytest.approx(expected, abs=1e-12)
    assert 0.6 < expected < 1  # a real model on a real world: better than chance


def test_fit_and_score_take_y(loaded: ChurnCLV, labelled: pd.DataFrame, train: pd.DataFrame) -> None:
    flipped = ~labelled["churned"].astype(bool)
    assert loaded.score(labelled, flipped, as_of=AS_OF) == pytest.approx(1 - loaded.score(labelled, as_of=AS_OF))
    # y is ignored by fit (the labels are columns of X), as scikit-learn's unsupervised estimators do
    a = ChurnCLV(**BTYD_ONLY).fit(train, train["churned"])
    assert a.scorer_.btyd_.params_ == ChurnCLV(**BTYD_ONLY).fit(train).scorer_.btyd_.params_


def test_score_on_a_training_frame_scores_each_cutoff_as_of_itself(loaded: ChurnCLV, train: pd.DataFrame) -> None:
    parts = []
    for cutoff, rows in train.groupby("cutoff"):
        parts.append(pd.Series(loaded.predict(rows, as_of=cutoff, reasons=False)["p_churn"].to_numpy(), rows.index))
    p = pd.concat(parts).loc[train.index]
    assert loaded.score(train) == pytest.approx(roc_auc_score(train["churned"].astype(int), p), abs=1e-12)


def test_save_load_round_trip_is_the_scorers_pickle_free_folder(
    loaded: ChurnCLV, snapshot: pd.DataFrame, tmp_path: Path
) -> None:
    loaded.save(tmp_path / "m")
    Scorer.load(SMALL_SCORER).save(tmp_path / "by_scorer")
    for path in (tmp_path / "by_scorer").iterdir():  # byte for byte what Scorer.save writes
        assert (tmp_path / "m" / path.name).read_bytes() == path.read_bytes()
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == sorted(p.name for p in SMALL_SCORER.iterdir())
    back = ChurnCLV.load(tmp_path / "m")
    assert back.get_params() == loaded.get_params() and back.tiers is None  # the shipped tier defaults
    assert loaded.get_params()["gbm_rounds"] == 20  # make_small_scorer.py's setting, read back
    pd.testing.assert_frame_equal(back.predict(snapshot, as_of=AS_OF), Scorer.load(SMALL_SCORER).score(snapshot))


def test_a_btyd_model_saved_over_a_learned_one_leaves_no_booster(
    loaded: ChurnCLV, train: pd.DataFrame, tmp_path: Path
) -> None:
    # the learned model's .lgb.txt files stayed beside the new scorer.json (and went to MLflow with it)
    loaded.save(tmp_path / "m")
    ChurnCLV(**BTYD_ONLY).fit(train).save(tmp_path / "m")
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == ["scorer.json"]
    assert ChurnCLV.load(tmp_path / "m").churn_model == "btyd"


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda e, s, t: e.predict(s.to_numpy(), as_of=AS_OF), "X must be a pandas DataFrame with named columns"),
        (lambda e, s, t: e.predict(s.drop(columns="customer_id"), as_of=AS_OF), r"missing columns \['customer_id'\]"),
        (lambda e, s, t: e.predict(s), "pass as_of"),
        (lambda e, s, t: e.predict(s.drop(columns="frequency"), as_of=AS_OF), r"missing columns \['frequency'\]"),
        (lambda e, s, t: e.score(s, as_of=AS_OF), r"missing columns \['churned'\]; join the labels"),
        (lambda e, s, t: e.score(s, np.ones(len(s)), as_of=AS_OF), "one class only"),
        (lambda e, s, t: e.score(s, np.ones(3), as_of=AS_OF), "X has 1500 rows but y has 3"),
        (lambda e, s, t: e.score(s, np.arange(len(s)) % 2), "no cutoff column: pass as_of"),
        (lambda e, s, t: ChurnCLV().fit(t.drop(columns="spend")), r"missing columns \['spend'\]"),
        (lambda e, s, t: ChurnCLV().fit(t, snapshot=s), "snapshot was given without as_of"),
        (lambda e, s, t: ChurnCLV().fit(t, as_of=AS_OF), "no snapshot was given: pass snapshot="),
    ],
)
def test_bad_input_is_refused_naming_the_column_and_the_fix(
    call, message: str, loaded: ChurnCLV, snapshot: pd.DataFrame, train: pd.DataFrame
) -> None:
    with pytest.raises(EstimatorInputError, match=message) as info:
        call(loaded, snapshot, train)
    assert isinstance(info.value, ValueError)
    assert not any(cid in str(info.value) for cid in snapshot["customer_id"].head(20))  # no customer data


def test_inputs_that_disagree_on_dates_are_refused(
    small_world: Path, train: pd.DataFrame, snapshot: pd.DataFrame
) -> None:
    fit = ChurnCLV(gbm_rounds=5).fit
    # labels over 90 days for a 30-day model: its churn would be the 90-day churn
    with pytest.raises(EstimatorInputError, match=r"X holds labels over 90 days but the model predicts 30 days"):
        ChurnCLV(horizon_days=30, gbm_rounds=5).fit(train, snapshot=snapshot, as_of=AS_OF)
    # labels that close after the as-of the model is fitted at: the future leaks into it
    early = AS_OF - pd.Timedelta(days=60)
    with pytest.raises(EstimatorInputError, match=r"X's labels run to 2025-10-02, after as_of=2025-08-03"):
        fit(train, snapshot=compute_features(small_world, early), as_of=early)
    # a snapshot of another date than the as-of given
    with pytest.raises(EstimatorInputError, match=r"snapshot holds features as of 2025-11-01, not as_of=2025-10-02"):
        fit(train, snapshot=compute_features(small_world, AS_OF + pd.Timedelta(days=30)), as_of=AS_OF)


def test_predict_refuses_features_of_another_date_than_its_as_of(
    small_world: Path, loaded: ChurnCLV, snapshot: pd.DataFrame
) -> None:
    # a reviewer's notebook: features as of one date scored as of a quarter later, without a word
    later = AS_OF + pd.Timedelta(days=91)
    with pytest.raises(EstimatorInputError, match=r"X holds features as of 2025-10-02, not as_of=2026-01-01"):
        loaded.predict(snapshot, as_of=later)
    assert len(loaded.predict(snapshot.head(5), as_of=AS_OF)) == 5  # its own date: scored


@pytest.mark.parametrize("as_of", ["now", "today", "30/09/2025", "garbage", "2025-10-02T12:00"])
def test_an_as_of_that_is_not_an_iso_day_is_refused_and_the_clock_never_read(
    as_of: str, loaded: ChurnCLV, snapshot: pd.DataFrame, train: pd.DataFrame, labelled: pd.DataFrame
) -> None:
    """The Python API reads as-of strings as the feature jobs do: ISO 8601 days only ('now' would
    read the clock, '30/09/2025' is a guess at the order of day and month)."""
    for call in (
        lambda: loaded.predict(snapshot.head(5), as_of=as_of),
        lambda: loaded.score(labelled, as_of=as_of),
        lambda: ChurnCLV(gbm_rounds=5).fit(train, snapshot=snapshot, as_of=as_of),
        lambda: loaded.scorer_.score_with_own_level(snapshot.head(5), as_of=as_of),
    ):
        with pytest.raises(FeatureError, match=r"as_of='.*' (is not a date|has a time of day)"):
            call()


def test_an_iso_string_a_date_and_a_midnight_timestamp_give_the_same_scores(
    loaded: ChurnCLV, snapshot: pd.DataFrame
) -> None:
    day = pd.Timestamp(AS_OF)
    a, b, c = (loaded.predict(snapshot.head(50), as_of=x, reasons=False) for x in (str(day.date()), day.date(), day))
    pd.testing.assert_frame_equal(a, b)
    pd.testing.assert_frame_equal(a, c)
