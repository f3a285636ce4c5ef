"""Tests for churnclv.models.treeshap: contributions equal LightGBM's pred_contrib, routing equals
pred_leaf, and a brute-force Shapley oracle on hand-made trees checks the formula itself."""

from __future__ import annotations

import itertools
import math
from typing import Any

import lightgbm as lgb
import numba
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from churnclv.models import treeshap, treeshap_kernels
from churnclv.models.lightgbm_trees import UnsupportedModel
from churnclv.models.treeshap import FastTreeShap

K_ZERO = float(np.float32(1e-35))  # LightGBM's kZeroThreshold
# Values at every boundary LightGBM's routing treats specially.
EDGE_VALUES = np.array(
    [0.0, -0.0, 1e-36, -1e-36, K_ZERO, -K_ZERO, 2e-35, -2e-35, np.nan, np.inf, -np.inf, 1e300, -1e300]
)


def assert_matches(booster: lgb.Booster, M: np.ndarray, **kwargs: Any) -> FastTreeShap:
    """Contributions, expected value and leaf routing all agree with LightGBM on M."""
    ex = FastTreeShap.from_booster(booster, **kwargs)
    ref = booster.predict(M, pred_contrib=True)
    ours = ex.contributions(M)
    scale = max(1.0, float(np.abs(ref).max()))
    np.testing.assert_allclose(ours, ref[:, :-1], rtol=0, atol=1e-9 * scale)
    np.testing.assert_allclose(ex.expected_value, ref[0, -1], rtol=0, atol=1e-9 * scale)
    np.testing.assert_array_equal(ex.leaf_indices(M), booster.predict(M, pred_leaf=True))
    return ex


def missing_types(booster: lgb.Booster) -> set[int]:
    """Missing types (decision_type bits 2-3) of the booster's numerical splits."""
    out = set()
    for tree in booster.dump_model()["tree_info"]:
        stack = [tree["tree_structure"]]
        while stack:
            node = stack.pop()
            if "split_index" in node:
                if node["decision_type"] == "<=":
                    out.add({"None": 0, "Zero": 1, "NaN": 2}[node["missing_type"]])
                stack += [node["left_child"], node["right_child"]]
    return out


def edge_rows(X: np.ndarray, rng: np.random.Generator, n: int = 300) -> np.ndarray:
    """Rows of X with random cells replaced by EDGE_VALUES."""
    rows = X[rng.integers(0, len(X), n)].copy()
    mask = rng.random(rows.shape) < 0.3
    rows[mask] = rng.choice(EDGE_VALUES, mask.sum())
    return rows


def make_data(n: int, p: int, seed: int, nan: float = 0.1, zeros: float = 0.2) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, p))
    X[rng.random((n, p)) < zeros] = 0.0
    signal = np.nan_to_num(X[:, 0]) - 0.7 * np.nan_to_num(X[:, 1 % p]) + (X[:, -1] == 0)
    X[rng.random((n, p)) < nan] = np.nan
    y = (signal + rng.normal(size=n) > 0.3).astype(float)
    return X, y


def train(
    X: np.ndarray, y: np.ndarray, rounds: int = 15, categorical: list[int] | None = None, **params: Any
) -> lgb.Booster:
    base = {
        "objective": "binary",
        "num_leaves": 15,
        "verbose": -1,
        "min_data_in_leaf": 10,
        "deterministic": True,
        "num_threads": 1,
    }
    ds = lgb.Dataset(X, y, categorical_feature=categorical or "auto")
    return lgb.train({**base, **params}, ds, num_boost_round=rounds)


# ---- hand-made trees and a brute-force oracle -----------------------------------------------

# Trees as LightGBM stores them; leaf values are v, counts are training rows.
HAND_TREES: list[dict[str, list[Any]]] = [
    # a single leaf: only the expected value
    {
        "split_feature": [],
        "threshold": [],
        "left_child": [],
        "right_child": [],
        "leaf_value": [0.5],
        "leaf_count": [100],
        "internal_count": [],
    },
    # a stump
    {
        "split_feature": [0],
        "threshold": [0.25],
        "left_child": [-1],
        "right_child": [-2],
        "leaf_value": [-1.0, 2.0],
        "leaf_count": [30, 70],
        "internal_count": [100],
    },
    # feature 1 twice on one path, then feature 2
    {
        "split_feature": [1, 1, 2],
        "threshold": [0.0, 0.5, -0.5],
        "left_child": [-1, 2, -3],
        "right_child": [1, -2, -4],
        "leaf_value": [1.0, -2.0, 3.0, -4.0],
        "leaf_count": [40, 25, 20, 15],
        "internal_count": [100, 60, 35],
    },
    # four features, with feature 0 at the root and again deeper (a different slot order)
    {
        "split_feature": [0, 3, 2, 0, 1],
        "threshold": [0.0, 0.3, -0.2, 0.7, 0.1],
        "left_child": [1, -1, 3, -3, -5],
        "right_child": [2, -2, 4, -4, -6],
        "leaf_value": [0.3, -0.8, 1.7, -0.1, 0.9, -2.2],
        "leaf_count": [11, 29, 13, 7, 21, 19],
        "internal_count": [100, 40, 60, 20, 40],
    },
]


def model_text(trees: list[dict[str, list[Any]]], n_features: int) -> str:
    """LightGBM model text for numerical trees (missing type NaN, default right)."""
    names = " ".join(f"f{i}" for i in range(n_features))
    lines = [
        "tree",
        "version=v4",
        "num_class=1",
        "num_tree_per_iteration=1",
        "label_index=0",
        f"max_feature_idx={n_features - 1}",
        "objective=regression",
        f"feature_names={names}",
        "feature_infos=" + " ".join(["[-1:1]"] * n_features),
        "",
    ]
    for t, tree in enumerate(trees):
        n_split = len(tree["split_feature"])
        lines += [f"Tree={t}", f"num_leaves={n_split + 1}", "num_cat=0"]
        for key in (
            "split_feature",
            "threshold",
            "left_child",
            "right_child",
            "leaf_value",
            "leaf_count",
            "internal_count",
        ):
            lines.append(f"{key}=" + " ".join(repr(v) for v in tree[key]))
        lines += [
            "split_gain=" + " ".join(["1"] * n_split),
            "decision_type=" + " ".join(["8"] * n_split),
            "leaf_weight=" + " ".join(str(c) for c in tree["leaf_count"]),
            "internal_value=" + " ".join(["0"] * n_split),
            "internal_weight=" + " ".join(str(c) for c in tree["internal_count"]),
            "is_linear=0",
            "shrinkage=1",
            "",
            "",
        ]
    return "\n".join([*lines, "end of trees", ""])


def brute_force_shap(trees: list[dict[str, list[Any]]], x: np.ndarray) -> np.ndarray:
    """Shapley values of the path-dependent expectation E[f | x_S] (Lundberg et al. 2018, eq. 2
    with the tree's training counts as the conditional distribution), by enumerating subsets."""

    def expectation(tree: dict[str, list[Any]], S: set[int], node: int = 0) -> float:
        if not tree["split_feature"]:
            return tree["leaf_value"][0]
        if node < 0:
            return tree["leaf_value"][~node]
        f = tree["split_feature"][node]
        left, right = tree["left_child"][node], tree["right_child"][node]
        if f in S:
            return expectation(tree, S, left if x[f] <= tree["threshold"][node] else right)

        def count(c: int) -> float:
            return tree["internal_count"][c] if c >= 0 else tree["leaf_count"][~c]

        return (count(left) * expectation(tree, S, left) + count(right) * expectation(tree, S, right)) / count(node)

    p = len(x)
    phi = np.zeros(p)
    for i in range(p):
        others = [j for j in range(p) if j != i]
        for size in range(p):
            weight = math.factorial(size) * math.factorial(p - size - 1) / math.factorial(p)
            for S in itertools.combinations(others, size):
                with_i = sum(expectation(t, set(S) | {i}) for t in trees)
                without = sum(expectation(t, set(S)) for t in trees)
                phi[i] += weight * (with_i - without)
    return phi


def test_hand_made_trees_match_brute_force_shapley_and_pred_contrib() -> None:
    text = model_text(HAND_TREES, 4)
    booster = lgb.Booster(model_str=text)
    grid = [-1.0, -0.3, 0.05, 0.4, 0.8]  # on both sides of every threshold
    M = np.array(list(itertools.product(grid, repeat=4)))
    leaves = booster.predict(M, pred_leaf=True)
    for t, tree in enumerate(HAND_TREES):  # every leaf of every tree is reached
        assert set(leaves[:, t]) == set(range(len(tree["leaf_value"])))
    ex = FastTreeShap.from_model_string(text)
    ours = ex.contributions(M)
    oracle = np.array([brute_force_shap(HAND_TREES, x) for x in M[::7]])
    np.testing.assert_allclose(ours[::7], oracle, rtol=0, atol=1e-12)
    assert_matches(booster, M)
    # A single-leaf tree only moves the expected value: 0.5 + 0.3*(-1) + 0.7*2 + ...
    assert ex.expected_value == pytest.approx(booster.predict(M[:1], pred_contrib=True)[0, -1])
    assert ex.n_trees_ == 4 and ex.max_path_depth_ == 3


def test_all_group_sizes_agree() -> None:
    """Merging leaves into groups (any group_bits) never changes the result beyond rounding."""
    X, y = make_data(2_000, 6, seed=1)
    booster = train(X, y, num_leaves=31, max_depth=6)
    M = edge_rows(X, np.random.default_rng(1))
    ref = FastTreeShap.from_booster(booster, group_bits=0).contributions(M)
    for bits in (1, 3, 6, 10, 14):
        ex = FastTreeShap.from_booster(booster, group_bits=bits)
        np.testing.assert_allclose(ex.contributions(M), ref, rtol=0, atol=1e-12)


# ---- equality with pred_contrib ---------------------------------------------------------------


def test_binary_with_nan_matches_and_every_leaf_is_reached() -> None:
    X, y = make_data(3_000, 8, seed=2)
    booster = train(X, y, rounds=30, num_leaves=31, max_depth=6)
    assert missing_types(booster) == {2}  # NaN
    M = np.vstack([X, edge_rows(X, np.random.default_rng(2))])
    leaves = booster.predict(M, pred_leaf=True)
    for t, tree in enumerate(booster.dump_model()["tree_info"]):
        assert len(set(leaves[:, t])) == tree["num_leaves"], f"tree {t}: a leaf is never reached"
    assert_matches(booster, M)


@pytest.mark.parametrize("use_missing", [True, False])
def test_zero_as_missing_matches(use_missing: bool) -> None:
    X, y = make_data(2_000, 5, seed=3, zeros=0.4)
    booster = train(X, y, zero_as_missing=True, use_missing=use_missing)
    assert missing_types(booster) == ({1} if use_missing else {0})
    assert_matches(booster, edge_rows(X, np.random.default_rng(3), n=600))


def test_use_missing_false_reads_nan_as_zero() -> None:
    X, y = make_data(2_000, 5, seed=4)
    booster = train(X, y, use_missing=False)
    assert missing_types(booster) == {0}
    assert_matches(booster, edge_rows(X, np.random.default_rng(4), n=600))


def test_zero_threshold_boundary() -> None:
    """|x| <= kZeroThreshold reads as 0.0 (the C API drops it), so -kZeroThreshold itself goes
    where 0 goes, not left of a split at -kZeroThreshold."""
    X, y = make_data(3_000, 3, seed=5, zeros=0.4)
    booster = train(X, y)
    thresholds = {t for tree in booster.dump_model()["tree_info"] for t in _thresholds(tree)}
    assert -K_ZERO in thresholds
    M = np.array(list(itertools.product(EDGE_VALUES, repeat=3)))
    assert_matches(booster, M)


def _thresholds(tree: dict[str, Any]) -> list[float]:
    out, stack = [], [tree["tree_structure"]]
    while stack:
        node = stack.pop()
        if "split_index" in node:
            if node["decision_type"] == "<=":
                out.append(node["threshold"])
            stack += [node["left_child"], node["right_child"]]
    return out


def test_categorical_matches_with_unseen_nan_and_odd_codes() -> None:
    rng = np.random.default_rng(6)
    n = 3_000
    cat = rng.integers(0, 40, n).astype(float)  # codes past 31: a two-word bitset
    x = rng.normal(size=n)
    y = (np.isin(cat, [0, 3, 5, 33, 38]) * 2.0 + x + rng.normal(size=n) > 1).astype(float)
    X = np.column_stack([cat, x, rng.integers(0, 3, n)])
    booster = train(X, y, rounds=20, categorical=[0, 2], min_data_per_group=10, cat_smooth=1.0, max_cat_to_onehot=2)
    # Category 0 goes left at some split with no NaN missing type: NaN must still go right.
    splits = _categorical_splits(booster)
    assert any(0 in cats and missing != "NaN" for cats, missing in splits)
    odd = [np.nan, -0.5, -1.0, -3.0, 2.7, 39.0, 40.0, 63.0, 64.0, 1000.0, 2.0**31 - 1, 2.0**31, 1e10, np.inf, -np.inf]
    M = np.array(
        [[c, v, d] for c in [*odd, 0.0, 3.0, 33.0] for v in (-1.0, 0.5, np.nan) for d in (0.0, 1.0, 7.0, np.nan)]
    )
    assert_matches(booster, np.vstack([X[:500], M]))


def _categorical_splits(booster: lgb.Booster) -> list[tuple[set[int], str]]:
    out, stack = [], [t["tree_structure"] for t in booster.dump_model()["tree_info"]]
    while stack:
        node = stack.pop()
        if "split_index" in node:
            if node["decision_type"] == "==":
                out.append(({int(c) for c in str(node["threshold"]).split("||")}, node["missing_type"]))
            stack += [node["left_child"], node["right_child"]]
    return out


@pytest.mark.parametrize("objective", ["poisson", "tweedie", "regression"])
def test_regression_objectives_match(objective: str) -> None:
    X, _ = make_data(2_000, 6, seed=7)
    rng = np.random.default_rng(7)
    y = rng.poisson(np.exp(0.5 * np.nan_to_num(X[:, 0]) - 0.3 * np.nan_to_num(X[:, 2])))
    y = y * np.exp(rng.normal(size=len(y))) if objective == "tweedie" else y.astype(float)
    booster = train(X, y, rounds=20, objective=objective, num_leaves=20)
    assert_matches(booster, edge_rows(X, rng))


def test_depth_one_and_single_leaf_trees() -> None:
    X, y = make_data(1_000, 4, seed=8)
    assert_matches(train(X, y, num_leaves=2), edge_rows(X, np.random.default_rng(8)))
    # No split is allowed: LightGBM keeps one single-leaf tree.
    constant = train(X, y, min_data_in_leaf=800)
    ex = assert_matches(constant, X[:50])
    assert ex.n_trees_ >= 1 and not ex.contributions(X[:50]).any()


def test_random_forest_sums_trees_like_pred_contrib() -> None:
    """LightGBM 4 averages rf trees in transformed predictions only; raw scores and
    pred_contrib are sums."""
    X, y = make_data(1_000, 4, seed=9)
    booster = train(X, y, boosting="rf", bagging_fraction=0.7, bagging_freq=1, rounds=8)
    assert_matches(booster, edge_rows(X, np.random.default_rng(9)))


def test_float32_input_matches() -> None:
    X, y = make_data(1_000, 4, seed=10)
    booster = train(X, y)
    assert_matches(booster, X[:200].astype(np.float32))


@settings(
    max_examples=min(60, settings.default.max_examples), deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
@given(
    seed=st.integers(0, 2**16),
    n=st.integers(60, 400),
    p=st.integers(1, 5),
    nan=st.sampled_from([0.0, 0.15]),
    zeros=st.sampled_from([0.0, 0.3]),
    categorical=st.booleans(),
    objective=st.sampled_from(["binary", "regression", "poisson"]),
    num_leaves=st.integers(2, 24),
    max_depth=st.sampled_from([-1, 1, 2, 4]),
    min_data_in_leaf=st.integers(1, 20),
    zero_as_missing=st.booleans(),
    use_missing=st.booleans(),
    rounds=st.integers(1, 6),
    group_bits=st.integers(0, 12),
)
def test_property_matches_pred_contrib(
    seed: int,
    n: int,
    p: int,
    nan: float,
    zeros: float,
    categorical: bool,
    objective: str,
    num_leaves: int,
    max_depth: int,
    min_data_in_leaf: int,
    zero_as_missing: bool,
    use_missing: bool,
    rounds: int,
    group_bits: int,
) -> None:
    X, y = make_data(n, p, seed, nan=nan, zeros=zeros)
    rng = np.random.default_rng(seed)
    cats = None
    if categorical:
        X[:, 0] = np.where(np.isnan(X[:, 0]), np.nan, rng.integers(0, 12, n))
        cats = [0]
    if objective == "poisson":
        y = rng.poisson(1.0 + y).astype(float)
    y[:2] = [0.0, 1.0]
    booster = train(
        X,
        y,
        rounds=rounds,
        categorical=cats,
        objective=objective,
        num_leaves=num_leaves,
        max_depth=max_depth,
        min_data_in_leaf=min_data_in_leaf,
        min_data_per_group=1,
        cat_smooth=1.0,
        zero_as_missing=zero_as_missing,
        use_missing=use_missing,
    )
    assert_matches(booster, np.vstack([X, edge_rows(X, rng, n=50)]), group_bits=group_bits)


# ---- top_positive ---------------------------------------------------------------------------


def test_top_positive_equals_stable_argsort_of_pred_contrib() -> None:
    X, y = make_data(2_000, 12, seed=11)
    booster = train(X, y, rounds=20)
    M = edge_rows(X, np.random.default_rng(11), n=400)
    contrib = booster.predict(M, pred_contrib=True)[:, :-1]
    ex = FastTreeShap.from_booster(booster)
    k = 12  # as many as features: every row is padded
    idx, val = ex.top_positive(M, k)
    order = np.argsort(-contrib, axis=1, kind="stable")
    for i in range(len(M)):
        want = [j for j in order[i] if contrib[i, j] > 0][:k]
        assert list(idx[i, : len(want)]) == want
        assert (idx[i, len(want) :] == -1).all() and (val[i, len(want) :] == 0.0).all()
        np.testing.assert_allclose(val[i, : len(want)], contrib[i, want], rtol=0, atol=1e-12)
    assert (idx == -1).any()  # some padding was exercised
    idx3, val3 = ex.top_positive(M, 3)
    np.testing.assert_array_equal(idx3, idx[:, :3])
    np.testing.assert_array_equal(val3, val[:, :3])


def test_top_positive_breaks_ties_by_lower_feature_index() -> None:
    stump = {
        "threshold": [0.0],
        "left_child": [-1],
        "right_child": [-2],
        "leaf_value": [-1.0, 1.0],
        "leaf_count": [50, 50],
        "internal_count": [100],
    }
    trees = [{**stump, "split_feature": [f]} for f in (3, 1, 0)]  # features 0, 1, 3 tie; 2 unused
    ex = FastTreeShap.from_model_string(model_text(trees, 4))
    M = np.array([[1.0, 1.0, 1.0, 1.0], [-1.0, 1.0, 0.0, 1.0], [-1.0, -1.0, 5.0, -1.0]])
    contrib = ex.contributions(M)
    assert contrib[0, 0] == contrib[0, 1] == contrib[0, 3] > 0
    idx, val = ex.top_positive(M, 4)
    np.testing.assert_array_equal(idx, [[0, 1, 3, -1], [1, 3, -1, -1], [-1, -1, -1, -1]])
    np.testing.assert_array_equal(val, [[1.0, 1.0, 1.0, 0.0], [1.0, 1.0, 0.0, 0.0], [0.0] * 4])
    with pytest.raises(ValueError, match="k must be at least 1"):
        ex.top_positive(M, 0)


# ---- refusals and validation ------------------------------------------------------------------


def test_refuses_paths_deeper_than_the_limit() -> None:
    X, y = make_data(2_000, 8, seed=12)
    booster = train(X, y, num_leaves=31, max_depth=-1, min_data_in_leaf=5)
    deep = FastTreeShap.from_booster(booster).max_path_depth_
    assert deep >= 4
    with pytest.raises(UnsupportedModel, match=r"path with \d+ distinct features, more than max_depth_limit=3"):
        FastTreeShap.from_booster(booster, max_depth_limit=3)
    assert FastTreeShap.from_booster(booster, max_depth_limit=deep).max_path_depth_ == deep


def test_refuses_table_budget_and_lowers_group_bits_to_fit() -> None:
    X, y = make_data(2_000, 8, seed=13)
    booster = train(X, y, num_leaves=31, max_depth=6)
    plain = FastTreeShap.from_booster(booster, group_bits=0)
    with pytest.raises(UnsupportedModel, match="max_table_bytes=1,000"):
        FastTreeShap.from_booster(booster, max_table_bytes=1_000)
    merged = FastTreeShap.from_booster(booster, group_bits=14)
    assert merged.table_bytes_ > plain.table_bytes_
    squeezed = FastTreeShap.from_booster(booster, group_bits=14, max_table_bytes=plain.table_bytes_)
    assert squeezed.table_bytes_ <= plain.table_bytes_
    assert_matches(booster, X[:300], group_bits=14, max_table_bytes=plain.table_bytes_)


def test_refuses_linear_trees() -> None:
    X, y = make_data(1_000, 3, seed=14, nan=0.0)
    booster = train(X, y, objective="regression", linear_tree=True)
    with pytest.raises(UnsupportedModel, match="linear tree"):
        FastTreeShap.from_booster(booster)


def test_refuses_multiclass() -> None:
    X, _ = make_data(600, 3, seed=15)
    y = np.arange(600) % 3
    booster = train(X, y, objective="multiclass", num_class=3, rounds=2)
    with pytest.raises(UnsupportedModel, match=r"multiclass.*num_class=3"):
        FastTreeShap.from_booster(booster)


def test_rejects_wrong_shapes() -> None:
    X, y = make_data(500, 4, seed=16)
    ex = FastTreeShap.from_booster(train(X, y, rounds=2))
    with pytest.raises(ValueError, match=r"M has shape \(3, 5\).*expecting.*4 columns"):
        ex.contributions(np.zeros((3, 5)))
    with pytest.raises(ValueError, match="2-d"):
        ex.contributions(np.zeros(4))
    assert ex.contributions(np.zeros((0, 4))).shape == (0, 4)


# ---- kernels --------------------------------------------------------------------------------


def test_serial_parallel_and_row_kernels_are_identical() -> None:
    X, y = make_data(3_000, 10, seed=17)
    booster = train(X, y, rounds=20, num_leaves=31)
    ex = FastTreeShap.from_booster(booster).warm_up()
    M = edge_rows(X, np.random.default_rng(17), n=2 * treeshap.SERIAL_MAX_ROWS + 37)
    serial = ex.contributions(M, num_threads=1)
    np.testing.assert_array_equal(ex.contributions(M, num_threads=2), serial)
    np.testing.assert_array_equal(ex.contributions(M), serial)
    few = ex.contributions(M[: treeshap_kernels._ROWWISE_MAX_ROWS])  # row-by-row kernel
    np.testing.assert_array_equal(few, serial[: treeshap_kernels._ROWWISE_MAX_ROWS])
    assert numba.get_num_threads() == numba.config.NUMBA_NUM_THREADS  # restored


def test_compiles_without_a_writable_cache(monkeypatch: pytest.MonkeyPatch) -> None:
    """Where numba finds no writable cache directory it raises at decoration; jit then compiles
    without the cache instead of failing the import."""
    from numba.core import caching, config

    impl = getattr(caching, "CacheImpl", None) or caching._CacheImpl  # renamed in numba 0.6x
    monkeypatch.setattr(impl, "_locator_classes", [])
    monkeypatch.setattr(config, "CACHE_LOCATOR_CLASSES", "", raising=False)

    def add_one(x):  # type: ignore[no-untyped-def]
        return x + 1

    with pytest.raises(RuntimeError, match="no locator available"):
        numba.njit(cache=True)(add_one)
    assert treeshap_kernels.jit(nogil=True)(add_one)(41) == 42
