"""Compare two runs of ``bench/same_outputs.sh``: the outputs a refactoring must leave unchanged.

Compared exactly: the batch scores (every column of every customer), the feature snapshot, the saved
scorer (``scorer.json`` and the LightGBM model texts), the tier report tables and the HTTP answers.
What identifies a run rather than its result (run ids, paths, times, file dates) is listed apart.

Usage: ``.venv/bin/python bench/same_outputs_diff.py /tmp/same/before /tmp/same/after``; exit 1 on a
difference.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd
from common import Goal, Results, bench_parser

RUN_KEYS = {"run_id", "mtime_ns", "path", "clean", "created_at", "started_at", "finished_at", "seconds", "wall_s"}


def _diff(a: Any, b: Any, where: str, out: list[str], ignored: list[str]) -> None:
    if isinstance(a, dict) and isinstance(b, dict):
        for k in sorted(set(a) | set(b)):
            key = f"{where}.{k}"
            if k not in a or k not in b:
                out.append(f"{key}: only in {'after' if k in b else 'before'}")
            elif k in RUN_KEYS or k.endswith(("_at", "_seconds", "_s")):
                if a[k] != b[k]:
                    ignored.append(key)
            else:
                _diff(a[k], b[k], key, out, ignored)
    elif isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            _diff(x, y, f"{where}[{i}]", out, ignored)
    elif a != b:
        out.append(f"{where}: {a!r:.80} != {b!r:.80}")


def _frames(folder: Path, pattern: str) -> pd.DataFrame:
    parts = sorted(folder.glob(pattern))
    frame = pd.concat([pd.read_parquet(p) for p in parts], ignore_index=True)
    return frame.sort_values("customer_id", kind="stable").reset_index(drop=True)


def _batch_files(run: Path) -> dict[str, Path]:
    """The batch output of ``run``: scores folder, feature folder, manifest and tier report folder, in the
    layout of ``churnclv.serving.snapshots`` (``scores/dt=DATE/``...) or the earlier one (``as_of=DATE/``)."""
    out = run / "scores"
    new = sorted((out / "scores").glob("dt=*"))
    if new:
        name = new[0].name
        return {
            "scores": out / "scores" / name,
            "features": out / "features" / name,
            "manifest": out / "scores" / name / "_manifest.json",
            "tier_report": out / "reports" / name,
        }
    part = next(out.glob("as_of=*"))
    return {"scores": part, "features": part, "manifest": part / "manifest.json", "tier_report": part / "tier_report"}


def main(before: Path, after: Path, results: Results) -> int:
    diffs: list[str] = []
    ignored: list[str] = []
    was, now = _batch_files(before), _batch_files(after)
    for what, pattern in (("scores", "part-*.parquet"), ("features", "features.parquet")):
        a, b = _frames(was[what], pattern), _frames(now[what], pattern)
        try:
            pd.testing.assert_frame_equal(a, b, check_exact=True)
            print(f"same  {what}: {len(a):,} rows x {a.shape[1]} columns")
        except AssertionError as exc:
            diffs.append(f"{what}: {str(exc).splitlines()[0:4]}")
    _diff(json.loads(was["manifest"].read_text()), json.loads(now["manifest"].read_text()), "manifest", diffs, ignored)
    for f in sorted(p.relative_to(was["tier_report"]) for p in was["tier_report"].rglob("*")):
        if (
            f.suffix in (".csv", ".json", ".md")
            and (was["tier_report"] / f).read_bytes() != (now["tier_report"] / f).read_bytes()
        ):
            diffs.append(f"{f}: differs")
    scorer = [next(d.glob("mlruns/artifacts/**/scorer/scorer.json")) for d in (before, after)]
    _diff(*(json.loads(p.read_text()) for p in scorer), "scorer.json", diffs, ignored)
    for booster in sorted(p.name for p in scorer[0].parent.glob("*.txt")):
        if (scorer[0].parent / booster).read_bytes() != (scorer[1].parent / booster).read_bytes():
            diffs.append(f"{booster}: differs")
    for name in ("http_score_by_id.json", "http_model_info.json"):
        _diff(*(json.loads((d / name).read_text()) for d in (before, after)), name, diffs, ignored)
    print(f"run identity (ignored): {', '.join(sorted(set(ignored))) or 'none'}")
    for line in diffs:
        print(f"DIFF  {line}")
    print("identical" if not diffs else f"{len(diffs)} difference(s)")
    results.records = [{"difference": line} for line in diffs]
    results.notes.append(f"run identity (ignored): {', '.join(sorted(set(ignored))) or 'none'}")
    results.headline(
        "outputs that differ (scores, features, scorer, tier report, HTTP)", len(diffs), goal=Goal("ours", "<=", 0)
    )
    results.write()
    return 1 if diffs else 0


if __name__ == "__main__":
    ap = bench_parser(__file__, __doc__.split("\n\n")[0])
    ap.add_argument("before", type=Path, help="an output folder of bench/same_outputs.sh")
    ap.add_argument("after", type=Path, help="another one, to compare with")
    args = ap.parse_args()
    raise SystemExit(main(args.before, args.after, Results(args.json, __file__)))
