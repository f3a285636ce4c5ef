"""The campaign report's files: ``campaign.md`` (Markdown), the tables as CSV and the plots as PNG."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from churnclv.campaigns.evaluate import OUTCOMES, CampaignEvaluation
from churnclv.campaigns.plots import plot_qini, plot_uplift_by_tier
from churnclv.campaigns.qini import qini_coefficient, qini_curve
from churnclv.plotting import save

__all__ = ["qini_curves", "write_campaign_report"]


def qini_curves(evaluation: CampaignEvaluation, score_columns: Sequence[str]) -> dict[str, pd.DataFrame]:
    """Revenue Qini curves of the campaign's population ranked by each of ``score_columns``."""
    c = evaluation.customers
    treated = ~c["holdout"].to_numpy()
    return {
        name: qini_curve(c["revenue"].to_numpy(), treated, c[name].to_numpy(float))
        for name in score_columns
        if name in c.columns
    }


def _fmt(v: object) -> str:
    if isinstance(v, float | np.floating):
        return "" if np.isnan(v) else f"{v:,.4g}"
    return str(v)


def _table(frame: pd.DataFrame, columns: Sequence[str]) -> str:
    cols = [c for c in columns if c in frame.columns]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(_fmt(v) for v in row) + " |" for row in frame[cols].itertuples(index=False)]
    return "\n".join(lines)


def _columns(keys: Sequence[str]) -> list[str]:
    out = [*keys, "treated", "controls", "contact_rate"]
    for o in OUTCOMES:
        out += [f"{o}_treated", f"{o}_control", f"{o}_uplift", f"{o}_low", f"{o}_high"]
    return [*out, "incremental_revenue", "cost", "profit", "roi"]


def write_campaign_report(
    evaluation: CampaignEvaluation, out_dir: Path | str, *, score_columns: Sequence[str] = ()
) -> dict[str, Path]:
    """Write ``campaign.md``, ``cells.csv``, ``tiers.csv``, ``uplift_by_tier.png``, ``uplift_by_cell.png``
    and, for ``score_columns`` the scores carry, ``qini.png``. Returns file stem to path."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    ev = evaluation
    paths: dict[str, Path] = {}
    for stem, frame in (("cells", ev.cells), ("tiers", ev.tiers), ("total", ev.total), ("not_run", ev.not_run)):
        paths[stem] = out / f"{stem}.csv"
        frame.to_csv(paths[stem], index=False)
    paths["uplift_by_tier"] = save(plot_uplift_by_tier(ev.tiers), out / "uplift_by_tier.png")
    paths["uplift_by_cell"] = save(plot_uplift_by_tier(ev.cells), out / "uplift_by_cell.png")
    curves = qini_curves(ev, score_columns)
    qini: Mapping[str, float] = {}
    if curves:
        paths["qini"] = save(plot_qini(curves), out / "qini.png")
        c = ev.customers
        qini = {n: qini_coefficient(c["revenue"], ~c["holdout"], c[n].astype(float)) for n in curves}
    window = f"{ev.as_of.date()} + {ev.horizon_days} days"
    parts = [
        f"# Campaign {ev.campaign}",
        (
            f"Scores as of {ev.as_of.date()}; outcomes over the {ev.horizon_days} days after ({window}); "
            f"{ev.confidence:.0%} intervals; profit at a margin of {ev.margin:.0%} of revenue. Treated against holdout "
            "by assignment (intention to treat)."
        ),
        "## Whole campaign",
        _table(ev.total, _columns(["campaign"])),
        "## By tier",
        "![uplift by tier](uplift_by_tier.png)",
        _table(ev.tiers, _columns(["tier"])),
        "## By tier and action",
        "![uplift by cell](uplift_by_cell.png)",
        _table(ev.cells, _columns(["tier", "action"])),
        "## Contact log",
        _table(pd.DataFrame([ev.counts.to_dict()]), list(ev.counts.to_dict())),
    ]
    if len(ev.not_run):
        parts += ["Cells without a logged contact (left out):", _table(ev.not_run, list(ev.not_run.columns))]
    if curves:
        rows = pd.DataFrame({"score": list(qini), "qini_coefficient": list(qini.values())})
        parts += ["## Qini (revenue)", "![qini](qini.png)", _table(rows, ["score", "qini_coefficient"])]
    if ev.notes:
        parts += ["## Notes", "\n".join(f"- {n}" for n in ev.notes)]
    paths["campaign"] = out / "campaign.md"
    paths["campaign"].write_text("\n\n".join(parts) + "\n", encoding="utf-8")
    return paths
