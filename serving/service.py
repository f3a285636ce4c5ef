"""The HTTP scoring service for the CRM (BentoML 1.4).

Endpoints (JSON over POST; every one but the health and metrics routes needs the API key in the
``X-API-Key`` header):

- ``/score``: customers with their history and an as-of; features are computed with the batch
  job's definitions (:func:`churnclv.features.compute_features_frames`) and scored.
- ``/score_by_id``: customer ids, scored from the batch job's latest feature snapshot.
- ``/model_info``: the served model: version, alias, trained as-of, horizon, backtest metrics.
- ``/reload``: pick up the version the model alias points at now, and the latest snapshot.
- BentoML's own ``/livez``, ``/readyz`` and Prometheus ``/metrics`` (open), ``/docs.json``.

Settings come from environment variables (:mod:`churnclv.serving.settings`); :func:`serve` starts
the real BentoML server with them. Bad input answers 4xx with field-level messages: 400 for a
malformed body or a broken rule (BentoML's pydantic validation, same shape for our own checks),
401 without the right key, 411/413/415 for missing length, too large and non-JSON bodies.
"""

from __future__ import annotations

import asyncio
import gc
import hmac
import logging
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import bentoml
from starlette.responses import JSONResponse

from churnclv.serving.batcher import RequestBatcher
from churnclv.serving.model import ModelLoadError, resolve_version
from churnclv.serving.schemas import (
    CustomerHistory,
    ModelInfo,
    ReloadResult,
    ScoreByIdRequest,
    ScoreByIdResponse,
    ScoreRequest,
    ScoreResponse,
)
from churnclv.serving.scoring import SnapshotError, score_histories_together, score_ids_together
from churnclv.serving.settings import ServiceSettings, SettingsError
from churnclv.serving.state import ServingState

log = logging.getLogger(__name__)
T = TypeVar("T")

SERVICE_NAME = "churnclv"
API_KEY_HEADER = "x-api-key"
# BentoML's own routes: health, readiness, metrics, the OpenAPI document and the docs page
OPEN_PATHS = frozenset({"/livez", "/healthz", "/readyz", "/metrics", "/docs.json", "/schema.json", "/"})
OPEN_PREFIXES = ("/static_content/", "/assets/")
BENTOML_APP_LOGGER = "bentoml._internal.server.http_app"
GC_THRESHOLDS = (10_000, 10, 1_000)
BATCH_CUSTOMERS = 256  # customers per shared scoring call (at least CHURNCLV_MAX_CUSTOMERS)
_TARGET_PREFIX = {"churn": "churn_", "purchases": "purchases_", "spend": "spend_"}

# How well requests share scoring calls, on /metrics (per endpoint): requests per call, and call time.
SCORING_BATCH = bentoml.metrics.Histogram(
    name="churnclv_scoring_batch_requests", documentation="Requests served by one scoring call",
    labelnames=["endpoint"], buckets=(1, 2, 4, 8, 16, 32, 64, 128, float("inf")))
SCORING_SECONDS = bentoml.metrics.Histogram(
    name="churnclv_scoring_call_seconds", documentation="Duration of one scoring call (queue wait excluded)",
    labelnames=["endpoint"], buckets=(0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, float("inf")))


def _observer(endpoint: str) -> Callable[[int, float], None]:
    def observe(requests: int, seconds: float) -> None:
        SCORING_BATCH.labels(endpoint=endpoint).observe(requests)
        SCORING_SECONDS.labels(endpoint=endpoint).observe(seconds)
    return observe


class ServeError(RuntimeError):
    """``churnclv serve`` cannot start (bad settings, no model) or the server exited with an error."""


# --------------------------------------------------------------------------- errors and auth


def problem(status: int, error: str, detail: Sequence[dict[str, Any]] = ()) -> JSONResponse:
    """An error answer shaped like BentoML's validation errors: ``{"error", "detail": [{loc, msg, type}]}``."""
    return JSONResponse({"error": error, "detail": list(detail)}, status_code=status)


class APIKeyMiddleware:
    """ASGI middleware: the API key on every route but the open ones, and body size and type checks.

    Runs before BentoML parses the body, so an unauthenticated request costs no parsing and learns
    nothing about the schema. Keys are compared in constant time and never logged.

    Parameters
    ----------
    app
        The wrapped ASGI app.
    settings
        Default: read from the environment when the app is built.
    """

    def __init__(self, app: Any, settings: ServiceSettings | None = None) -> None:
        self.app = app
        settings = settings or ServiceSettings.from_env()
        settings.check_auth()
        self._key = None if settings.api_key is None else settings.api_key.encode()
        self._max_body = settings.max_body_bytes

    @staticmethod
    def is_open(path: str) -> bool:
        return path in OPEN_PATHS or path.startswith(OPEN_PREFIXES)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http" or self.is_open(scope["path"]):
            await self.app(scope, receive, send)
            return
        headers = {k.lower(): v for k, v in scope["headers"]}
        answer = self._check(scope, headers)
        if answer is not None:
            await answer(scope, receive, send)
            return
        await self.app(scope, receive, send)

    def _check(self, scope: dict[str, Any], headers: Mapping[bytes, bytes]) -> JSONResponse | None:
        if self._key is not None:
            given = headers.get(API_KEY_HEADER.encode(), b"")
            if not hmac.compare_digest(given, self._key):
                what = "wrong" if given else "missing"
                return problem(401, f"{what} API key: send the key in the X-API-Key header")
        if scope["method"] != "POST":
            return None
        ctype = headers.get(b"content-type", b"application/json").split(b";")[0].strip().lower()
        if ctype != b"application/json":
            return problem(415, f"content type {ctype.decode(errors='replace')!r}: send application/json")
        length = headers.get(b"content-length")
        if length is None:
            if b"transfer-encoding" in headers:
                return problem(411, "chunked body: send a Content-Length header")
            return None
        try:
            size = int(length)
        except ValueError:
            return problem(400, "Content-Length is not a number")
        if size > self._max_body:
            return problem(413, f"body of {size} bytes is larger than the limit {self._max_body} "
                                      "(CHURNCLV_MAX_BODY_BYTES): send fewer customers per request")
        return None


class RedactValidationInput(logging.Filter):
    """Drop the traceback of request validation errors from BentoML's error log.

    BentoML logs every pydantic ``ValidationError`` with its traceback, whose message quotes the
    offending input values (customer ids, amounts): request content must not reach the logs. The
    record keeps the path, the method and the error count.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        from pydantic import ValidationError

        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, ValidationError):
            record.msg = (f"{record.getMessage()}: {exc.error_count()} validation error(s), answered 400 "
                          "(input not logged)")
            record.args = ()
            record.exc_info = None
            record.exc_text = None
            record.levelno, record.levelname = logging.INFO, "INFO"
        return True


def install_log_redaction() -> None:
    """Attach :class:`RedactValidationInput` to BentoML's HTTP app logger (once per process)."""
    target = logging.getLogger(BENTOML_APP_LOGGER)
    if not any(isinstance(f, RedactValidationInput) for f in target.filters):
        target.addFilter(RedactValidationInput())


# --------------------------------------------------------------------------- request limits


def check_limits(customers: Sequence[CustomerHistory], settings: ServiceSettings) -> JSONResponse | None:
    """413 past the customer or history limits, 400 on a customer id given twice; else None."""
    if len(customers) > settings.max_customers:
        return problem(413, f"{len(customers)} customers in one request: the limit is {settings.max_customers}",
                       [{"loc": ["customers"], "type": "too_long",
                         "msg": f"at most {settings.max_customers} customers per request "
                                "(CHURNCLV_MAX_CUSTOMERS): split the request"}])
    detail = []
    for i, c in enumerate(customers):
        rows = len(c.transactions) + len(c.events)
        if rows > settings.max_history_rows:
            detail.append({"loc": ["customers", i], "type": "too_long",
                           "msg": f"customer {c.customer_id!r} has {rows} history rows (transactions + events): "
                                  f"the limit is {settings.max_history_rows} (CHURNCLV_MAX_HISTORY_ROWS); "
                                  "send the rows of the last few years"})
    if detail:
        return problem(413, f"{len(detail)} customer(s) over the history limit", detail)
    seen: dict[str, int] = {}
    for i, c in enumerate(customers):
        if c.customer_id in seen:
            detail.append({"loc": ["customers", i, "customer_id"], "type": "duplicate",
                           "msg": f"customer_id {c.customer_id!r} is also customer {seen[c.customer_id]}: "
                                  "send each customer once, with all their rows"})
        seen.setdefault(c.customer_id, i)
    if detail:
        return problem(400, f"{len(detail)} duplicated customer_id(s)", detail)
    return None


# --------------------------------------------------------------------------- the service


@bentoml.service(
    name=SERVICE_NAME,
    workers=1,  # churnclv serve sets CHURNCLV_WORKERS through BENTOML_CONFIG_OPTIONS
    traffic={"timeout": 30},
    metrics={"enabled": True, "namespace": "churnclv"},
    # metadata only: BentoML never logs bodies, and these flags keep it to lengths and types
    logging={"access": {"enabled": True, "request_content_length": True, "request_content_type": True,
                        "response_content_length": True, "response_content_type": True}},
)
class ChurnCLVService:
    """Churn, CLV and growth tiers over HTTP (see the module docstring for the endpoints)."""

    def __init__(self) -> None:
        install_log_redaction()
        self.settings = ServiceSettings.from_env()
        self.settings.check_auth()
        if self.settings.api_key is None:
            log.warning("CHURNCLV_ALLOW_NO_AUTH=1: serving WITHOUT authentication")
        # Scoring runs on one long-lived thread per worker (the GIL allows no more CPU anyway): its
        # DuckDB connection is reused across requests, and the thread is joined at shutdown, so the
        # connection is never torn down during interpreter exit (DuckDB aborts the process then).
        self._work = ThreadPoolExecutor(max_workers=1, thread_name_prefix="churnclv-score")
        # model loads (start, reload) never queue behind or ahead of scoring
        self._admin = ThreadPoolExecutor(max_workers=1, thread_name_prefix="churnclv-admin")
        self.state = self._admin.submit(
            ServingState, model_uri=self.settings.model_uri, tracking_uri=self.settings.tracking_uri,
            snapshot=self.settings.snapshot).result()
        self.state.start(self.settings.reload_interval_s)
        # concurrent requests share scoring calls (see churnclv.serving.batcher)
        limit = max(self.settings.max_customers, BATCH_CUSTOMERS)
        self._histories = RequestBatcher(self._work, lambda _key, jobs: score_histories_together(jobs),
                                         max_items=limit, observe=_observer("score"))
        self._ids = RequestBatcher(self._work, lambda _key, jobs: score_ids_together(jobs), max_items=limit,
                                   observe=_observer("score_by_id"))
        if self.settings.gc_freeze:
            # Full garbage collections walked the ~0.5M objects of the loaded libraries and stalled
            # every request in flight for ~330 ms (p99 at concurrency 16: 337 ms; frozen: 70 ms).
            # What exists now lives as long as the worker: take it out of the collector's sight.
            gc.freeze()
            gc.set_threshold(*GC_THRESHOLDS)  # see churnclv.serving.settings, CHURNCLV_GC_FREEZE

    @bentoml.on_shutdown
    def shutdown(self) -> None:
        self.state.stop()
        self._work.shutdown(wait=True)
        self._admin.shutdown(wait=True)

    async def _on(self, pool: ThreadPoolExecutor, func: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(pool, func, *args)

    @bentoml.api(route="/score")
    async def score(self, request: ScoreRequest, /) -> ScoreResponse:
        """Score customers from their history as of a date (features computed like the batch job)."""
        refused = check_limits(request.customers, self.settings)
        if refused is not None:
            return refused  # type: ignore[return-value]
        model = self.state.model  # one read: a reload cannot switch models mid-request
        scores = await self._histories.submit((id(model), request.as_of), (model, request.customers, request.as_of),
                                              len(request.customers))
        return ScoreResponse(as_of=request.as_of, model_version=model.version, scores=scores)

    @bentoml.api(route="/score_by_id")
    async def score_by_id(self, request: ScoreByIdRequest, /) -> ScoreByIdResponse:
        """Score customers by id from the batch job's latest feature snapshot."""
        ids = request.customer_ids
        if len(ids) > self.settings.max_customers:
            return problem(413, f"{len(ids)} customer ids in one request: the limit is {self.settings.max_customers}",
                           [{"loc": ["customer_ids"], "type": "too_long",
                             "msg": f"at most {self.settings.max_customers} ids per request "
                                    "(CHURNCLV_MAX_CUSTOMERS): split the request"}])  # type: ignore[return-value]
        model, snapshot = self.state.model, self.state.snapshot
        if snapshot is None:
            why = self.state.snapshot_error or (
                "no feature snapshot configured: start the service with --snapshot (CHURNCLV_SNAPSHOT) "
                "pointing at the batch job's output folder")
            return problem(503, f"score_by_id is unavailable: {why}")  # type: ignore[return-value]
        try:
            snapshot.check(model)
        except SnapshotError as exc:
            return problem(503, f"score_by_id is unavailable: {exc}")  # type: ignore[return-value]
        scores = await self._ids.submit((id(model), id(snapshot)), (model, snapshot, ids), len(ids))
        return ScoreByIdResponse(as_of=snapshot.as_of, snapshot=snapshot.partition, model_version=model.version,
                                 scores=scores)

    @bentoml.api(route="/model_info")
    async def model_info(self) -> ModelInfo:
        """The served model: version, alias, trained as-of, horizon and its backtest metrics."""
        model, snapshot = self.state.model, self.state.snapshot
        meta = getattr(model.scorer, "metadata_", {}) or {}
        selected = {str(k): str(v) for k, v in (meta.get("selected") or {}).items()}
        means = meta.get("backtest_means") or {}
        plan = meta.get("backtest") or {}  # absent in models trained before it was recorded: backtested
        metrics: dict[str, float] = {}
        for target, candidate in selected.items():
            prefix = _TARGET_PREFIX.get(target, f"{target}_")
            metrics.update({m: float(v) for m, v in (means.get(candidate) or {}).items() if m.startswith(prefix)})
        return ModelInfo(
            name=model.name, version=model.version, alias=model.alias, model_uri=model.model_uri,
            run_id=model.run_id, trained_as_of=meta.get("as_of"), horizon_days=model.horizon_days,
            selected=selected, backtest_metrics=metrics, attributes=list(model.attributes),
            backtested=bool(plan.get("backtested", True)),
            backtest_horizon_days=plan.get("backtest_horizon_days", model.horizon_days), backtest_note=plan.get("note"),
            snapshot=None if snapshot is None else snapshot.partition,
        )

    @bentoml.api(route="/reload")
    async def reload(self) -> ReloadResult:
        """Load the version the model alias points at now (and the latest snapshot), if changed."""
        try:
            outcome = await self._on(self._admin, self.state.refresh)
        except ModelLoadError as exc:
            return problem(  # type: ignore[return-value]
                503, f"reload failed, still serving version {self.state.model.version}: {exc}")
        return ReloadResult(status="reloaded" if outcome.model_changed else "unchanged",
                            previous_version=outcome.previous_version, version=outcome.version,
                            snapshot=outcome.snapshot)


ChurnCLVService.add_asgi_middleware(APIKeyMiddleware)


# --------------------------------------------------------------------------- serve


def server_env(settings: ServiceSettings, base: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment of the BentoML server process: the settings, worker count, no usage tracking."""
    env = dict(os.environ if base is None else base)
    env.update(settings.to_env())
    env["BENTOML_DO_NOT_TRACK"] = "True"
    options = [o for o in env.get("BENTOML_CONFIG_OPTIONS", "").split() if o]
    options.append(f"services.{SERVICE_NAME}.workers={settings.workers}")
    env["BENTOML_CONFIG_OPTIONS"] = " ".join(options)
    return env


def server_command(host: str, port: int) -> list[str]:
    """The ``bentoml serve`` command line of the service."""
    return [sys.executable, "-m", "bentoml", "serve", f"{__name__}:ChurnCLVService",
            "--host", host, "--port", str(port)]


def serve(
    host: str = "127.0.0.1",
    port: int = 3000,
    model_uri: str | None = None,
    tracking_uri: str | None = None,
    snapshot: Path | str | None = None,
) -> None:
    """Start the BentoML HTTP server and block until it stops (Ctrl-C or SIGTERM stop it).

    The settings not given here come from the environment (:mod:`churnclv.serving.settings`): the
    API key ``CHURNCLV_API_KEY``, limits, reload interval, ``CHURNCLV_WORKERS``.

    Parameters
    ----------
    host, port
        Address to bind.
    model_uri
        MLflow model URI (``models:/churnclv@champion``, ``models:/churnclv/3``) or ``bento:TAG``
        (default ``CHURNCLV_MODEL_URI``, else ``models:/churnclv@champion``).
    tracking_uri
        MLflow tracking URI (default ``MLFLOW_TRACKING_URI``, else ``sqlite:///mlruns/mlflow.db``).
    snapshot
        The batch job's output folder, for ``score_by_id``.

    Raises
    ------
    ServeError
        Invalid settings (no API key), a model URI that does not resolve, or the server exiting
        with an error.
    """
    try:
        base = ServiceSettings.from_env()
        settings = ServiceSettings(
            **{**base.__dict__, "model_uri": model_uri or base.model_uri,
               "tracking_uri": tracking_uri or base.tracking_uri,
               "snapshot": Path(snapshot).resolve() if snapshot is not None else base.snapshot})
        settings.check_auth()
        # fail here with one clear line, not in a worker that BentoML restarts forever
        version = resolve_version(settings.model_uri, settings.tracking_uri)
    except (SettingsError, ModelLoadError) as exc:
        raise ServeError(str(exc)) from None
    log.info("serving %s (version %s) on http://%s:%d", settings.model_uri, version or "unknown", host, port)
    proc = subprocess.Popen(server_command(host, port), env=server_env(settings))

    def forward(signum: int, _frame: Any) -> None:
        proc.send_signal(signum)

    previous = None
    try:
        previous = signal.signal(signal.SIGTERM, forward)
    except ValueError:  # not the main thread: the caller handles signals
        pass
    try:
        code = proc.wait()
    except KeyboardInterrupt:
        # the terminal sent SIGINT to the server too; give it time to drain
        try:
            code = proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            code = proc.wait()
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    if code not in (0, -signal.SIGINT, -signal.SIGTERM):
        raise ServeError(f"the BentoML server exited with status {code}: see its log above")


__all__ = ["APIKeyMiddleware", "ChurnCLVService", "ServeError", "serve", "server_command", "server_env"]
