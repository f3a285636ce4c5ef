"""Exact path-dependent TreeSHAP for LightGBM boosters, fast: Fast TreeSHAP v2 compiled with numba.

LightGBM's ``booster.predict(M, pred_contrib=True)`` runs Algorithm 2 of Lundberg et al. (2018) for
every row: a recursion over each tree that extends and unwinds a path polynomial, O(L D^2) per tree
and row. Fast TreeSHAP v2 (Yang 2021) notices that, for a leaf ``l`` whose root path holds the
distinct features ``P`` (``d = |P|``), the leaf's share of every feature's SHAP value depends on
the row only through ``d`` bits: whether the row follows every split on feature ``j`` of that
path. So the shares are tabulated once per leaf for all ``2**d`` bit patterns, and explaining a
row is one pass over the tree's internal nodes plus a table look-up per leaf, O(L D).

With ``r_j`` the product, over the path's splits on ``j``, of ``count(child taken) / count(node)``
(LightGBM's ``data_count``: training rows, not hessian weights), ``o_j`` the row's bit,
``A = {j in P : o_j = 1}`` and ``w(s, d) = s! (d - s - 1)! / d!``, leaf ``l`` adds to feature ``i``

    v_l (o_i - r_i) * sum_{S subset of A \\ {i}} w(|S|, d) prod_{j in P \\ S \\ {i}} r_j,

the Shapley value of the leaf's path-dependent expectation ``v_l prod_{j in P \\ S} r_j
prod_{j in S} o_j`` (the sum is a polynomial in the ``r_j`` of ``A``, evaluated through its
coefficients). Tables cost ``sum_l 2**d_l d_l`` doubles, so models whose paths hold more than
``max_depth_limit`` distinct features are refused (:class:`UnsupportedModel`) and the caller falls
back to ``pred_contrib``.

Two steps beyond the paper make the per-row work smaller:

* Leaves are merged into groups. The cold masks (bit ``k`` set when the row leaves the path at a
  split on the path's ``k``-th distinct feature) of all leaves under a node ``v`` are determined by
  the cold mask at ``v`` and the row's decisions at the internal nodes under ``v``. Where those
  fit in ``group_bits`` bits, the leaves' tables are summed into one table indexed by that code,
  so the subtree costs one look-up instead of one per leaf. (On a churn-like model, 80 trees of
  31 leaves, this cuts the additions per row from about 12,000 to 2,500.)
* Batches run in blocks of rows, trees outermost, and each node's decisions, the cold masks and
  the codes are computed for the whole block in branch-free loops the compiler vectorizes;
  decisions are coin flips to a branch predictor. A few rows go row by row instead.

Routing reproduces LightGBM 4's ``Tree::Decision`` (``include/LightGBM/tree.h``) on the values the
C API passes it for a dense matrix: ``|x| <= kZeroThreshold`` (``1e-35f``) reads as ``0.0`` (dense
rows are made sparse, dropping those entries); numerical splits send NaN to the default child when
the missing type is NaN and read it as ``0.0`` otherwise; missing type Zero sends ``0.0`` to the
default child; otherwise ``x <= threshold`` goes left. Categorical splits send NaN, negatives
(``int(x) < 0``: ``x <= -1``), values past ``int32`` and categories outside the split's bitset
(unseen ones included) right; ``x`` in ``(-1, 0)`` truncates to category 0.
:meth:`FastTreeShap.leaf_indices` exposes this routing so it can be checked against
``predict(pred_leaf=True)``.

References
----------
Lundberg, S. M., Erion, G. G. and Lee, S.-I. (2018). Consistent individualized feature attribution
for tree ensembles. arXiv:1802.03888.
Yang, J. (2021). Fast TreeSHAP: accelerating SHAP value computation for trees. arXiv:2109.09847.
Ke, G. et al. (2017). LightGBM: a highly efficient gradient boosting decision tree. NeurIPS 30.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numba
import numpy as np

__all__ = [
    "DEFAULT_GROUP_BITS",
    "DEFAULT_MAX_DEPTH_LIMIT",
    "DEFAULT_MAX_TABLE_BYTES",
    "SERIAL_MAX_ROWS",
    "FastTreeShap",
    "UnsupportedModel",
]

logger = logging.getLogger(__name__)

#: Paths with more distinct features than this are refused: tables grow as ``2**d * d`` per leaf.
DEFAULT_MAX_DEPTH_LIMIT = 12
#: Refuse models whose tables would take more memory than this.
DEFAULT_MAX_TABLE_BYTES = 1 << 30
#: Up to this many rows run on the calling thread: starting worker threads costs more than it saves
#: (and the HTTP service explains 1-16 rows at a time).
SERIAL_MAX_ROWS = 256
# Rows per block: a tree's tables are reused across a block while they sit in cache, and its
# decisions are vector loops over the block.
_BLOCK_ROWS = 256
# Up to this many rows, go row by row (see _shap_rows).
_ROWWISE_MAX_ROWS = 16

# LightGBM's kZeroThreshold is the float literal 1e-35f stored in a double.
_K_ZERO = float(np.float32(1e-35))
# decision_type bits (tree.h): 1 categorical, 2 default left, bits 2-3 missing type.
_CATEGORICAL = 1
_DEFAULT_LEFT = 2
_MISSING_ZERO = 1
_MISSING_NAN = 2

#: Leaves under a subtree whose code (cold mask at the subtree's root plus one decision bit per
#: internal node) has at most this many bits share one table: one look-up per row instead of one
#: per leaf. 8 to 12 measured about equally fast on a churn-like model (80 trees of 31 leaves,
#: depth 6), whose tables take about 10 MB at 10.
DEFAULT_GROUP_BITS = 10

# Columns of the int32 node array. Internal nodes are renumbered: first those above the groups
# ("upper"), then those inside groups, each in preorder, so parents come before children and a
# group's nodes are consecutive. Routing: feature, decision_type, category bitset, children
# (internal index or ~leaf). Upper nodes also have the bit of their feature in cold masks and, per
# child, where the child's cold mask goes in the scratch array (an upper node's index, or
# n_upper + group) and the shift that turns it into the group's code (0 for nodes).
(
    _N_FEATURE,
    _N_FLAGS,
    _N_CAT_OFF,
    _N_CAT_LEN,
    _N_LEFT,
    _N_RIGHT,
    _N_SLOT_BIT,
    _N_TARGET_LEFT,
    _N_TARGET_RIGHT,
    _N_SHIFT_LEFT,
    _N_SHIFT_RIGHT,
) = range(11)
# Columns of the int64 group array: table width, offset of its features, table offset, internal
# nodes (the code's low bits).
_G_WIDTH, _G_FEAT_OFF, _G_TABLE_OFF, _G_NODES = range(4)

# numba's workqueue threading layer (used when neither OpenMP nor TBB is found) aborts on
# concurrent parallel launches; with a handful of cores, serializing batch calls costs nothing.
_PARALLEL_LOCK = threading.Lock()


class UnsupportedModel(ValueError):
    """The booster cannot be explained by :class:`FastTreeShap`; use ``pred_contrib`` instead."""


def _jit(**options: Any) -> Callable[[Callable[..., Any]], Any]:
    """``numba.njit`` with an on-disk cache when a cache directory is writable, without otherwise.

    numba raises ``RuntimeError`` at decoration when neither the package's ``__pycache__`` nor the
    user-wide cache directory can be written (read-only installs, no HOME); compiling on first call
    is then the only cost.
    """

    def decorate(fn: Callable[..., Any]) -> Any:
        try:
            return numba.njit(cache=True, **options)(fn)
        except RuntimeError as exc:
            logger.debug("numba cache unavailable for %s (%s); compiling without it", fn.__name__, exc)
            return numba.njit(cache=False, **options)(fn)

    return decorate


# ---- compiled kernels -----------------------------------------------------------------------


@_jit(nogil=True)
def _goes_left(x, flags, threshold, cat_off, cat_len, cat_bits):  # type: ignore[no-untyped-def]
    """LightGBM 4 ``Tree::Decision`` on a value as the dense-matrix C API hands it over."""
    if flags & _CATEGORICAL:
        # int(x) < 0 (x <= -1), NaN and values past int32 (cast to INT_MIN on x86) go right.
        if x > -1.0 and x < 2147483648.0:
            c = np.int64(x)
            word = c >> 5
            if word < cat_len:
                return (np.int64(cat_bits[cat_off + word]) >> (c & 31)) & 1 == 1
        return False
    missing = (flags >> 2) & 3
    if x != x:
        if missing == _MISSING_NAN:
            return (flags & _DEFAULT_LEFT) != 0
        x = 0.0
    elif -_K_ZERO <= x <= _K_ZERO:  # the C API drops these from dense rows: LightGBM reads 0.0
        x = 0.0
    if missing == _MISSING_ZERO and x == 0.0:
        return (flags & _DEFAULT_LEFT) != 0
    return x <= threshold


@_jit(nogil=True)
def _decide(xt, f, n, flags, threshold, cat_off, cat_len, cat_bits, right, v):  # type: ignore[no-untyped-def]
    """``right[v, j] = 1`` when ``xt[f, j]`` goes right at a node (``Tree::Decision``), for a block
    of rows at once: the numerical cases are branch-free loops the compiler vectorizes. (Whole
    arrays and indices, not row views: a view costs reference counting per node.)"""
    if flags & _CATEGORICAL:
        for j in range(n):
            right[v, j] = 0 if _goes_left(xt[f, j], flags, threshold, cat_off, cat_len, cat_bits) else 1
        return
    missing = (flags >> 2) & 3
    default_right = 0 if flags & _DEFAULT_LEFT else 1
    if missing == _MISSING_NAN:
        for j in range(n):
            x = xt[f, j]
            value = 0.0 if (x >= -_K_ZERO) & (x <= _K_ZERO) else x
            right[v, j] = default_right if x != x else np.int32(value > threshold)
    elif missing == _MISSING_ZERO:
        for j in range(n):
            x = xt[f, j]
            zero = (x != x) | ((x >= -_K_ZERO) & (x <= _K_ZERO))
            right[v, j] = default_right if zero else np.int32(x > threshold)
    else:
        for j in range(n):
            x = xt[f, j]
            value = 0.0 if (x != x) | ((x >= -_K_ZERO) & (x <= _K_ZERO)) else x
            right[v, j] = np.int32(value > threshold)


@_jit(nogil=True)
def _shap_block(
    X,
    r0,
    r1,
    out,
    node_off,
    upper,
    group_off,
    node_int,
    node_thr,  # type: ignore[no-untyped-def]
    cat_bits,
    group_int,
    group_feat,
    table,
    max_nodes,
    max_scratch,
):
    """Add every tree's contributions for rows ``r0:r1`` of ``X`` into ``out``.

    Trees are the outer loop so that a tree's tables stay in cache across the block, and each
    step runs over the block's rows at once (feature-major copy of the block): every node's
    decisions; the nodes above the groups pass cold masks down (bit k set when the row leaves
    the path at a split on the path's k-th distinct feature, o_k = 0); the nodes inside a group
    add their decision bits to the group's code; then each row adds the group's table row for
    its code into ``out``.
    """
    nb = r1 - r0
    xt = np.empty((X.shape[1], nb), dtype=np.float64)
    for j in range(nb):
        for f in range(X.shape[1]):
            xt[f, j] = X[r0 + j, f]
    right = np.empty((max(max_nodes, 1), nb), dtype=np.int32)
    scratch = np.empty((max(max_scratch, 1), nb), dtype=np.int32)
    for t in range(node_off.shape[0] - 1):
        n0 = node_off[t]
        n_nodes = node_off[t + 1] - n0
        if n_nodes == 0:
            continue  # a single leaf: only the expected value
        n_upper = upper[t]
        g0 = group_off[t]
        n_groups = group_off[t + 1] - g0
        for v in range(n_nodes):
            g = n0 + v
            _decide(
                xt,
                node_int[g, _N_FEATURE],
                nb,
                node_int[g, _N_FLAGS],
                node_thr[g],
                node_int[g, _N_CAT_OFF],
                node_int[g, _N_CAT_LEN],
                cat_bits,
                right,
                v,
            )
        for j in range(nb):
            scratch[0, j] = 0  # the root's cold mask, or the root group's code
        for v in range(n_upper):
            g = n0 + v
            bit = node_int[g, _N_SLOT_BIT]
            to_left = node_int[g, _N_TARGET_LEFT]
            to_right = node_int[g, _N_TARGET_RIGHT]
            shift_left = node_int[g, _N_SHIFT_LEFT]
            shift_right = node_int[g, _N_SHIFT_RIGHT]
            for j in range(nb):
                cold = scratch[v, j]
                go = right[v, j]
                scratch[to_left, j] = (cold | bit * go) << shift_left
                scratch[to_right, j] = (cold | bit * (1 - go)) << shift_right
        v = n_upper
        for q in range(n_groups):
            gq = g0 + q
            c = n_upper + q
            # a group's internal nodes are consecutive, in preorder: bit i is the i-th node
            for i in range(group_int[gq, _G_NODES]):
                for j in range(nb):
                    scratch[c, j] |= right[v, j] << i
                v += 1
            width = group_int[gq, _G_WIDTH]
            feat = group_int[gq, _G_FEAT_OFF]
            offset = group_int[gq, _G_TABLE_OFF]
            for j in range(nb):
                base = offset + np.int64(scratch[c, j]) * width
                for k in range(width):
                    out[r0 + j, group_feat[feat + k]] += table[base + k]


@_jit(nogil=True)
def _goes_right(X, r, g, node_int, node_thr, cat_bits):  # type: ignore[no-untyped-def]
    """1 when row ``r`` goes right at node ``g``, else 0 (for branch-free mask updates)."""
    return 1 - np.int64(
        _goes_left(
            X[r, node_int[g, _N_FEATURE]],
            node_int[g, _N_FLAGS],
            node_thr[g],
            node_int[g, _N_CAT_OFF],
            node_int[g, _N_CAT_LEN],
            cat_bits,
        )
    )


@_jit(nogil=True)
def _shap_rows(
    X,
    r0,
    r1,
    out,
    node_off,
    upper,
    group_off,
    node_int,
    node_thr,  # type: ignore[no-untyped-def]
    cat_bits,
    group_int,
    group_feat,
    table,
    max_scratch,
):
    """:func:`_shap_block` one row at a time, for a few rows: the block kernel's vector loops
    cost more to set up than they save below a few dozen rows."""
    scratch = np.empty(max(max_scratch, 1), dtype=np.int64)
    for t in range(node_off.shape[0] - 1):
        n0 = node_off[t]
        n_nodes = node_off[t + 1] - n0
        if n_nodes == 0:
            continue  # a single leaf: only the expected value
        n_upper = upper[t]
        g0 = group_off[t]
        n_groups = group_off[t + 1] - g0
        for r in range(r0, r1):
            scratch[0] = 0  # the root's cold mask, or the root group's code
            for v in range(n_upper):
                g = n0 + v
                right = _goes_right(X, r, g, node_int, node_thr, cat_bits)
                cold = scratch[v]
                bit = np.int64(node_int[g, _N_SLOT_BIT])
                scratch[node_int[g, _N_TARGET_LEFT]] = (cold | bit * right) << node_int[g, _N_SHIFT_LEFT]
                scratch[node_int[g, _N_TARGET_RIGHT]] = (cold | bit * (1 - right)) << node_int[g, _N_SHIFT_RIGHT]
            v = n_upper
            for q in range(n_groups):
                gq = g0 + q
                # a group's internal nodes are consecutive, in preorder: bit i is the i-th node
                code = scratch[n_upper + q]
                for i in range(group_int[gq, _G_NODES]):
                    code |= _goes_right(X, r, n0 + v, node_int, node_thr, cat_bits) << i
                    v += 1
                width = group_int[gq, _G_WIDTH]
                feat = group_int[gq, _G_FEAT_OFF]
                base = group_int[gq, _G_TABLE_OFF] + code * width
                for k in range(width):
                    out[r, group_feat[feat + k]] += table[base + k]


@_jit(nogil=True)
def _shap_serial(
    X,
    out,
    node_off,
    upper,
    group_off,
    node_int,
    node_thr,
    cat_bits,  # type: ignore[no-untyped-def]
    group_int,
    group_feat,
    table,
    max_nodes,
    max_scratch,
):
    n = X.shape[0]
    if n <= _ROWWISE_MAX_ROWS:
        _shap_rows(
            X,
            0,
            n,
            out,
            node_off,
            upper,
            group_off,
            node_int,
            node_thr,
            cat_bits,
            group_int,
            group_feat,
            table,
            max_scratch,
        )
        return
    for r0 in range(0, n, _BLOCK_ROWS):
        _shap_block(
            X,
            r0,
            min(n, r0 + _BLOCK_ROWS),
            out,
            node_off,
            upper,
            group_off,
            node_int,
            node_thr,
            cat_bits,
            group_int,
            group_feat,
            table,
            max_nodes,
            max_scratch,
        )


@_jit(nogil=True, parallel=True)
def _shap_parallel(
    X,
    out,
    node_off,
    upper,
    group_off,
    node_int,
    node_thr,
    cat_bits,  # type: ignore[no-untyped-def]
    group_int,
    group_feat,
    table,
    max_nodes,
    max_scratch,
):
    n = X.shape[0]
    n_blocks = (n + _BLOCK_ROWS - 1) // _BLOCK_ROWS
    for b in numba.prange(n_blocks):
        r0 = b * _BLOCK_ROWS
        _shap_block(
            X,
            r0,
            min(n, r0 + _BLOCK_ROWS),
            out,
            node_off,
            upper,
            group_off,
            node_int,
            node_thr,
            cat_bits,
            group_int,
            group_feat,
            table,
            max_nodes,
            max_scratch,
        )


@_jit(nogil=True)
def _route(X, node_off, node_int, node_thr, cat_bits):  # type: ignore[no-untyped-def]
    """Leaf index of every row in every tree (LightGBM's ``pred_leaf``)."""
    n_trees = node_off.shape[0] - 1
    out = np.zeros((X.shape[0], n_trees), dtype=np.int32)
    for r in range(X.shape[0]):
        for t in range(n_trees):
            n0 = node_off[t]
            if node_off[t + 1] == n0:
                continue  # single leaf: leaf 0
            v = 0
            while v >= 0:
                g = n0 + v
                if _goes_left(
                    X[r, node_int[g, _N_FEATURE]],
                    node_int[g, _N_FLAGS],
                    node_thr[g],
                    node_int[g, _N_CAT_OFF],
                    node_int[g, _N_CAT_LEN],
                    cat_bits,
                ):
                    v = node_int[g, _N_LEFT]
                else:
                    v = node_int[g, _N_RIGHT]
            out[r, t] = ~v
    return out


@_jit(nogil=True)
def _fill_leaf_tables(leaf_d, leaf_path_off, leaf_r, leaf_value, leaf_table_off, table):  # type: ignore[no-untyped-def]
    """Tabulate each leaf's contributions for every cold mask (Yang 2021, Fast TreeSHAP v2).

    ``table[off + c * d + i]`` is the leaf's share for its ``i``-th path feature when the row's
    cold mask is ``c`` (bit ``j`` set: the row does not follow the path's splits on feature ``j``).
    """
    coef = np.empty(64, dtype=np.float64)
    weight = np.empty(64, dtype=np.float64)
    for li in range(leaf_d.shape[0]):
        d = leaf_d[li]
        path = leaf_path_off[li]
        off = leaf_table_off[li]
        v = leaf_value[li]
        # w(s, d) = s! (d - s - 1)! / d! = 1 / (d * C(d - 1, s)); binomials are exact in doubles.
        binom = 1.0
        for s in range(d):
            weight[s] = 1.0 / (d * binom)
            binom = binom * (d - 1 - s) / (s + 1)
        for c in range(1 << d):
            for i in range(d):
                # sum over S subset of A\{i} of w(|S|, d) prod_{P\S\{i}} r_j: the coefficients of
                # prod_{j in A\{i}} (z + r_j) weighted by w, times prod_{j not in A, j != i} r_j.
                coef[0] = 1.0
                deg = 0
                outside = 1.0
                for j in range(d):
                    if j == i:
                        continue
                    rj = leaf_r[path + j]
                    if (c >> j) & 1:
                        outside *= rj
                    else:
                        deg += 1
                        coef[deg] = coef[deg - 1]
                        for s in range(deg - 1, 0, -1):
                            coef[s] = coef[s] * rj + coef[s - 1]
                        coef[0] *= rj
                total = 0.0
                for s in range(deg + 1):
                    total += weight[s] * coef[s]
                o_i = 0.0 if (c >> i) & 1 else 1.0
                table[off + c * d + i] = v * (o_i - leaf_r[path + i]) * outside * total


@_jit(nogil=True)
def _fill_group_tables(
    group_meta,
    member_off,
    member_leaf,
    step_off,
    steps,
    fmap_off,
    fmap,  # type: ignore[no-untyped-def]
    leaf_d,
    leaf_table_off,
    leaf_table,
    table,
):
    """Sum the leaf tables of each group into one table indexed by the group's code.

    A group rooted at node ``v`` with ``m`` internal nodes has codes ``(cold_v << m) | decisions``:
    ``cold_v`` is the cold mask at ``v`` (over the distinct features of the path to ``v``), and
    decision bit ``pos`` is set when the row goes right at the group's ``pos``-th node. A member
    leaf's cold mask is ``cold_v`` plus the slot bit of every group node on its path that the row
    leaves.
    """
    for q in range(group_meta.shape[0]):
        n_bits = group_meta[q, 0]
        shift = group_meta[q, 1]
        width = group_meta[q, 2]
        off = group_meta[q, 3]
        low = (1 << shift) - 1
        for c in range(1 << n_bits):
            cold_v = c >> shift
            decisions = c & low
            row = off + c * width
            for mi in range(member_off[q], member_off[q + 1]):
                leaf = member_leaf[mi]
                cold = cold_v
                for s in range(step_off[mi], step_off[mi + 1]):
                    if ((decisions >> steps[s, 0]) & 1) != steps[s, 1]:
                        cold |= steps[s, 2]
                d = leaf_d[leaf]
                src = leaf_table_off[leaf] + cold * d
                pos = fmap_off[mi]
                for k in range(d):
                    table[row + fmap[pos + k]] += leaf_table[src + k]


@_jit(nogil=True)
def _top_positive(contrib, k):  # type: ignore[no-untyped-def]
    """Per row, the ``k`` largest strictly positive entries, largest first, ties to the lower
    column (the order of ``np.argsort(-contrib, kind="stable")``); -1 / 0.0 padding."""
    n, p = contrib.shape
    idx = np.full((n, k), -1, dtype=np.int32)
    val = np.zeros((n, k), dtype=np.float64)
    for r in range(n):
        for t in range(k):
            best = -1
            best_val = 0.0
            for j in range(p):
                x = contrib[r, j]
                # strictly after the previous pick in (value desc, index asc) order
                if x > best_val and (t == 0 or x < val[r, t - 1] or (x == val[r, t - 1] and j > idx[r, t - 1])):
                    best = j
                    best_val = x
            if best < 0:
                break
            idx[r, t] = best
            val[r, t] = best_val
    return idx, val


# ---- model text -----------------------------------------------------------------------------


def _parse_model_string(text: str) -> tuple[dict[str, str], list[dict[str, str]]]:
    """Header fields and per-tree fields of LightGBM's model text (``Booster.model_to_string``).

    The text holds every threshold and leaf value with round-trip precision, unlike
    ``dump_model``'s JSON.
    """
    body = text.split("end of trees", 1)[0]
    blocks = body.split("\nTree=")
    header: dict[str, str] = {}
    for line in blocks[0].splitlines():
        key, sep, value = line.strip().partition("=")
        if key:
            header[key] = value if sep else ""
    trees = []
    for block in blocks[1:]:
        fields: dict[str, str] = {}
        for line in block.splitlines()[1:]:
            key, sep, value = line.strip().partition("=")
            if sep:
                fields[key] = value
        trees.append(fields)
    return header, trees


def _floats(fields: dict[str, str], key: str) -> np.ndarray:
    # float() rounds correctly, as LightGBM's own parser does: thresholds stay bit-exact.
    return np.array([float(s) for s in fields.get(key, "").split()], dtype=np.float64)


def _ints(fields: dict[str, str], key: str) -> list[int]:
    return [int(s) for s in fields.get(key, "").split()]


class _Tree:
    """One parsed tree with the path facts TreeSHAP needs.

    Internal nodes keep LightGBM's indices here; leaves are ``~leaf`` as in the model text.
    """

    def __init__(self, fields: dict[str, str], index: int) -> None:
        if int(fields.get("is_linear", "0")):
            raise UnsupportedModel(
                f"tree {index} is a linear tree (linear_tree=True); TreeSHAP needs constant leaves, "
                "and LightGBM's pred_contrib refuses linear trees too"
            )
        self.index = index
        self.num_leaves = int(fields["num_leaves"])
        self.values = _floats(fields, "leaf_value")
        self.feature = _ints(fields, "split_feature")
        self.threshold = _floats(fields, "threshold")
        self.decision = _ints(fields, "decision_type")
        self.left = _ints(fields, "left_child")
        self.right = _ints(fields, "right_child")
        self.cat_boundaries = _ints(fields, "cat_boundaries")
        self.cat_threshold = _ints(fields, "cat_threshold")
        leaf_count = _floats(fields, "leaf_count")
        internal_count = _floats(fields, "internal_count")
        # Preorder numbering (parents first), the distinct features on the path to each node
        # (first-seen order: slot k is the k-th), and each leaf's product of count ratios per slot.
        self.order: list[int] = []
        self.prefix: dict[int, list[int]] = {}
        self.slot: dict[int, int] = {}
        self.leaf_path: list[list[int]] = [[] for _ in range(self.num_leaves)]
        self.leaf_ratio: list[list[float]] = [[] for _ in range(self.num_leaves)]
        if self.num_leaves == 1:
            self.expected = float(self.values[0])
            self.subtree_size: dict[int, int] = {}
            return
        # ExpectedValue() in tree.cpp: leaves weighted by their share of the root's count.
        self.expected = float(np.sum(leaf_count / internal_count[0] * self.values))

        def count(node: int) -> float:
            return float(internal_count[node] if node >= 0 else leaf_count[~node])

        stack: list[tuple[int, list[int], list[float]]] = [(0, [], [])]
        while stack:
            node, path, ratios = stack.pop()
            if node < 0:
                self.leaf_path[~node], self.leaf_ratio[~node] = path, ratios
                continue
            self.order.append(node)
            self.prefix[node] = path
            f = self.feature[node]
            if f in path:
                slot = path.index(f)
            else:
                slot = len(path)
                path, ratios = path + [f], ratios + [1.0]
            self.slot[node] = slot
            for child in (self.right[node], self.left[node]):
                r = list(ratios)
                r[slot] = r[slot] * (count(child) / count(node))  # LightGBM's zero fraction
                stack.append((child, path, r))
        self.subtree_size = {}  # internal nodes in each internal node's subtree
        for node in reversed(self.order):
            self.subtree_size[node] = 1 + sum(
                self.subtree_size[c] for c in (self.left[node], self.right[node]) if c >= 0
            )

    def groups(self, bits: int) -> list[int]:
        """Split the tree into groups: the largest subtrees whose code (cold mask at the root
        plus one bit per internal node) has at most ``bits`` bits, and lone leaves elsewhere.
        Returns the groups' root nodes (``~leaf`` for a lone leaf) in preorder."""
        if self.num_leaves == 1:
            return []
        out = []
        stack = [0]
        while stack:
            node = stack.pop()
            if node < 0 or len(self.prefix[node]) + self.subtree_size[node] <= bits:
                out.append(node)
            else:
                stack += [self.right[node], self.left[node]]
        return out

    def group_bits(self, root: int) -> tuple[int, int, list[int]]:
        """Code bits, shift (internal nodes) and features (table width) of a group."""
        if root < 0:
            path = self.leaf_path[~root]
            return len(path), 0, path
        features = list(self.prefix[root])
        for leaf in self.leaves_under(root):
            features += [f for f in self.leaf_path[leaf] if f not in features]
        m = self.subtree_size[root]
        return len(self.prefix[root]) + m, m, features

    def nodes_under(self, root: int) -> list[int]:
        """Internal nodes of ``root``'s subtree in preorder."""
        out, stack = [], [root]
        while stack:
            node = stack.pop()
            if node >= 0:
                out.append(node)
                stack += [self.right[node], self.left[node]]
        return out

    def leaves_under(self, root: int) -> list[int]:
        out, stack = [], [root]
        while stack:
            node = stack.pop()
            if node < 0:
                out.append(~node)
            else:
                stack += [self.right[node], self.left[node]]
        return out


@dataclass(frozen=True)
class _Forest:
    """Flat arrays the kernels read; node and group indices are relative to each tree."""

    node_off: np.ndarray  # int64 (n_trees + 1,)
    group_off: np.ndarray  # int64 (n_trees + 1,)
    node_int: np.ndarray  # int32 (n_nodes, 11), see _N_*
    node_thr: np.ndarray  # float64 (n_nodes,)
    cat_bits: np.ndarray  # uint32, every categorical split's bitset
    upper: np.ndarray  # int64 (n_trees,), internal nodes above the groups
    group_int: np.ndarray  # int64 (n_groups, 4), see _G_*
    group_feat: np.ndarray  # int32, each group's table columns as feature indices
    table: np.ndarray  # float64, each group's (2**bits, width) table
    max_nodes: int  # internal nodes, most in one tree
    max_scratch: int  # upper nodes plus groups, most in one tree

    def kernel_args(self) -> tuple[Any, ...]:
        return (
            self.node_off,
            self.upper,
            self.group_off,
            self.node_int,
            self.node_thr,
            self.cat_bits,
            self.group_int,
            self.group_feat,
            self.table,
            self.max_nodes,
            self.max_scratch,
        )


def _build_forest(
    trees: list[_Tree], max_depth_limit: int, max_table_bytes: int, group_bits: int
) -> tuple[_Forest, int]:
    """Lay out the kernels' arrays and fill the tables; returns the forest and the largest number
    of distinct features on one path."""
    max_path = max((len(p) for tree in trees for p in tree.leaf_path), default=0)
    for tree in trees:
        for path in tree.leaf_path:
            if len(path) > max_depth_limit:
                raise UnsupportedModel(
                    f"tree {tree.index} has a path with {len(path)} distinct features, more than "
                    f"max_depth_limit={max_depth_limit} (tables need 2**d x d entries per leaf); use "
                    "booster.predict(pred_contrib=True) or train with a smaller max_depth"
                )
    leaf_entries = sum((1 << len(p)) * len(p) for tree in trees for p in tree.leaf_path)
    # Merged groups shrink the per-row work; fewer bits if their tables would not fit the budget.
    for bits in range(group_bits, -1, -1):
        roots = [tree.groups(bits) for tree in trees]
        entries = sum((1 << b) * len(f) for tree, rs in zip(trees, roots) for b, _, f in map(tree.group_bits, rs))
        if 8 * max(entries, leaf_entries) <= max_table_bytes:
            break
    else:
        raise UnsupportedModel(
            f"the path tables would need {8 * leaf_entries:,} bytes, more than max_table_bytes="
            f"{max_table_bytes:,}; use booster.predict(pred_contrib=True)"
        )

    # Leaf tables (Fast TreeSHAP v2), then summed into the group tables.
    leaf_d, leaf_path_off, leaf_table_off, leaf_r, leaf_value, leaf_base = [], [], [], [], [], []
    n_path = n_table = 0
    for tree in trees:
        leaf_base.append(len(leaf_d))
        for leaf in range(tree.num_leaves):
            d = len(tree.leaf_path[leaf])
            leaf_d.append(d)
            leaf_path_off.append(n_path)
            leaf_table_off.append(n_table)
            leaf_r.extend(tree.leaf_ratio[leaf])
            leaf_value.append(float(tree.values[leaf]))
            n_path += d
            n_table += (1 << d) * d
    leaf_table = np.zeros(n_table, dtype=np.float64)
    leaf_d_arr = np.array(leaf_d, dtype=np.int64)
    leaf_table_off_arr = np.array(leaf_table_off, dtype=np.int64)
    _fill_leaf_tables(
        leaf_d_arr,
        np.array(leaf_path_off, dtype=np.int64),
        np.array(leaf_r, dtype=np.float64),
        np.array(leaf_value, dtype=np.float64),
        leaf_table_off_arr,
        leaf_table,
    )

    node_rows: list[list[int]] = []
    node_thr: list[float] = []
    cat_bits: list[int] = []
    node_off, group_off = [0], [0]
    group_meta: list[list[int]] = []
    group_feat: list[int] = []
    member_off, member_leaf, step_off, steps, fmap_off, fmap = [0], [], [0], [], [], []
    upper: list[int] = []
    n_table = max_scratch = 0
    for ti, (tree, tree_roots) in enumerate(zip(trees, roots)):
        group_of = {root: q for q, root in enumerate(tree_roots)}
        shift_of: dict[int, int] = {}
        in_group: dict[int, tuple[int, int]] = {}  # node -> (group, position in the group)
        for q, root in enumerate(tree_roots):
            n_bits, shift, features = tree.group_bits(root)
            shift_of[root] = shift
            group_meta.append([n_bits, shift, len(features), n_table, len(group_feat)])
            n_table += (1 << n_bits) * len(features)
            group_feat.extend(features)
            if root >= 0:
                in_group.update((node, (q, pos)) for pos, node in enumerate(tree.nodes_under(root)))
            # Each member leaf with the group nodes on its way: (position, goes right, slot bit).
            stack: list[tuple[int, list[list[int]]]] = [(root, [])]
            while stack:
                node, way = stack.pop()
                if node < 0:
                    member_leaf.append(leaf_base[ti] + ~node)
                    fmap_off.append(len(fmap))
                    fmap.extend(features.index(f) for f in tree.leaf_path[~node])
                    steps.extend(way)
                    step_off.append(len(steps))
                    continue
                pos, bit = in_group[node][1], 1 << tree.slot[node]
                stack.append((tree.right[node], way + [[pos, 1, bit]]))
                stack.append((tree.left[node], way + [[pos, 0, bit]]))
            member_off.append(len(member_leaf))

        order = [n for n in tree.order if n not in in_group] + [n for n in tree.order if n in in_group]
        n_upper = len(order) - len(in_group)
        new_index = {node: i for i, node in enumerate(order)}

        def target(child: int) -> tuple[int, int]:
            """Scratch index and shift for the cold mask an upper node hands to ``child``."""
            if child in group_of:
                return n_upper + group_of[child], shift_of[child]
            return new_index[child], 0

        for node in order:
            left, right = tree.left[node], tree.right[node]
            dt = tree.decision[node]
            cat_off = cat_len = 0
            if dt & _CATEGORICAL:
                ci = int(tree.threshold[node])
                words = tree.cat_threshold[tree.cat_boundaries[ci] : tree.cat_boundaries[ci + 1]]
                cat_off, cat_len = len(cat_bits), len(words)
                cat_bits.extend(words)
            shap = [0, 0, 0, 0]  # nodes inside groups: decisions go straight into the code
            if node not in in_group:
                (target_left, shift_left), (target_right, shift_right) = target(left), target(right)
                shap = [target_left, target_right, shift_left, shift_right]
            node_rows.append(
                [
                    tree.feature[node],
                    dt,
                    cat_off,
                    cat_len,
                    new_index[left] if left >= 0 else left,
                    new_index[right] if right >= 0 else right,
                    1 << tree.slot[node],
                    *shap,
                ]
            )
            node_thr.append(float(tree.threshold[node]))
        node_off.append(len(node_rows))
        upper.append(n_upper)
        group_off.append(len(group_meta))
        max_scratch = max(max_scratch, n_upper + len(tree_roots))

    table = np.zeros(n_table, dtype=np.float64)
    meta = np.array(group_meta, dtype=np.int64).reshape(-1, 5)
    _fill_group_tables(
        meta,
        np.array(member_off, dtype=np.int64),
        np.array(member_leaf, dtype=np.int64),
        np.array(step_off, dtype=np.int64),
        np.array(steps, dtype=np.int64).reshape(-1, 3),
        np.array(fmap_off, dtype=np.int64),
        np.array(fmap, dtype=np.int64),
        leaf_d_arr,
        leaf_table_off_arr,
        leaf_table,
        table,
    )
    node_off_arr = np.array(node_off, dtype=np.int64)
    group_off_arr = np.array(group_off, dtype=np.int64)
    forest = _Forest(
        node_off=node_off_arr,
        group_off=group_off_arr,
        node_int=np.array(node_rows, dtype=np.int32).reshape(-1, 11),
        node_thr=np.array(node_thr, dtype=np.float64),
        cat_bits=np.array(cat_bits, dtype=np.uint32),
        upper=np.array(upper, dtype=np.int64),
        group_int=np.ascontiguousarray(meta[:, [2, 4, 3, 1]]),  # width, feat_off, table_off, nodes
        group_feat=np.array(group_feat, dtype=np.int32),
        table=table,
        max_nodes=int(np.max(np.diff(node_off_arr), initial=0)),
        max_scratch=max_scratch,
    )
    return forest, max_path


# ---- public API -----------------------------------------------------------------------------


class FastTreeShap:
    """Exact path-dependent TreeSHAP contributions of a LightGBM booster, Fast TreeSHAP v2 style.

    Build with :meth:`from_booster` (or :meth:`from_model_string`). :meth:`contributions` equals
    ``booster.predict(M, pred_contrib=True)[:, :-1]`` up to floating-point rounding, and
    :attr:`expected_value` its last column.

    Attributes
    ----------
    n_features_ : int
        Columns expected in ``M`` (LightGBM's ``max_feature_idx + 1``).
    n_trees_ : int
        Trees explained (single-leaf trees included; they only move the expected value).
    expected_value : float
        Sum over trees of the count-weighted mean leaf value (the raw score's baseline).
    max_path_depth_ : int
        Most distinct features on one root-to-leaf path.
    table_bytes_ : int
        Memory held by the path tables.

    References
    ----------
    Lundberg, Erion and Lee (2018), arXiv:1802.03888 (path-dependent TreeSHAP).
    Yang (2021), arXiv:2109.09847 (Fast TreeSHAP v2: per-leaf tables indexed by the row's path).
    """

    def __init__(self, forest: _Forest, *, n_features: int, expected_value: float, max_path_depth: int) -> None:
        self._forest = forest
        self.n_features_ = n_features
        self.n_trees_ = len(forest.node_off) - 1
        self.expected_value = expected_value
        self.max_path_depth_ = max_path_depth
        self.table_bytes_ = int(forest.table.nbytes)

    def __repr__(self) -> str:
        return (
            f"FastTreeShap(n_features_={self.n_features_}, n_trees_={self.n_trees_}, "
            f"max_path_depth_={self.max_path_depth_}, table_bytes_={self.table_bytes_:,})"
        )

    @classmethod
    def from_booster(
        cls,
        booster: Any,
        max_depth_limit: int = DEFAULT_MAX_DEPTH_LIMIT,
        *,
        num_iteration: int | None = None,
        max_table_bytes: int = DEFAULT_MAX_TABLE_BYTES,
        group_bits: int = DEFAULT_GROUP_BITS,
    ) -> FastTreeShap:
        """Compile a ``lightgbm.Booster`` (its model text, so thresholds are exact).

        Parameters
        ----------
        booster : lightgbm.Booster
            A fitted single-output booster (binary, regression, Poisson, Tweedie, ...).
        max_depth_limit : int
            Refuse paths with more distinct features than this (tables grow as ``2**d * d``).
        num_iteration : int, optional
            Iterations to explain; ``None`` follows ``booster.predict``'s default (the best
            iteration if there is one, else all).
        max_table_bytes : int
            Refuse models whose tables would exceed this many bytes.
        group_bits : int
            Merge the leaves of subtrees whose code (distinct features on the path to the subtree
            plus its internal nodes) fits in this many bits into one table; ``0`` keeps one table
            per leaf (plain Fast TreeSHAP v2). Lowered automatically when the merged tables would
            exceed ``max_table_bytes``.

        Raises
        ------
        UnsupportedModel
            Multiclass models, linear trees, paths deeper than ``max_depth_limit`` or tables
            larger than ``max_table_bytes``; the message names the reason. Callers can fall back
            to ``booster.predict(M, pred_contrib=True)``.
        """
        text = booster.model_to_string(num_iteration=num_iteration)
        return cls.from_model_string(text, max_depth_limit, max_table_bytes=max_table_bytes, group_bits=group_bits)

    @classmethod
    def from_model_string(
        cls,
        text: str,
        max_depth_limit: int = DEFAULT_MAX_DEPTH_LIMIT,
        *,
        max_table_bytes: int = DEFAULT_MAX_TABLE_BYTES,
        group_bits: int = DEFAULT_GROUP_BITS,
    ) -> FastTreeShap:
        """Compile LightGBM model text (``Booster.model_to_string()`` or a saved model file).

        See :meth:`from_booster` for the parameters and the refusals.
        """
        if not 1 <= max_depth_limit <= 30:
            raise ValueError(f"max_depth_limit must be between 1 and 30, got {max_depth_limit}")
        if not 0 <= group_bits <= 20:
            raise ValueError(f"group_bits must be between 0 and 20, got {group_bits}")
        header, fields = _parse_model_string(text)
        if header.get("tree") is None or "max_feature_idx" not in header:
            raise UnsupportedModel("not LightGBM model text: no 'tree' header with max_feature_idx")
        num_class = int(header.get("num_class", "1"))
        per_iteration = int(header.get("num_tree_per_iteration", "1"))
        if num_class != 1 or per_iteration != 1:
            raise UnsupportedModel(
                f"multiclass models are not supported (num_class={num_class}, "
                f"num_tree_per_iteration={per_iteration}); use booster.predict(pred_contrib=True)"
            )
        # Random forests (boosting=rf, "average_output") are left as sums of trees: LightGBM 4
        # averages only transformed predictions, not raw scores nor pred_contrib.
        trees = [_Tree(f, t) for t, f in enumerate(fields)]
        forest, max_path = _build_forest(trees, max_depth_limit, max_table_bytes, group_bits)
        expected = float(sum(tree.expected for tree in trees))
        model = cls(
            forest, n_features=int(header["max_feature_idx"]) + 1, expected_value=expected, max_path_depth=max_path
        )
        logger.debug("compiled %r", model)
        return model

    # ---- prediction -------------------------------------------------------------------------

    def _matrix(self, M: Any) -> np.ndarray:
        X = np.ascontiguousarray(M, dtype=np.float64)
        if X.ndim != 2 or X.shape[1] != self.n_features_:
            raise ValueError(
                f"M has shape {X.shape}, but FastTreeShap is expecting a 2-d matrix with "
                f"{self.n_features_} columns (the booster's features, in its order)"
            )
        return X

    def contributions(self, M: Any, num_threads: int | None = None) -> np.ndarray:
        """Path-dependent TreeSHAP value of every feature for every row.

        Parameters
        ----------
        M : numpy.ndarray
            ``(n, n_features_)`` matrix, exactly as given to ``booster.predict`` (float32 or
            float64; NaN marks missing values, categorical features hold their integer codes).
        num_threads : int, optional
            Threads for batches of more than :data:`SERIAL_MAX_ROWS` rows; ``None`` or ``0`` use
            numba's thread count. Smaller batches always run on the calling thread.

        Returns
        -------
        numpy.ndarray
            ``(n, n_features_)`` float64: ``booster.predict(M, pred_contrib=True)[:, :-1]``. Each
            row sums to the raw score minus :attr:`expected_value`.

        References
        ----------
        Lundberg, Erion and Lee (2018), arXiv:1802.03888; Yang (2021), arXiv:2109.09847.
        """
        X = self._matrix(M)
        out = np.zeros(X.shape, dtype=np.float64)
        if len(X) == 0:
            return out
        threads = numba.config.NUMBA_NUM_THREADS if not num_threads else int(num_threads)
        threads = min(max(threads, 1), numba.config.NUMBA_NUM_THREADS)
        if threads == 1 or len(X) <= SERIAL_MAX_ROWS:
            _shap_serial(X, out, *self._forest.kernel_args())
            return out
        with _PARALLEL_LOCK:
            previous = numba.get_num_threads()
            numba.set_num_threads(threads)
            try:
                _shap_parallel(X, out, *self._forest.kernel_args())
            finally:
                numba.set_num_threads(previous)
        return out

    def top_positive(self, M: Any, k: int, num_threads: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` largest strictly positive contributions of each row.

        Parameters
        ----------
        M : numpy.ndarray
            As for :meth:`contributions`.
        k : int
            Contributions to keep per row (at least 1).
        num_threads : int, optional
            As for :meth:`contributions`.

        Returns
        -------
        idx : numpy.ndarray
            ``(n, k)`` int32 feature indices, largest contribution first, ties to the lower
            index (the order of ``np.argsort(-contrib, kind="stable")``); ``-1`` pads rows with
            fewer than ``k`` positive contributions.
        val : numpy.ndarray
            ``(n, k)`` float64 contributions matching ``idx``, ``0.0`` where padded.
        """
        if k < 1:
            raise ValueError(f"k must be at least 1, got {k}")
        idx, val = _top_positive(self.contributions(M, num_threads), int(k))
        return idx, val

    def leaf_indices(self, M: Any) -> np.ndarray:
        """Leaf reached by each row in each tree: ``booster.predict(M, pred_leaf=True)``.

        Exposed to check that routing (NaN, zeros, categories) follows LightGBM exactly.
        """
        X = self._matrix(M)
        f = self._forest
        return _route(X, f.node_off, f.node_int, f.node_thr, f.cat_bits)

    def warm_up(self) -> FastTreeShap:
        """Compile (or load from numba's cache) every kernel on a tiny input; returns ``self``.

        Call once at service start-up so the first request does not pay for compilation.
        """
        X = np.zeros((SERIAL_MAX_ROWS + 1, self.n_features_))
        self.contributions(X[:1], num_threads=1)
        self.contributions(X, num_threads=2)
        self.top_positive(X[:1], 1)
        self.leaf_indices(X[:1])
        return self
