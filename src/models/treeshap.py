r"""Exact path-dependent TreeSHAP for LightGBM boosters, fast: Fast TreeSHAP v2 compiled with numba.

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

    v_l (o_i - r_i) * sum_{S subset of A \ {i}} w(|S|, d) prod_{j in P \ S \ {i}} r_j,

the Shapley value of the leaf's path-dependent expectation ``v_l prod_{j in P \ S} r_j
prod_{j in S} o_j`` (the sum is a polynomial in the ``r_j`` of ``A``, evaluated through its
coefficients). Tables cost ``sum_l 2**d_l d_l`` doubles, so models whose paths hold more than
``max_depth_limit`` distinct features are refused
(:class:`~churnclv.models.lightgbm_trees.UnsupportedModel`) and the caller falls
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

The work is split by when it runs: :mod:`churnclv.models.lightgbm_trees` parses the model text,
:mod:`churnclv.models.treeshap_forest` builds the arrays and tables once per booster, and
:mod:`churnclv.models.treeshap_kernels` holds the compiled per-row kernels; this module is the
public API.

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
from typing import Any

import numba
import numpy as np

from churnclv.models.lightgbm_trees import Tree, UnsupportedModel, parse_model_string
from churnclv.models.treeshap_forest import Forest, build_forest
from churnclv.models.treeshap_kernels import route, shap_parallel, shap_serial, top_positive

__all__ = [
    "DEFAULT_GROUP_BITS",
    "DEFAULT_MAX_DEPTH_LIMIT",
    "DEFAULT_MAX_TABLE_BYTES",
    "SERIAL_MAX_ROWS",
    "FastTreeShap",
]

logger = logging.getLogger(__name__)

#: Paths with more distinct features than this are refused: tables grow as ``2**d * d`` per leaf.
DEFAULT_MAX_DEPTH_LIMIT = 12
#: Refuse models whose tables would take more memory than this.
DEFAULT_MAX_TABLE_BYTES = 1 << 30
#: Up to this many rows run on the calling thread: starting worker threads costs more than it saves
#: (and the HTTP service explains 1-16 rows at a time).
SERIAL_MAX_ROWS = 256
#: Leaves under a subtree whose code (cold mask at the subtree's root plus one decision bit per
#: internal node) has at most this many bits share one table: one look-up per row instead of one
#: per leaf. 8 to 12 measured about equally fast on a churn-like model (80 trees of 31 leaves,
#: depth 6), whose tables take about 10 MB at 10.
DEFAULT_GROUP_BITS = 10

# numba's workqueue threading layer (used when neither OpenMP nor TBB is found) aborts on
# concurrent parallel launches; with a handful of cores, serializing batch calls costs nothing.
_PARALLEL_LOCK = threading.Lock()


def _numba_threads() -> int:
    """The threads numba may use (``NUMBA_NUM_THREADS``: the CPUs, or the environment variable)."""
    return int(numba.config.NUMBA_NUM_THREADS)  # type: ignore[attr-defined]  # set at runtime from the environment


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

    def __init__(self, forest: Forest, *, n_features: int, expected_value: float, max_path_depth: int) -> None:
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
        header, fields = parse_model_string(text)
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
        trees = [Tree(f, t) for t, f in enumerate(fields)]
        forest, max_path = build_forest(trees, max_depth_limit, max_table_bytes, group_bits)
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
        threads = min(max(int(num_threads or _numba_threads()), 1), _numba_threads())
        if threads == 1 or len(X) <= SERIAL_MAX_ROWS:
            shap_serial(X, out, *self._forest.kernel_args())
            return out
        with _PARALLEL_LOCK:
            previous = numba.get_num_threads()
            numba.set_num_threads(threads)
            try:
                shap_parallel(X, out, *self._forest.kernel_args())
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
        idx, val = top_positive(self.contributions(M, num_threads), int(k))
        return idx, val

    def leaf_indices(self, M: Any) -> np.ndarray:
        """Leaf reached by each row in each tree: ``booster.predict(M, pred_leaf=True)``.

        Exposed to check that routing (NaN, zeros, categories) follows LightGBM exactly.
        """
        X = self._matrix(M)
        f = self._forest
        leaves: np.ndarray = route(X, f.node_off, f.node_int, f.node_thr, f.cat_bits)
        return leaves

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
