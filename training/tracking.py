"""MLflow plumbing: the store, the code version, the metrics' directions and registry aliases.

The data fingerprint a run logs is :func:`churnclv.fingerprint.clean_fingerprint`.
"""

from __future__ import annotations

import io
import logging
import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import mlflow
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from churnclv.errors import ChurnclvError
from churnclv.names import DEFAULT_TRACKING_URI, EXPERIMENT
from churnclv.redaction import error_summary, redact_url

log = logging.getLogger(__name__)

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


class TrackingStoreError(ChurnclvError, RuntimeError):
    """The MLflow store cannot be opened (an unsupported URI, a database that is down or refuses the
    login); the message names the redacted URI and the fix."""


def configure(uri: str | None = None, experiment: str = EXPERIMENT) -> str:
    """Point MLflow at the store and make sure the experiment exists; returns its id.

    With a SQLite store the artifacts go next to the database (``<db folder>/artifacts``), so a
    local store is one self-contained folder (``mlruns/`` by default).

    Raises
    ------
    TrackingStoreError
        The store cannot be opened.
    """
    uri = tracking_uri(uri)
    artifact_root = None
    try:
        if uri.startswith("sqlite:///"):
            db = Path(uri.removeprefix("sqlite:///"))
            db.parent.mkdir(parents=True, exist_ok=True)
            artifact_root = (db.parent / "artifacts").resolve().as_uri()
        mlflow.set_tracking_uri(uri)
        mlflow.set_registry_uri(uri)
        exp = mlflow.get_experiment_by_name(experiment)
        exp_id = (
            mlflow.create_experiment(experiment, artifact_location=artifact_root) if exp is None else exp.experiment_id
        )
    except Exception as exc:  # noqa: BLE001 - MLflow's, SQLAlchemy's, a driver's or HTTP errors: the store is unusable
        raise store_error(uri, exc) from None
    mlflow.set_experiment(experiment_id=exp_id)
    return exp_id


def store_error(uri: str, exc: BaseException) -> TrackingStoreError:
    """The one-line error for a store that cannot be opened: the URI redacted, what failed, the fix."""
    return TrackingStoreError(
        f"cannot open the MLflow store at {redact_url(uri)} ({error_summary(exc)}): check "
        "--tracking-uri or MLFLOW_TRACKING_URI (e.g. sqlite:///mlruns/mlflow.db, postgresql://user@host/db, "
        "http://host:5000) and that its server or database is up"
    )


@contextmanager
def registry_prints_off() -> Iterator[None]:
    """Silence MLflow's prints while a model is registered ("Successfully registered model", "Created
    version"): it prints them whatever the log level, and the training summary names the version.

    ``eprint`` looks its stream up in ``mlflow.utils.logging_utils`` at each call, so that name points
    at a stream that drops the text for the time being; MLflow's log handlers keep the real stream,
    so its warnings still show. (MLflow's own enable/disable switch is reset inside ``log_model``.)
    """
    from mlflow.utils import logging_utils

    real = logging_utils.MLFLOW_LOGGING_STREAM
    logging_utils.MLFLOW_LOGGING_STREAM = io.StringIO()  # type: ignore[assignment]
    try:
        yield
    finally:
        logging_utils.MLFLOW_LOGGING_STREAM = real


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


def alias_version(client: MlflowClient, name: str, alias: str) -> str | None:
    """The version of model ``name`` that has ``alias``, None when no version has it."""
    try:
        return str(client.get_model_version_by_alias(name, alias).version)
    except MlflowException:
        return None
