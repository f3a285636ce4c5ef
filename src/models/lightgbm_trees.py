"""LightGBM model text parsed into trees, with the path facts TreeSHAP needs.

LightGBM's ``Booster.model_to_string()`` holds every threshold and leaf value with round-trip
precision (``dump_model``'s JSON does not). :func:`parse_model_string` splits it into a header and
per-tree fields; :class:`Tree` reads one tree and derives, for each leaf, the distinct features on
its root path and the product of LightGBM's count ratios per feature (its "zero fraction"), which
is all path-dependent TreeSHAP needs (Lundberg, Erion and Lee 2018, arXiv:1802.03888).
"""

from __future__ import annotations

import numpy as np

from churnclv.errors import ChurnclvError

__all__ = ["Tree", "UnsupportedModel", "parse_model_string"]


class UnsupportedModel(ChurnclvError, ValueError):  # noqa: N818 -- public name that callers catch
    """The booster cannot be explained by :class:`churnclv.models.treeshap.FastTreeShap`; use
    ``pred_contrib`` instead."""


def parse_model_string(text: str) -> tuple[dict[str, str], list[dict[str, str]]]:
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


class Tree:
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
                path, ratios = [*path, f], [*ratios, 1.0]
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
        """Leaves (as LightGBM's leaf indices) of ``root``'s subtree in preorder."""
        out, stack = [], [root]
        while stack:
            node = stack.pop()
            if node < 0:
                out.append(~node)
            else:
                stack += [self.right[node], self.left[node]]
        return out
