"""The HTTP scoring service for the CRM (BentoML 1.4).

Endpoints (JSON over POST; every one but the health and metrics routes needs the API key in the
``X-API-Key`` header):

- ``/score``: customers with their history and an as-of; features are computed with the batch
  job's definitions (:func:`churnclv.features.compute_features_frames`) and scored.
- ``/score_by_id``: customer ids, scored from the batch job's latest feature snapshot; the whole
  snapshot is scored once per model and snapshot in the background, and requests are then answered
  by lookup (:mod:`churnclv.serving.score_table`; ``CHURNCLV_PRECOMPUTE_SCORES=0`` turns it off).
- ``/model_info``: the served model: version, alias, trained as-of, horizon, backtest metrics.
- ``/reload``: pick up the version the model alias points at now, and the latest snapshot.
- BentoML's own ``/livez``, ``/readyz`` and Prometheus ``/metrics`` (open), ``/docs.json`` (the
  OpenAPI document, completed by :mod:`churnclv.serving.openapi`: version, key scheme, error answers).

Scoring answers hold one entry per customer, in request order: a customer that cannot be scored gets
an error entry and the others are scored (:mod:`churnclv.serving.scoring`); ``warnings`` flags an
as-of far from the model's training as-of (:mod:`churnclv.serving.staleness`). Each score carries
the customer's arm of the campaign served, as the batch job wrote it
(:mod:`churnclv.serving.campaign_arms`), and with ``CHURNCLV_TARGETING`` the targeting's contact
decision, as ``score-batch --targeting`` writes it (:mod:`churnclv.serving.served_targeting`).

Settings come from environment variables (:mod:`churnclv.serving.settings`);
:func:`churnclv.serving.server.serve` starts the real BentoML server with them. Bad input answers
4xx with field-level messages: 400 for a malformed body or a broken rule (BentoML's pydantic
validation, same shape for our own checks) and for a Content-Length sent with Transfer-Encoding,
401 without the right key, 411 for a chunked body, 413 for a body over the limit (however it is
framed: it is counted as it arrives; also past the customer and history limits), 415 for a body
that is not JSON; 503 when ``score_by_id`` has no snapshot or a reload fails. An upload the client
aborts is recorded as 499 (client closed the request), at INFO, never as a 500.

Hardening (each has a regression test in ``tests/security/test_http_security.py`` or
``tests/serving/test_http_hardening.py``): URLs are redacted in every answer and log line
(:mod:`churnclv.serving.problems`, :mod:`churnclv.serving.log_redaction`); metric labels come from
a fixed set of paths (:mod:`churnclv.serving.metric_labels`); a body is never read past the limit,
whatever its framing, and a client that aborts its upload is a 499, not a 500
(:mod:`churnclv.serving.auth`); ``serve`` loads the model before it starts the server, and gives
each server its own Prometheus folder (:mod:`churnclv.serving.server`).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import gc
import logging
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import bentoml
from pydantic import ConfigDict

from churnclv.redaction import redact_url
from churnclv.serving.auth import APIKeyMiddleware
from churnclv.serving.batcher import RequestBatcher
from churnclv.serving.campaign_arms import CampaignArms
from churnclv.serving.data_check import attribute_notes
from churnclv.serving.feature_snapshot import FeatureSnapshot, SnapshotError, score_ids_together
from churnclv.serving.limits import check_id_limit, check_limits
from churnclv.serving.log_redaction import install_log_redaction
from churnclv.serving.model import LoadedModel, ModelLoadError
from churnclv.serving.monitor_summary import latest_monitoring
from churnclv.serving.openapi import DocumentedService
from churnclv.serving.problems import problem
from churnclv.serving.schemas import (
    CustomerError,
    CustomerHistory,
    CustomerScore,
    ModelInfo,
    ReloadResult,
    ScoreByIdRequest,
    ScoreByIdResponse,
    ScoreRequest,
    ScoreResponse,
    ServiceWarning,
)
from churnclv.serving.score_table import ScoreTable, ScoreTableBuilder
from churnclv.serving.scoring import drop_duplicate_lines, load_checked_model
from churnclv.serving.served_targeting import (
    checked_loader,
    decide_id_answers,
    load_served_targeting,
    score_and_decide_histories,
    snapshot_problem,
)
from churnclv.serving.server import SERVICE_NAME
from churnclv.serving.settings import ServiceSettings
from churnclv.serving.staleness import as_of_warnings, trained_as_of
from churnclv.serving.state import ServingState

log = logging.getLogger(__name__)
T = TypeVar("T")

__all__ = ["ChurnCLVService"]

GC_THRESHOLDS = (10_000, 10, 1_000)
BATCH_CUSTOMERS = 256  # customers per shared scoring call (at least CHURNCLV_MAX_CUSTOMERS)
_TARGET_PREFIX = {"churn": "churn_", "purchases": "purchases_", "spend": "spend_"}
# what a request hands to a shared scoring call (churnclv.serving.batcher)
_HistoryRequest = tuple[LoadedModel, Sequence[CustomerHistory], dt.date]
_IdRequest = tuple[LoadedModel, FeatureSnapshot, Sequence[str]]
_Answers = list[CustomerScore | CustomerError]  # one request's

# How well requests share scoring calls, on /metrics (per endpoint): requests per call, and call time.
SCORING_BATCH = bentoml.metrics.Histogram(
    name="churnclv_scoring_batch_requests",
    documentation="Requests served by one scoring call (0: a call precomputing score_by_id's answers)",
    labelnames=["endpoint"],
    buckets=(1, 2, 4, 8, 16, 32, 64, 128, float("inf")),
)
SCORING_SECONDS = bentoml.metrics.Histogram(
    name="churnclv_scoring_call_seconds",
    documentation="Duration of one scoring call (queue wait excluded)",
    labelnames=["endpoint"],
    buckets=(0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, float("inf")),
)


class NoInput(bentoml.IODescriptor):
    """The body of ``/model_info`` and ``/reload``: none, or ``{}``. A key is refused (400 naming it): these
    routes take no argument, and ``{"version": "3"}`` answered as if it chose one."""

    model_config = ConfigDict(extra="forbid")


def _observer(endpoint: str) -> Callable[[int, float], None]:
    def observe(requests: int, seconds: float) -> None:
        SCORING_BATCH.labels(endpoint=endpoint).observe(requests)
        SCORING_SECONDS.labels(endpoint=endpoint).observe(seconds)

    return observe


@bentoml.service(
    name=SERVICE_NAME,
    service_class=DocumentedService,  # metric labels from a fixed set, and the OpenAPI document
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
        # read once, kept for the worker's life; every model loaded (start, reload) is checked against it
        self.targeting = load_served_targeting(self.settings.targeting)
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
            loader=checked_loader(load_checked_model, self.targeting),
        ).result()
        self.state.start(self.settings.reload_interval_s)
        self._arms = self._load_arms()
        # concurrent requests share scoring calls (see churnclv.serving.batcher)
        limit = max(self.settings.max_customers, BATCH_CUSTOMERS)
        self._histories: RequestBatcher[_HistoryRequest, list[CustomerScore | CustomerError]] = RequestBatcher(
            self._work,
            lambda _key, jobs: self._with_arms(score_and_decide_histories(self.targeting, jobs)),
            max_items=limit,
            observe=_observer("score"),
        )
        self._ids: RequestBatcher[_IdRequest, list[CustomerScore | CustomerError]] = RequestBatcher(
            self._work,
            lambda _key, jobs: self._with_arms(self._decided(decide_id_answers, jobs, score_ids_together)),
            max_items=limit,
            observe=_observer("score_by_id"),
        )
        # score_by_id's answers, precomputed per (model, snapshot) (churnclv.serving.score_table)
        self._table: ScoreTable | None = None
        self._table_pair: tuple[LoadedModel, FeatureSnapshot] | None = None  # built or being built
        self._table_task: asyncio.Task[None] | None = None
        self._closing = threading.Event()
        if self.settings.gc_freeze:
            # Full garbage collections walked the ~0.5M objects of the loaded libraries and stalled
            # every request in flight for ~330 ms (p99 at concurrency 16: 337 ms; frozen: 70 ms).
            # What exists now lives as long as the worker: take it out of the collector's sight.
            gc.freeze()
            gc.set_threshold(*GC_THRESHOLDS)  # see churnclv.serving.settings, CHURNCLV_GC_FREEZE

    @bentoml.on_startup
    async def precompute(self) -> None:
        """Start scoring the snapshot for score_by_id in the background (the service is ready meanwhile)."""
        model, snapshot = self.state.model, self.state.snapshot
        if snapshot is not None:
            self._table_for(model, snapshot)

    @bentoml.on_shutdown
    def shutdown(self) -> None:
        """Stop the periodic refresh and join the worker's threads (its DuckDB connection closes here)."""
        self._closing.set()
        self.state.stop()
        self._work.shutdown(wait=True)
        self._admin.shutdown(wait=True)

    def _load_arms(self) -> CampaignArms:
        snapshot = self.state.snapshot
        partition = None if snapshot is None else snapshot.partition
        return CampaignArms.load(self.settings.snapshot, partition, self.settings.campaign, self.settings.holdout_share)

    def _decided(
        self, decide: Callable[[Any, Any, list[_Answers]], None], jobs: Any, score: Callable[[Any], list[_Answers]]
    ) -> list[_Answers]:
        """``score(jobs)``, with the targeting's decision on every score (before the arms: a control's contact
        is cleared by them)."""
        answers = score(jobs)
        if self.targeting is not None:
            decide(self.targeting, jobs, answers)
        return answers

    def _with_arms(self, answers: list[_Answers]) -> list[_Answers]:
        """The campaign arm on every score (on the scoring thread; read again when the snapshot moved)."""
        snapshot = self.state.snapshot
        if (None if snapshot is None else snapshot.partition) != self._arms.partition:
            self._arms = self._load_arms()
        for part in answers:
            self._arms.apply(part)
        return answers

    def _table_for(self, model: LoadedModel, snapshot: FeatureSnapshot) -> ScoreTable | None:
        """The precomputed answers of ``model`` on ``snapshot`` when complete (and their campaign arms read);
        else None, and their build is started unless it runs, is done or is turned off (call on the loop)."""
        table = self._table
        if table is not None and table.serves(model, snapshot):
            # arms of another partition are read again on the scoring thread, by the batcher's path
            return table if self._arms.partition == snapshot.partition else None
        pair = self._table_pair
        if self.settings.precompute_scores and (pair is None or pair[0] is not model or pair[1] is not snapshot):
            self._table, self._table_pair = None, (model, snapshot)  # the old pair's table is never served again
            self._table_task = asyncio.get_running_loop().create_task(self._build_table(model, snapshot))
        return None

    async def _build_table(self, model: LoadedModel, snapshot: FeatureSnapshot) -> None:
        """Score the snapshot chunk by chunk on the scoring thread (requests queued meanwhile wait one
        chunk); publish the table if that pair is still the one served."""
        builder = ScoreTableBuilder(model, snapshot, targeting=self.targeting)
        loop = asyncio.get_running_loop()
        observe = _observer("score_by_id")
        t0 = time.perf_counter()
        try:
            done = False
            while not done:
                if self._closing.is_set() or self.state.model is not model or self.state.snapshot is not snapshot:
                    return  # shutting down, or superseded: the next request starts the new pair's build
                t_call = time.perf_counter()
                done = await loop.run_in_executor(self._work, builder.step)
                observe(0, time.perf_counter() - t_call)
            table = builder.table()
        except Exception as exc:  # noqa: BLE001 - score_by_id keeps scoring per request; no data in the log
            if not self._closing.is_set():
                log.error(
                    "score_by_id: precomputing the answers of snapshot %s failed (%s): each request is scored instead",
                    snapshot.partition,
                    type(exc).__name__,
                )
            return
        if self._table_pair is not None and self._table_pair[0] is model and self._table_pair[1] is snapshot:
            self._table = table
            log.info(
                "score_by_id: %d answers of snapshot %s precomputed in %.1f s",
                len(snapshot.features),
                snapshot.partition,
                time.perf_counter() - t0,
            )

    async def _on(self, pool: ThreadPoolExecutor, func: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(pool, func, *args)

    def _warnings(self, model: LoadedModel, as_of: dt.date) -> list[ServiceWarning]:
        return as_of_warnings(as_of, trained_as_of(model.metadata), self.settings.as_of_warning_days)

    @bentoml.api(route="/score")
    async def score(self, request: ScoreRequest, /) -> ScoreResponse:
        """Score customers from their history as of a date, with the batch job's feature code.

        One entry per customer, in request order: the scores, or `{"customer_id", "error"}` for a customer
        that cannot be scored (no transaction and no signup_ts, none on or before as_of, a history the
        scorer refuses); the others are still scored. Rows dated after as_of are ignored and counted.
        """
        refused = check_limits(request.customers, self.settings)
        if refused is not None:
            return refused  # type: ignore[return-value]
        model = self.state.model  # one read: a reload cannot switch models mid-request
        customers, duplicates = drop_duplicate_lines(request.customers)
        scores = await self._histories.submit(
            (id(model), request.as_of), (model, customers, request.as_of), len(customers)
        )
        warnings = self._warnings(model, request.as_of)
        if duplicates:
            warnings.append(
                ServiceWarning(
                    code="duplicate_lines_dropped",
                    message=f"{duplicates} transaction line(s) repeat an earlier line of the same customer (same "
                    "order_id, identical values) and were dropped, as the batch's validation rejects them",
                )
            )
        # scoreable all the same, but a misspelt name or value changes the score: say so
        notes = attribute_notes(model, (c.attributes for c in request.customers))
        warnings.extend(ServiceWarning(code=code, message=message) for code, message in notes)
        return ScoreResponse(as_of=request.as_of, model_version=model.version, scores=scores, warnings=warnings)

    @bentoml.api(route="/score_by_id")
    async def score_by_id(self, request: ScoreByIdRequest, /) -> ScoreByIdResponse:
        """Score customers by id from the batch job's latest feature snapshot (its as-of).

        One entry per id, in request order: the scores, or `{"customer_id", "error"}` for an unknown id or a
        snapshot row that cannot be scored. 503 when the service has no usable snapshot.
        """
        ids = request.customer_ids
        refused = check_id_limit(ids, self.settings)
        if refused is not None:
            return refused  # type: ignore[return-value]
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
        why_not = snapshot_problem(self.targeting, snapshot)
        if why_not is not None:
            return problem(503, why_not)  # type: ignore[return-value]
        table = self._table_for(model, snapshot)
        if table is not None:  # a lookup, on the loop: no scoring thread, no queue
            scores = table.answers(ids)
            self._arms.apply(scores)
        else:
            scores = await self._ids.submit((id(model), id(snapshot)), (model, snapshot, ids), len(ids))
        return ScoreByIdResponse(
            as_of=snapshot.as_of,
            snapshot=snapshot.partition,
            model_version=model.version,
            scores=scores,
            warnings=self._warnings(model, snapshot.as_of),
        )

    @bentoml.api(route="/model_info", input_spec=NoInput)
    async def model_info(self) -> ModelInfo:
        """The served model: name, version, alias, run, training as-of, horizon, selected models and their
        backtest metrics, the customer attributes it reads, and the feature snapshot of score_by_id."""
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
            targeting=None if self.targeting is None else self.targeting.id,
            monitoring=latest_monitoring(self.settings.snapshot, model.name, model.version),
        )

    @bentoml.api(route="/reload", input_spec=NoInput)
    async def reload(self) -> ReloadResult:
        """Load the version the model alias points at now, and the latest snapshot, if either changed.

        The new version is loaded and checked completely before it replaces the current one; requests in
        flight finish on the old one. 503 when it cannot be loaded (the current version stays), or when
        the snapshot ``LATEST`` names cannot be loaded (the current snapshot stays). ``status`` is
        ``reloaded`` when the model or the snapshot changed.
        """
        try:
            outcome = await self._on(self._admin, self.state.refresh)
        except ModelLoadError as exc:
            return problem(  # type: ignore[return-value]
                503, f"reload failed, still serving version {self.state.model.version}: {exc}"
            )
        if outcome.snapshot_error is not None:
            # the model part is done (a new version is served); the caller must hear of the snapshot
            served = outcome.snapshot or "no snapshot"
            return problem(  # type: ignore[return-value]
                503,
                f"reload: version {outcome.version} served, but the snapshot LATEST names cannot be loaded, "
                f"still serving {served}: {outcome.snapshot_error}",
            )
        return ReloadResult(
            status="reloaded" if outcome.model_changed or outcome.snapshot_changed else "unchanged",
            previous_version=outcome.previous_version,
            version=outcome.version,
            snapshot=outcome.snapshot,
        )


# mypy ignores a class decorator's return type: @bentoml.service made ChurnCLVService a bentoml.Service
ChurnCLVService.add_asgi_middleware(APIKeyMiddleware)  # type: ignore[attr-defined]
