"""Weekly batch scoring of the whole customer base, as of a date.

:func:`run_batch` computes the features of every customer known at as-of (DuckDB, out of core, or
Spark), scores them in chunks with the registered MLflow model, and publishes one partition
``dt=YYYY-MM-DD`` in each of three folders (the layout: :mod:`churnclv.serving.snapshots`)::

    OUT/scores/dt=YYYY-MM-DD/
        part-00000.parquet ...   scores: the HTTP answer's fields (customer_id, as_of, p_churn, p_alive,
                                 expected_purchases, expected_spend, clv, expected_next_purchase_days,
                                 expected_next_purchase_date, growth_score, tier, tier_level, stage,
                                 action, reasons (list<string>), campaign, holdout, model_version; with a
                                 targeting also contact, expected_incremental_revenue, expected_profit,
                                 targeting); sorted by customer_id
        _manifest.json           input fingerprint, counts (known = written; rejected at validation),
                                 model URI and version, horizon, the campaign's holdout, the targeting's
                                 contacts, timings per stage
    OUT/features/dt=YYYY-MM-DD/features.parquet
                                 the feature snapshot (the HTTP service's score-by-id reads it)
    OUT/reports/dt=YYYY-MM-DD/   tier mix and, when an earlier partition exists, the migration
    OUT/LATEST                   name of the newest partition by date, e.g. ``dt=2025-10-02``

``OUT/scores`` holds only scores: ``pd.read_parquet``, DuckDB's ``read_parquet`` and Spark read it as
it is, each row with its ``as_of`` (a date) and the folder key ``dt`` (the same date).

Guarantees
----------
- Every customer known at as-of gets exactly one row; the job fails (and publishes nothing) when
  the written rows do not reconcile with an independent count from the clean tables.
- A partition is never visible half-written: the job writes ``OUT/.dt=DATE.tmp-<id>/``, removes
  from it everything its manifest does not name (temp files left by a failed write, progress,
  spill), checks every part file reads whole, and swaps each of its three folders in with one
  rename, the scores (with the manifest) last; re-running an as-of replaces its partition, with no
  duplicates. (A kill between those renames, an instant, can leave a re-run's feature snapshot
  beside the scores it replaces; running the as-of again makes them one run's.)
- With a database (``db``), the table's rows of the as-of are replaced (delete, then insert) in one
  transaction that is committed while the partition is swapped in; a failed commit swaps the old
  partition back. The table thus holds the published partitions, row for row: a failed or killed
  run leaves it as it was. (Only a kill between the rename and the commit, an instant, can leave
  the two apart; running the as-of again makes them equal.)
- A killed run continues from its completed chunks with ``resume=True`` and gives the same
  partition as an uninterrupted run (chunks are fixed slices of the sorted feature snapshot).
- Memory is bounded by ``chunk_size``, not by the size of the base (but for the campaign holdout,
  which holds the ids and strata of the whole base: :mod:`~churnclv.serving.batch_holdout`).
- With a campaign, ``holdout`` is drawn on the whole base once every chunk is scored; a customer
  keeps their arm in every partition of that campaign, and a resumed run writes the same bytes.
  Without one, ``campaign`` and ``holdout`` are null.
- The as-of must be plausible (a year in 1900-2200, the rule of :mod:`churnclv.values`) and at most
  ``max_days_after_data`` days (default 31) after the last date in the data (transaction, event or
  sign-up): a typo such as 2262-04-12 is refused instead of becoming the newest partition.
- ``LATEST`` names the latest partition by date, so it never moves back when an older as-of is
  re-run. A partition published by mistake with a later date keeps ``LATEST`` (and the HTTP
  service's ``score_by_id``) on it until it is removed: ``rm -r OUT/*/dt=DATE`` and run the newest
  correct as-of again (or write its name into ``OUT/LATEST``). Each run says when ``LATEST`` stays
  on a later partition than its own.
- Partitions of the earlier layout (``OUT/as_of=DATE/``) are neither read nor changed; a run over
  such a folder says so and how to rewrite them (run those as-ofs again).
- The previous partition (the migration report, ``hysteresis``) is read whole before scoring: when
  it cannot be read, the run skips the migration with a warning naming the file, or, with
  ``hysteresis``, fails at once naming the file and the fix.
- Errors are one line (:class:`~churnclv.serving.batch_errors.BatchError`): disk full, an unwritable
  output folder, a database problem. They never quote a password, a URL's query string or customer
  data.

Batch and HTTP scores are identical: both run the same scorer (loaded by
:func:`churnclv.serving.model.load_model`) on :func:`churnclv.models.inputs.model_input` of the
features. Tier hysteresis (``hysteresis=True``: a customer keeps last partition's tier until their
score clears the cut point by the policy's margin) is off by default because the HTTP service has
no previous tiers; with it on, batch tiers can differ from HTTP tiers for customers near a cut point.

The stages live in their own modules: :mod:`~churnclv.serving.stages` (features, chunks, Spark),
:mod:`~churnclv.serving.checkpoints` (resume), :mod:`~churnclv.serving.migration` (previous partition,
tier report), :mod:`~churnclv.serving.manifest` and :mod:`~churnclv.serving.publication` (atomic publish,
lock, ``LATEST``).
"""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import pyarrow.parquet as pq

from churnclv.campaigns.config import CampaignSettings
from churnclv.fingerprint import file_fingerprint, last_date
from churnclv.names import DEFAULT_MODEL_URI, DEFAULT_TRACKING_URI
from churnclv.redaction import redact_text, redact_url
from churnclv.serving import batch_inputs
from churnclv.serving.batch_errors import BatchError, first_line, os_problem
from churnclv.serving.batch_holdout import HoldoutOptions, previous_arms, write_holdout
from churnclv.serving.batch_options import DEFAULT_MAX_DAYS_AFTER_DATA, DEFAULT_MEMORY_LIMIT, BatchOptions, as_of_day
from churnclv.serving.batch_targeting import TARGETING_SCHEMA, TargetingOptions, write_targeting
from churnclv.serving.checkpoints import open_temp, resume_key
from churnclv.serving.data_check import check_folder
from churnclv.serving.manifest import build_manifest, echo_summary
from churnclv.serving.migration import batch_tier_report, previous
from churnclv.serving.model import LoadedModel, ModelLoadError, load_model, resolve_version
from churnclv.serving.monitor_summary import latest_monitoring
from churnclv.serving.publication import lock, publish, update_latest
from churnclv.serving.sinks import DEFAULT_TABLE, ScoreSink, open_sink, replace_partition
from churnclv.serving.snapshots import (
    FEATURES_FILE,
    legacy_note,
    legacy_partitions,
    parse_partition,
    part_files,
    partition_dirs,
)
from churnclv.serving.stages import StageTimer, features_duckdb, score_chunks, spark_run

log = logging.getLogger(__name__)

__all__ = ["run_batch"]


@dataclass
class _Scored:
    """A temp partition scored and reconciled, with what its manifest records."""

    tmp: Path
    key: dict[str, Any]
    model: LoadedModel
    fp: dict[str, Any]
    rejected: dict[str, Any]
    known: int
    n_features: int
    written: int
    resumed_chunks: int
    report: dict[str, Any] | None
    campaign: dict[str, Any] | None
    targeting: dict[str, Any] | None = None
    undated: int = 0  # customers rows with no signup_ts and no transaction: never known


def _load_model(model_uri: str, tracking_uri: str | None, dst: Path) -> LoadedModel:
    """:func:`churnclv.serving.model.load_model`, keeping the download in ``dst`` (``--engine spark``
    ships it to its executors), its errors as one redacted :class:`BatchError` line."""
    uri = tracking_uri or os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_TRACKING_URI
    try:
        number = resolve_version(model_uri, uri)  # an alias is pinned to its version first
    except ModelLoadError as exc:
        raise BatchError(redact_text(f"model {model_uri!r} not found: {exc}")) from None
    try:
        return load_model(model_uri, uri, version=number, dst=dst)
    except ModelLoadError as exc:
        raise BatchError(redact_text(f"model {model_uri!r} cannot be loaded: {exc}")) from None


def run_batch(
    *,
    clean: str | Path,
    as_of: Any,
    out: str | Path,
    model_uri: str = DEFAULT_MODEL_URI,
    tracking_uri: str | None = None,
    horizon_days: int | None = None,
    db: str | None = None,
    engine: str = "duckdb",
    chunk_size: int = 200_000,
    resume: bool = False,
    memory_limit: str | None = None,
    echo: Callable[[str], Any] = print,
    hysteresis: bool = False,
    db_table: str = DEFAULT_TABLE,
    progress: bool = True,
    reasons: bool = True,
    after_chunk: Callable[[int], None] | None = None,
    max_days_after_data: int = DEFAULT_MAX_DAYS_AFTER_DATA,
    campaign: str | None = None,
    campaign_settings: CampaignSettings | None = None,
    targeting: str | Path | None = None,
) -> dict[str, Any]:
    """Score every customer known at ``as_of`` and publish its partition ``dt=DATE`` in ``out`` (see the module doc).

    Parameters
    ----------
    clean : path
        Folder of clean tables (``transactions``, optional ``events`` and ``customers``), e.g. the
        ``clean`` folder written by :func:`churnclv.ingest.validate_source`; its sibling
        ``rejects`` folder, when present, gives the rejected counts of the manifest.
    as_of : date-like
        The scoring date: rows with ``ts`` before the next midnight count.
    out : path
        Output folder; the run writes ``OUT/scores/dt=DATE/``, ``OUT/features/dt=DATE/``,
        ``OUT/reports/dt=DATE/`` and ``OUT/LATEST``.
    model_uri : str
        MLflow model URI; an alias is pinned to its version at the start of the run.
    tracking_uri : str, optional
        The MLflow store (default ``$MLFLOW_TRACKING_URI``, else :data:`churnclv.names.DEFAULT_TRACKING_URI`).
    horizon_days : int, optional
        Must equal the model's horizon when given (the model was trained for one horizon).
    db : str, optional
        Also write the rows into ``db_table`` at this database (``postgresql://...``,
        ``sqlite:///...``): the as-of's rows are replaced in one transaction committed with the
        partition's publication, so the table equals the published partitions.
    engine : {"duckdb", "spark"}
        Feature engine and scorer runtime. ``spark`` runs the same Ibis features on PySpark and
        scores with ``mlflow.pyfunc.spark_udf`` (needs the spark extra; not chunked: resume reruns).
    chunk_size : int
        Customers scored per chunk (memory is bounded by it).
    resume : bool
        Continue the interrupted run of this as-of from its completed chunks (it must use the same
        data, model version and settings).
    memory_limit : str, optional
        DuckDB memory limit (default ``2GB``; DuckDB spills past it).
    echo : callable
        Where the summary lines go (the CLI passes ``click.echo``).
    hysteresis : bool
        Tier hysteresis against the previous partition's tiers (off: batch tiers equal HTTP tiers).
    db_table : str
        Table of the database sink.
    progress : bool
        Show a progress bar on stderr.
    reasons : bool
        Compute the reasons (LightGBM TreeSHAP: about 85% of the scoring time). ``False`` writes empty
        reason lists; the numbers, tiers, stages and actions are unchanged. DuckDB engine only.
    after_chunk : callable, optional
        Called with the chunk number after each chunk is committed (a hook for tests and monitoring).
    max_days_after_data : int
        How many days after the last date in the data (transaction, event or sign-up) the as-of may
        lie (default 31); a later as-of is refused as a likely typo.
    campaign : str, optional
        The campaign whose holdout the partition carries (``campaign`` and ``holdout`` columns; default
        ``campaign_settings.campaign``; none: both null).
    campaign_settings : CampaignSettings, optional
        The ``[campaigns]`` section: holdout share, strata, minimum controls, targeting (default: its defaults).
    targeting : path, optional
        A targeting folder (``churnclv campaign fit-targeting``; default ``campaign_settings.targeting``):
        adds ``contact``, ``expected_incremental_revenue``, ``expected_profit`` and ``targeting`` to the
        scores (:mod:`~churnclv.serving.batch_targeting`); none: the scores are left without them.

    Returns
    -------
    dict
        The manifest (also written to ``OUT/scores/dt=DATE/_manifest.json``).

    Raises
    ------
    BatchError
        For a missing or unsuitable model, a horizon that differs from the model's, unreadable
        input, an as-of before any data or too far after it, an unreadable previous partition with
        ``hysteresis``, a bad campaign id or strata, an unreadable earlier partition of the campaign,
        a resume that does not match, counts that do not reconcile, a database the sink cannot use,
        or an output folder that cannot be written (full, read-only, a file).
        The message is one line and never holds a password or customer data.
    """
    timer = StageTimer()
    started = time.perf_counter()
    out = Path(out)
    run = BatchOptions(
        clean=Path(clean),
        day=as_of_day(as_of),
        out=out,
        model_uri=model_uri,
        tracking_uri=tracking_uri,
        horizon_days=horizon_days,
        db=db,
        db_table=db_table,
        engine=engine,
        chunk_size=chunk_size,
        resume=resume,
        memory_limit=memory_limit or DEFAULT_MEMORY_LIMIT,
        echo=echo,
        hysteresis=hysteresis,
        progress=progress,
        reasons=reasons,
        after_chunk=after_chunk,
        max_days_after_data=max_days_after_data,
        holdout=HoldoutOptions.of(campaign, campaign_settings),
        targeting=TargetingOptions.of(targeting, campaign_settings),
    )
    name = run.name
    sink = open_sink(db, db_table, extra=TARGETING_SCHEMA if run.targeting is not None else ())
    try:
        out.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix="churnclv-model-") as model_dir, lock(out, name):
            scored = _score(run, Path(model_dir), timer)
            manifest = _publish(run, scored, sink, timer, started)
            latest = update_latest(out, name)
    except OSError as exc:
        raise BatchError(os_problem(exc, out, name)) from None
    except duckdb.IOException as exc:
        raise BatchError(
            f"DuckDB could not read or write a file ({first_line(exc)}); nothing was published for "
            f"{name}: free space or fix the permissions, then run again with --resume"
        ) from None
    finally:
        if sink is not None:
            sink.close()
    echo_summary(manifest, out, echo)
    later = parse_partition(latest)
    if latest != name and later is not None:
        echo(
            f"LATEST stays on {latest}, a later as-of than {name}; if {latest} is a mistake, remove it "
            f"(rm -r {' '.join(str(p) for p in partition_dirs(out, later))}) and run the newest correct as-of again"
        )
    legacy = legacy_partitions(out)
    if legacy:
        echo(legacy_note(out, legacy))
    return manifest


def _score(run: BatchOptions, model_dir: Path, timer: StageTimer) -> _Scored:
    """Check the inputs, then score into a temp partition (holding the as-of's lock)."""
    con = duckdb.connect(config={"memory_limit": run.memory_limit})
    try:
        # the checks that need no model first: a wrong date or a damaged last week fails in seconds
        with timer("fingerprint"):
            fp = file_fingerprint(run.clean, batch_inputs.table_paths(run.clean), con)
            rejected = batch_inputs.rejected_rows(run.clean, fp, con)
            run.check_data_end(last_date(fp))
            known = batch_inputs.known_customers(run.clean, run.day, con)
            undated = batch_inputs.undated_customers(run.clean, con)
        if known == 0:
            first = fp["tables"]["transactions"].get("ts_min")
            raise BatchError(
                f"as-of {run.day} is before any data (no transaction and no signup on or before it; the first "
                f"transaction is at {first}): pick a later date"
            )
        prev, prev_problem = previous(run.out, run.day, run.hysteresis)
        arms = None if run.holdout is None else previous_arms(run.out, run.day, run.holdout)
        with timer("model"):
            model = _load_model(run.model_uri, run.tracking_uri, model_dir)
            check_folder(model, run.clean)  # a model of another data set stops here, in one line
            if run.targeting is not None:  # the costs of the model's actions, before any feature
                run.targeting.check_model(model)
        if run.horizon_days is not None and int(run.horizon_days) != model.horizon_days:
            raise BatchError(
                f"horizon {run.horizon_days} days differs from the model's {model.horizon_days} days "
                f"({model.resolved_uri}): drop --horizon-days, or train a model with --horizon-days {run.horizon_days}"
            )
        key = resume_key(
            day=run.day,
            engine=run.engine,
            chunk_size=run.chunk_size,
            hysteresis=run.hysteresis,
            reasons=run.reasons,
            model=model,
            fp=fp,
            prev_name=None if prev is None else prev.name,
        )
        tmp, prog = open_temp(run.out, run.name, key, run.resume, run.echo)
        resumed_chunks = len(prog["chunks"])
        if run.engine == "duckdb":
            with timer("features"):
                config = model.scorer.feature_config()
                features_duckdb(tmp, prog, run.clean, run.day, run.memory_limit, run.progress, config)
            if run.targeting is not None:  # the features its uplift model reads, before any chunk is scored
                run.targeting.check_features(pq.read_schema(tmp / FEATURES_FILE).names, run.name)
            hysteresis_from = prev if run.hysteresis else None
            written = score_chunks(
                tmp,
                prog,
                model,
                run.day,
                run.chunk_size,
                hysteresis_from,
                con,
                timer,
                run.progress,
                run.reasons,
                run.after_chunk,
            )
        else:
            written = spark_run(tmp, prog, model, run.clean, run.day, timer)
        n_features = pq.ParquetFile(tmp / FEATURES_FILE).metadata.num_rows
        if not (known == n_features == written):
            raise BatchError(
                f"counts do not reconcile for {run.name}: {known:,} customers known at as-of in the clean tables, "
                f"{n_features:,} in the feature snapshot, {written:,} rows written; nothing was published "
                f"(the partial run stays in {tmp}): report this as a bug"
            )
        with timer("holdout"):
            campaign_doc = write_holdout(tmp, run.holdout, arms)
        with timer("targeting") if run.targeting is not None else contextlib.nullcontext():
            targeting_doc = write_targeting(tmp, run.targeting, tmp / FEATURES_FILE)
        with timer("tier_report"):
            tiers = model.scorer.tiers_
            report = None if tiers is None else batch_tier_report(tmp, prev, tuple(tiers.tier_names), con, run.day)
            if report is not None and prev_problem is not None:
                report["migration_skipped"] = prev_problem
    finally:
        con.close()
    return _Scored(
        tmp,
        key,
        model,
        fp,
        rejected,
        known,
        n_features,
        written,
        resumed_chunks,
        report,
        campaign_doc,
        targeting_doc,
        undated,
    )


def _publish(
    run: BatchOptions, scored: _Scored, sink: ScoreSink | None, timer: StageTimer, started: float
) -> dict[str, Any]:
    """Publish the scored temp partition (and, with a database, replace the as-of's rows in the same
    step); returns the manifest."""
    tmp = scored.tmp
    replacement = None
    try:
        db_doc = None
        if sink is not None:
            with timer("db"):
                replacement = replace_partition(sink, run.day, part_files(tmp))
            db_doc = {
                "url": redact_url(run.db or ""),
                "table": run.db_table,
                "rows_written": replacement.rows_written,
                "rows_removed": replacement.rows_removed,
                "rows_for_as_of": replacement.rows_for_as_of,
            }
            if replacement.rows_for_as_of != scored.written:
                raise BatchError(
                    f"database {sink.where}: {replacement.rows_for_as_of:,} rows of as-of {run.day} in "
                    f"{run.db_table!r} after the write, {scored.written:,} scored; nothing was published or "
                    "committed: report this as a bug"
                )
        timer.seconds["total"] = time.perf_counter() - started
        manifest = build_manifest(
            day=run.day,
            name=run.name,
            engine=run.engine,
            chunk_size=run.chunk_size,
            files=[p.name for p in part_files(tmp)],
            resumed_chunks=scored.resumed_chunks,
            hysteresis=run.hysteresis,
            key=scored.key,
            reasons=run.reasons,
            model=scored.model,
            fp=scored.fp,
            known=scored.known,
            undated=scored.undated,
            n_features=scored.n_features,
            written=scored.written,
            rejected=scored.rejected,
            report=scored.report,
            db_doc=db_doc,
            seconds=timer.seconds,
            monitoring=latest_monitoring(run.out, scored.model.name, scored.model.version),
            campaign=scored.campaign,
            targeting=scored.targeting,
        )
        publish(tmp, run.out, run.day, manifest, replacement)
    finally:
        if replacement is not None:
            replacement.close()
    return manifest
