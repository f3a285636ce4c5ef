"""Regression tests of the HTTP service hardening (issue "Hardening"), without a running server.

1. no password or query string of a URL in an error, an HTTP answer, a log line or ``serve``'s output;
2. the ``endpoint`` label of the HTTP metrics comes from a fixed set of paths;
3. a body is never read past the limit, whatever its framing (Content-Length with Transfer-Encoding
   refused, bodies counted as they arrive);
4. ``churnclv serve`` exits 1 with one line, before any server starts, on a model that cannot load;
5. an aborted upload is a client error (499, INFO), each server has its own Prometheus folder;
6. request content stays out of the error log.

The same behaviour against the real model and BentoML app: ``tests/serving/test_http_hardening.py``
and ``tests/serving/test_http_server.py``.
"""

from __future__ import annotations

import asyncio
import logging
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import pytest
from click.testing import CliRunner
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

with warnings.catch_warnings():
    # starlette deprecates its httpx-based client in favour of httpx2, which is not installed
    warnings.simplefilter("ignore", DeprecationWarning)
    from starlette.testclient import TestClient

from churnclv.cli import cli
from churnclv.serving import server as server_module
from churnclv.serving.auth import APIKeyMiddleware
from churnclv.serving.log_redaction import RedactURLs, RedactValidationInput, install_log_redaction
from churnclv.serving.metric_labels import OTHER_PATH, MetricPathLabels, RestorePath, bound_metric_labels
from churnclv.serving.model import ModelLoadError, bound_mlflow_http, load_model, resolve_version
from churnclv.serving.problems import CLIENT_CLOSED, problem
from churnclv.serving.server import METRICS_DIR_VAR, ServeError, server_command, server_env
from churnclv.serving.settings import ServiceSettings

KEY = "security-key-0123456789abcdef"
SECRET_URI = "postgresql://user:S3cret@127.0.0.1:1/mlflowdb?password=Q"  # nothing listens on port 1
SHOWN_URI = "postgresql://user:***@127.0.0.1:1/mlflowdb"
SECRETS = ("S3cret", "password=Q")


def _leaks(text: str) -> list[str]:
    return [s for s in SECRETS if s in text]


def _log_text(caplog: pytest.LogCaptureFixture) -> str:
    return "\n".join(f"{r.getMessage()} {r.exc_text or ''}" for r in caplog.records)


@pytest.fixture
def one_connect_attempt(monkeypatch: pytest.MonkeyPatch) -> None:
    """MLflow retries a database it cannot reach 10 times over ~100 s: once is enough here."""
    import mlflow.store.db.utils

    monkeypatch.setattr(mlflow.store.db.utils, "MAX_RETRY_COUNT", 1)


@pytest.fixture
def cli_logging() -> Iterator[None]:
    """The CLI configures the root logger (its own handler): give pytest's back afterwards."""
    root, ours = logging.getLogger(), logging.getLogger("churnclv")
    handlers, level, our_level = root.handlers[:], root.level, ours.level
    try:
        yield
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)
        ours.setLevel(our_level)


@pytest.fixture
def no_server(monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    """``serve`` must stop before the server: starting one fails the test instead of blocking it."""
    started: list[list[str]] = []

    def refuse(command: list[str], env: dict[str, str]) -> int:
        started.append(command)
        raise AssertionError("the BentoML server was started")

    monkeypatch.setattr(server_module, "_run_server", refuse)
    return started


@pytest.fixture
def serve_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("CHURNCLV_MODEL_URI", "MLFLOW_TRACKING_URI", "CHURNCLV_SNAPSHOT", "CHURNCLV_ALLOW_NO_AUTH"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("CHURNCLV_API_KEY", KEY)


# --------------------------------------------------------------------------- 1. secrets


def test_model_load_errors_are_redacted_whoever_builds_them() -> None:
    err = ModelLoadError(f"registry at {SECRET_URI} failed ('http://a:b@c/d?token=T')")
    assert not _leaks(str(err)) and "token=T" not in str(err) and SHOWN_URI in str(err)


def test_unreachable_registry_is_one_redacted_load_error(
    one_connect_attempt: None, caplog: pytest.LogCaptureFixture
) -> None:
    install_log_redaction()
    with caplog.at_level(logging.DEBUG):
        for call in (
            lambda: resolve_version("models:/churnclv@champion", SECRET_URI),
            lambda: load_model("models:/churnclv/1", SECRET_URI),
        ):
            with pytest.raises(ModelLoadError) as info:
                call()
            message = str(info.value)
            assert SHOWN_URI in message and "\n" not in message and "MLFLOW_TRACKING_URI" in message
            assert not _leaks(message), message
    assert not _leaks(_log_text(caplog)), _log_text(caplog)


def test_an_http_registry_that_is_down_is_told_as_down_not_as_a_missing_alias(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """An HTTP probe's tracking server was down: serve and /reload said 'no version has the alias',
    and MLflow's retries (7, 120 s each) held serve 252 s and /reload past its 30 s timeout."""
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")  # nothing listens on port 1: no wait
    install_log_redaction()
    with pytest.raises(ModelLoadError) as info:
        resolve_version("models:/churnclv@champion", "http://user:S3cret@127.0.0.1:1/?token=S3cret")
    message = str(info.value)
    assert "cannot read the registry at" in message and "has the alias" not in message
    assert "server or database is up" in message and not _leaks(message), message
    env: dict[str, str] = {}
    bound_mlflow_http(env)  # serve and the server's processes, unless the environment says otherwise
    assert env == {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "1", "MLFLOW_HTTP_REQUEST_TIMEOUT": "10"}
    mine = {"MLFLOW_HTTP_REQUEST_TIMEOUT": "60"}
    bound_mlflow_http(mine)
    assert mine["MLFLOW_HTTP_REQUEST_TIMEOUT"] == "60"


def test_a_sqlite_store_that_does_not_exist_is_not_created(tmp_path: Path) -> None:
    """score-batch with a mistyped --tracking-uri failed, but left an empty mlflow.db behind."""
    uri = f"sqlite:///{tmp_path / 'typo' / 'mlflow.db'}"
    for call in (
        lambda: resolve_version("models:/churnclv@champion", uri),
        lambda: load_model("models:/churnclv/1", uri),
    ):
        with pytest.raises(ModelLoadError, match="no MLflow store at"):
            call()
    assert not (tmp_path / "typo").exists()
    (tmp_path / "real.db").touch()
    with pytest.raises(ModelLoadError) as info:  # a query after an existing file is no typo
        resolve_version("models:/churnclv@champion", f"sqlite:///{tmp_path / 'real.db'}?timeout=30")
    assert "no MLflow store" not in str(info.value)


def test_serve_prints_no_password(
    serve_env: None, one_connect_attempt: None, cli_logging: None, no_server: list[list[str]]
) -> None:
    result = CliRunner().invoke(cli, ["serve", "--port", "1", "--tracking-uri", SECRET_URI])
    assert result.exit_code == 1, result.output
    assert SHOWN_URI in result.output and not _leaks(result.output), result.output
    assert no_server == []


def test_url_filter_redacts_messages_arguments_and_tracebacks() -> None:
    try:
        raise ConnectionError(f"cannot reach {SECRET_URI}")
    except ConnectionError as exc:
        record = logging.LogRecord(
            "mlflow",
            logging.ERROR,
            __file__,
            1,
            "registry %s: %s",
            (SECRET_URI, "down"),
            (type(exc), exc, exc.__traceback__),
        )
    assert RedactURLs().filter(record)
    text = logging.Formatter().format(record)
    assert not _leaks(text) and SHOWN_URI in text and "ConnectionError" in text


def test_every_error_answer_is_redacted() -> None:
    body = problem(503, f"reload failed: {SECRET_URI}").body.decode()
    assert not _leaks(body) and SHOWN_URI in body
    assert not _leaks(str(ServeError(f"cannot load from {SECRET_URI}")))


# --------------------------------------------------------------------------- 2. metric labels


class _Recorder:
    """Stands where BentoML's metrics middleware stands: records the path it is shown."""

    seen: ClassVar[list[str]] = []

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            _Recorder.seen.append(scope["path"])
        await self.app(scope, receive, send)


def test_metric_labels_come_from_a_fixed_set_and_routing_sees_the_real_path() -> None:
    async def echo(request: Request) -> PlainTextResponse:
        return PlainTextResponse(request.url.path)

    app = Starlette(
        routes=[Route("/score", echo, methods=["POST"]), Route("/{rest:path}", echo)],
        middleware=[Middleware(MetricPathLabels, routes=["/score"]), Middleware(_Recorder), Middleware(RestorePath)],
    )
    _Recorder.seen = []
    c = TestClient(app)
    assert c.post("/score").text == "/score"
    assert c.get("/livez").text == "/livez"
    for i in range(300):  # bounded
        assert c.get(f"/probe/{i}?x={i}").text == f"/probe/{i}"  # the app (and the access log) see the path
    assert c.get("/static_content/a.css").text == "/static_content/a.css"
    assert set(_Recorder.seen) == {"/score", "/livez", OTHER_PATH, "/static_content/"}


def test_label_middleware_sits_around_bentomls_metrics_middleware() -> None:
    from bentoml._internal.server.http.instruments import RunnerTrafficMetricsMiddleware

    app = Starlette(middleware=[Middleware(RunnerTrafficMetricsMiddleware), Middleware(APIKeyMiddleware)])
    bound_metric_labels(app, ["/score"])
    assert [m.cls for m in app.user_middleware] == [
        MetricPathLabels,
        RunnerTrafficMetricsMiddleware,
        RestorePath,
        APIKeyMiddleware,
    ]
    plain = Starlette(middleware=[Middleware(APIKeyMiddleware)])  # metrics off: nothing to bound
    bound_metric_labels(plain, ["/score"])
    assert [m.cls for m in plain.user_middleware] == [APIKeyMiddleware]


# --------------------------------------------------------------------------- 3. and 5. bodies


class _App:
    """The wrapped app: answers with the size of the body it got; counts its calls."""

    def __init__(self) -> None:
        self.calls = 0

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        self.calls += 1
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        await PlainTextResponse(str(len(body)))(scope, receive, send)


def _call(
    headers: dict[str, str] | list[tuple[str, str]],
    messages: list[dict[str, Any]],
    max_body: int = 2048,
    path: str = "/score",
) -> tuple[int, bytes, _App, int]:
    """One request through :class:`APIKeyMiddleware`: (status, body, the app, receive calls)."""
    app = _App()
    middleware = APIKeyMiddleware(app, ServiceSettings(api_key=KEY, max_body_bytes=max_body))
    pending = list(messages)
    received = 0
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        nonlocal received
        received += 1
        return pending.pop(0) if pending else {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    raw = [
        ("x-api-key", KEY),
        ("content-type", "application/json"),
        *(headers.items() if isinstance(headers, dict) else headers),
    ]
    scope = {
        "type": "http",
        "method": "POST",
        "path": path,
        "query_string": b"",
        "root_path": "",
        "headers": [(k.lower().encode(), v.encode()) for k, v in raw],
    }
    asyncio.run(middleware(scope, receive, send))
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return sent[0]["status"], body, app, received


def test_a_trailing_slash_is_not_redirected_to_the_host_the_request_names() -> None:
    """Starlette redirected /score/ with a 307 to the Host header's host (http://evil.example/score)."""
    body = [{"type": "http.request", "body": b"{}", "more_body": False}]
    status, answer, app, _ = _call({"host": "evil.example", "content-length": "2"}, body, path="/score/")
    assert status == 404 and b"trailing slash" in answer and b"evil" not in answer
    assert app.calls == 0


def _chunks(n: int, size: int) -> list[dict[str, Any]]:
    return [{"type": "http.request", "body": b" " * size, "more_body": i < n - 1} for i in range(n)]


def test_content_length_with_transfer_encoding_is_refused_unread() -> None:
    status, body, app, received = _call({"content-length": "100", "transfer-encoding": "chunked"}, _chunks(30, 1024))
    assert status == 400 and b"Transfer-Encoding" in body and app.calls == 0 and received == 0


@pytest.mark.parametrize("length", ["+100", " 100", "1_000", "-1", "0x10"])
def test_malformed_content_length_is_refused(length: str) -> None:
    status, _body, app, _received = _call({"content-length": length}, _chunks(1, 10))
    assert status == 400 and app.calls == 0


def test_differing_content_lengths_are_refused() -> None:
    status, _body, app, received = _call([("content-length", "2"), ("content-length", "2000")], _chunks(1, 2000))
    assert status == 400 and app.calls == 0 and received == 0


def test_a_body_is_counted_and_cut_at_the_limit_whatever_its_length_says() -> None:
    # the length says 100, the messages carry 30 kB (framing the length does not describe): the
    # reading stops at the first chunk past the limit of 2048 bytes
    status, body, app, received = _call({"content-length": "100"}, _chunks(30, 1024))
    assert status == 413 and b"CHURNCLV_MAX_BODY_BYTES" in body and app.calls == 0 and received == 3
    status, _body, app, received = _call({}, _chunks(30, 1024))  # no length header at all
    assert status == 413 and app.calls == 0 and received == 3


def test_a_body_within_the_limit_reaches_the_app_whole() -> None:
    status, body, app, _received = _call({"content-length": "2000"}, _chunks(4, 500))
    assert status == 200 and body == b"2000" and app.calls == 1


def test_a_chunked_body_without_length_is_refused_unread() -> None:
    # kept from before: a chunked body is answered 411 and never read (README, "Errors")
    status, _body, app, received = _call({"transfer-encoding": "chunked"}, _chunks(30, 1024))
    assert status == 411 and app.calls == 0 and received == 0


def test_an_aborted_upload_is_a_client_error_logged_at_info(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.DEBUG):
        status, _body, app, _received = _call(
            {"content-length": "1000"},
            [{"type": "http.request", "body": b"x" * 100, "more_body": True}, {"type": "http.disconnect"}],
        )
    assert status == CLIENT_CLOSED and app.calls == 0
    assert caplog.records and max(r.levelno for r in caplog.records) == logging.INFO


# --------------------------------------------------------------------------- 4. serve fails fast


@pytest.fixture
def empty_bento_store(tmp_path: Path) -> Iterator[None]:
    from bentoml._internal.configuration.containers import BentoMLContainer
    from bentoml._internal.models import ModelStore

    BentoMLContainer.model_store.set(ModelStore(tmp_path / "bento-models"))
    try:
        yield
    finally:
        BentoMLContainer.model_store.reset()


@pytest.mark.integration
@pytest.mark.parametrize(
    ("uri", "says"),
    [
        ("models:/churnclv/999", "models:/churnclv/999"),
        ("runs:/0123456789abcdef0123456789abcdef/model", "runs:/0123456789abcdef0123456789abcdef/model"),
        ("{tmp}/no-such-model", "no-such-model"),
        ("bento:nope", "bento:nope"),
    ],
)
def test_serve_exits_1_with_one_line_before_starting_a_server(
    uri: str,
    says: str,
    trained_store: dict,
    tmp_path: Path,
    serve_env: None,
    cli_logging: None,
    no_server: list[list[str]],
    empty_bento_store: None,
) -> None:
    uri = uri.format(tmp=tmp_path)
    result = CliRunner().invoke(
        cli, ["-q", "serve", "--port", "1", "--model", uri, "--tracking-uri", trained_store["tracking_uri"]]
    )
    assert result.exit_code == 1, result.output
    assert no_server == []
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.output
    assert says in lines[0] and (
        "CHURNCLV_MODEL_URI" in lines[0] or "--model" in lines[0] or "churnclv.serving.pack" in lines[0]
    ), lines[0]
    assert "Traceback" not in result.output


# --------------------------------------------------------------------------- 5. Prometheus folder


def test_each_server_gets_its_own_prometheus_folder(tmp_path: Path) -> None:
    from bentoml._internal.configuration.containers import BentoMLContainer
    from bentoml.serving import ensure_prometheus_dir

    env = server_env(ServiceSettings(api_key=KEY), base={}, metrics_dir=tmp_path / "prom")
    assert env[METRICS_DIR_VAR] == str(tmp_path / "prom")
    command = server_command("127.0.0.1", 3000)
    assert command[1] == "-c" and "run_bentoml" in command[2] and command[3] == "serve"
    # in the server's process, before BentoML's command line runs (the real server: test_http_server)
    assert server_module.use_metrics_dir({}) is None
    try:
        assert server_module.use_metrics_dir(env) == str(tmp_path / "prom")
        assert ensure_prometheus_dir() == str((tmp_path / "prom").absolute())
    finally:
        BentoMLContainer.prometheus_multiproc_dir.reset()


# --------------------------------------------------------------------------- 6. no request content in logs


def test_request_errors_are_logged_without_their_message() -> None:
    def parse(value: str) -> float:
        return float(value)

    request = {"amount": "CUSTOMER-SECRET-" + "42"}  # the traceback quotes source lines: not the value
    try:
        parse(request["amount"])
    except ValueError as exc:
        record = logging.LogRecord(
            "bentoml._internal.server.http_app",
            logging.ERROR,
            __file__,
            1,
            "Exception on %s [%s]",
            ("/score", "POST"),
            (type(exc), exc, exc.__traceback__),
        )
    assert RedactValidationInput().filter(record)
    text = logging.Formatter().format(record)
    assert "CUSTOMER-SECRET-42" not in text
    assert "in parse" in text and "ValueError" in text and "/score" in text  # still findable
