"""``churnclv serve``: the BentoML server of :class:`churnclv.serving.service.ChurnCLVService`, started
as its own process once the model has loaded here, with its settings and its own Prometheus folder.

``serve`` loads (and checks) the model before it starts the server: BentoML restarts a worker whose
service fails to start, forever, so a model that cannot load must stop ``serve`` first; so must a
targeting (``--targeting`` / ``CHURNCLV_TARGETING``) that cannot be read or cannot serve the model or the
snapshot's features. A port in use stops it before the model loads.
"""

from __future__ import annotations

import contextlib
import errno
import gc
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from churnclv.errors import ChurnclvError
from churnclv.redaction import error_summary, redact_text, redact_url
from churnclv.serving.data_check import DataMismatchError, check_snapshot
from churnclv.serving.feature_snapshot import FeatureSnapshot, SnapshotError
from churnclv.serving.log_redaction import install_log_redaction
from churnclv.serving.model import LoadedModel, ModelLoadError, bound_mlflow_http
from churnclv.serving.scoring import load_checked_model
from churnclv.serving.served_targeting import check_served, load_served_targeting
from churnclv.serving.settings import ServiceSettings, SettingsError
from churnclv.serving.snapshots import features_path, misplaced_output, parse_partition
from churnclv.serving.targeting_decisions import Targeting, TargetingError

log = logging.getLogger(__name__)

__all__ = [
    "METRICS_DIR_VAR",
    "SERVICE_NAME",
    "SERVICE_PATH",
    "ServeError",
    "check_port",
    "run_bentoml",
    "serve",
    "server_command",
    "server_env",
    "use_metrics_dir",
]

SERVICE_NAME = "churnclv"  # the BentoML service (its name in BENTOML_CONFIG_OPTIONS: services.churnclv...)
SERVICE_PATH = "churnclv.serving.service:ChurnCLVService"  # what `bentoml serve` imports (also bentofile.yaml)
# churnclv serve -> its BentoML server: the Prometheus folder of this server alone
METRICS_DIR_VAR = "CHURNCLV_PROMETHEUS_DIR"


class ServeError(ChurnclvError, RuntimeError):
    """``churnclv serve`` cannot start (bad settings, no model) or the server exited with an error.

    The message is redacted (it is printed, and may quote the tracking URI)."""

    def __init__(self, message: str) -> None:
        super().__init__(redact_text(message))


def server_env(
    settings: ServiceSettings, base: Mapping[str, str] | None = None, *, metrics_dir: str | Path | None = None
) -> dict[str, str]:
    """The environment of the BentoML server process: the settings, worker count, no usage tracking,
    and its own Prometheus folder (``metrics_dir``, read by :func:`run_bentoml`)."""
    env = dict(os.environ if base is None else base)
    env.update(settings.to_env())
    bound_mlflow_http(env)
    env["BENTOML_DO_NOT_TRACK"] = "True"
    options = [o for o in env.get("BENTOML_CONFIG_OPTIONS", "").split() if o]
    options.append(f"services.{SERVICE_NAME}.workers={settings.workers}")
    env["BENTOML_CONFIG_OPTIONS"] = " ".join(options)
    if metrics_dir is not None:
        env[METRICS_DIR_VAR] = str(metrics_dir)
    return env


# runs BentoML's command line through run_bentoml (``-m`` would import this module twice)
_LAUNCHER = f"from {__name__} import run_bentoml; run_bentoml()"


def server_command(host: str, port: int) -> list[str]:
    """The ``bentoml serve`` command line of the service (through :func:`run_bentoml`)."""
    return [
        sys.executable,
        "-c",
        _LAUNCHER,
        "serve",
        SERVICE_PATH,
        "--host",
        host,
        "--port",
        str(port),
    ]


def use_metrics_dir(environ: Mapping[str, str] | None = None) -> str | None:
    """Point BentoML at the Prometheus folder named by ``CHURNCLV_PROMETHEUS_DIR`` (None: unset).

    BentoML keeps the metrics of every server of a user in ``$BENTOML_HOME/prometheus_multiproc_dir``
    and empties that folder when a server starts: a second server wiped the first one's counters,
    and each one's ``/metrics`` summed both. The folder is a BentoML setting with no variable of
    its own (moving ``BENTOML_HOME`` would move the model store too), so it is set in the server's
    process, before BentoML reads it.
    """
    folder = (os.environ if environ is None else environ).get(METRICS_DIR_VAR, "").strip()
    if not folder:
        return None
    from bentoml._internal.configuration.containers import BentoMLContainer

    BentoMLContainer.prometheus_multiproc_dir.set(folder)
    return folder


def run_bentoml(argv: Sequence[str] | None = None) -> None:
    """BentoML's command line (the server process of :func:`serve`), with :func:`use_metrics_dir`."""
    use_metrics_dir()
    from bentoml_cli.cli import cli

    cli.main(args=None if argv is None else list(argv), prog_name="bentoml")


def serve(
    host: str = "127.0.0.1",
    port: int = 3000,
    model_uri: str | None = None,
    tracking_uri: str | None = None,
    snapshot: Path | str | None = None,
    targeting: Path | str | None = None,
) -> None:
    """Start the BentoML HTTP server and block until it stops (Ctrl-C or SIGTERM stop it).

    The model is loaded (and checked on a probe customer) here first: BentoML restarts a worker
    whose service fails to start, forever, so a model that cannot load must stop ``serve`` before
    there is a server. The settings not given here come from the environment
    (:mod:`churnclv.serving.settings`): the API key ``CHURNCLV_API_KEY``, limits, reload interval,
    ``CHURNCLV_WORKERS``.

    Parameters
    ----------
    host, port
        Address to bind.
    model_uri
        MLflow model URI (``models:/churnclv@champion``, ``models:/churnclv/3``, ``runs:/...``, a
        model folder) or ``bento:TAG`` (default ``CHURNCLV_MODEL_URI``, else ``models:/churnclv@champion``).
    tracking_uri
        MLflow tracking URI (default ``MLFLOW_TRACKING_URI``, else ``sqlite:///mlruns/mlflow.db``).
    snapshot
        The batch job's output folder, for ``score_by_id``.
    targeting
        A targeting folder (``churnclv campaign fit-targeting --out``; default ``CHURNCLV_TARGETING``): every
        score carries its contact decision.

    Raises
    ------
    ServeError
        Invalid settings (no API key, a snapshot folder inside the batch output rather than the output), a
        port in use, a model that does not resolve or load, a model trained on another data set than the
        snapshot's, a targeting that cannot be read or cannot serve the model or the snapshot, or the
        server exiting with an error. The message is one line, with URLs redacted.
    """
    install_log_redaction()
    bound_mlflow_http(os.environ)  # before the model is resolved here: a registry that is down fails in seconds
    try:
        base = ServiceSettings.from_env()
        settings = ServiceSettings(
            **{
                **base.__dict__,
                "model_uri": model_uri or base.model_uri,
                "tracking_uri": tracking_uri or base.tracking_uri,
                "snapshot": Path(snapshot).resolve() if snapshot is not None else base.snapshot,
                "targeting": Path(targeting).resolve() if targeting is not None else base.targeting,
            }
        )
        settings.check_auth()
        served = load_served_targeting(settings.targeting)
    except (SettingsError, TargetingError) as exc:
        raise ServeError(str(exc)) from None
    misplaced = None if settings.snapshot is None else misplaced_output(settings.snapshot)
    if misplaced is not None:  # score_by_id would answer 503 for ever
        raise ServeError(f"--snapshot / CHURNCLV_SNAPSHOT: {misplaced}")
    check_port(host, port)  # before the model loads: a port in use is told in a second, in one line
    try:
        # fail here with one clear line, not in a worker that BentoML restarts forever
        loaded = load_checked_model(settings.model_uri, settings.tracking_uri)
        if served is not None:
            check_served(served, loaded)
        if settings.snapshot is not None:
            _check_snapshot(loaded, settings.snapshot, served)
    except (ModelLoadError, DataMismatchError, TargetingError) as exc:
        raise ServeError(str(exc)) from None
    except Exception as exc:  # noqa: BLE001 - any other failure to load is still one line, not a traceback
        raise ServeError(
            f"model {redact_url(settings.model_uri)} cannot be loaded ({error_summary(exc)}): check "
            "--model / CHURNCLV_MODEL_URI and --tracking-uri / MLFLOW_TRACKING_URI"
        ) from None
    version = loaded.version
    del loaded
    gc.collect()  # the checked model is not kept: the workers load their own
    log.info("serving %s (version %s) on http://%s:%d", redact_url(settings.model_uri), version, host, port)
    metrics_dir = tempfile.mkdtemp(prefix=f"churnclv-prometheus-{port}-")
    try:
        code = _run_server(server_command(host, port), server_env(settings, metrics_dir=metrics_dir))
    finally:
        shutil.rmtree(metrics_dir, ignore_errors=True)
    if code not in (0, -signal.SIGINT, -signal.SIGTERM):
        raise ServeError(f"the BentoML server exited with status {code}: see its log above")


def check_port(host: str, port: int) -> None:
    """Bind ``host:port`` as BentoML's server will (circus: the first address of ``host``, ``SO_REUSEADDR``)
    and let it go: a port in use stops ``serve`` in one line, not in BentoML's traceback after the model
    has loaded. A server that takes the port between this check and BentoML's start still gets that
    traceback.

    Raises
    ------
    ServeError
        The port is in use, or ``host`` is not an address of this machine.
    """
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    except (socket.gaierror, UnicodeError) as exc:
        raise ServeError(
            f"--host {host} cannot be resolved ({error_summary(exc)}): pass an address of this machine"
        ) from None
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as BentoML's: a port in TIME_WAIT is free
        try:
            probe.bind(address)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise ServeError(
                    f"port {port} on {host} is in use: pick another --port (or stop the server holding it)"
                ) from None
            if exc.errno == errno.EADDRNOTAVAIL:
                raise ServeError(f"--host {host} is not an address of this machine: pass one of its own") from None
            # anything else (a privileged port: EACCES) is left to BentoML's own report


def _check_snapshot(loaded: LoadedModel, folder: Path, targeting: Targeting | None) -> None:
    """The model against the feature snapshot of ``score_by_id``, when there is one: a snapshot made from
    another data set stops ``serve`` (:func:`churnclv.serving.data_check.check_snapshot`), as does one that
    lacks a feature the targeting's uplift model reads."""
    try:
        day = parse_partition(FeatureSnapshot.latest_partition(folder))
    except SnapshotError:
        return  # no snapshot yet: score_by_id answers 503 until the batch job writes one
    if day is not None:
        check_snapshot(loaded, folder, day)
        path = features_path(folder, day)
        if targeting is not None and targeting.feature_names and path.is_file():
            names = pq.read_schema(path).names
            targeting.check_features(names, f"the feature snapshot {path.parent.name}", "the service does not start")


def _run_server(command: list[str], env: dict[str, str]) -> int:
    """Run the server process until it exits, forwarding SIGTERM; its exit status."""
    proc = subprocess.Popen(command, env=env)

    def forward(signum: int, _frame: Any) -> None:
        proc.send_signal(signum)

    previous = None
    with contextlib.suppress(ValueError):  # not the main thread: the caller handles signals
        previous = signal.signal(signal.SIGTERM, forward)
    try:
        return proc.wait()
    except KeyboardInterrupt:
        # the terminal sent SIGINT to the server too; give it time to drain
        try:
            return proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            return proc.wait()
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
