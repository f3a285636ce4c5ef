"""The compiled kernels of Fast TreeSHAP: LightGBM's routing and the per-row table look-ups.

Everything here runs per row, compiled by numba: :func:`shap_serial` and :func:`shap_parallel` add
each tree's contributions of a batch by routing the rows through the tree's nodes and looking up
the tables :mod:`churnclv.models.treeshap_forest` built; :func:`route` gives LightGBM's
``pred_leaf``; :func:`top_positive` picks each row's largest contributions. The algorithm and the
routing rules are described in :mod:`churnclv.models.treeshap`.

The kernels that call each other live in this one module: numba's on-disk cache does not notice a
change to a compiled function in another file.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import numba
import numpy as np

__all__ = [
    "CATEGORICAL",
    "NODE_COLUMNS",
    "jit",
    "route",
    "shap_parallel",
    "shap_serial",
    "top_positive",
]

logger = logging.getLogger(__name__)

# Rows per block: a tree's tables are reused across a block while they sit in cache, and its
# decisions are vector loops over the block.
_BLOCK_ROWS = 256
# Up to this many rows, go row by row (see _shap_rows).
_ROWWISE_MAX_ROWS = 16

# LightGBM's kZeroThreshold is the float literal 1e-35f stored in a double.
_K_ZERO = float(np.float32(1e-35))
# decision_type bits (tree.h): 1 categorical, 2 default left, bits 2-3 missing type.
CATEGORICAL = 1
_DEFAULT_LEFT = 2
_MISSING_ZERO = 1
_MISSING_NAN = 2

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
NODE_COLUMNS = 11
# Columns of the int64 group array: table width, offset of its features, table offset, internal
# nodes (the code's low bits).
_G_WIDTH, _G_FEAT_OFF, _G_TABLE_OFF, _G_NODES = range(4)


def jit(**options: Any) -> Callable[[Callable[..., Any]], Any]:
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


@jit(nogil=True)
def _goes_left(x: float, flags: int, threshold: float, cat_off: int, cat_len: int, cat_bits: np.ndarray) -> bool:
    """LightGBM 4 ``Tree::Decision`` on a value as the dense-matrix C API hands it over."""
    if flags & CATEGORICAL:
        # int(x) < 0 (x <= -1), NaN and values past int32 (cast to INT_MIN on x86) go right.
        if x > -1.0 and x < 2147483648.0:
            c = np.int64(x)
            word = c >> 5
            if word < cat_len:
                return bool((np.int64(cat_bits[cat_off + word]) >> (c & 31)) & 1 == 1)
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


@jit(nogil=True)
def _decide(
    xt: np.ndarray,
    f: int,
    n: int,
    flags: int,
    threshold: float,
    cat_off: int,
    cat_len: int,
    cat_bits: np.ndarray,
    right: np.ndarray,
    v: int,
) -> None:
    """``right[v, j] = 1`` when ``xt[f, j]`` goes right at a node (``Tree::Decision``), for a block
    of rows at once: the numerical cases are branch-free loops the compiler vectorizes. (Whole
    arrays and indices, not row views: a view costs reference counting per node.)"""
    if flags & CATEGORICAL:
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


@jit(nogil=True)
def _shap_block(
    X: np.ndarray,
    r0: int,
    r1: int,
    out: np.ndarray,
    node_off: np.ndarray,
    upper: np.ndarray,
    group_off: np.ndarray,
    node_int: np.ndarray,
    node_thr: np.ndarray,
    cat_bits: np.ndarray,
    group_int: np.ndarray,
    group_feat: np.ndarray,
    table: np.ndarray,
    max_nodes: int,
    max_scratch: int,
) -> None:
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


@jit(nogil=True)
def _goes_right(
    X: np.ndarray, r: int, g: int, node_int: np.ndarray, node_thr: np.ndarray, cat_bits: np.ndarray
) -> np.int64:
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


@jit(nogil=True)
def _shap_rows(
    X: np.ndarray,
    r0: int,
    r1: int,
    out: np.ndarray,
    node_off: np.ndarray,
    upper: np.ndarray,
    group_off: np.ndarray,
    node_int: np.ndarray,
    node_thr: np.ndarray,
    cat_bits: np.ndarray,
    group_int: np.ndarray,
    group_feat: np.ndarray,
    table: np.ndarray,
    max_scratch: int,
) -> None:
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


@jit(nogil=True)
def shap_serial(
    X: np.ndarray,
    out: np.ndarray,
    node_off: np.ndarray,
    upper: np.ndarray,
    group_off: np.ndarray,
    node_int: np.ndarray,
    node_thr: np.ndarray,
    cat_bits: np.ndarray,
    group_int: np.ndarray,
    group_feat: np.ndarray,
    table: np.ndarray,
    max_nodes: int,
    max_scratch: int,
) -> None:
    """Add every tree's contributions for all rows of ``X`` into ``out`` on the calling thread."""
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


@jit(nogil=True, parallel=True)
def shap_parallel(
    X: np.ndarray,
    out: np.ndarray,
    node_off: np.ndarray,
    upper: np.ndarray,
    group_off: np.ndarray,
    node_int: np.ndarray,
    node_thr: np.ndarray,
    cat_bits: np.ndarray,
    group_int: np.ndarray,
    group_feat: np.ndarray,
    table: np.ndarray,
    max_nodes: int,
    max_scratch: int,
) -> None:
    """:func:`shap_serial` with the blocks of rows spread over numba's threads."""
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


@jit(nogil=True)
def route(
    X: np.ndarray, node_off: np.ndarray, node_int: np.ndarray, node_thr: np.ndarray, cat_bits: np.ndarray
) -> np.ndarray:
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


@jit(nogil=True)
def top_positive(contrib: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
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
