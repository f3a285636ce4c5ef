"""The monitor's files in a folder: ``monitor.json`` (the whole result), ``report.md`` and PNG plots.

The caller writes them into a temp folder and swaps it in whole (``OUT/monitoring/dt=DATE/``), so a
reader sees one run's files or the previous run's, never a mix.
"""

from __future__ import annotations

import json
import math
from dataclasses import fields
from pathlib import Path
from typing import Any

from churnclv.monitoring.files import MONITOR_FILE, REPORT_FILE
from churnclv.monitoring.plots import plot_decile_calibration, plot_group_revenue, plot_psi
from churnclv.monitoring.thresholds import Breach
from churnclv.plotting import save

__all__ = ["MONITOR_FILE", "REPORT_FILE", "render_markdown", "write_files"]


def _f(x: Any, digits: int = 3) -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "-"
    if isinstance(x, float):
        return f"{x:.{digits}f}"
    return str(x)


def _pct(x: Any) -> str:
    return "-" if x is None else f"{100 * x:.1f}%"


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header), *("| " + " | ".join(r) + " |" for r in rows)]


_QUALITY = [
    ("churn_auc", "AUC"),
    ("churn_brier", "Brier"),
    ("churn_ece", "ECE"),
    ("realized_churn_rate", "churn"),
    ("predicted_churn_rate", "pred. churn"),
    ("purchases_agg_pct_error", "purchases err %"),
    ("spend_agg_pct_error", "spend err %"),
    ("spend_gini", "spend Gini"),
]


def _quality_section(doc: dict[str, Any]) -> list[str]:
    lines = ["## Scores against what happened", ""]
    if not doc["partitions"]:
        lines += [f"No partition's horizon has closed by {doc['as_of']}: drift only.", ""]
    else:
        rows = [
            [p["partition"], p["window_end"], str(p["model"]["version"]), f"{p['customers_labelled']:,}"]
            + [_f(p["metrics"].get(k), 1 if k.endswith("pct_error") else 3) for k, _ in _QUALITY]
            for p in doc["partitions"]
        ]
        header = ["partition", "window end", "version", "customers", *[h for _, h in _QUALITY]]
        lines += [*_table(header, rows), ""]
    for p in doc["partitions"][-1:]:
        lines += [f"### {p['partition']} by tier (window to {p['window_end']})", ""]
        moved = p.get("moved_against")
        header = ["tier", "customers", "share", "mean p_churn", "realised churn", "revenue", "revenue share"]
        rows = [
            [str(t["tier"]), f"{t['customers']:,}", _pct(t["share"]), _f(t["mean_p_churn"]), _f(t["realized_churn"])]
            + [_f(t["revenue"], 0), _pct(t["revenue_share"])]
            + ([f"{t['moved_up']:,} / {t['moved_down']:,} / {t['gone']:,}"] if moved else [])
            for t in p["tiers"]
        ]
        lines += [*_table(header + ([f"up / down / gone by {moved}"] if moved else []), rows), ""]
        lines += [f"### {p['partition']} by action", ""]
        rows = [
            [
                str(a["action"]),
                f"{a['customers']:,}",
                _f(a["mean_p_churn"]),
                _f(a["realized_churn"]),
                _f(a["revenue"], 0),
                _pct(a["revenue_share"]),
            ]
            for a in p["actions"]
        ]
        lines += _table(["action", "customers", "mean p_churn", "realised churn", "revenue", "revenue share"], rows)
        lines += ["", "![calibration](calibration.png) ![revenue by tier](tier_revenue.png)", ""]
    return lines


def _drift_section(doc: dict[str, Any]) -> list[str]:
    d = doc["drift"]
    if d is None:
        return ["## Drift", "", "No partition on or before the as-of: no drift measured.", ""]
    ref = d["reference"]
    lines = [
        "## Drift",
        "",
        f"{d['partition']} against {ref['partition']} ({ref['kind'].replace('_', ' ')}): {ref['note']}",
        "",
        f"- customers unseen at training: {_pct(d['unseen_share'])}",
        f"- tier mix PSI {_f(d['tier_mix']['psi'])}; scores: "
        + ", ".join(f"{s['column']} PSI {_f(s['psi'])}" for s in d["scores"]),
        "",
    ]
    rows = [
        [
            r["column"] + (" (drift_ignore)" if r.get("ignored") else ""),  # reported, never a breach
            r["kind"],
            _f(r["psi"]),
            _f(r["ks"]),
            _f(r.get("reference_mean")),
            _f(r.get("current_mean")),
        ]
        for r in d["features"][:20]
    ]
    lines += _table(["feature (20 largest PSI)", "kind", "PSI", "KS", "mean (ref)", "mean (now)"], rows)
    return [*lines, "", "![feature drift](drift.png)", ""]


def render_markdown(doc: dict[str, Any]) -> str:
    """``report.md``: the breaches, the quality of each closed partition, the latest one by tier and action,
    and the drift."""
    lines = [f"# churnclv monitor as of {doc['as_of']}", ""]
    versions = ", ".join(f"{v['name']} v{v['version']}" for v in doc["model_versions"]) or "-"
    lines += [f"Model versions: {versions}.", ""]
    if doc["breaches"]:
        lines += ["## Breaches", ""]
        names = [f.name for f in fields(Breach)]
        lines += [f"- {Breach(**{k: b[k] for k in names}).message()}" for b in doc["breaches"]]
    else:
        lines += ["No threshold breached."]
    lines += [""] + [f"- {n}" for n in doc["notes"]] + ([""] if doc["notes"] else [])
    return "\n".join(lines + _quality_section(doc) + _drift_section(doc)) + "\n"


def write_files(doc: dict[str, Any], folder: Path, max_psi: float) -> list[Path]:
    """Write ``monitor.json``, ``report.md`` and the plots of ``doc`` into ``folder``; returns the paths."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = [folder / MONITOR_FILE, folder / REPORT_FILE]
    paths[0].write_text(json.dumps(doc, indent=1, sort_keys=False, allow_nan=False) + "\n", encoding="utf-8")
    paths[1].write_text(render_markdown(doc), encoding="utf-8")
    if doc["partitions"]:
        p = doc["partitions"][-1]
        paths.append(
            save(
                plot_decile_calibration(p["calibration"], f"calibration, {p['partition']}"), folder / "calibration.png"
            )
        )
        paths.append(save(plot_group_revenue(p["tiers"], "tier"), folder / "tier_revenue.png"))
    if doc["drift"] is not None:
        paths.append(save(plot_psi(doc["drift"]["features"], max_psi), folder / "drift.png"))
    return paths
