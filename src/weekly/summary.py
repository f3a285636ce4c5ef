"""The summary a weekly run ends with: what ran, how long each step took, what changed, where the
outputs are."""

from __future__ import annotations

from pathlib import Path

from churnclv.serving.snapshots import scores_dir
from churnclv.weekly.journal import validated_dir
from churnclv.weekly.request import WeeklyResult

__all__ = ["summary_lines"]


def _changes(result: WeeklyResult) -> list[str]:
    steps, facts = result.journal.steps, result.journal.facts
    before = facts.get("champion_at_start")
    retrain = steps.get("retrain", {})
    after = retrain.get("champion", before)
    champion = f"champion version {before} -> {after}" if after != before else f"champion version {after} (unchanged)"
    lines = [f"  model      {champion}"]
    breaches = steps.get("monitor", {}).get("breaches", [])
    lines.append(
        f"  breaches   {len(breaches)}" + (": " + "; ".join(str(b.get("check")) for b in breaches) if breaches else "")
    )
    if retrain.get("retrained"):
        lines.append(f"  retrain    version {retrain.get('version')}: {'; '.join(retrain.get('reasons', []))}")
    else:
        lines.append(f"  retrain    none ({retrain.get('outcome', 'not reached')})")
    lines += [f"  ignored    {text}" for text in retrain.get("ignored", [])]
    tables = steps.get("validate", {}).get("tables") or {}
    rejected = {t: c for t, c in tables.items() if c.get("rejected")}
    if rejected:  # the rows the run did not score on are told here, not only in the rejects folder
        counts = ", ".join(f"{t} {c['rejected']:,} of {c['read']:,} rows" for t, c in rejected.items())
        lines.append(f"  rejected   {counts} (the reasons: rejects/*.csv below)")
    scored = steps.get("rescore", {}) if steps.get("rescore", {}).get("rows") is not None else steps.get("score", {})
    if scored.get("rows") is not None:
        lines.append(f"  scores     {scored['rows']:,} customers by version {scored.get('version')}")
    return lines


def summary_lines(result: WeeklyResult) -> list[str]:
    """The summary, one line each (no customer data, URLs redacted by the steps)."""
    r = result.request
    lines = [f"weekly run as of {r.day} into {r.out}: {result.seconds:.1f} s", ""]
    lines.append(f"  {'step':<9} {'ran':<8} {'seconds':>8}  outcome")
    for line in result.lines:
        lines.append(f"  {line.step:<9} {'now' if line.ran else 'earlier':<8} {line.seconds:>8.1f}  {line.outcome}")
    lines += ["", "what changed", *_changes(result), "", "outputs"]
    outputs = {
        "scores": scores_dir(r.out, r.as_of),
        "monitor": result.journal.steps.get("monitor", {}).get("report"),
        "journal": result.journal.path,
        "rejects": validated_dir(r.out, r.as_of) / "rejects",
    }
    lines += [f"  {name:<10} {path}" for name, path in outputs.items() if path and Path(path).exists()]
    if result.warnings:
        lines += ["", *result.warnings]
    return lines
