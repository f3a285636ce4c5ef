"""One table of every bench's headline figures, from their results files (``churnclv-bench/1``, see
``bench/common.py``): bench, metric, ours, reference, ratio, goal, met. Benches that were skipped or
failed are listed under it with the reason and the command that runs them; then the machines and
commits the figures come from. Exit 0 whatever the goals say (a bench is a table, not a test).

    .venv/bin/python bench/summary.py                      # work/bench-results/*.json
    .venv/bin/python bench/summary.py work/bench-small/results other.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from common import FORMAT, RESULTS_DIR, goal_met, goal_text

HEADER = ("bench", "metric", "ours", "reference", "ratio", "goal", "met?")


def number(x: float | None, unit: str = "") -> str:
    if x is None:
        return ""
    text = f"{x:,.0f}" if abs(x) >= 1000 else f"{x:.4g}"
    return f"{text} {unit}".rstrip() if unit else text


def met_text(headline: dict[str, Any]) -> str:
    goal = headline.get("goal")
    if not goal:
        return ""
    if not goal.get("applies", True):
        return "n/a (not at that scale)"
    met = goal_met(goal, headline.get("ours"), headline.get("reference"))
    return "" if met is None else "yes" if met else "NO"


def rows(doc: dict[str, Any]) -> list[tuple[str, ...]]:
    out = []
    for h in doc.get("headlines", []):
        ref = number(h.get("reference"), h.get("unit", ""))
        if ref and h.get("reference_name"):
            ref = f"{ref} ({h['reference_name']})"
        goal = h.get("goal")
        out.append(
            (
                doc["bench"],
                h["metric"],
                number(h.get("ours"), h.get("unit", "")),
                ref,
                number(h.get("ratio")),
                goal_text(goal, h.get("unit", "")),
                met_text(h),
            )
        )
    return out


def markdown(table: list[tuple[str, ...]]) -> str:
    cells = [tuple(c.replace("|", "\\|") for c in row) for row in table]
    lines = [f"| {' | '.join(HEADER)} |", f"|{'---|' * len(HEADER)}"]
    lines += [f"| {' | '.join(row)} |" for row in cells]
    return "\n".join(lines)


def read(paths: list[Path]) -> tuple[list[dict[str, Any]], list[str]]:
    """The results files under ``paths`` (folders: their ``*.json``), and what could not be read."""
    files: list[Path] = []
    for p in paths:
        files += sorted(p.glob("*.json")) if p.is_dir() else [p]
    docs, problems = [], []
    for f in files:
        try:
            doc = json.loads(f.read_text())
        except (OSError, ValueError) as exc:
            problems.append(f"{f}: not readable as JSON ({type(exc).__name__})")
            continue
        if not isinstance(doc, dict) or doc.get("format") != FORMAT:
            problems.append(f"{f}: not a {FORMAT} results file (written by an older bench?)")
            continue
        docs.append(doc)
    return docs, problems


def machines(docs: list[dict[str, Any]]) -> list[str]:
    """One line per machine and commit: cores, RAM, versions, the load average range over the runs."""
    groups: dict[tuple[Any, ...], list[dict[str, Any]]] = {}
    for d in docs:
        m = d.get("machine") or {}
        key = (m.get("cores"), m.get("ram_gb"), m.get("python"), m.get("duckdb"), m.get("lightgbm"))
        key += ((m.get("git_commit") or "?")[:10] + (" (uncommitted changes)" if m.get("git_dirty") else ""),)
        groups.setdefault(key, []).append(m)
    lines = []
    for (cores, ram, py, duckdb, lgb, commit), ms in groups.items():
        loads = [x for m in ms for x in (m.get("load_avg_start") or [None])[:1] + (m.get("load_avg_end") or [None])[:1]]
        loads = [x for x in loads if x is not None]
        load = f"{min(loads):.1f}-{max(loads):.1f}" if loads else "?"
        lines.append(
            f"{cores} cores, {ram} GB RAM, python {py}, duckdb {duckdb}, lightgbm {lgb}, commit {commit}; "
            f"load average (1 min) {load} over {len(ms)} bench(es)"
        )
    return lines


def render(docs: list[dict[str, Any]]) -> str:
    ok = [d for d in docs if d.get("status", "ok") == "ok"]
    other = [d for d in docs if d.get("status", "ok") != "ok"]
    table = [row for d in ok for row in rows(d)]
    parts = [markdown(table) if table else "(no headline figures)"]
    if other:
        parts.append("Not measured:")
        parts += [
            f"- {d['bench']}: {d['status']}: {d.get('reason', '')}; run it with: {d.get('full_command', '')}"
            for d in other
        ]
    parts.append("Machine: " + "\n         ".join(machines(docs)))
    walls = [d.get("wall_s") for d in docs if d.get("wall_s") is not None]
    parts.append(f"{len(ok)} bench(es) measured, {len(other)} not; their wall time {sum(walls):.0f} s in all")
    return "\n\n".join(parts)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="bench/summary.py",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        allow_abbrev=False,
    )
    ap.add_argument("paths", nargs="*", type=Path, default=[RESULTS_DIR], help="results files or folders of them")
    args = ap.parse_args(argv)
    docs, problems = read(args.paths)
    for p in problems:
        print(f"skipped {p}", file=sys.stderr)
    if not docs:
        print(
            f"no results files in {', '.join(map(str, args.paths))}; run a bench (e.g. `make bench`) first",
            file=sys.stderr,
        )
        return 1
    print(render(docs))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
