"""The promotion gate's window: which of the challenger's folds the champion is out of time on, and
the fallback to the logged backtests when there is none (no MLflow: the registry reads are faked)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from churnclv.training import promotion, promotion_window
from churnclv.training.promotion_window import Basis, FoldWindow, common_folds, fold_windows, paired_means

D_OLD = pd.Timestamp("2025-05-25")


def folds(*cutoffs: str, customers: int = 100) -> list[FoldWindow]:
    return [FoldWindow(i + 1, pd.Timestamp(c), customers) for i, c in enumerate(cutoffs)]


def test_folds_on_or_after_the_champions_as_of_are_common() -> None:
    plan = folds("2025-04-27", "2025-05-25", "2025-06-22")  # before, on, after D_old
    assert [f.index for f in common_folds(plan, D_OLD)] == [2, 3]
    # a time of day on the as-of is the same day: the champion saw that whole day
    assert [f.index for f in common_folds(plan, "2025-05-25 18:00")] == [2, 3]


def test_no_fold_after_a_young_champion_is_no_common_window() -> None:
    assert common_folds(folds("2025-04-27", "2025-05-24"), D_OLD) == []
    assert common_folds([], D_OLD) == []


@settings(max_examples=50)
@given(
    offsets=st.lists(st.integers(-200, 200), min_size=0, max_size=6, unique=True),
    champion_offset=st.integers(-200, 200),
)
def test_common_folds_are_exactly_those_the_champion_never_saw(offsets: list[int], champion_offset: int) -> None:
    base = pd.Timestamp("2025-01-01")
    plan = folds(*(str((base + pd.Timedelta(days=o)).date()) for o in sorted(offsets)))
    d_old = base + pd.Timedelta(days=champion_offset)
    common = common_folds(plan, d_old)
    assert {f.index for f in common} == {f.index for f in plan if f.eval_cutoff >= d_old}
    assert [f.index for f in common] == sorted(f.index for f in common)


def test_fold_windows_read_the_logged_backtest_table() -> None:
    table = pd.DataFrame(
        {
            "fold": [1, 1, 2, 2],
            "eval_cutoff": ["2025-06-29", "2025-06-29", "2025-07-27", "2025-07-27"],
            "candidate": ["btyd", "gbm"] * 2,
            "n_eval": [1500, 1500, 1510, 1510],
        }
    )
    assert fold_windows(table) == [
        FoldWindow(1, pd.Timestamp("2025-06-29"), 1500),
        FoldWindow(2, pd.Timestamp("2025-07-27"), 1510),
    ]


def test_paired_means_use_only_folds_where_both_have_the_metric() -> None:
    rows = [
        {"challenger": {"churn_auc": 0.8, "spend_gini": 0.5}, "champion": {"churn_auc": 0.7, "spend_gini": 0.6}},
        {"challenger": {"spend_gini": 0.7}, "champion": {"churn_auc": 0.9, "spend_gini": 0.4}},  # no AUC: no churner
    ]
    ours, theirs = paired_means(rows)
    assert ours == {"churn_auc": 0.8, "spend_gini": pytest.approx(0.6)}
    assert theirs == {"churn_auc": 0.7, "spend_gini": pytest.approx(0.5)}


def _fake_registry(monkeypatch: pytest.MonkeyPatch, *, champion_as_of: str, champion_horizon: int = 28) -> None:
    """Two versions: the challenger trained as of 2025-08-24 with folds at 06-29 and 07-27 (H = 28)."""

    def scorer(as_of: str, horizon: int) -> Any:
        return SimpleNamespace(
            metadata_={"as_of": as_of, "training_sample": {"fraction": None}, "selected": {"churn": "gbm"}},
            config_=SimpleNamespace(horizon_days=horizon),
        )

    scorers = {"2": scorer("2025-08-24", 28), "1": scorer(champion_as_of, champion_horizon)}
    table = pd.DataFrame(
        {"fold": [1, 2], "eval_cutoff": ["2025-06-29", "2025-07-27"], "candidate": "gbm", "n_eval": [1500, 1500]}
    )
    monkeypatch.setattr(promotion_window, "load_scorer", lambda version, name: scorers[version])
    monkeypatch.setattr(promotion_window, "backtest_table", lambda version, name: table)


def test_a_champion_younger_than_the_folds_falls_back_to_the_logged_backtests(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _fake_registry(monkeypatch, champion_as_of="2025-08-10")  # after the latest fold's cutoff 07-27
    basis = promotion_window.compare_on_common_window("unused", challenger="2", champion="1")
    assert not basis.same_window and basis.folds == []
    assert basis.text.startswith("logged backtests (no common window: the champion was trained as of 2025-08-10")
    assert "latest fold's cutoff is 2025-07-27" in basis.text


def test_champion_with_another_horizon_falls_back(monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_registry(monkeypatch, champion_as_of="2025-05-25", champion_horizon=90)
    basis = promotion_window.compare_on_common_window("unused", challenger="2", champion="1")
    assert not basis.same_window and "predicts 90 days ahead, the challenger 28" in basis.reason


def test_data_that_changed_since_training_fall_back(monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_registry(monkeypatch, champion_as_of="2025-05-25")
    seen: dict[str, Any] = {}

    def frames(data: Any, as_of: Any, cutoffs: list[pd.Timestamp], scorer: Any, **kw: Any) -> dict:
        seen.update(as_of=as_of, cutoffs=list(cutoffs), **kw)
        return {c: pd.DataFrame({"customer_id": [str(i) for i in range(1400)]}) for c in cutoffs}

    monkeypatch.setattr(promotion_window, "fold_frames", frames)
    basis = promotion_window.compare_on_common_window("unused", challenger="2", champion="1")
    # both folds are common (cutoffs after the champion's as-of); the frames are asked at the
    # challenger's as-of and horizon
    assert seen["as_of"] == "2025-08-24" and seen["horizon"] == 28
    assert seen["cutoffs"] == [pd.Timestamp("2025-06-29"), pd.Timestamp("2025-07-27")]
    assert not basis.same_window
    assert "fold 1 (2025-06-29) has 1,400 customers now and had 1,500 in its backtest" in basis.reason


def test_same_window_basis_names_the_folds() -> None:
    basis = Basis(
        same_window=True,
        reason="champion trained as of 2025-05-25",
        folds=[
            {"eval_cutoff": "2025-06-29", "customers": 1500},
            {"eval_cutoff": "2025-07-27", "customers": 1510},
        ],
    )
    assert (
        basis.text
        == "same window: folds 2025-06-29, 2025-07-27 (3,010 customer rows; champion trained as of 2025-05-25)"
    )
    assert basis.to_dict()["same_window"] is True


def test_a_metric_undefined_on_the_common_folds_falls_back(monkeypatch: pytest.MonkeyPatch) -> None:
    window = Basis(
        same_window=True,
        reason="r",
        folds=[{"eval_cutoff": "2025-06-29", "customers": 10}],
        challenger={"churn_brier": 0.1, "spend_gini": 0.5},  # no churner in the window: no AUC
        champion={"churn_brier": 0.1, "spend_gini": 0.5},
    )
    monkeypatch.setattr(promotion, "compare_on_common_window", lambda *a, **k: window)
    tol = promotion.DEFAULT_TOLERANCE
    basis = promotion.choose_basis("data", tol, challenger="2", champion="1", name="churnclv")
    assert not basis.same_window and basis.reason.startswith("churn_auc undefined on the common folds")
    no_data = promotion.choose_basis(None, tol, challenger="2", champion="1", name="churnclv")
    assert (
        no_data.text
        == "logged backtests (no common window: no data given to score the champion on the challenger's folds)"
    )
