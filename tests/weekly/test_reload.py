"""POST /reload to the scoring service: the API key sent, the answer summarised, failures as warnings."""

from __future__ import annotations

import base64
import dataclasses
import json
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import ClassVar

import pytest

from churnclv.weekly.reload import reload_service
from churnclv.weekly.request import WeeklyRequest
from churnclv.weekly.runner import STEPS, run_weekly

from .conftest import FakeCommands, FakeRegistry

KEY = "k" * 24


class _Service(BaseHTTPRequestHandler):
    seen: ClassVar[list[dict[str, str]]] = []

    def do_POST(self) -> None:
        seen = {"path": self.path, "key": self.headers.get("x-api-key", "")}
        if "authorization" in self.headers:
            seen["authorization"] = self.headers["authorization"]
        type(self).seen.append(seen)
        if self.headers.get("x-api-key") != KEY:
            body, code = {"title": "Unauthorized", "detail": "missing or wrong API key"}, 401
        elif "broken" in self.path:  # the service's own error answers: {"error", "detail": [...]}
            body, code = (
                {"error": "reload: version 4 served, but the snapshot LATEST names cannot be loaded", "detail": []},
                503,
            )
        else:
            body, code = (
                {"status": "reloaded", "previous_version": "3", "version": "4", "snapshot": "dt=2025-06-01"},
                200,
            )
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def service() -> Iterator[str]:
    server = HTTPServer(("127.0.0.1", 0), _Service)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    _Service.seen = []
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_reload_sends_the_key_and_reports_the_versions(service: str) -> None:
    outcome = reload_service(service + "/", KEY, "CHURNCLV_API_KEY", 10)
    assert outcome.ok
    assert outcome.message == f"service {service}/: reloaded, version 3 -> 4, snapshot dt=2025-06-01"
    assert _Service.seen == [{"path": "/reload", "key": KEY}]


def test_a_service_serving_another_snapshot_than_the_published_one_is_a_warning(service: str) -> None:
    outcome = reload_service(service, KEY, "CHURNCLV_API_KEY", 10, published="dt=2025-06-08")
    assert not outcome.ok
    assert outcome.message.startswith(
        f"warning: service {service} serves snapshot dt=2025-06-01, not the published dt=2025-06-08"
    )
    assert reload_service(service, KEY, "CHURNCLV_API_KEY", 10, published="dt=2025-06-01").ok


def test_the_service_error_is_quoted_and_a_query_string_stays_after_the_path(service: str) -> None:
    outcome = reload_service(service + "/broken/?tenant=a", KEY, "CHURNCLV_API_KEY", 10)
    assert (
        not outcome.ok
        and "503 reload: version 4 served, but the snapshot LATEST names cannot be loaded" in outcome.message
    )
    assert _Service.seen[-1]["path"] == "/broken/reload?tenant=a"


def test_a_refused_key_is_a_warning_naming_the_variable_not_the_key(service: str) -> None:
    outcome = reload_service(service, "w" * 24, "MY_KEY", 10)
    assert not outcome.ok and outcome.message.startswith("warning:")
    assert "401" in outcome.message and "check MY_KEY" in outcome.message and "w" * 24 not in outcome.message


def test_no_key_and_no_service_are_warnings() -> None:
    assert reload_service("http://127.0.0.1:9", None, "MY_KEY", 1).message.endswith("MY_KEY is not set (the API key)")
    down = reload_service("http://user:secret@127.0.0.1:9", KEY, "MY_KEY", 1)  # port 9: nothing listens
    assert not down.ok and "not reachable" in down.message and "secret" not in down.message


def test_credentials_in_the_url_go_as_basic_auth_and_are_never_shown(service: str) -> None:
    """``http://user:pass@host`` (a proxy in front of the service): urllib would take ``user:pass@``
    for part of the host name and fail with "Name or service not known"."""
    url = service.replace("http://", "http://admin:HUNTER2%40pw@")
    outcome = reload_service(url, KEY, "CHURNCLV_API_KEY", 10)
    assert outcome.ok, outcome.message
    assert "HUNTER2" not in outcome.message and "admin:***@" in outcome.message
    assert _Service.seen == [
        {"path": "/reload", "key": KEY, "authorization": "Basic " + base64.b64encode(b"admin:HUNTER2@pw").decode()}
    ]


def test_the_weekly_job_never_prints_the_password_and_retries_a_failed_reload(
    service: str, request_for: Callable[..., WeeklyRequest]
) -> None:
    url = service.replace("http://", "http://admin:HUNTER2pw@")
    commands = FakeCommands(FakeRegistry())
    lines: list[str] = []
    no_key = request_for(service_url=url)  # the API key's variable is not set: a warning, not recorded
    first = run_weekly(no_key, resolve=commands.resolve, registry=commands.registry, echo=lines.append)
    assert "reload" not in first.journal.steps and not _Service.seen
    assert any(line.startswith("== reload: POST http://admin:***@127.0.0.1") for line in lines)

    with_key = dataclasses.replace(no_key, api_key=KEY)
    again = run_weekly(with_key, resolve=commands.resolve, registry=commands.registry, echo=lines.append)
    assert again.journal.steps["reload"]["ok"] and [s["path"] for s in _Service.seen] == ["/reload"]
    assert [line.ran for line in again.lines] == [name == "reload" for name, _ in zip(STEPS, again.lines, strict=True)]
    printed = "\n".join(lines) + json.dumps(again.journal.steps) + "\n".join(x.outcome for x in again.lines)
    assert "HUNTER2" not in printed
