"""The ASGI middleware in front of BentoML: the API key, and the body's framing, size and type.

An unauthenticated request costs no parsing and learns nothing about the schema; a body is never
read past the limit, however it is framed; a client that aborts its upload is answered 499.
"""

from __future__ import annotations

import hmac
import json
import logging
import re
from collections.abc import Mapping
from typing import Any

from starlette.responses import JSONResponse

from churnclv.serving.problems import CLIENT_CLOSED, bounded_detail, problem
from churnclv.serving.settings import ServiceSettings

log = logging.getLogger(__name__)

__all__ = ["API_KEY_HEADER", "DOCS_PATHS", "DOCS_PREFIXES", "OPEN_PATHS", "APIKeyMiddleware"]

API_KEY_HEADER = "x-api-key"
# BentoML's own routes open to all: health, readiness, metrics and the OpenAPI document
OPEN_PATHS = frozenset({"/livez", "/healthz", "/readyz", "/metrics", "/docs.json", "/schema.json"})
# BentoML's docs page and its files: behind the key like the API (the page loads Google Tag Manager
# from the internet; /docs.json, open, holds the same document)
DOCS_PATHS = frozenset({"/"})
DOCS_PREFIXES = ("/static_content/", "/assets/")


def _bounded_errors(send: Any, path: str, method: str = "POST") -> Any:
    """``send``, with every 4xx JSON answer's ``detail`` bounded (:func:`bounded_detail`): at most 50
    field errors, long texts cut, no ``input`` (what the client sent) echoed back; and BentoML's plain-text
    405 (``GET /score``) as the error body every other error answer has, its ``Allow`` header kept."""
    start: dict[str, Any] | None = None
    parts: list[bytes] = []

    async def wrapped(message: dict[str, Any]) -> None:
        nonlocal start
        if message["type"] == "http.response.start":
            ctype = dict(message.get("headers", [])).get(b"content-type", b"")
            if 400 <= message["status"] < 500 and (ctype.startswith(b"application/json") or message["status"] == 405):
                start = message  # held until the body is complete
                return
        elif message["type"] == "http.response.body" and start is not None:
            parts.append(message.get("body", b""))
            if message.get("more_body", False):
                return
            headers = [(k, v) for k, v in start.get("headers", []) if k.lower() != b"content-length"]
            ctype = dict(headers).get(b"content-type", b"")
            if start["status"] == 405 and not ctype.startswith(b"application/json"):
                allow = {k.lower(): v for k, v in headers}.get(b"allow", b"POST").decode(errors="replace")
                answer = problem(405, f"method {method[:16]} is not allowed on {path[:64]}: send {allow}")
                body = bytes(answer.body)
                headers = [(k, v) for k, v in answer.raw_headers if k.lower() != b"content-length"]
                headers.append((b"allow", allow.encode()))
            else:
                body = _bound_body(b"".join(parts), path)
            await send({**start, "headers": [*headers, (b"content-length", str(len(body)).encode())]})
            await send({"type": "http.response.body", "body": body, "more_body": False})
            return
        await send(message)

    return wrapped


# BentoML's summary of a pydantic error names its internal class ("1 validation error for
# ScoreRequestIODescriptor"); the client is told the route and where the field errors are instead
_BENTOML_SUMMARY = re.compile(r"(\d+) validation errors? for \w+")


def _bound_body(body: bytes, path: str) -> bytes:
    try:
        doc = json.loads(body)
    except ValueError:
        return body
    if not isinstance(doc, dict) or not isinstance(doc.get("detail"), list):
        return body
    summary = _BENTOML_SUMMARY.fullmatch(str(doc.get("error", "")))
    if summary and any(isinstance(d, dict) and d.get("type") == "json_invalid" for d in doc["detail"]):
        doc["error"] = f"the body of the request to {path[:64]} is not valid JSON: detail says where"
    elif summary:
        n = int(summary.group(1))
        doc["error"] = (
            f"the request to {path[:64]} has {n} invalid field{'s' if n != 1 else ''}: each is in detail "
            "(loc: where, msg: the rule); the schema is at /docs.json"
        )
    doc["detail"] = bounded_detail(doc["detail"])
    return json.dumps(doc, ensure_ascii=False, separators=(",", ":")).encode()


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
        """Whether ``path`` is one of BentoML's open routes (health, metrics, the OpenAPI document): no key needed."""
        return path in OPEN_PATHS

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        """Check the request and hand it on with its whole body, or answer it here."""
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
            message: dict[str, Any] = await receive()  # after the body: the disconnect, when it comes
            return message

        await self.app(scope, replay, _bounded_errors(send, scope["path"], scope["method"]))

    def _check(self, scope: dict[str, Any], headers: Mapping[bytes, list[bytes]]) -> JSONResponse | None:
        path = scope["path"]
        if len(path) > 1 and path.endswith("/"):
            # Starlette would redirect /score/ to /score at the host the request names (307 to
            # http://evil.example/score for a forged Host header): answered here instead
            return problem(404, f"no route {path[:64]!r}: drop the trailing slash, e.g. /score")
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
