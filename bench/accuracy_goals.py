"""The headline figures of the accuracy benches (``accuracy.py`` on CDNOW, ``accuracy_generated.py``) and
their goals (issue 14), for the results file (``common.Results``)."""

from __future__ import annotations

import numpy as np
from common import Goal, Results

HIGHER_IS_BETTER = {"churn_auc", "spend_gini", "spend_spearman", "spend_top10_capture"}
AGG_ERRORS = {"purchases_agg_err_pct": "purchases", "spend_agg_err_pct": "spend"}
SHIPPED = "the shipped configuration"  # the goals are the product's, not a configuration's under test


def _mean(results: list[dict], model: str, metric: str) -> float:
    return float(np.mean([r["metrics"][model][metric] for r in results]))


def cdnow_headlines(out: Results, results: list[dict], references: tuple[str, ...], shipped: bool, grid: bool) -> None:
    """Means against the best reference (over the setups where every reference ran, else all setups
    with BG/NBD and Pareto/NBD only), churnclv against BG/NBD on its worst setup, aggregate errors.
    The goals hold for the shipped configuration (``shipped``), the means' on the whole grid."""
    complete = [r for r in results if all(m in r["metrics"] for m in references)]
    rs, refs = (complete, references) if complete else (results, ("bgnbd", "pareto"))
    on_grid = "the CDNOW grid, the shipped configuration"
    for metric, goal in (
        ("churn_auc", Goal("difference", ">=", 0.01, on_grid)),
        ("spend_gini", Goal("difference", ">=", 0.01, on_grid)),
        ("churn_brier", Goal("difference", "<=", 0.0, on_grid)),
    ):
        sign = 1 if metric in HIGHER_IS_BETTER else -1
        best = max(refs, key=lambda m: sign * _mean(rs, m, metric))
        out.headline(
            f"{metric}, mean of {len(rs)} CDNOW setup(s)",
            _mean(rs, "churnclv", metric),
            reference=_mean(rs, best, metric),
            reference_name=f"best reference ({best})",
            goal=goal,
            goal_applies=shipped and grid,
        )
    for metric in ("churn_auc", "spend_gini", "churn_brier"):
        sign = 1 if metric in HIGHER_IS_BETTER else -1
        gaps = [sign * (r["metrics"]["churnclv"][metric] - r["metrics"]["bgnbd"][metric]) for r in results]
        out.headline(
            f"{metric}: churnclv minus BG/NBD on the worst setup (better = positive)",
            min(gaps),
            goal=Goal("ours", ">=", 0.0, SHIPPED),  # no setup where the product loses to the model it wraps
            goal_applies=shipped,
        )
    aggregate_errors(out, results, "BG/NBD", "", shipped)


def aggregate_errors(out: Results, results: list[dict], ref_name: str, label: str, shipped: bool) -> None:
    """The largest |aggregate % error| of churnclv over the setups, purchases and spend, next to the
    reference's (``bgnbd``): within 10 % on every setup."""
    for metric, what in AGG_ERRORS.items():
        out.headline(
            f"|{what} aggregate error| %, worst of {len(results)} setup(s){label}",
            max(abs(r["metrics"]["churnclv"][metric]) for r in results),
            "%",
            max(abs(r["metrics"]["bgnbd"][metric]) for r in results),
            ref_name,
            Goal("ours", "<=", 10.0, SHIPPED),
            goal_applies=shipped,
        )


def generated_headlines(out: Results, results: list[dict], shipped: bool) -> None:
    """Per variant: the worst aggregate errors against BG/NBD's, and churn AUC against the oracle."""
    for variant in dict.fromkeys(r["variant"] for r in results):
        rs = [r for r in results if r["variant"] == variant]
        aggregate_errors(out, rs, "BG/NBD", f", {variant}", shipped)
        out.headline(
            f"churn AUC, mean of {len(rs)} setup(s), {variant}",
            _mean(rs, "churnclv", "churn_auc"),
            reference=_mean(rs, "oracle", "churn_auc"),
            reference_name="oracle (generator truth)",
        )
