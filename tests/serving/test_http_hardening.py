"""Regression tests of the service hardening that need the real model, in-process (ASGI).

- a failed reload against a database tracking URI answers and logs no password;
- the ``endpoint`` label of the HTTP metrics stays a fixed set however many paths clients invent;
- a client that aborts its upload is counted as a client error (499), logged at INFO, never a 500;
- a feature snapshot holding NaN or infinite features answers 200, with an error for those customers.

The unit-level checks (middleware, log filters, ``serve`` failing fast) are in
``tests/security/test_http_security.py``.
"""

from __future__ import annotations

import logging
import shutil
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from churnclv.serving.snapshots import features_path

pytestmark = pytest.mark.integration

SECRET_URI = "postgresql://user:S3cret@127.0.0.1:1/mlflowdb?password=Q"  # nothing listens on port 1
SECRETS = ("S3cret", "password=Q")


def _log_text(caplog: pytest.LogCaptureFixture) -> str:
    return "\n".join(f"{r.getMessage()} {r.exc_text or ''}" for r in caplog.records)


@pytest.fixture
def one_connect_attempt(monkeypatch: pytest.MonkeyPatch) -> None:
    """MLflow retries a database it cannot reach 10 times over ~100 s: once is enough here."""
    import mlflow.store.db.utils

    monkeypatch.setattr(mlflow.store.db.utils, "MAX_RETRY_COUNT", 1)


# --------------------------------------------------------------------------- item 1: secrets


class _Signal(logging.Handler):
    """Sets an event when a record at ERROR arrives (the periodic check's failure): no waiting on a clock."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.event = threading.Event()

    def emit(self, record: logging.LogRecord) -> None:
        self.event.set()


def test_failed_reload_answers_and_logs_no_password(
    serving_store: dict, kit: Any, one_connect_attempt: None, caplog: pytest.LogCaptureFixture
) -> None:
    import bentoml

    with kit.running_service(kit.service_env(serving_store, None)) as c:
        state = bentoml.get_current_service().state
        # the registry moves to a database that is down (as if MLFLOW_TRACKING_URI had been set so)
        state.tracking_uri = SECRET_URI
        signal = _Signal()
        state_log = logging.getLogger("churnclv.serving.state")
        state_log.addHandler(signal)
        try:
            with caplog.at_level(logging.DEBUG):
                r = c.post("/reload", headers=kit.HEADERS)
                state.start(0.01)  # the periodic check fails the same way, and logs it
                assert signal.event.wait(60), "the periodic check never reported"  # bound: a safety net
                state.stop()
        finally:
            state_log.removeHandler(signal)
        assert r.status_code == 503, r.text
        error = r.json()["error"]
        assert "still serving version 1" in error and "postgresql://user:***@127.0.0.1:1/mlflowdb" in error
        assert c.post("/model_info", headers=kit.HEADERS).json()["version"] == "1"
    assert any("periodic model check failed" in rec.getMessage() for rec in caplog.records)
    text = r.text + _log_text(caplog)
    assert not [s for s in SECRETS if s in text], text


# --------------------------------------------------------------------------- item 2: metric labels


def _endpoint_labels() -> set[str]:
    """The distinct ``endpoint`` label values of the service's HTTP metrics in this process.

    In-process the metrics live in prometheus_client's registry (a real server writes the same
    series to its multiprocess folder, which ``/metrics`` reads; test_http_server checks that one).
    """
    import prometheus_client

    labels: set[str] = set()
    for family in prometheus_client.REGISTRY.collect():
        if family.name.startswith("churnclv_request"):
            labels |= {s.labels["endpoint"] for s in family.samples if "endpoint" in s.labels}
    return labels


def test_metric_labels_stay_a_fixed_set(client: Any, kit: Any) -> None:
    client.get("/livez")
    client.post("/model_info", headers=kit.HEADERS)
    client.post("/nope", headers=kit.HEADERS)
    before = _endpoint_labels()
    assert "/model_info" in before and "other" in before
    for i in range(300):  # bounded: 300 requests, with and without the key, GET and POST
        headers = kit.HEADERS if i % 2 else {}
        path = f"/probe-{i}/{'x' * (i % 7)}?q={i}"
        r = client.post(path, json={}, headers=headers) if i % 3 else client.get(path, headers=headers)
        assert r.status_code in (401, 404, 405), (path, r.status_code)
    client.get("/static_content/no-such-file-1.css")
    client.get("/static_content/no-such-file-2.css")
    after = _endpoint_labels()
    assert after - before <= {"/static_content/"}, sorted(after - before)[:10]
    assert not any(label.startswith("/probe") for label in after)


# --------------------------------------------------------------------------- item 5: false 5xx


def _count(endpoint: str, code: str) -> float:
    import prometheus_client

    total = 0.0
    for family in prometheus_client.REGISTRY.collect():
        if family.name == "churnclv_request":
            total += sum(
                s.value
                for s in family.samples
                if s.name == "churnclv_request_total"
                and s.labels.get("endpoint") == endpoint
                and s.labels.get("http_response_code") == code
            )
    return total


def test_aborted_upload_is_a_client_error_logged_at_info(
    client: Any, kit: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """A client that sends half its body and goes away: 499 in the metrics, one INFO line."""
    messages = [
        {"type": "http.request", "body": b'{"as_of": "2025-10-02", "custo', "more_body": True},
        {"type": "http.disconnect"},
    ]
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return messages.pop(0)

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/score",
        "raw_path": b"/score",
        "root_path": "",
        "query_string": b"",
        "server": ("testserver", 80),
        "client": ("127.0.0.1", 5000),
        "headers": [
            (b"host", b"testserver"),
            (b"content-type", b"application/json"),
            (b"content-length", b"5000"),
            (b"x-api-key", kit.API_KEY.encode()),
        ],
    }
    errors_before, aborted_before = _count("/score", "500"), _count("/score", "499")
    with caplog.at_level(logging.INFO):
        client.portal.call(client.app, scope, receive, send)
    assert sent and sent[0]["status"] == 499
    assert _count("/score", "499") == aborted_before + 1 and _count("/score", "500") == errors_before
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING], _log_text(caplog)
    assert any("closed the connection" in r.getMessage() for r in caplog.records)


@pytest.fixture
def broken_snapshot(batch_out: Path, tmp_path: Path, kit: Any) -> dict[str, Any]:
    """A copy of the batch output whose features hold NaN and infinite values for a few customers."""
    out = tmp_path / "batch"
    shutil.copytree(batch_out, out, ignore=shutil.ignore_patterns("part-*", "tier_report"))
    path = features_path(out, kit.AS_OF)
    frame = pd.read_parquet(path)
    known = frame[frame["frequency"].notna() & (frame["frequency"] > 0)]["customer_id"].astype(str).tolist()
    bad = {
        known[0]: ("frequency", np.inf),
        known[1]: ("monetary_value", -np.inf),
        known[2]: ("T", np.nan),
        known[3]: ("recency", np.nan),
        known[4]: ("tenure_days", np.inf),
    }
    for cid, (col, value) in bad.items():
        frame[col] = frame[col].astype("float64")  # tenure_days is an integer column
        frame.loc[frame["customer_id"].astype(str) == cid, col] = value
    frame.to_parquet(path, index=False)
    return {"out": out, "bad": bad, "good": known[5:8]}


def test_snapshot_with_non_finite_features_scores_the_rest(
    serving_store: dict, kit: Any, broken_snapshot: dict[str, Any], batch_out: Path, client: Any
) -> None:
    bad, good = broken_snapshot["bad"], broken_snapshot["good"]
    ids = [*good[:1], *bad, *good[1:]]
    with kit.running_service(kit.service_env(serving_store, broken_snapshot["out"])) as c:
        r = c.post("/score_by_id", json={"customer_ids": ids}, headers=kit.HEADERS)
    assert r.status_code == 200, r.text
    answers = {s["customer_id"]: s for s in r.json()["scores"]}
    assert [s["customer_id"] for s in r.json()["scores"]] == ids
    for cid, (col, value) in bad.items():
        assert set(answers[cid]) == {"customer_id", "error"}, answers[cid]
        error = answers[cid]["error"]
        assert "rerun the batch job" in error
        if np.isinf(value):  # found when the snapshot loads, named by column
            assert "infinite values" in error and repr(col) in error, error
        else:  # NaN where the scorer needs a number (T NaN while frequency is known): refused by its checks
            assert "cannot be scored" in error, error
    # the others get exactly what they get from the intact snapshot
    reference = client.post("/score_by_id", json={"customer_ids": good}, headers=kit.HEADERS).json()["scores"]
    assert [answers[cid] for cid in good] == reference
