"""The end of ``churnclv train``: the backtest table with its columns explained, the notes, what was
selected, the run and the registered version, where the plots are and how to open the MLflow UI.

Warnings (folds that did not fit, sub-fits left out, a backtest at a shorter horizon) are logged once,
when they happen; the summary counts them and does not repeat them.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import unquote, urlparse

from churnclv.names import CHALLENGER
from churnclv.redaction import redact_url
from churnclv.training.reports import format_summary
from churnclv.training.result import TrainResult
from churnclv.training.selection import OrderValue, TotalsLevel

__all__ = ["COLUMNS", "artifact_folder", "summary_lines"]

# the backtest table's columns (training.reports.format_summary), one line each
COLUMNS: dict[str, str] = {
    "AUC": "churn: how well p_churn ranks churners above the others (0.5 chance, 1 perfect)",
    "PR-AUC": "churn: precision-recall area, the same ranking seen from the churners (higher is better)",
    "Brier": "churn: mean squared error of p_churn against what happened (lower is better)",
    "ECE": "churn: calibration error, |observed - predicted churn rate| over 10 bins of p_churn (lower is better)",
    "purch MAE": "purchases: mean absolute error of the expected purchase count per customer",
    "Gini": "spend: normalised Gini, how well predicted spend ranks realised spend (0 random, 1 perfect)",
    "Spearman": "spend: rank correlation of predicted and realised spend",
    "top10%": "spend: share of all realised spend made by the 10% of customers predicted to spend most",
    "agg err %": (
        "spend: (total predicted - total realised) / total realised, in % (+: over-predicts the base), at "
        "the candidate's own level: the shipped totals take the level of 'totals:' and 'values:' below"
    ),
}


def artifact_folder(artifact_uri: str) -> str:
    """The run's artifact location as a local path when it is one (``file://``), else the URI, redacted."""
    parsed = urlparse(artifact_uri)
    if parsed.scheme == "file":
        return str(Path(unquote(parsed.path)))
    if parsed.scheme == "":
        return artifact_uri
    return redact_url(artifact_uri)


#: Per target: the backtest metric of its ranking and the value of a ranking by chance.
CHANCE = {
    "churn": ("churn_auc", 0.5, "AUC", "churn risk"),
    "spend": ("spend_gini", 0.0, "Gini", "expected spend and CLV"),
}


def values_line(value: OrderValue, totals_level: str | None) -> str:
    """The ``values:`` line: the factor on the order values, and, when a season's window sets the
    totals' level, that the factor then moves no total (the window's measured level replaces BTYD's)."""
    line = f"values:    {value}"
    if totals_level == "season" and value.factor != 1.0:
        line += "; the season's window sets the totals' level, so it moves no total"
    return line


def below_chance(result: TrainResult) -> list[str]:
    """A warning per selected model whose backtest ranking is worse than chance: the best candidate can
    still be worse than a coin (a data zoo shop of mostly returns: spend Gini -0.15, customers who never
    made a sale ranked first)."""
    out = []
    for target, (metric, chance, label, what) in CHANCE.items():
        model = result.selected.get(target)
        if model not in result.summary.index or metric not in result.summary.columns:
            continue
        value = float(result.summary.loc[model, metric])
        if value < chance:  # NaN compares False: not measured is not below chance
            out.append(
                f"warning:   the selected {target} model ({model}) ranks worse than chance on the backtest "
                f"({label} {value:.3f}, chance {chance:g}): its {what} order customers no better than at random; "
                "check the amounts (returns, zero amounts) and the history before using them"
            )
    return out


def summary_lines(result: TrainResult, *, as_of: str, horizon_days: int, tracking_uri: str) -> list[str]:
    """What ``churnclv train`` prints when it is done (``tracking_uri``: the store it logged to)."""
    lines: list[str] = []
    plan = result.plan
    bt_horizon = horizon_days if plan is None else plan.backtest_horizon_days
    if bt_horizon is None:
        lines.append(f"backtest: none (as of {as_of}, horizon {horizon_days} days)")
    else:
        lines.append(f"backtest: {len(result.folds)} folds, mean over folds (as of {as_of}, horizon {bt_horizon} days)")
        lines.append(format_summary(result))
        lines += [f"  {name:<10} {text}" for name, text in COLUMNS.items()]
    lines += [f"note: {n}" for n in result.scorer.metadata_.get("fit_notes", [])]
    if result.dropped:
        lines.append(
            f"note: {len(result.dropped)} sub-fit(s) left out (the warnings above; training_notes.json in the run)"
        )
    weight = result.scorer.metadata_.get("churn_btyd_weight")
    churn = result.selected["churn"] + (f" (BTYD weight {weight:g})" if weight else "")
    lines.append("")
    lines.append(
        f"selected:  churn {churn}, purchases {result.selected['purchases']}, spend {result.selected['spend']}"
    )
    lines += below_chance(result)
    totals = result.scorer.metadata_.get("totals_level")
    if totals:  # learned_totals = "auto": what the backtest chose, and why
        lines.append(f"totals:    {TotalsLevel(**totals)}")
    value = result.scorer.metadata_.get("order_value")
    if value:  # order_value = "backtest": the factor on Gamma-Gamma's order values, and why
        lines.append(values_line(OrderValue(**value), (totals or {}).get("level")))
    lines.append(f"run:       {result.run_id} in experiment {result.experiment}")
    model = f"model:     {result.model_name} version {result.model_version} (alias {CHALLENGER})"
    if result.promotion is not None:
        verdict = "promoted to champion" if result.promotion["promoted"] else "not promoted"
        model += f"; {verdict}: {'; '.join(result.promotion['reasons'])}"
    lines.append(model)
    if result.artifact_uri:
        lines.append(f"plots:     {artifact_folder(result.artifact_uri)}/report")
    lines.append(f"MLflow UI: mlflow ui --backend-store-uri {redact_url(tracking_uri)}")
    return lines
