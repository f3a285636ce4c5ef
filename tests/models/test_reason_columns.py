"""The reasons of a whole frame at once (drivers as arrays) equal the reasons written row by row.

:func:`churnclv.models.reasons.write_reasons` takes the column path for :class:`Drivers` (what the
scorer passes) and the row path for a plain list of contributions; both must choose the same
reasons in the same words, whatever the values (missing, ``-0.0``, repeated, categorical, features
outside the frame), the facts and ``max_reasons``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.special import expit

from churnclv.models.explanations import DriverArrays, Drivers, drivers
from churnclv.models.gbm import GBMChurnClassifier
from churnclv.models.reason_text import PhraseText, row_fields, value_key
from churnclv.models.reasons import write_reasons
from churnclv.models.tier_config import default_tier_config

CONFIG = default_tier_config().reasons
# drivers' features: in the frame (numbers, a category) and not (BTYD's, read from the drivers)
NAMES = (
    "days_since_last_purchase",
    "days_since_last_purchase_rel_gap",
    "frequency",
    "net_spend_trend_90d",
    "tenure_days",
    "gap_mean_days",
    "attr_region",
    "btyd_p_alive",
    "btyd_expected_spend",
)
IN_FRAME = NAMES[:7]


def both_paths(frame: pd.DataFrame, d: Drivers, max_reasons: int) -> tuple[list[list[str]], list[list[str]]]:
    columns = write_reasons(frame, d, config=CONFIG, max_reasons=max_reasons)
    rows = write_reasons(frame, list(d), config=CONFIG, max_reasons=max_reasons)
    return columns, rows


def test_value_keys_part_what_reads_differently() -> None:
    assert value_key(0.0) != value_key(-0.0)  # {x:num} shows "-0"
    assert len({value_key(v) for v in (0.0, 1.0, 1, True, "1")}) == 5
    assert value_key(None) == value_key(float("nan")) == value_key(pd.NA) == value_key(np.float64("nan"))
    assert value_key(2.5) == value_key(2.5)


def test_row_fields_are_the_columns_a_phrase_reads() -> None:
    texts = (
        PhraseText("no purchase for {value:days}, {days_since_last_purchase_rel_gap:gap}"),
        PhraseText("{w} {pct}"),
    )
    assert row_fields(texts, {"w": "30"}) == {"days_since_last_purchase_rel_gap": frozenset({"gap"})}
    # shown as it is, or with a spec of Python's: the value itself matters
    assert row_fields((PhraseText("{a:gap} {a:.0%} {b!r} {c.real}"),), {}) == {"a": None, "b": None, "c": None}
    assert row_fields((PhraseText("{value:{width}}"),), {}) is None  # a field inside a spec: not followed


def _drivers(rng: np.random.Generator, frame: pd.DataFrame, k: int) -> Drivers:
    n = len(frame)
    index = np.stack([rng.permutation(len(NAMES))[:k] for _ in range(n)])
    contributions = rng.choice([-0.7, -0.2, 0.0, -0.0, 0.1, 0.4, 1.3], size=(n, k))
    numbers = np.empty((n, k))
    values = np.empty((n, k), dtype=object)
    for j in range(k):
        for i in range(n):
            name = NAMES[index[i, j]]
            if name in IN_FRAME and name != "attr_region":
                numbers[i, j] = frame[name].iloc[i]
            else:
                numbers[i, j] = rng.choice([np.nan, 0.2, 0.9, 0.9, 41.5])
            values[i, j] = None if np.isnan(numbers[i, j]) else float(numbers[i, j])
            if name == "attr_region":
                level = frame["attr_region"].iloc[i]
                values[i, j] = None if pd.isna(level) else level
    lengths = rng.integers(0, k + 1, n)
    return Drivers(DriverArrays(NAMES, index, contributions, numbers, values, lengths))


def _frame(rng: np.random.Generator, n: int) -> pd.DataFrame:
    def pick(*choices: float) -> np.ndarray:
        return rng.choice(np.asarray(choices, dtype=float), n)

    days = pick(np.nan, 0.0, -0.0, 1.0, 1.0, 12.0, 120.0, 400.0)
    return pd.DataFrame(
        {
            "customer_id": [f"c{i:04d}" for i in range(n)],
            "days_since_last_purchase": days,
            "days_since_last_purchase_rel_gap": np.where(np.isnan(days), np.nan, pick(0.2, 0.9, 1.2, 2.0, 3.04, 6.0)),
            "n_purchase_days": np.where(np.isnan(days), 0.0, pick(1.0, 3.0)),
            # no purchase: a sign-up (no line) or lines that are no purchase (zero amounts, returns)
            "n_lines": np.where(np.isnan(days), pick(0.0, 0.0, 1.0, 4.0), pick(1.0, 5.0)),
            "frequency": pick(np.nan, 0.0, 2.0, 7.0),
            "net_spend_trend_90d": pick(np.nan, 0.5, 1.0, 1.5, 102.5),
            "purchase_days_trend_90d": pick(0.5, 1.0),
            "tenure_days": pick(0.0, 1.0, 40.0, 800.0),
            "gap_mean_days": pick(np.nan, 14.8, 30.0),
            "return_share": pick(0.0, 0.4),
            "attr_region": pd.array(rng.choice(["north", "south_east", None], n), dtype="string"),
        }
    )


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(1, 60), k=st.integers(1, 6), max_reasons=st.integers(1, 5))
def test_the_column_path_writes_what_the_row_path_writes(seed: int, n: int, k: int, max_reasons: int) -> None:
    rng = np.random.default_rng(seed)
    frame = _frame(rng, n)
    columns, rows = both_paths(frame, _drivers(rng, frame, k), max_reasons)
    assert columns == rows


def test_the_lead_reason_tells_a_sign_up_from_lines_without_a_purchase_both_ways() -> None:
    # one tenure for all: the words are chosen per kind of customer, not once per tenure
    frame = pd.DataFrame(
        {
            "customer_id": ["s1", "z1", "s2", "r1"],
            "days_since_last_purchase": [np.nan] * 4,
            "n_purchase_days": [0.0] * 4,
            "n_lines": [0.0, 1.0, 0.0, 2.0],
            "tenure_days": [214.0] * 4,
        }
    )
    d = Drivers(
        DriverArrays(
            ("frequency",),
            np.zeros((4, 1), dtype=np.int64),
            np.full((4, 1), 0.5),
            np.full((4, 1), np.nan),
            np.full((4, 1), None, dtype=object),
            np.ones(4, dtype=np.int64),
        )
    )
    signed_up = ["signed up 214 days ago, no purchase yet — raises the risk"]
    first_seen = ["first seen 214 days ago, no paid purchase yet — raises the risk"]
    columns, rows = both_paths(frame, d, 3)
    assert columns == rows == [signed_up, first_seen, signed_up, first_seen]
    columns, rows = both_paths(frame.iloc[[1, 0, 3, 2]].reset_index(drop=True), d, 3)
    assert columns == rows == [first_seen, signed_up, first_seen, signed_up]


@pytest.fixture(scope="module")
def model_and_frame() -> tuple[GBMChurnClassifier, pd.DataFrame, pd.DataFrame]:
    """A churn model on a frame like the scorer's; BTYD's columns are in its matrix, not in the frame."""
    rng = np.random.default_rng(9)
    frame = _frame(rng, 4000)
    X = frame.drop(columns=["customer_id"]).assign(
        btyd_p_alive=expit(rng.normal(1.0, 1.5, len(frame))), btyd_expected_spend=rng.gamma(2.0, 20.0, len(frame))
    )
    logit = np.nan_to_num(0.01 * (X["days_since_last_purchase"] - 80)) - 2.0 * (X["btyd_p_alive"] - 0.6)
    y = rng.random(len(X)) < expit(logit + np.where((X["attr_region"] == "north").fillna(False), 0.8, 0.0))
    model = GBMChurnClassifier(num_boost_round=40, params={"num_threads": 1}).fit(X, y)
    return model, X, frame


@pytest.mark.parametrize("max_reasons", [1, 3, 4])
def test_a_models_drivers_read_the_same_both_ways(model_and_frame, max_reasons: int) -> None:
    model, X, frame = model_and_frame
    d = drivers(model, X, top_k=3)
    columns, rows = both_paths(frame, d, max_reasons)
    assert columns == rows
    assert sum(map(len, columns)) >= len(frame) * min(max_reasons, 2)  # reasons were said: the check means something
