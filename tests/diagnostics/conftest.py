"""Fixtures of the diagnostics tests: a BTYD model with fixed parameters (no fit) and CDNOW's published
39-week split (the 1/10 sample: calibration to 1997-09-30, holdout to 1998-06-30, weeks)."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from churnclv.datasets import load_cdnow
from churnclv.features import FeatureConfig, compute_features, compute_labels
from churnclv.models.btyd import BTYDModel

CALIBRATION_END, HOLDOUT_END, HOLDOUT_DAYS = "1997-09-30", "1998-06-30", 273  # 39 weeks
# lifetimes (and the papers) count every line as a purchase; CDNOW has a few $0 lines
AS_IN_THE_PAPERS = FeatureConfig(zero_amount_is_purchase=True)


def fixed_btyd(params: dict[str, float], model: str = "bgnbd") -> BTYDModel:
    """A BTYDModel (days) holding ``params``: a quick fit on a tiny summary, its parameters then replaced
    through the saved form, so the tests' numbers follow from ``params`` alone."""
    k = np.arange(40, dtype=float)
    tiny = pd.DataFrame(
        {"frequency": k % 5, "recency": np.where(k % 5 > 0, 10 + k, 0), "T": 60 + k, "monetary_value": 20 + k % 7}
    )
    saved = BTYDModel(model=model).fit(tiny).to_dict()
    saved["fitted"]["params"] = params
    return BTYDModel.from_dict(saved)


@pytest.fixture(scope="session")
def bgnbd() -> BTYDModel:
    """BG/NBD in days with CDNOW-like parameters."""
    return fixed_btyd({"r": 0.25, "alpha": 30.0, "a": 0.8, "b": 2.4})


@pytest.fixture(scope="session")
def cdnow() -> SimpleNamespace:
    """The CDNOW sample: transactions, features at the calibration end, holdout labels, and the
    BG/NBD fit in weeks (the published one: tests/models/test_btyd.py pins its parameters)."""
    tx = load_cdnow("sample")
    features = compute_features({"transactions": tx}, CALIBRATION_END, config=AS_IN_THE_PAPERS)
    labels = compute_labels(
        {"transactions": tx}, CALIBRATION_END, HOLDOUT_DAYS, as_of=HOLDOUT_END, config=AS_IN_THE_PAPERS
    )
    model = BTYDModel(time_unit_days=7).fit(features)
    return SimpleNamespace(transactions=tx, features=features, labels=labels, model=model)
