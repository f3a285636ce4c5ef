"""Unit tests of the service's parts that need no model: settings, auth middleware, request schema
and limits, log redaction, and the atomic model swap."""

from __future__ import annotations

import datetime as dt
import logging
import os
import socket
import subprocess
import sys
import threading
import warnings
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from pydantic import ValidationError
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route

with warnings.catch_warnings():
    # starlette deprecates its httpx-based client in favour of httpx2, which is not installed
    warnings.simplefilter("ignore", DeprecationWarning)
    from starlette.testclient import TestClient

from churnclv.serving.auth import APIKeyMiddleware
from churnclv.serving.data_check import attribute_notes
from churnclv.serving.feature_snapshot import FeatureSnapshot, SnapshotError
from churnclv.serving.limits import check_limits
from churnclv.serving.log_redaction import RedactValidationInput
from churnclv.serving.model import ModelLoadError, ModelRef
from churnclv.serving.schemas import CustomerHistory, ScoreRequest
from churnclv.serving.scoring import history_frames, known_at, rows_after
from churnclv.serving.server import ServeError, serve, server_env
from churnclv.serving.settings import ServiceSettings, SettingsError
from churnclv.serving.state import RefreshOutcome, ServingState

KEY = "unit-key-0123456789abcdef"


# --------------------------------------------------------------------------- settings


def test_settings_read_environment_and_hide_the_key() -> None:
    s = ServiceSettings.from_env(
        {
            "CHURNCLV_API_KEY": KEY,
            "CHURNCLV_MAX_CUSTOMERS": "7",
            "CHURNCLV_SNAPSHOT": "/data/out",
            "CHURNCLV_RELOAD_INTERVAL_S": "2.5",
            "CHURNCLV_MODEL_URI": "models:/churnclv/3",
        }
    )
    assert (s.max_customers, s.reload_interval_s, str(s.snapshot), s.model_uri) == (
        7,
        2.5,
        "/data/out",
        "models:/churnclv/3",
    )
    assert KEY not in repr(s)
    assert s.gc_freeze is True and ServiceSettings.from_env({"CHURNCLV_GC_FREEZE": "0"}).gc_freeze is False
    assert s.precompute_scores is True
    assert ServiceSettings.from_env({"CHURNCLV_PRECOMPUTE_SCORES": "0"}).precompute_scores is False
    s.check_auth()


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"CHURNCLV_MAX_CUSTOMERS": "many"}, "CHURNCLV_MAX_CUSTOMERS"),
        ({"CHURNCLV_MAX_HISTORY_ROWS": "0"}, "CHURNCLV_MAX_HISTORY_ROWS"),
        ({"CHURNCLV_RELOAD_INTERVAL_S": "-1"}, "CHURNCLV_RELOAD_INTERVAL_S"),
        ({"CHURNCLV_ALLOW_NO_AUTH": "maybe"}, "CHURNCLV_ALLOW_NO_AUTH"),
        ({"CHURNCLV_PRECOMPUTE_SCORES": "sometimes"}, "CHURNCLV_PRECOMPUTE_SCORES"),
    ],
)
def test_bad_settings_name_the_variable(env: dict[str, str], named: str) -> None:
    with pytest.raises(SettingsError, match=named):
        ServiceSettings.from_env(env)


def test_no_key_refuses_to_start_unless_explicitly_allowed() -> None:
    with pytest.raises(SettingsError, match="CHURNCLV_API_KEY is not set"):
        ServiceSettings.from_env({}).check_auth()
    with pytest.raises(SettingsError, match="at least 16"):
        ServiceSettings.from_env({"CHURNCLV_API_KEY": "short"}).check_auth()
    ServiceSettings.from_env({"CHURNCLV_ALLOW_NO_AUTH": "1"}).check_auth()


def test_serve_refuses_without_a_key_before_starting_anything(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CHURNCLV_API_KEY", raising=False)
    monkeypatch.delenv("CHURNCLV_ALLOW_NO_AUTH", raising=False)
    with pytest.raises(ServeError, match="CHURNCLV_API_KEY"):
        serve(port=1, model_uri="models:/churnclv@champion")


def test_serve_on_a_port_in_use_is_one_line_before_the_model_loads(tmp_path: Path) -> None:
    # BentoML's own bind failure was ~50 lines of circus traceback, after the model had loaded
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CHURNCLV_", "MLFLOW_"))}
    env.update(CHURNCLV_API_KEY=KEY, BENTOML_DO_NOT_TRACK="True", CHURNCLV_HUGE_PAGES="on")
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        port = held.getsockname()[1]
        address = ["--host", "127.0.0.1", "--port", str(port)]
        done = subprocess.run(
            # the model is never read: the port is checked first
            [sys.executable, "-m", "churnclv.cli", "serve", *address, "--model", str(tmp_path / "no-model")],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    assert done.returncode == 1 and done.stdout == "", done.stderr[-2000:]
    assert done.stderr.splitlines() == [
        f"Error: port {port} on 127.0.0.1 is in use: pick another --port (or stop the server holding it)"
    ], done.stderr[-2000:]


def test_serve_refuses_a_snapshot_folder_inside_the_batch_output(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # a partition folder started the server, whose score_by_id then answered 503 for ever, telling to
    # run score-batch --out into that partition
    out = (tmp_path / "out").resolve()
    partition = out / "scores" / "dt=2025-10-02"
    for folder in (partition, out / "features" / "dt=2025-10-02", out / "reports"):
        folder.mkdir(parents=True)
    (out / "LATEST").write_text("dt=2025-10-02\n")
    monkeypatch.setenv("CHURNCLV_API_KEY", KEY)
    for name in ("CHURNCLV_MODEL_URI", "CHURNCLV_SNAPSHOT", "CHURNCLV_TARGETING"):
        monkeypatch.delenv(name, raising=False)
    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]
    common = {"port": port, "model_uri": str(tmp_path / "no-model")}  # never read when the snapshot is refused
    fix = f"give {out} itself (the folder of churnclv score-batch --out, the one holding LATEST)"
    for inside in (partition, out / "scores", out / "features" / "dt=2025-10-02", out / "reports"):
        with pytest.raises(ServeError) as refused:
            serve(**common, snapshot=inside)
        assert str(refused.value) == (
            f"--snapshot / CHURNCLV_SNAPSHOT: {inside} is a folder inside the batch job's output {out}: {fix}"
        )
    with pytest.raises(ServeError, match="no such model folder"):  # the output folder itself is taken
        serve(**common, snapshot=out)
    # the service started on it some other way (CHURNCLV_SNAPSHOT, bentoml serve) says the same in its 503
    with pytest.raises(SnapshotError) as unavailable:
        FeatureSnapshot.load(partition)
    assert fix in str(unavailable.value) and f"--out {partition}" not in str(unavailable.value)


def test_server_env_passes_settings_workers_and_no_tracking() -> None:
    s = ServiceSettings(api_key=KEY, workers=2, max_customers=9)
    env = server_env(s, base={"BENTOML_CONFIG_OPTIONS": "api_server.timeout=5"})
    assert env["CHURNCLV_API_KEY"] == KEY and env["CHURNCLV_MAX_CUSTOMERS"] == "9"
    assert env["BENTOML_DO_NOT_TRACK"] == "True"
    assert env["BENTOML_CONFIG_OPTIONS"].split() == ["api_server.timeout=5", "services.churnclv.workers=2"]
    assert ServiceSettings.from_env(env).max_customers == 9


def test_model_uri_parsing() -> None:
    assert ModelRef.parse("models:/churnclv@champion") == ModelRef("models:/churnclv@champion", "churnclv", "champion")
    assert ModelRef.parse("models:/churnclv/3").version == "3"
    assert ModelRef.parse("runs:/abc/model").name is None


# --------------------------------------------------------------------------- auth middleware


def _guarded(**settings: Any) -> TestClient:
    async def ok(_request: Any) -> PlainTextResponse:
        return PlainTextResponse("ok")

    app = Starlette(routes=[Route("/score", ok, methods=["POST"]), Route("/livez", ok), Route("/metrics", ok)])
    return TestClient(APIKeyMiddleware(app, ServiceSettings(api_key=KEY, **settings)))


def test_key_required_on_api_routes_and_not_on_health() -> None:
    c = _guarded()
    assert c.post("/score", json={}).status_code == 401
    wrong = c.post("/score", json={}, headers={"X-API-Key": KEY[:-1] + "x"})
    assert wrong.status_code == 401 and "wrong API key" in wrong.json()["error"]
    assert c.post("/score", json={}, headers={"X-API-Key": "k"}).status_code == 401  # other length
    assert c.post("/score", json={}, headers={"X-API-Key": KEY}).text == "ok"
    assert c.get("/livez").text == "ok" and c.get("/metrics").text == "ok"
    assert c.get("/anything-else").status_code == 401  # default deny


def test_a_method_the_route_does_not_take_gets_the_error_body() -> None:
    # GET /score was answered 405 in plain text ("Method Not Allowed"), not the documented error body
    c = _guarded()
    r = c.get("/score", headers={"X-API-Key": KEY})
    assert r.status_code == 405 and r.headers["allow"] == "POST"
    assert r.headers["content-type"].startswith("application/json")
    assert r.json() == {"error": "method GET is not allowed on /score: send POST", "detail": []}
    assert c.get("/score").status_code == 401  # the key first, as on every route


def test_body_type_and_size_are_checked_after_the_key() -> None:
    c = _guarded(max_body_bytes=2048)
    h = {"X-API-Key": KEY}
    assert c.post("/score", content=b"a=1", headers={**h, "Content-Type": "text/plain"}).status_code == 415
    big = c.post("/score", content=b" " * 5000, headers={**h, "Content-Type": "application/json"})
    assert big.status_code == 413 and "CHURNCLV_MAX_BODY_BYTES" in big.json()["error"]

    def chunks():
        yield b"{}"

    assert c.post("/score", content=chunks(), headers=h).status_code == 411


def test_no_auth_mode_lets_requests_through() -> None:
    async def ok(_request: Any) -> PlainTextResponse:
        return PlainTextResponse("ok")

    app = APIKeyMiddleware(
        Starlette(routes=[Route("/score", ok, methods=["POST"])]), ServiceSettings(allow_no_auth=True)
    )
    assert TestClient(app).post("/score", json={}).text == "ok"


# --------------------------------------------------------------------------- request schema and limits


def _customer(cid: str = "c1", n_tx: int = 1, **kw: Any) -> dict[str, Any]:
    tx = [{"ts": f"2025-01-{1 + i % 28:02d}T10:00:00", "amount": 10.0} for i in range(n_tx)]
    return {"customer_id": cid, "transactions": tx, **kw}


def test_timestamps_with_offsets_become_naive_utc() -> None:
    req = ScoreRequest.model_validate(
        {"as_of": "2025-10-02", "customers": [_customer(signup_ts="2025-01-01T01:30:00+02:00")]}
    )
    assert req.customers[0].signup_ts == dt.datetime(2024, 12, 31, 23, 30)


@pytest.mark.parametrize("as_of", [20251002, 20251002.0, "2025-10-02T10:31:00Z", "10/02/2025"])
def test_a_bad_as_of_is_told_the_form_the_service_takes(as_of: object) -> None:
    # a number was told "such as 2025-09-14T10:31:00Z", a form the as-of then refuses
    with pytest.raises(ValidationError) as info:
        ScoreRequest.model_validate({"as_of": as_of, "customers": [_customer()]})
    ((loc, msg),) = [(e["loc"], e["msg"]) for e in info.value.errors()]
    assert loc == ("as_of",) and "YYYY-MM-DD, e.g. 2025-10-02" in msg and "T10:31" not in msg, msg


@pytest.mark.parametrize(
    ("customer", "loc"),
    [
        ({"customer_id": " ", "signup_ts": "2025-01-01"}, ("customers", 0, "customer_id")),
        ({"customer_id": "x" * 129, "signup_ts": "2025-01-01"}, ("customers", 0, "customer_id")),
        (
            _customer(transactions=[{"ts": "2025-01-01", "amount": "Infinity"}]),
            ("customers", 0, "transactions", 0, "amount"),
        ),
        (_customer(transactions=[{"ts": "2025-01-01", "amount": 1e12}]), ("customers", 0, "transactions", 0, "amount")),
        (_customer(transactions=[{"ts": "1850-01-01", "amount": 1}]), ("customers", 0, "transactions", 0, "ts")),
        (_customer(transactions=[{"ts": "2025-01-01", "amout": 1}]), ("customers", 0, "transactions", 0, "amount")),
        (_customer(events=[{"ts": "2025-01-01", "event_type": ""}]), ("customers", 0, "events", 0, "event_type")),
        (_customer(attributes={"signup_ts": "x"}), ("customers", 0)),
    ],
)
def test_bad_customers_fail_with_the_field_location(customer: dict[str, Any], loc: tuple[Any, ...]) -> None:
    with pytest.raises(ValidationError) as info:
        ScoreRequest.model_validate({"as_of": "2025-10-02", "customers": [customer]})
    assert loc in [tuple(e["loc"]) for e in info.value.errors()]


def test_attribute_notes_stay_short_and_check_values_only_where_the_model_has_them() -> None:
    model: Any = SimpleNamespace(attributes=("region", "segment"), attribute_levels={"region": frozenset({"north"})})
    sent = [{f"extra_{i:02d}": "x" for i in range(12)} | {"region": "north", "segment": "new-one"}]
    ((code, message),) = attribute_notes(model, sent)  # segment: no trained values (no LightGBM reads it)
    assert code == "unknown_attributes" and message.startswith("attributes the model does not read were ignored: ")
    assert "extra_09 (1 customer) and 2 more (it reads: region, segment)" in message and "extra_10" not in message
    assert attribute_notes(model, [{"region": "north"}, {"region": None}, {}]) == []


def test_attribute_values_lose_the_spaces_around_them_as_the_features_drop_them() -> None:
    """The frames trim " north" to north, as validation does: the warning must judge that value."""
    model: Any = SimpleNamespace(attributes=("region", "segment"), attribute_levels={"region": frozenset({"north"})})
    customer = CustomerHistory(customer_id="1", attributes={"region": " north  ", "segment": "   "})
    assert customer.attributes == {"region": "north", "segment": None}  # blank: missing, as validated
    assert attribute_notes(model, [customer.attributes]) == []


def test_limits_and_duplicates() -> None:
    s = ServiceSettings(max_customers=2, max_history_rows=3)
    ok = [CustomerHistory.model_validate(_customer("a", 3)), CustomerHistory.model_validate(_customer("b"))]
    assert check_limits(ok, s) is None
    too_many = check_limits([*ok, CustomerHistory.model_validate(_customer("c"))], s)
    assert too_many is not None and too_many.status_code == 413
    long = check_limits([CustomerHistory.model_validate(_customer("a", 4))], s)
    assert long is not None and long.status_code == 413 and b'"loc":["customers",0]' in long.body
    dup = check_limits([ok[0], ok[0]], s)
    assert dup is not None and dup.status_code == 400 and b'"loc":["customers",1,"customer_id"]' in dup.body
    # the position names the customer: the id itself (customer data) is in no message
    assert b'"a"' not in long.body and b"'a'" not in long.body and b"'a'" not in dup.body and b'"a"' not in dup.body


def test_history_frames_have_every_contract_column_and_point_in_time_counts() -> None:
    c = CustomerHistory.model_validate(
        {
            "customer_id": "007",
            "signup_ts": "2025-01-01",
            "attributes": {"region": "north", "unused": "x"},
            "transactions": [{"ts": "2025-02-01", "amount": 5.0}, {"ts": "2025-10-03T00:00:00", "amount": 7.0}],
            "events": [{"ts": "2025-10-02T23:59:59", "event_type": "login"}],
        }
    )
    frames = history_frames([c], ["region", "acquisition_channel"])
    assert list(frames["transactions"].columns) == ["customer_id", "ts", "amount", "order_id", "channel", "category"]
    assert list(frames["customers"].columns) == ["customer_id", "signup_ts", "region", "acquisition_channel"]
    assert frames["customers"]["customer_id"].tolist() == ["007"]
    assert frames["events"]["value"].isna().all()
    assert rows_after(c, dt.date(2025, 10, 2)) == 1  # the line on the next day, not the event at 23:59:59
    signup_only = CustomerHistory.model_validate({"customer_id": "s", "signup_ts": "2025-10-05"})
    assert not known_at(signup_only, dt.date(2025, 10, 2)) and known_at(signup_only, dt.date(2025, 10, 5))


# --------------------------------------------------------------------------- logs


def test_validation_errors_are_logged_without_the_input() -> None:
    try:
        ScoreRequest.model_validate(
            {
                "as_of": "2025-10-02",
                "customers": [
                    {"customer_id": "SECRET-ID-42", "signup_ts": "2025-01-01", "attributes": {"signup_ts": "x"}}
                ],
            }
        )
    except ValidationError as exc:
        err = exc
    record = logging.LogRecord(
        "bentoml",
        logging.ERROR,
        __file__,
        1,
        "Exception on %s [%s]",
        ("/score", "POST"),
        (type(err), err, err.__traceback__),
    )
    assert RedactValidationInput().filter(record)
    text = logging.Formatter().format(record)
    assert "SECRET-ID-42" not in text and "/score" in text and "1 validation error" in text


# --------------------------------------------------------------------------- atomic model swap


def _fake_model(version: str) -> Any:
    return SimpleNamespace(version=version)


def test_refresh_loads_fully_before_swapping_and_keeps_the_model_on_failure() -> None:
    pointer = {"version": "1"}
    release = threading.Event()
    loading = threading.Event()

    def loader(uri: str, tracking: str, version: str | None = None) -> Any:
        if version is None:
            return _fake_model("1")
        loading.set()
        release.wait(5)
        if version == "bad":
            raise ModelLoadError("broken model")
        return _fake_model(version)

    state = ServingState(
        model_uri="models:/churnclv@champion",
        tracking_uri="sqlite://",
        loader=loader,
        resolver=lambda uri, tracking: pointer["version"],
    )
    assert state.refresh().model_changed is False
    pointer["version"] = "2"
    t = threading.Thread(target=state.refresh)
    t.start()
    assert loading.wait(5)
    held = state.model
    assert held.version == "1"  # mid-load: requests still get the complete old model
    release.set()
    t.join(5)
    assert state.model.version == "2" and held.version == "1"
    pointer["version"] = "bad"
    with pytest.raises(ModelLoadError):
        state.refresh()
    assert state.model.version == "2"


def test_periodic_refresh_picks_up_a_moved_alias() -> None:
    pointer = {"version": "1"}
    state = ServingState(
        model_uri="models:/churnclv@champion",
        tracking_uri="sqlite://",
        loader=lambda uri, tracking, version=None: _fake_model(version or "1"),
        resolver=lambda uri, tracking: pointer["version"],
    )
    swapped = threading.Event()
    refresh = state.refresh

    def refresh_and_signal() -> RefreshOutcome:
        outcome = refresh()
        if outcome.model_changed:
            swapped.set()
        return outcome

    state.refresh = refresh_and_signal  # type: ignore[method-assign]  # the periodic thread calls self.refresh
    pointer["version"] = "5"
    state.start(0.01)
    try:
        assert swapped.wait(30), "the periodic refresh never swapped the model"  # bound: a safety net only
        assert state.model.version == "5"
    finally:
        state.stop()


def test_periodic_check_failures_are_logged_redacted(caplog: pytest.LogCaptureFixture) -> None:
    # any failure of the check (here a driver error quoting the database URL) is one redacted ERROR line
    secret = "postgresql://user:S3cret@db.example/mlflow?password=Q"
    reported = threading.Event()

    class Signal(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if record.levelno >= logging.ERROR:
                reported.set()

    def resolver(uri: str, tracking: str) -> str:
        raise RuntimeError(f"could not connect to {secret}")

    state = ServingState(
        model_uri="models:/churnclv@champion",
        tracking_uri=secret,
        loader=lambda uri, tracking, version=None: _fake_model("1"),
        resolver=resolver,
    )
    signal = Signal()
    logger = logging.getLogger("churnclv.serving.state")
    logger.addHandler(signal)
    try:
        with caplog.at_level(logging.INFO, logger="churnclv.serving.state"):
            state.start(0.01)
            assert reported.wait(30), "the periodic check never reported"  # bound: a safety net only
            state.stop()
    finally:
        logger.removeHandler(signal)
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors and all("S3cret" not in r.getMessage() and "password=Q" not in r.getMessage() for r in errors)
    assert "postgresql://user:***@db.example/mlflow" in errors[0].getMessage()
    assert all(r.exc_info is None for r in errors)  # the traceback goes to DEBUG only


@pytest.mark.parametrize(
    ("cid", "message"),
    [("x" * 129, "String should have at most 128 characters"), ("   ", "String should have at least 1 character")],
)
def test_an_id_of_the_wrong_length_is_told_in_characters(cid: str, message: str) -> None:
    """Not pydantic's 'at most 128 items': the CRM reads these messages."""
    with pytest.raises(ValidationError) as info:
        ScoreRequest.model_validate(
            {"as_of": "2025-10-02", "customers": [{"customer_id": cid, "signup_ts": "2025-01-01"}]}
        )
    assert [e["msg"] for e in info.value.errors()] == [message]
