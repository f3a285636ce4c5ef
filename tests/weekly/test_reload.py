"""POST /reload to the scoring service: the API key sent, the answer summarised, failures as warnings."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import ClassVar

import pytest

from churnclv.weekly.reload import reload_service

KEY = "k" * 24


class _Service(BaseHTTPRequestHandler):
    seen: ClassVar[list[dict[str, str]]] = []

    def do_POST(self) -> None:
        type(self).seen.append({"path": self.path, "key": self.headers.get("x-api-key", "")})
        if self.headers.get("x-api-key") != KEY:
            body, code = {"title": "Unauthorized", "detail": "missing or wrong API key"}, 401
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
    assert outcome.message == f"service {service}/: version 3 -> 4, snapshot dt=2025-06-01"
    assert _Service.seen == [{"path": "/reload", "key": KEY}]


def test_a_refused_key_is_a_warning_naming_the_variable_not_the_key(service: str) -> None:
    outcome = reload_service(service, "w" * 24, "MY_KEY", 10)
    assert not outcome.ok and outcome.message.startswith("warning:")
    assert "401" in outcome.message and "check MY_KEY" in outcome.message and "w" * 24 not in outcome.message


def test_no_key_and_no_service_are_warnings() -> None:
    assert reload_service("http://127.0.0.1:9", None, "MY_KEY", 1).message.endswith("MY_KEY is not set (the API key)")
    down = reload_service("http://user:secret@127.0.0.1:9", KEY, "MY_KEY", 1)  # port 9: nothing listens
    assert not down.ok and "not reachable" in down.message and "secret" not in down.message
