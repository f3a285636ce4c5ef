"""The partition's manifest (``scores/dt=DATE/_manifest.json``, published with the scores) and the run's
summary lines.

The manifest records what the run read (``input``: :func:`churnclv.fingerprint.file_fingerprint`),
which model scored it, the counts that reconcile (known at as-of = feature rows = rows written;
rows rejected at validation), the files published (``outputs``: paths relative to the output
folder, but ``scores``, the part files of ``scores_dir``), the tier report, the database rows and
the time of each stage, and the campaign's holdout (``campaign``: id, share, strata, controls per
cell; null without a campaign). Format version 2 is the layout of :mod:`churnclv.serving.snapshots`
(version 1: one folder ``as_of=DATE`` per as-of).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path
from typing import Any

from churnclv.names import AS_OF_WARNING_DAYS
from churnclv.redaction import redact_url
from churnclv.serving.batch_holdout import echo_campaign
from churnclv.serving.batch_targeting import echo_targeting
from churnclv.serving.model import LoadedModel
from churnclv.serving.snapshots import features_path, report_dir, scores_dir
from churnclv.serving.staleness import as_of_warnings, trained_as_of

__all__ = ["MANIFEST_FORMAT", "MANIFEST_VERSION", "build_manifest", "echo_summary"]

MANIFEST_FORMAT = "churnclv.batch"
MANIFEST_VERSION = 2


def build_manifest(
    *,
    day: dt.date,
    name: str,
    engine: str,
    chunk_size: int,
    files: list[str],
    resumed_chunks: int,
    hysteresis: bool,
    key: dict[str, Any],
    reasons: bool,
    model: LoadedModel,
    fp: dict[str, Any],
    known: int,
    n_features: int,
    written: int,
    rejected: dict[str, Any],
    report: dict[str, Any] | None,
    db_doc: dict[str, Any] | None,
    seconds: dict[str, float],
    monitoring: dict[str, Any] | None = None,
    campaign: dict[str, Any] | None = None,
    targeting: dict[str, Any] | None = None,
    undated: int = 0,
) -> dict[str, Any]:
    """The manifest of partition ``name`` (``key``: the resume key; ``seconds``: the time of each stage;
    ``monitoring``: the model version's latest monitored quality, see
    :func:`churnclv.serving.monitor_summary.latest_monitoring`; ``campaign``: the holdout drawn, see
    :func:`churnclv.serving.batch_holdout.write_holdout`; ``targeting``: the contacts decided, see
    :func:`churnclv.serving.batch_targeting.write_targeting`, left out without one)."""
    return {
        "format": MANIFEST_FORMAT,
        "format_version": MANIFEST_VERSION,
        "as_of": day.isoformat(),
        "partition": name,
        "engine": engine,
        "chunk_size": chunk_size,
        "chunks": len(files),
        "resumed_chunks": resumed_chunks,
        "hysteresis": hysteresis,
        "hysteresis_from": key["hysteresis_from"],
        "reasons": reasons,
        "horizon_days": model.horizon_days,
        "model": {
            "uri": redact_url(model.model_uri),
            "resolved_uri": redact_url(model.resolved_uri),
            "version": model.version,
            "run_id": model.run_id,
            "trained_as_of": model.metadata.get("as_of"),
            "horizon_days": model.horizon_days,
        },
        "input": fp,
        "counts": {
            "customers_known": known,
            # customers rows without a signup_ts and without any transaction: known at no as-of
            "customers_undated": undated,
            "features_rows": n_features,
            "rows_written": written,
            "reconciled": True,
            "validation": rejected,
            "rows_rejected": {t: r["rejected"] for t, r in rejected["tables"].items()},
        },
        "outputs": {
            "scores_dir": scores_dir("", day).as_posix(),
            "scores": files,
            "features": features_path("", day).as_posix(),
            "tier_report": report_dir("", day).as_posix() if report else None,
        },
        "tier_report": report,
        "campaign": campaign,
        **({"targeting": targeting} if targeting is not None else {}),
        "db": db_doc,
        "monitoring": monitoring,
        "timings_s": {k: round(v, 3) for k, v in seconds.items()},
        "warnings": [w.model_dump() for w in as_of_warnings(day, trained_as_of(model.metadata), AS_OF_WARNING_DAYS)],
    }


def echo_summary(manifest: dict[str, Any], out: Path, echo: Callable[[str], Any]) -> None:
    """The run's summary, a few lines through ``echo`` (``out``: the output folder): where, counts, tiers,
    migration, database, timings."""
    c = manifest["counts"]
    t = manifest["timings_s"]
    m = manifest["model"]
    echo(
        f"scored {c['rows_written']:,} customers as of {manifest['as_of']} with model version {m['version']} "
        f"({m['uri']}, horizon {manifest['horizon_days']} days) in {t['total']:.1f} s"
    )
    for w in manifest.get("warnings") or []:
        echo(f"  warning    {w['message']}")
    o = manifest["outputs"]
    echo(f"  scores     {out / o['scores_dir']} ({manifest['chunks']} part file(s) and the manifest)")
    echo(f"  features   {out / o['features']}")
    if o["tier_report"]:
        echo(f"  report     {out / o['tier_report']}")
    rej = ", ".join(f"{k} {v:,}" for k, v in c["rows_rejected"].items()) or "none (input not validated here)"
    echo(
        f"  counts     known at as-of {c['customers_known']:,} = written {c['rows_written']:,}; "
        f"rejected at validation: {rej}"
    )
    if c.get("customers_undated"):
        echo(
            f"  undated    {c['customers_undated']:,} customers row(s) with neither a signup_ts nor a transaction: "
            "known at no as-of, not scored (add their signup_ts to score them as sign-ups)"
        )
    report = manifest.get("tier_report")
    if report:
        mix = ", ".join(f"{r['tier']} {r['customer_share']:.0%}" for r in report["summary"])
        echo(f"  tiers      {mix}")
        if "migration" in report:
            mg = report["migration"]
            echo(
                f"  migration  vs {report['previous']}: {mg['changed_tier']:,} of {mg['customers_both']:,} "
                f"customers changed tier; {mg['only_current']:,} new, {mg['only_previous']:,} gone"
            )
        elif report.get("migration_skipped"):
            echo(f"  migration  skipped: {report['migration_skipped']}")
    echo_campaign(manifest.get("campaign"), echo)
    echo_targeting(manifest.get("targeting"), echo)
    if manifest.get("db"):
        d = manifest["db"]
        echo(
            f"  database   {d['url']} table {d['table']}: {d['rows_written']:,} rows of as-of "
            f"{manifest['as_of']} written, replacing {d['rows_removed']:,}"
        )
    stages = ", ".join(f"{k} {v:.1f}s" for k, v in t.items() if k != "total")
    echo(f"  timings    {stages}")
