"""``bench/accuracy_hindsight.py``'s cross-fitting: a customer is never scored by a model that saw them.

The hindsight model adds the rows of earlier cutoffs to each fold's training part. Those rows belong to
customers too: if a scored customer's row of another cutoff reached the training part, a model could
learn that customer's label from it. The test gives every customer a unique code and the same label
at both cutoffs, so memorizing codes would score perfectly; with the rows kept apart, the codes carry
nothing about a left-out customer and the out-of-fold AUC stays at chance.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import lightgbm as lgb
import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

BENCH = Path(__file__).resolve().parents[1] / "bench"
MEMORIZE = {"num_leaves": 255, "min_child_samples": 1, "min_data_in_bin": 1, "max_bin": 1023, "n_estimators": 200}


def _hindsight(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    # the bench imports its sibling scripts (accuracy, common), as when run from bench/; undone after the test
    monkeypatch.syspath_prepend(str(BENCH))
    spec = importlib.util.spec_from_file_location("bench_accuracy_hindsight", BENCH / "accuracy_hindsight.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _cutoff(n: int, y: np.ndarray) -> tuple[pd.DataFrame, np.ndarray]:
    ids = pd.Index([f"{i:05d}" for i in range(n)], name="customer_id")
    return pd.DataFrame({"code": np.arange(n, dtype=float)}, index=ids), y


def test_a_left_out_customer_rows_of_other_cutoffs_never_train_the_model_that_scores_them(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    hs = _hindsight(monkeypatch)
    y = np.random.default_rng(0).integers(0, 2, 1000)
    as_of = _cutoff(1000, y)
    earlier = _cutoff(1000, y)  # the same customers, the same labels: a leak would be read off the code
    auc = roc_auc_score(y, hs.out_of_fold([as_of, earlier], MEMORIZE, (0,), threads=1))
    assert 0.4 < auc < 0.6, f"out-of-fold AUC {auc:.3f}: a scored customer's own rows reached the model"


def test_the_leak_the_test_guards_against_would_show() -> None:
    """A model trained on the same customers' rows of the earlier cutoff reads their labels off the codes."""
    y = np.random.default_rng(0).integers(0, 2, 1000)
    as_of, earlier = _cutoff(1000, y), _cutoff(1000, y)
    model = lgb.LGBMClassifier(**MEMORIZE, verbose=-1, n_jobs=1).fit(*earlier)
    assert roc_auc_score(y, model.predict_proba(as_of[0])[:, 1]) > 0.95
