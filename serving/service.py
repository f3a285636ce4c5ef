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
malformed body or a broken rule (BentoML's pydantic validation, same shape for our own checks)
and for a Content-Length sent with Transfer-Encoding, 401 without the right key, 411 for a
chunked body, 413 for a body over the limit (however it is framed: it is counted as it arrives),
415 for a body that is not JSON. An upload the client aborts is recorded as 499 (client closed
the request), at INFO, never as a 500.

Hardening (each has a regression test in ``tests/security/test_http_security.py`` or
``tests/serving/test_http_hardening.py``): URLs are redacted in every answer and log line
(:func:`churnclv.redaction.redact_text`); metric labels come from a fixed set of paths
(:class:`MetricPathLabels`); a body is never read past the limit, whatever its framing; a client
that aborts its upload is a 499, not a 500; ``serve`` loads the model before it starts the server,
and gives each server its own Prometheus folder.
"""

from __future__ import annotations

import asyncio
import gc
import hmac
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import traceback
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import bentoml
from starlette.middleware import Middleware
from starlette.responses import JSONResponse

from churnclv.redaction import redact_text, redact_url
from churnclv.serving.batcher import RequestBatcher
from churnclv.serving.model import ModelLoadError, error_summary
from churnclv.serving.schemas import (
    CustomerHistory,
    ModelInfo,
    ReloadResult,
    ScoreByIdRequest,
    ScoreByIdResponse,
    ScoreRequest,
    ScoreResponse,
)
from churnclv.serving.scoring import (
    SnapshotError,
    load_checked_model,
    score_histories_together,
    score_ids_together,
)
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
# loggers that log the exceptions of requests (BentoML's handler; uvicorn, for what escapes the app)
REQUEST_ERROR_LOGGERS = (BENTOML_APP_LOGGER, "uvicorn.error")
# loggers whose records may quote a URL or a request: the redaction filters sit on them (a filter
# on a logger sees only that logger's own records, so each is named)
SERVICE_LOGGERS = (
    "churnclv",
    __name__,
    "churnclv.serving.state",
    "churnclv.serving.model",
    "churnclv.serving.scoring",
    "churnclv.serving.batcher",
    "churnclv.serving.pack",
    BENTOML_APP_LOGGER,
    "_bentoml_impl.server.app",
    "bentoml",
    "bentoml.access",
    "uvicorn.error",
    "mlflow",
    "mlflow.store.db.utils",
)
OTHER_PATH = "other"  # the metric label of every request path that is not one of the service's routes
CLIENT_CLOSED = 499  # nginx's "client closed request": an aborted upload is the client's doing, not a 500
# churnclv serve -> its BentoML server: the Prometheus folder of this server alone
METRICS_DIR_VAR = "CHURNCLV_PROMETHEUS_DIR"
GC_THRESHOLDS = (10_000, 10, 1_000)
BATCH_CUSTOMERS = 256  # customers per shared scoring call (at least CHURNCLV_MAX_CUSTOMERS)
_TARGET_PREFIX = {"churn": "churn_", "purchases": "purchases_", "spend": "spend_"}

# How well requests share scoring calls, on /metrics (per endpoint): requests per call, and call time.
SCORING_BATCH = bentoml.metrics.Histogram(
    name="churnclv_scoring_batch_requests",
    documentation="Requests served by one scoring call",
    labelnames=["endpoint"],
    buckets=(1, 2, 4, 8, 16, 32, 64, 128, float("inf")),
)
SCORING_SECONDS = bentoml.metrics.Histogram(
    name="churnclv_scoring_call_seconds",
    documentation="Duration of one scoring call (queue wait excluded)",
    labelnames=["endpoint"],
    buckets=(0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, float("inf")),
)


def _observer(endpoint: str) -> Callable[[int, float], None]:
    def observe(requests: int, seconds: float) -> None:
        SCORING_BATCH.labels(endpoint=endpoint).observe(requests)
        SCORING_SECONDS.labels(endpoint=endpoint).observe(seconds)

    return observe


class ServeError(RuntimeError):
    """``churnclv serve`` cannot start (bad settings, no model) or the server exited with an error.

    The message is redacted (it is printed, and may quote the tracking URI)."""

    def __init__(self, message: str) -> None:
        super().__init__(redact_text(message))


# --------------------------------------------------------------------------- errors and auth


def problem(status: int, error: str, detail: Sequence[dict[str, Any]] = ()) -> JSONResponse:
    """An error answer shaped like BentoML's validation errors: ``{"error", "detail": [{loc, msg, type}]}``.

    ``error`` is redacted here: every error answer passes this one door, whatever it quotes.
    """
    return JSONResponse({"error": redact_text(error), "detail": list(detail)}, status_code=status)


class APIKeyMiddleware:
    """ASGI middleware: the API key on every route but the open ones, and body size and type checks.

    Runs before BentoML parses the body, so an unauthenticated request costs no parsing and learns
    nothing about the schema. Keys are compared in constant time and never logged.

    The body is read here, counted as it arrives, and handed on whole: the limit holds whatever the
    framing (a Content-Length that lies, chunks), a client that aborts its upload is answered 499
    here instead of surfacing as an error inside BentoML (logged at ERROR, counted as a 500).

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
        headers: dict[bytes, list[bytes]] = {}
        for k, v in scope["headers"]:
            headers.setdefault(k.lower(), []).append(v)
        answer = self._check(scope, headers)
        if answer is not None:
            await answer(scope, receive, send)
            return
        body = await self._read_body(scope, receive, send)
        if body is None:
            return  # answered (413, 499)
        delivered = False

        async def replay() -> dict[str, Any]:
            nonlocal delivered
            if not delivered:
                delivered = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()  # after the body: the disconnect, when it comes

        await self.app(scope, replay, send)

    def _check(self, scope: dict[str, Any], headers: Mapping[bytes, list[bytes]]) -> JSONResponse | None:
        if self._key is not None:
            given = headers.get(API_KEY_HEADER.encode(), [b""])[-1]
            if not hmac.compare_digest(given, self._key):
                what = "wrong" if given else "missing"
                return problem(401, f"{what} API key: send the key in the X-API-Key header")
        lengths = headers.get(b"content-length", [])
        if lengths and b"transfer-encoding" in headers:
            # the server frames the body by Transfer-Encoding and ignores the length: the size check
            # would read a declared length that means nothing (a body-limit bypass, and smuggling)
            return problem(400, "both Content-Length and Transfer-Encoding: send a Content-Length header only")
        if len(set(lengths)) > 1:
            return problem(400, "several different Content-Length headers: send one")
        if scope["method"] != "POST":
            return None
        ctype = headers.get(b"content-type", [b"application/json"])[-1].split(b";")[0].strip().lower()
        if ctype != b"application/json":
            return problem(415, f"content type {ctype.decode(errors='replace')!r}: send application/json")
        if not lengths:
            if b"transfer-encoding" in headers:
                return problem(411, "chunked body: send a Content-Length header")
            return None
        if not lengths[0].isdigit():  # int() would also take "+1", " 1" and "1_000"
            return problem(400, "Content-Length is not a number")
        size = int(lengths[0])
        if size > self._max_body:
            return self._too_large(f"body of {size} bytes")
        return None

    def _too_large(self, what: str) -> JSONResponse:
        return problem(
            413,
            f"{what} is larger than the limit {self._max_body} (CHURNCLV_MAX_BODY_BYTES): "
            "send fewer customers per request",
        )

    async def _read_body(self, scope: dict[str, Any], receive: Any, send: Any) -> bytes | None:
        """The whole body, or None once answered: 413 past the limit (the rest is never read), 499
        when the client goes away first."""
        parts: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                log.info(
                    "%s %s: the client closed the connection after %d body bytes; answered %d",
                    scope["method"],
                    scope["path"],
                    size,
                    CLIENT_CLOSED,
                )
                # the answer goes nowhere (the server drops it); the metrics and the access log record it
                await problem(CLIENT_CLOSED, "client closed the request")(scope, receive, send)
                return None
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self._max_body:
                await self._too_large(f"body of more than {self._max_body} bytes")(scope, receive, send)
                return None
            parts.append(chunk)
            if not message.get("more_body", False):
                return b"".join(parts)


class MetricPathLabels:
    """ASGI middleware, outside BentoML's metrics middleware: it shows that middleware a path from
    a fixed set, so the ``endpoint`` label cannot grow with the paths clients invent.

    BentoML 1.4 (``RunnerTrafficMetricsMiddleware``) labels its HTTP metrics with ``scope["path"]``
    as sent, 401s and 404s included: 10,853 distinct paths took ``/metrics`` from 5 kB to 44 MB.
    Here a route keeps its path, a path under an open prefix (``/static_content/...``) becomes the
    prefix, anything else becomes ``other``; :class:`RestorePath`, just inside the metrics
    middleware, puts the real path back for routing and the access log.
    """

    KEY = "churnclv.path"

    def __init__(self, app: Any, routes: Iterable[str] = ()) -> None:
        self.app = app
        self.routes = frozenset(routes) | OPEN_PATHS

    def label(self, path: str) -> str:
        if path in self.routes:
            return path
        return next((p for p in OPEN_PREFIXES if path.startswith(p)), OTHER_PATH)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] in ("http", "websocket"):
            label = self.label(scope["path"])
            if label != scope["path"]:
                scope = {**scope, "path": label, self.KEY: scope["path"]}
        await self.app(scope, receive, send)


class RestorePath:
    """ASGI middleware: the request path as sent, after :class:`MetricPathLabels` relabelled it."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if MetricPathLabels.KEY in scope:
            scope = dict(scope)
            scope["path"] = scope.pop(MetricPathLabels.KEY)
        await self.app(scope, receive, send)


def bound_metric_labels(app: Any, routes: Iterable[str]) -> None:
    """Put :class:`MetricPathLabels` before BentoML's metrics middleware of ``app`` (a Starlette app
    not started yet) and :class:`RestorePath` right after it; nothing when metrics are off."""
    from bentoml._internal.server.http.instruments import RunnerTrafficMetricsMiddleware

    stack = app.user_middleware
    at = next((i for i, m in enumerate(stack) if m.cls is RunnerTrafficMetricsMiddleware), None)
    if at is None:
        return
    stack.insert(at + 1, Middleware(RestorePath))
    stack.insert(at, Middleware(MetricPathLabels, routes=tuple(routes)))


class BoundedMetricsService(bentoml.Service):  # type: ignore[type-arg]
    """BentoML's service, whose ASGI app labels its metrics from a fixed set (:class:`MetricPathLabels`).

    ``bentoml serve`` and the tests build the app through :meth:`to_asgi`; BentoML's own hook for
    middleware (``add_asgi_middleware``) places it inside the metrics middleware, too late.
    """

    def to_asgi(self, is_main: bool = True) -> Any:
        app = super().to_asgi(is_main=is_main)
        prefix = (self.path_prefix or "").rstrip("/")
        bound_metric_labels(app, [prefix + api.route for api in self.apis.values()])
        return app


class RedactValidationInput(logging.Filter):
    """Keep request content out of the logs of request errors (:data:`REQUEST_ERROR_LOGGERS`).

    BentoML logs every exception of a request with its traceback, and exception messages quote
    input values (a pydantic ``ValidationError`` quotes customer ids and amounts; a library error
    may quote a value it choked on): request content must not reach the logs.

    - a ``ValidationError`` (answered 400) becomes one INFO line: the path, the method and the
      error count;
    - a client that went away (``ClientDisconnect``) becomes one INFO line;
    - any other exception keeps its traceback (files, lines, functions) and its type, not its message.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        from pydantic import ValidationError
        from starlette.requests import ClientDisconnect

        exc = record.exc_info[1] if record.exc_info else None
        if exc is None:
            return True
        if isinstance(exc, ValidationError):
            note = f"{exc.error_count()} validation error(s), answered 400 (input not logged)"
        elif isinstance(exc, ClientDisconnect):
            note = "the client closed the connection"
        else:
            record.exc_text = _traceback_without_messages(exc)
            return True
        record.msg = f"{record.getMessage()}: {note}"
        record.args = ()
        record.exc_info = None
        record.exc_text = None
        record.levelno, record.levelname = logging.INFO, "INFO"
        return True


def _traceback_without_messages(exc: BaseException) -> str:
    """The traceback of ``exc`` and of its causes, each exception named by its type only."""
    chain: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and all(current is not seen for seen in chain):
        chain.append(current)
        current = current.__cause__ or (None if current.__suppress_context__ else current.__context__)
    lines: list[str] = []
    for e in reversed(chain):
        lines.append("Traceback (most recent call last):\n")
        lines.extend(traceback.format_tb(e.__traceback__))
        lines.append(f"{type(e).__module__}.{type(e).__qualname__}: (message not logged: it may quote request data)\n")
    return "".join(lines).rstrip("\n")


class RedactURLs(logging.Filter):
    """Redact every URL in a log record: its message, its arguments and its traceback text.

    Belt and braces: the service's own messages are built with redacted URLs, but libraries
    (MLflow, SQLAlchemy, BentoML) log and raise with the URLs they were given.
    """

    _formatter = logging.Formatter()

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a broken format string is the handler's to report
            return True
        if "://" in message:
            record.msg, record.args = redact_text(message), ()
        if record.exc_info and record.exc_info[1] is not None and not record.exc_text:
            record.exc_text = self._formatter.formatException(record.exc_info)
        if record.exc_text and "://" in record.exc_text:
            record.exc_text = redact_text(record.exc_text)
        return True


def _add_filter_once(target: logging.Logger | logging.Handler, kind: type[logging.Filter]) -> None:
    if not any(isinstance(f, kind) for f in target.filters):
        target.addFilter(kind())


def install_log_redaction() -> None:
    """Attach the log redaction filters (once per process; the service and ``serve`` call it).

    :class:`RedactValidationInput` on the loggers of :data:`REQUEST_ERROR_LOGGERS`, then
    :class:`RedactURLs` on the loggers of :data:`SERVICE_LOGGERS` and on the handlers configured
    now (the root logger's and theirs), which also see the records that other libraries' loggers
    pass up to them.
    """
    for name in REQUEST_ERROR_LOGGERS:
        _add_filter_once(logging.getLogger(name), RedactValidationInput)
    loggers = [logging.getLogger(name) for name in SERVICE_LOGGERS]
    for logger in loggers:
        _add_filter_once(logger, RedactURLs)
    for logger in [logging.getLogger(), *loggers]:
        for handler in logger.handlers:
            _add_filter_once(handler, RedactURLs)


# --------------------------------------------------------------------------- request limits


def check_limits(customers: Sequence[CustomerHistory], settings: ServiceSettings) -> JSONResponse | None:
    """413 past the customer or history limits, 400 on a customer id given twice; else None."""
    if len(customers) > settings.max_customers:
        return problem(
            413,
            f"{len(customers)} customers in one request: the limit is {settings.max_customers}",
            [
                {
                    "loc": ["customers"],
                    "type": "too_long",
                    "msg": f"at most {settings.max_customers} customers per request "
                    "(CHURNCLV_MAX_CUSTOMERS): split the request",
                }
            ],
        )
    detail = []
    for i, c in enumerate(customers):
        rows = len(c.transactions) + len(c.events)
        if rows > settings.max_history_rows:
            detail.append(
                {
                    "loc": ["customers", i],
                    "type": "too_long",
                    "msg": f"customer {c.customer_id!r} has {rows} history rows (transactions + events): "
                    f"the limit is {settings.max_history_rows} (CHURNCLV_MAX_HISTORY_ROWS); "
                    "send the rows of the last few years",
                }
            )
    if detail:
        return problem(413, f"{len(detail)} customer(s) over the history limit", detail)
    seen: dict[str, int] = {}
    for i, c in enumerate(customers):
        if c.customer_id in seen:
            detail.append(
                {
                    "loc": ["customers", i, "customer_id"],
                    "type": "duplicate",
                    "msg": f"customer_id {c.customer_id!r} is also customer {seen[c.customer_id]}: "
                    "send each customer once, with all their rows",
                }
            )
        seen.setdefault(c.customer_id, i)
    if detail:
        return problem(400, f"{len(detail)} duplicated customer_id(s)", detail)
    return None


# --------------------------------------------------------------------------- the service


@bentoml.service(
    name=SERVICE_NAME,
    service_class=BoundedMetricsService,
    workers=1,  # churnclv serve sets CHURNCLV_WORKERS through BENTOML_CONFIG_OPTIONS
    traffic={"timeout": 30},
    metrics={"enabled": True, "namespace": "churnclv"},
    # metadata only: BentoML never logs bodies, and these flags keep it to lengths and types
    logging={
        "access": {
            "enabled": True,
            "request_content_length": True,
            "request_content_type": True,
            "response_content_length": True,
            "response_content_type": True,
        }
    },
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
            ServingState,
            model_uri=self.settings.model_uri,
            tracking_uri=self.settings.tracking_uri,
            snapshot=self.settings.snapshot,
        ).result()
        self.state.start(self.settings.reload_interval_s)
        # concurrent requests share scoring calls (see churnclv.serving.batcher)
        limit = max(self.settings.max_customers, BATCH_CUSTOMERS)
        self._histories = RequestBatcher(
            self._work, lambda _key, jobs: score_histories_together(jobs), max_items=limit, observe=_observer("score")
        )
        self._ids = RequestBatcher(
            self._work, lambda _key, jobs: score_ids_together(jobs), max_items=limit, observe=_observer("score_by_id")
        )
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
        scores = await self._histories.submit(
            (id(model), request.as_of), (model, request.customers, request.as_of), len(request.customers)
        )
        return ScoreResponse(as_of=request.as_of, model_version=model.version, scores=scores)

    @bentoml.api(route="/score_by_id")
    async def score_by_id(self, request: ScoreByIdRequest, /) -> ScoreByIdResponse:
        """Score customers by id from the batch job's latest feature snapshot."""
        ids = request.customer_ids
        if len(ids) > self.settings.max_customers:
            return problem(
                413,
                f"{len(ids)} customer ids in one request: the limit is {self.settings.max_customers}",
                [
                    {
                        "loc": ["customer_ids"],
                        "type": "too_long",
                        "msg": f"at most {self.settings.max_customers} ids per request "
                        "(CHURNCLV_MAX_CUSTOMERS): split the request",
                    }
                ],
            )  # type: ignore[return-value]
        model, snapshot = self.state.model, self.state.snapshot
        if snapshot is None:
            why = self.state.snapshot_error or (
                "no feature snapshot configured: start the service with --snapshot (CHURNCLV_SNAPSHOT) "
                "pointing at the batch job's output folder"
            )
            return problem(503, f"score_by_id is unavailable: {why}")  # type: ignore[return-value]
        try:
            snapshot.check(model)
        except SnapshotError as exc:
            return problem(503, f"score_by_id is unavailable: {exc}")  # type: ignore[return-value]
        scores = await self._ids.submit((id(model), id(snapshot)), (model, snapshot, ids), len(ids))
        return ScoreByIdResponse(
            as_of=snapshot.as_of, snapshot=snapshot.partition, model_version=model.version, scores=scores
        )

    @bentoml.api(route="/model_info")
    async def model_info(self) -> ModelInfo:
        """The served model: version, alias, trained as-of, horizon and its backtest metrics."""
        model, snapshot = self.state.model, self.state.snapshot
        meta = model.metadata
        selected = {str(k): str(v) for k, v in (meta.get("selected") or {}).items()}
        means = meta.get("backtest_means") or {}
        plan = meta.get("backtest") or {}  # absent in models trained before it was recorded: backtested
        metrics: dict[str, float] = {}
        for target, candidate in selected.items():
            prefix = _TARGET_PREFIX.get(target, f"{target}_")
            metrics.update({m: float(v) for m, v in (means.get(candidate) or {}).items() if m.startswith(prefix)})
        return ModelInfo(
            name=model.name,
            version=model.version,
            alias=model.alias,
            model_uri=redact_url(model.model_uri),
            run_id=model.run_id,
            trained_as_of=meta.get("as_of"),
            horizon_days=model.horizon_days,
            selected=selected,
            backtest_metrics=metrics,
            attributes=list(model.attributes),
            backtested=bool(plan.get("backtested", True)),
            backtest_horizon_days=plan.get("backtest_horizon_days", model.horizon_days),
            backtest_note=plan.get("note"),
            snapshot=None if snapshot is None else snapshot.partition,
        )

    @bentoml.api(route="/reload")
    async def reload(self) -> ReloadResult:
        """Load the version the model alias points at now (and the latest snapshot), if changed."""
        try:
            outcome = await self._on(self._admin, self.state.refresh)
        except ModelLoadError as exc:
            return problem(  # type: ignore[return-value]
                503, f"reload failed, still serving version {self.state.model.version}: {exc}"
            )
        return ReloadResult(
            status="reloaded" if outcome.model_changed else "unchanged",
            previous_version=outcome.previous_version,
            version=outcome.version,
            snapshot=outcome.snapshot,
        )


ChurnCLVService.add_asgi_middleware(APIKeyMiddleware)


# --------------------------------------------------------------------------- serve


def server_env(
    settings: ServiceSettings, base: Mapping[str, str] | None = None, *, metrics_dir: str | Path | None = None
) -> dict[str, str]:
    """The environment of the BentoML server process: the settings, worker count, no usage tracking,
    and its own Prometheus folder (``metrics_dir``, read by :func:`run_bentoml`)."""
    env = dict(os.environ if base is None else base)
    env.update(settings.to_env())
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
        f"{__name__}:ChurnCLVService",
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

    Raises
    ------
    ServeError
        Invalid settings (no API key), a model that does not resolve or load, or the server
        exiting with an error. The message is one line, with URLs redacted.
    """
    install_log_redaction()
    try:
        base = ServiceSettings.from_env()
        settings = ServiceSettings(
            **{
                **base.__dict__,
                "model_uri": model_uri or base.model_uri,
                "tracking_uri": tracking_uri or base.tracking_uri,
                "snapshot": Path(snapshot).resolve() if snapshot is not None else base.snapshot,
            }
        )
        settings.check_auth()
    except SettingsError as exc:
        raise ServeError(str(exc)) from None
    try:
        # fail here with one clear line, not in a worker that BentoML restarts forever
        version = load_checked_model(settings.model_uri, settings.tracking_uri).version
    except ModelLoadError as exc:
        raise ServeError(str(exc)) from None
    except Exception as exc:  # noqa: BLE001 - any other failure to load is still one line, not a traceback
        raise ServeError(
            f"model {redact_url(settings.model_uri)} cannot be loaded ({error_summary(exc)}): check "
            "--model / CHURNCLV_MODEL_URI and --tracking-uri / MLFLOW_TRACKING_URI"
        ) from None
    gc.collect()  # the checked model is not kept: the workers load their own
    log.info("serving %s (version %s) on http://%s:%d", redact_url(settings.model_uri), version, host, port)
    metrics_dir = tempfile.mkdtemp(prefix=f"churnclv-prometheus-{port}-")
    try:
        code = _run_server(server_command(host, port), server_env(settings, metrics_dir=metrics_dir))
    finally:
        shutil.rmtree(metrics_dir, ignore_errors=True)
    if code not in (0, -signal.SIGINT, -signal.SIGTERM):
        raise ServeError(f"the BentoML server exited with status {code}: see its log above")


def _run_server(command: list[str], env: dict[str, str]) -> int:
    """Run the server process until it exits, forwarding SIGTERM; its exit status."""
    proc = subprocess.Popen(command, env=env)

    def forward(signum: int, _frame: Any) -> None:
        proc.send_signal(signum)

    previous = None
    try:
        previous = signal.signal(signal.SIGTERM, forward)
    except ValueError:  # not the main thread: the caller handles signals
        pass
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


__all__ = [
    "APIKeyMiddleware",
    "BoundedMetricsService",
    "ChurnCLVService",
    "MetricPathLabels",
    "RedactURLs",
    "RedactValidationInput",
    "RestorePath",
    "ServeError",
    "install_log_redaction",
    "run_bentoml",
    "serve",
    "server_command",
    "server_env",
    "use_metrics_dir",
]
