"""Fixtures shared across the test packages: small generated worlds, built once per session, and a
real PostgreSQL server.

The PostgreSQL server comes from Debian's ``postgresql`` package (``/usr/lib/postgresql/*/bin``);
the tests using it skip, saying so, only when those binaries are absent (CI installs them).
"""

from __future__ import annotations

import contextlib
import glob
import itertools
import os
import shutil
import socket
import subprocess
import tempfile
import warnings
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pandas as pd
import pytest
from hypothesis import HealthCheck, settings

from churnclv.generate import generate_world_to_parquet
from churnclv.generator.world import WorldConfig
from churnclv.models import fit_memo

# The small world's timeline: data to 2025-12-31; train as of TRAIN_AS_OF with a 90-day horizon.
TRAIN_AS_OF = pd.Timestamp("2025-10-02")
HORIZON = 90

# No property test depends on time: hypothesis's per-example deadline (200 ms) and its "too slow"
# health check fail a test when the machine is loaded, not when the code is wrong (a 2-id sample
# took 310 ms once and 93 ms on the replay, in a CI run sharing 2 cores with other jobs).
settings.register_profile("untimed", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("untimed")
# `make test-fast` passes --hypothesis-profile=fast: every property test runs at most this many
# examples (a test asks for min(N, settings.default.max_examples)); `make test` runs each test's N.
settings.register_profile("fast", parent=settings.get_profile("untimed"), max_examples=5)

# The CLI turns transparent huge pages off for its whole process (churnclv.runtime). Tests run the
# CLI inside this process (click's CliRunner), which would turn them off for the rest of the session
# halfway through: the test process keeps the kernel's default instead, as before that setting, and
# so do the commands the tests start. tests/test_runtime.py checks the setting itself, without this.
os.environ.setdefault("CHURNCLV_HUGE_PAGES", "on")


@pytest.fixture(scope="session")
def small_world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A generated world of 1,500 customers as Parquet files (with truth.parquet)."""
    out = tmp_path_factory.mktemp("world")
    generate_world_to_parquet(WorldConfig(n_customers=1_500, seed=11), out, horizon_days=HORIZON)
    return out


@pytest.fixture(scope="session")
def small_frames(small_world: Path) -> dict[str, pd.DataFrame]:
    return {n: pd.read_parquet(small_world / f"{n}.parquet") for n in ("transactions", "events", "customers")}


@pytest.fixture(scope="session")
def trained_store(small_world: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """A real MLflow store (SQLite + local artifacts) holding one trained model, version 1, with the
    aliases ``champion`` and ``challenger``. Trained on :func:`small_world` as of TRAIN_AS_OF with a
    fast configuration. Returns the tracking URI, the model URI and the training result."""
    from churnclv.models.scorer_config import ScorerConfig
    from churnclv.training.config import RunConfig, TrainConfig
    from churnclv.training.mlflow_run import train_and_log

    store = tmp_path_factory.mktemp("mlruns")
    uri = f"sqlite:///{store}/mlflow.db"
    config = RunConfig(
        train=TrainConfig(horizon_days=HORIZON, n_folds=2, train_cutoffs=3, backtest_workers=2),
        scorer=ScorerConfig(horizon_days=HORIZON, gbm_rounds=80, seed=1),
    )
    result = train_and_log(small_world, TRAIN_AS_OF, config, tracking_uri=uri)
    return {
        "tracking_uri": uri,
        "model_uri": "models:/churnclv@champion",
        "result": result,
        "store": store,
        "config": config,
    }


def _pg_bin() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    return Path(found[-1]).parent if found else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A throwaway PostgreSQL server on 127.0.0.1 (trust auth), stopped after the session."""
    bindir = _pg_bin()
    if bindir is None:
        pytest.skip("PostgreSQL server binaries not found (/usr/lib/postgresql/*/bin): apt-get install postgresql")
    root = Path(tempfile.mkdtemp(prefix="churnclv-pg-"))
    data, sock = root / "data", root / "sock"
    sock.mkdir()
    prefix: list[str] = []
    if os.geteuid() == 0:  # initdb refuses to run as root: run the server as the postgres user
        shutil.chown(root, "postgres")
        shutil.chown(sock, "postgres")
        prefix = ["runuser", "-u", "postgres", "--"]
    port = _free_port()
    subprocess.run(
        [*prefix, str(bindir / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync"],
        check=True,
        capture_output=True,
    )
    opts = f"-p {port} -k {sock} -c listen_addresses=127.0.0.1 -c fsync=off"
    subprocess.run(
        [*prefix, str(bindir / "pg_ctl"), "-D", str(data), "-o", opts, "-l", str(root / "log"), "-w", "start"],
        check=True,
        capture_output=True,
    )
    try:
        yield f"postgresql://postgres@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run(  # best effort: a server that is already gone is fine
            [*prefix, str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"],
            capture_output=True,
            check=False,
        )
        shutil.rmtree(root, ignore_errors=True)


_databases = itertools.count(1)


@pytest.fixture
def postgres_db(postgres_url: str) -> Iterator[str]:
    """A fresh, empty database on the session's PostgreSQL server (dropped afterwards), so tests that
    need fixed table names (``transactions``, ...) do not see each other's tables."""
    import sqlalchemy as sa

    name = f"churnclv_test_{os.getpid()}_{next(_databases)}"
    admin = sa.create_engine(
        postgres_url.replace("postgresql://", "postgresql+psycopg://", 1), isolation_level="AUTOCOMMIT"
    )
    try:
        with admin.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
        yield postgres_url.rsplit("/", 1)[0] + f"/{name}"
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        admin.dispose()


@pytest.hookimpl(trylast=True)  # after ``-m`` and ``-k`` have deselected
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests marked ``spark`` run only in a pytest process of their own (``make test`` runs
    ``pytest -m spark`` after the rest); in a session that selects other tests too, they are skipped.

    Launching Spark's Java gateway forks this process; after the in-process BentoML service of the
    HTTP tests has run in it, the forked child segfaults (seen with pyspark 4 and bentoml 1.4:
    ``JAVA_GATEWAY_EXITED``).
    """
    spark = [item for item in items if item.get_closest_marker("spark")]
    if spark and len(spark) < len(items):
        skip = pytest.mark.skip(reason="Spark tests run in a pytest process of their own: pytest -m spark")
        for item in spark:
            item.add_marker(skip)


# --------------------------------------------------------------------------- the service in-process

# variables the service reads: unset during tests unless a test sets them
SERVICE_VARS = (
    "CHURNCLV_MODEL_URI",
    "MLFLOW_TRACKING_URI",
    "CHURNCLV_SNAPSHOT",
    "CHURNCLV_API_KEY",
    "CHURNCLV_ALLOW_NO_AUTH",
    "CHURNCLV_MAX_CUSTOMERS",
    "CHURNCLV_MAX_HISTORY_ROWS",
    "CHURNCLV_MAX_BODY_BYTES",
    "CHURNCLV_RELOAD_INTERVAL_S",
    "CHURNCLV_AS_OF_WARNING_DAYS",
    "CHURNCLV_WORKERS",
    "CHURNCLV_GC_FREEZE",
    "CHURNCLV_PRECOMPUTE_SCORES",
    "CHURNCLV_TARGETING",
)


@contextlib.contextmanager
def running_service(env: dict[str, str], *, metrics: bool = False) -> Iterator[Any]:
    """The service in-process (ASGI, lifespan run: the model is loaded), as a Starlette TestClient.

    The environment is patched only while the app starts: the service and its middleware read their
    settings then, so nothing leaks into other tests. Prometheus metrics register process-wide
    series, so only one in-process app (the session's ``client``) may have them.
    """
    with warnings.catch_warnings():
        # starlette deprecates its httpx-based client in favour of httpx2, which is not installed
        warnings.simplefilter("ignore", DeprecationWarning)
        from starlette.testclient import TestClient

    from churnclv.serving.service import ChurnCLVService

    with pytest.MonkeyPatch.context() as mp:
        for name in SERVICE_VARS:
            mp.delenv(name, raising=False)
        for name, value in env.items():
            mp.setenv(name, value)
        if not metrics:
            mp.setenv("BENTOML_CONFIG_OPTIONS", "services.churnclv.metrics.enabled=false")
        client = TestClient(ChurnCLVService.to_asgi())
        client.__enter__()
    try:
        yield client
    finally:
        client.__exit__(None, None, None)


@pytest.fixture(scope="session")
def service_app() -> SimpleNamespace:
    """``running(env, metrics=False)``: the BentoML service in-process; ``SERVICE_VARS``: what it reads
    from the environment (for the serving tests and the data zoo; conftests cannot import each other)."""
    return SimpleNamespace(running=running_service, SERVICE_VARS=SERVICE_VARS)


@pytest.fixture(autouse=True)
def _fresh_fit_memo() -> None:
    """Every test fits BTYD for itself: a test that makes lifetimes fail must not read a fit an
    earlier test left in the memo (models.fit_memo)."""
    fit_memo.clear()
