"""MLflow plumbing: the store, data fingerprints, code version and registry aliases."""

from __future__ import annotations

import hashlib
import logging
import os
import subprocess
from pathlib import Path
from typing import Any

import ibis
import mlflow
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

log = logging.getLogger(__name__)

DEFAULT_TRACKING_URI = "sqlite:///mlruns/mlflow.db"
EXPERIMENT = "churnclv"
MODEL_NAME = "churnclv"  # the registered model

# metric -> direction: +1 higher is better, -1 lower is better. Used by promotion and the config check.
METRIC_DIRECTION: dict[str, int] = {
    "churn_auc": 1,
    "churn_pr_auc": 1,
    "churn_brier": -1,
    "churn_log_loss": -1,
    "churn_ece": -1,
    "purchases_mae": -1,
    "spend_gini": 1,
    "spend_spearman": 1,
    "spend_top_decile_capture": 1,
    "spend_mae": -1,
}


def tracking_uri(uri: str | None = None) -> str:
    """The tracking URI: the argument, else ``MLFLOW_TRACKING_URI``, else the local SQLite store."""
    return uri or os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_TRACKING_URI


def configure(uri: str | None = None, experiment: str = EXPERIMENT) -> str:
    """Point MLflow at the store and make sure the experiment exists; returns its id.

    With a SQLite store the artifacts go next to the database (``<db folder>/artifacts``), so a
    local store is one self-contained folder (``mlruns/`` by default).
    """
    uri = tracking_uri(uri)
    artifact_root = None
    if uri.startswith("sqlite:///"):
        db = Path(uri.removeprefix("sqlite:///"))
        db.parent.mkdir(parents=True, exist_ok=True)
        artifact_root = (db.parent / "artifacts").resolve().as_uri()
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    exp = mlflow.get_experiment_by_name(experiment)
    if exp is None:
        exp_id = mlflow.create_experiment(experiment, artifact_location=artifact_root)
    else:
        exp_id = exp.experiment_id
    mlflow.set_experiment(experiment_id=exp_id)
    return exp_id


def code_version() -> str:
    """Git commit of the working tree (with ``-dirty`` when it has changes), else the package version."""
    from churnclv import __version__

    root = Path(__file__).resolve().parents[1]
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, check=True)
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=root,
            capture_output=True,
            text=True,
            check=True,
        )
        return sha.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.CalledProcessError):
        return f"churnclv-{__version__}"


FINGERPRINT_VERSION = 2


def clean_fingerprint(clean: Path | str, *, memory_limit: str | None = None) -> dict[str, Any]:
    """Per clean table: row count, customers, date range and a content hash, computed in DuckDB.

    The content hash is order-independent and independent of the file layout: the sum over rows of
    the low 64 bits of ``md5`` of the row's text (columns in name order, ``\\N`` for null), folded
    with the row count and the column names and types through SHA-256 (``fingerprint_version`` 2;
    version 1 hashed every table in pandas). The same rows give the same hash however they are split
    into files or sorted; any changed, added or removed row changes it.
    """
    from churnclv.features import connect, load_tables

    con = connect(memory_limit=memory_limit)
    tables = load_tables(clean, con)
    out: dict[str, Any] = {}
    for name in ("transactions", "events", "customers"):
        table = getattr(tables, name)
        if table is None:
            continue
        ts = "ts" if "ts" in table.columns else ("signup_ts" if "signup_ts" in table.columns else None)
        row = " || chr(31) || ".join(f"coalesce(CAST({_quote(c)} AS VARCHAR), '\\N')" for c in sorted(table.columns))
        span = f"min({_quote(ts)}), max({_quote(ts)})" if ts else "NULL, NULL"
        sql = (
            f"SELECT count(*), count(DISTINCT customer_id), {span}, "
            f"coalesce(sum(md5_number_lower({row})), 0) FROM ({ibis.to_sql(table, dialect='duckdb')})"
        )
        rows, customers, lo, hi, total = con.con.execute(sql).fetchall()[0]
        schema = ",".join(f"{c}:{table[c].type()}" for c in sorted(table.columns))
        digest = hashlib.sha256(f"{schema}|{rows}:{total}".encode()).hexdigest()[:16]
        fp: dict[str, Any] = {
            "rows": int(rows),
            "customers": int(customers),
            "sha256_16": digest,
            "fingerprint_version": FINGERPRINT_VERSION,
        }
        if ts and rows:
            fp[f"{ts}_min"], fp[f"{ts}_max"] = str(lo), str(hi)
        out[name] = fp
    return out


def _quote(col: str) -> str:
    return '"' + col.replace('"', '""') + '"'


def alias_version(client: MlflowClient, name: str, alias: str) -> str | None:
    try:
        return str(client.get_model_version_by_alias(name, alias).version)
    except MlflowException:
        return None
