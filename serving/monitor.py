"""``churnclv monitor``: past scores checked against what happened, and this week's drift.

:func:`run_monitor` reads the batch output ``OUT`` (:mod:`churnclv.serving.snapshots`) as of a date:

- every partition ``dt=D`` whose horizon has closed (``D + H <= as_of``, H from its manifest; at most
  ``[monitor] lookback_days`` ago) is scored against the realised outcomes of ``(D, D + H]`` (the training
  labels, from the clean tables): :func:`churnclv.monitoring.quality.partition_quality`; one whose
  window ends after the last transaction in the data (a late export) waits, with a note, instead of
  grading its missing days as days without a purchase;
- this week's partition (the latest on or before the as-of) is compared with its model version's
  reference (:func:`churnclv.serving.monitor_inputs.choose_reference`):
  :func:`churnclv.monitoring.drift.drift_report`;
- the thresholds of ``[monitor]`` are checked (:func:`churnclv.monitoring.thresholds.find_breaches`)
  on the newest closed partition of the version in use and on the drift.

It writes ``OUT/monitoring/dt=AS_OF/`` (``monitor.json``, ``report.md``, PNG plots) as one folder
swapped in whole (a rerun replaces it: same inputs, same files), logs the figures to MLflow under each
model version (:mod:`churnclv.serving.monitor_mlflow`) and, with ``db``, replaces the as-of's rows of a
table (:mod:`churnclv.serving.monitor_db`).
"""

from __future__ import annotations

import datetime as dt
import math
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from churnclv.features import FeatureConfig
from churnclv.monitoring.drift import drift_report
from churnclv.monitoring.quality import SCORE_COLUMNS, last_transaction_day, partition_quality, realised_labels
from churnclv.monitoring.report import write_files
from churnclv.monitoring.thresholds import Breach, MonitorConfig, find_breaches
from churnclv.names import DEFAULT_TRACKING_URI
from churnclv.serving.batch_options import as_of_day
from churnclv.serving.monitor_db import DEFAULT_MONITOR_TABLE, write_monitor_table
from churnclv.serving.monitor_inputs import (
    MonitorError,
    Partition,
    choose_reference,
    published,
    read_features,
    read_partition_scores,
)
from churnclv.serving.monitor_mlflow import VersionFacts, log_version, open_client, version_facts
from churnclv.serving.monitor_summary import monitoring_dir
from churnclv.serving.publication import lock, swap_in
from churnclv.serving.snapshots import partition_name

__all__ = ["FORMAT", "MonitorResult", "run_monitor"]

FORMAT = {"format": "churnclv.monitor", "format_version": 1}
_DRIFT_SCORES = ["customer_id", "p_churn", "clv", "expected_spend", "growth_score", "tier", "action"]


@dataclass
class MonitorResult:
    """What a monitor run found and wrote: ``doc`` (``monitor.json``), ``breaches``, ``folder``
    (``OUT/monitoring/dt=AS_OF``), ``runs`` (MLflow run id per ``name/version``), ``db`` (the table write)."""

    as_of: dt.date
    doc: dict[str, Any]
    breaches: list[Breach]
    folder: Path
    runs: dict[str, str] = field(default_factory=dict)
    db: dict[str, Any] | None = None


def _quality(
    clean: Path, out: Path, p: Partition, parts: list[Partition], day: dt.date, zero: bool, memory_limit: str | None
) -> dict[str, Any]:
    scores = read_partition_scores(out, p, SCORE_COLUMNS)
    labels = realised_labels(
        clean,
        p.day,
        p.horizon_days,
        as_of=day,
        config=FeatureConfig(zero_amount_is_purchase=zero),
        memory_limit=memory_limit,
    )
    then = next((q for q in parts if q.day >= p.window_end), None)  # the tiers at the window's end
    later = None if then is None else read_partition_scores(out, then, ["customer_id", "tier_level"])
    q = partition_quality(scores, labels, later)
    return {
        "partition": p.name,
        "as_of": p.day.isoformat(),
        "window_end": p.window_end.isoformat(),
        "horizon_days": p.horizon_days,
        "model": p.model(),
        "moved_against": None if then is None else then.name,
        **q,
    }


def _drift(out: Path, parts: list[Partition], current: Partition, config: MonitorConfig) -> dict[str, Any]:
    ref, kind, note = choose_reference(parts, current)
    report = drift_report(
        read_features(out, ref),
        read_features(out, current),
        read_partition_scores(out, ref, _DRIFT_SCORES),
        read_partition_scores(out, current, _DRIFT_SCORES),
        day=current.day,
        trained_as_of=current.trained_as_of,
        bins=config.psi_bins,
        ignore=config.drift_ignore,
    )
    return {
        "partition": current.name,
        "as_of": current.day.isoformat(),
        "model": current.model(),
        "reference": {"partition": ref.name, "kind": kind, "note": note},
        **report,
    }


def _clean_json(x: Any) -> Any:
    """``x`` with every non-finite float as None (``monitor.json`` is strict JSON)."""
    if isinstance(x, float):
        return x if math.isfinite(x) else None
    if isinstance(x, dict):
        return {k: _clean_json(v) for k, v in x.items()}
    if isinstance(x, list):
        return [_clean_json(v) for v in x]
    return x


def _publish(out: Path, day: dt.date, doc: dict[str, Any], max_psi: float) -> Path:
    """Write the files into a temp folder beside the final one and swap it in whole."""
    root = monitoring_dir(out)
    root.mkdir(parents=True, exist_ok=True)
    final = root / partition_name(day)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.tmp-", dir=root))
    try:
        staged = tmp / "new"
        write_files(doc, staged, max_psi)
        swap_in(staged, final, tmp / "old")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)  # the old folder went into it
    return final


def _facts(client: Any, uri: str, versions: list[dict[str, str]]) -> dict[tuple[str, str], VersionFacts]:
    return {
        (v["name"], v["version"]): VersionFacts(None, None, None)
        if v["version"] == "unknown"
        else version_facts(client, uri, v["name"], v["version"])
        for v in versions
    }


# A partition is graded once the last transaction in the data is at most this many days before its
# window's end: a small shop's quiet last day (the generated worlds end at 23:30 the day before) is
# no late export; waiting costs a week's delay, grading a month without data a false breach
DATA_END_GRACE_DAYS = 2


def run_monitor(
    *,
    clean: str | Path,
    out: str | Path,
    as_of: Any,
    config: MonitorConfig | None = None,
    tracking_uri: str | None = None,
    db: str | None = None,
    db_table: str = DEFAULT_MONITOR_TABLE,
    memory_limit: str | None = None,
    features: FeatureConfig | None = None,
    echo: Callable[[str], Any] = print,
) -> MonitorResult:
    """Check the scores in ``out`` whose horizon has closed by ``as_of`` and this week's drift (see the
    module doc); returns the :class:`MonitorResult` (``.breaches`` empty: nothing crossed a threshold).

    Parameters
    ----------
    clean
        The clean tables (what the realised outcomes are read from).
    out
        The batch job's output folder.
    as_of
        The monitor's date: data up to it is known.
    config
        The thresholds (``[monitor]``); default :class:`MonitorConfig`.
    tracking_uri
        The MLflow store holding the model versions (default ``$MLFLOW_TRACKING_URI``, else
        :data:`churnclv.names.DEFAULT_TRACKING_URI`).
    db, db_table
        Also write the figures into this table (``postgresql://...``, ``sqlite:///...``).
    memory_limit
        DuckDB's memory limit for the labels.
    features
        The feature configuration's purchase rule when the registry does not record the model's
        (``zero_amount_is_purchase``); default :class:`FeatureConfig`.
    echo
        Where the summary lines go.

    Raises
    ------
    MonitorError
        No published partition on or before ``as_of``, or a partition that cannot be read.
    """
    config = config or MonitorConfig()
    day = as_of_day(as_of)
    out = Path(out)
    uri = tracking_uri or os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_TRACKING_URI
    parts = published(out, day)
    if not parts:
        raise MonitorError(
            f"{out}: no published partition on or before {day}: run churnclv score-batch --out {out} first"
        )
    current = parts[-1]
    oldest = day - dt.timedelta(days=config.lookback_days)
    closed = [p for p in parts if oldest <= p.window_end <= day]
    # a window the data do not reach yet (a late export) would grade its missing days as no purchase
    data_end = last_transaction_day(clean, memory_limit) if closed else None
    waiting = [p for p in closed if data_end is None or (p.window_end - data_end).days > DATA_END_GRACE_DAYS]
    closed = [p for p in closed if p not in waiting]
    versions = list({(p.model_name, p.version): p.model() for p in [*closed, current]}.values())
    client = open_client(uri)
    facts = _facts(client, uri, versions)
    default_zero = (features or FeatureConfig()).zero_amount_is_purchase
    notes = []
    if current.day != day:
        notes.append(f"no partition at {day}: drift is measured on the latest before it, {current.name}")
    if waiting:
        names = ", ".join(p.name for p in waiting)
        notes.append(
            f"{names}: the window runs to {waiting[-1].window_end}, after the last transaction in the data "
            f"({data_end or 'none'}): not checked until the data reach it"
        )
    if not closed:
        notes.append(f"no partition's horizon has closed by {day}: drift only")
    with lock(monitoring_dir(out).parent, f"monitor-{partition_name(day)}"):
        quality = []
        for p in closed:
            zero = facts[(p.model_name, p.version)].zero_amount_is_purchase
            quality.append(
                _quality(Path(clean), out, p, parts, day, default_zero if zero is None else zero, memory_limit)
            )
        drift = _drift(out, parts, current, config)
        judged = next((q for q in reversed(quality) if q["model"] == current.model()), None)
        backtest = facts[(current.model_name, current.version)].backtest_auc
        breaches = find_breaches(judged, drift, config, backtest)
        doc = _document(day, config, quality, drift, breaches, versions, facts, current, notes)
        folder = _publish(out, day, doc, config.max_psi)
    result = MonitorResult(as_of=day, doc=doc, breaches=breaches, folder=folder)
    for v in versions:
        if v["version"] != "unknown":
            entry = next(e for e in doc["model_versions"] if e["name"] == v["name"] and e["version"] == v["version"])
            result.runs[f"{v['name']}/{v['version']}"] = log_version(client, uri, doc, entry, folder)
    if db is not None:
        result.db = write_monitor_table(db, db_table, doc)
    _summary(result, echo)
    return result


def _document(
    day: dt.date,
    config: MonitorConfig,
    quality: list[dict[str, Any]],
    drift: dict[str, Any],
    breaches: list[Breach],
    versions: list[dict[str, str]],
    facts: dict[tuple[str, str], VersionFacts],
    current: Partition,
    notes: list[str],
) -> dict[str, Any]:
    entries = []
    for v in versions:
        mine = [q for q in quality if q["model"] == v]
        latest = mine[-1] if mine else None
        entries.append(
            {
                **v,
                "backtest_auc": facts[(v["name"], v["version"])].backtest_auc,
                "partitions": [q["partition"] for q in mine],
                "latest_quality": None
                if latest is None
                else {
                    "partition": latest["partition"],
                    "window_end": latest["window_end"],
                    "metrics": latest["metrics"],
                },
            }
        )
    scored = {q["partition"]: q["as_of"] for q in quality} | {drift["partition"]: drift["as_of"]}
    listed = [{**b.to_dict(), "scored_as_of": scored[b.partition], "model": current.model()} for b in breaches]
    doc: dict[str, Any] = _clean_json(
        {
            **FORMAT,
            "as_of": day.isoformat(),
            "thresholds": {k: getattr(config, k) for k in config.__dataclass_fields__},
            "model_versions": entries,
            "partitions": quality,
            "drift": drift,
            "checked": {
                "quality": next((q["partition"] for q in reversed(quality) if q["model"] == current.model()), None),
                "drift": drift["partition"],
            },
            "breaches": listed,
            "notes": notes,
        }
    )
    return doc


def _summary(result: MonitorResult, echo: Callable[[str], Any]) -> None:
    doc = result.doc
    echo(f"monitored as of {doc['as_of']}: {len(doc['partitions'])} closed partition(s); files in {result.folder}")
    for p in doc["partitions"]:
        m = p["metrics"]
        auc = m.get("churn_auc")
        echo(
            f"  {p['partition']} (v{p['model']['version']}, to {p['window_end']}): churn AUC "
            f"{'-' if auc is None else f'{auc:.3f}'}, Brier {m.get('churn_brier') or 0:.3f}, "
            f"spend error {m.get('spend_agg_pct_error') or 0:+.1f}%"
        )
    d = doc["drift"]

    def psi(x: float | None) -> str:  # None: not finite (monitor.json is strict JSON)
        return "-" if x is None else f"{x:.3f}"

    top = "-" if d["max_feature"] is None else f"{psi(d['max_feature_psi'])} ({d['max_feature']})"
    ignored = ", ".join(f"{r['column']} {psi(r['psi'])}" for r in d["features"] if r["ignored"])
    echo(
        f"  drift {d['partition']} vs {d['reference']['partition']}: max feature PSI {top}"
        + (f" (not counted, [monitor] drift_ignore: {ignored})" if ignored else "")
        + f", tier mix PSI {d['tier_mix']['psi'] or 0:.3f}, unseen {(d['unseen_share'] or 0):.1%}"
    )
    for note in doc["notes"]:
        echo(f"  note: {note}")
    if result.db:
        echo(f"  database {result.db['url']} table {result.db['table']}: {result.db['rows_written']:,} rows")
