"""Compiling a LightGBM model for Fast TreeSHAP: the flat node arrays and the path tables.

:func:`build_forest` lays the parsed trees (:mod:`churnclv.models.lightgbm_trees`) out as the flat
arrays the kernels read (:mod:`churnclv.models.treeshap_kernels`), fills each leaf's table of
contributions for every cold mask (Yang 2021, Fast TreeSHAP v2) and sums the tables of the leaves
under small subtrees into one table per group. This runs once per booster; the per-row work is in
the kernels. The algorithm is described in :mod:`churnclv.models.treeshap`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from churnclv.models.lightgbm_trees import Tree, UnsupportedModel
from churnclv.models.treeshap_kernels import CATEGORICAL, NODE_COLUMNS, jit

__all__ = ["Forest", "build_forest"]


@dataclass(frozen=True)
class Forest:
    """Flat arrays the kernels read; node and group indices are relative to each tree."""

    node_off: np.ndarray  # int64 (n_trees + 1,)
    group_off: np.ndarray  # int64 (n_trees + 1,)
    node_int: np.ndarray  # int32 (n_nodes, 11), see the node columns in churnclv.models.treeshap_kernels
    node_thr: np.ndarray  # float64 (n_nodes,)
    cat_bits: np.ndarray  # uint32, every categorical split's bitset
    upper: np.ndarray  # int64 (n_trees,), internal nodes above the groups
    group_int: np.ndarray  # int64 (n_groups, 4), see the group columns there
    group_feat: np.ndarray  # int32, each group's table columns as feature indices
    table: np.ndarray  # float64, each group's (2**bits, width) table
    max_nodes: int  # internal nodes, most in one tree
    max_scratch: int  # upper nodes plus groups, most in one tree

    def kernel_args(self) -> tuple[Any, ...]:
        """The arrays and sizes the SHAP kernels take after ``X`` and ``out``, in their order."""
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


def build_forest(trees: list[Tree], max_depth_limit: int, max_table_bytes: int, group_bits: int) -> tuple[Forest, int]:
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
        entries = sum(
            (1 << b) * len(f) for tree, rs in zip(trees, roots, strict=True) for b, _, f in map(tree.group_bits, rs)
        )
        if 8 * max(entries, leaf_entries) <= max_table_bytes:
            break
    else:
        raise UnsupportedModel(
            f"the path tables would need {8 * leaf_entries:,} bytes, more than max_table_bytes="
            f"{max_table_bytes:,}; use booster.predict(pred_contrib=True)"
        )

    # Leaf tables (Fast TreeSHAP v2), then summed into the group tables.
    leaf_d: list[int] = []
    leaf_path_off: list[int] = []
    leaf_table_off: list[int] = []
    leaf_r: list[float] = []
    leaf_value: list[float] = []
    leaf_base: list[int] = []
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
    member_off: list[int] = [0]
    member_leaf: list[int] = []
    step_off: list[int] = [0]
    steps: list[list[int]] = []
    fmap_off: list[int] = []
    fmap: list[int] = []
    upper: list[int] = []
    n_table = max_scratch = 0
    for ti, (tree, tree_roots) in enumerate(zip(trees, roots, strict=True)):
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
                stack.append((tree.right[node], [*way, [pos, 1, bit]]))
                stack.append((tree.left[node], [*way, [pos, 0, bit]]))
            member_off.append(len(member_leaf))

        order = [n for n in tree.order if n not in in_group] + [n for n in tree.order if n in in_group]
        n_upper = len(order) - len(in_group)
        new_index = {node: i for i, node in enumerate(order)}
        # Scratch index and shift for the cold mask an upper node hands to each child: the child's
        # own index when it is an upper node, else its group's slot after the upper nodes.
        target = {node: (i, 0) for node, i in new_index.items()}
        target.update({root: (n_upper + q, shift_of[root]) for q, root in enumerate(tree_roots)})

        for node in order:
            left, right = tree.left[node], tree.right[node]
            dt = tree.decision[node]
            cat_off = cat_len = 0
            if dt & CATEGORICAL:
                ci = int(tree.threshold[node])
                words = tree.cat_threshold[tree.cat_boundaries[ci] : tree.cat_boundaries[ci + 1]]
                cat_off, cat_len = len(cat_bits), len(words)
                cat_bits.extend(words)
            shap = [0, 0, 0, 0]  # nodes inside groups: decisions go straight into the code
            if node not in in_group:
                (target_left, shift_left), (target_right, shift_right) = target[left], target[right]
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
    forest = Forest(
        node_off=node_off_arr,
        group_off=group_off_arr,
        node_int=np.array(node_rows, dtype=np.int32).reshape(-1, NODE_COLUMNS),
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


@jit(nogil=True)
def _fill_leaf_tables(
    leaf_d: np.ndarray,
    leaf_path_off: np.ndarray,
    leaf_r: np.ndarray,
    leaf_value: np.ndarray,
    leaf_table_off: np.ndarray,
    table: np.ndarray,
) -> None:
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


@jit(nogil=True)
def _fill_group_tables(
    group_meta: np.ndarray,
    member_off: np.ndarray,
    member_leaf: np.ndarray,
    step_off: np.ndarray,
    steps: np.ndarray,
    fmap_off: np.ndarray,
    fmap: np.ndarray,
    leaf_d: np.ndarray,
    leaf_table_off: np.ndarray,
    leaf_table: np.ndarray,
    table: np.ndarray,
) -> None:
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
