"""The real server: ``churnclv serve`` in a subprocess on a free loopback port, scored over HTTP,
stopped by its process group. Bounded everywhere: a server that never gets ready (BentoML restarts a
crashing worker forever) fails the test after the deadline and is killed."""

from __future__ import annotations

import contextlib
import os
import queue
import re
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from churnclv.serving.server import SERVICE_NAME, ServeError, serve

pytestmark = pytest.mark.integration

READY_DEADLINE_S = 120
STOP_DEADLINE_S = 30
README = Path(__file__).resolve().parents[2] / "README.md"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _tail(log: Path, n: int = 40) -> str:
    return "\n".join(log.read_text(errors="replace").splitlines()[-n:]) if log.exists() else ""


def stop_group(proc: subprocess.Popen) -> None:
    """SIGTERM the server's process group, then SIGKILL it past the deadline."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=STOP_DEADLINE_S)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)


@contextlib.contextmanager
def churnclv_serve(args: list[str], env: dict[str, str], log: Path) -> Iterator[tuple[subprocess.Popen, str]]:
    """Start ``churnclv serve``; yield once its worker has said it is ready and ``/readyz`` agrees.

    The server's output goes through a pipe to ``log``, line by line: the line that BentoML logs when
    the service object is built (model and snapshot loaded) is the signal, and the end of the output
    (the server died) is the other; nothing here polls or sleeps.
    """
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    ready_line = f"Service {SERVICE_NAME} initialized"
    proc = subprocess.Popen(
        [sys.executable, "-m", "churnclv.cli", "serve", "--host", "127.0.0.1", "--port", str(port), *args],
        env={**env, "PYTHONUNBUFFERED": "1"},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    news: queue.Queue[str] = queue.Queue()

    def tee() -> None:
        assert proc.stdout is not None
        with proc.stdout, log.open("wb") as out:
            for line in proc.stdout:
                out.write(line)
                out.flush()
                if ready_line.encode() in line:
                    news.put("ready")
        news.put("eof")  # every process of the group has closed its end: the server is gone

    reader = threading.Thread(target=tee, name="churnclv-serve-log", daemon=True)
    reader.start()
    try:
        try:
            event = news.get(timeout=READY_DEADLINE_S)  # a safety net: a crash loop never says ready
        except queue.Empty:
            pytest.fail(f"no {ready_line!r} after {READY_DEADLINE_S} s:\n{_tail(log)}")
        if event != "ready":
            proc.wait(timeout=STOP_DEADLINE_S)
            pytest.fail(f"churnclv serve exited with {proc.returncode}:\n{_tail(log)}")
        # the listening socket exists before the worker starts: this call waits in its backlog until
        # the worker accepts, right after the line above
        r = httpx.get(f"{url}/readyz", timeout=STOP_DEADLINE_S)
        assert r.status_code == 200, f"/readyz answered {r.status_code} after {ready_line!r}:\n{_tail(log)}"
        yield proc, url
    finally:
        stop_group(proc)
        reader.join(timeout=STOP_DEADLINE_S)  # the whole log is written before the test reads it


def _raw_status(url: str, head: str) -> int:
    """Send the head of a hand-framed request (headers httpx would not send together) and no body:
    the status of the answer, which therefore comes without the server reading any body."""
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=STOP_DEADLINE_S) as conn:
        conn.sendall(head.replace("\n", "\r\n").encode() + b"\r\n")
        answer = b""
        while b"\r\n" not in answer:
            chunk = conn.recv(4096)
            assert chunk, f"the server closed the connection without an answer to {head!r}"
            answer += chunk
    return int(answer.split(b" ", 2)[1])


def _endpoint_labels(metrics: str) -> set[str]:
    return {
        line.split('endpoint="', 1)[1].split('"', 1)[0]
        for line in metrics.splitlines()
        if line.startswith("churnclv_request_total{") and 'endpoint="' in line
    }


@pytest.mark.slow
def test_real_server_scores_and_stops(serving_store: dict, batch_out: Path, kit: Any, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in kit.SERVICE_VARS}
    env.update(
        CHURNCLV_API_KEY=kit.API_KEY,
        BENTOML_DO_NOT_TRACK="True",
        CHURNCLV_RELOAD_INTERVAL_S="0",
        BENTOML_HOME=str(tmp_path / "bentoml"),  # the server's state stays in the test's folder
        TMPDIR=str(tmp_path / "tmp"),
    )  # and so does its own Prometheus folder
    (tmp_path / "tmp").mkdir()
    log = tmp_path / "server.log"
    args = [
        "--model",
        serving_store["model_uri"],
        "--tracking-uri",
        serving_store["tracking_uri"],
        "--snapshot",
        str(batch_out),
    ]
    body = {
        "as_of": kit.AS_OF,
        "customers": [
            {
                "customer_id": "PRIVATE-7",
                "signup_ts": "2025-09-01T00:00:00",
                "transactions": [{"ts": "2025-09-02T00:00:00", "amount": 30.0}],
            }
        ],
    }
    with churnclv_serve(args, env, log) as (proc, url):
        with httpx.Client(base_url=url, timeout=30) as http:
            assert http.post("/score", json=body).status_code == 401
            r = http.post("/score", json=body, headers=kit.HEADERS)
            assert r.status_code == 200, r.text
            assert r.json()["scores"][0]["model_version"] == "1"
            r = http.post("/score_by_id", json={"customer_ids": ["00000002", "zzz"]}, headers=kit.HEADERS)
            assert r.status_code == 200 and r.json()["scores"][1]["error"] == "unknown customer_id"
            assert http.get("/livez").status_code == 200
            metrics = http.get("/metrics")
            assert metrics.status_code == 200 and 'endpoint="/score"' in metrics.text
            # our own histograms: requests per scoring call and call time, per endpoint
            assert 'churnclv_scoring_batch_requests_count{endpoint="score_by_id"' in metrics.text
            assert 'churnclv_scoring_call_seconds_count{endpoint="score"' in metrics.text
            # every series the README lists is served, and the request id it documents is in the access log
            listed = re.findall(r"^\| `(churnclv_[a-z_]+)` \|", README.read_text(encoding="utf-8"), re.MULTILINE)
            assert len(listed) == 5 and all(f"\n{name}" in metrics.text for name in listed), listed
            request_id = r.headers["x-bentoml-request-id"]
            # invented paths, with and without the key, add one label ("other") and no more
            labels = _endpoint_labels(metrics.text)
            for i in range(60):  # bounded
                http.post(f"/probe-{i}", json={}, headers=kit.HEADERS if i % 2 else {})
            grown = _endpoint_labels(http.get("/metrics").text)
            assert grown - labels <= {"other"} and not any(x.startswith("/probe") for x in grown), grown - labels
        assert f"span={request_id}" in log.read_text(encoding="utf-8")  # the README's request id
        # this server's metrics live in a folder of its own, not in BENTOML_HOME's shared one
        folders = list((tmp_path / "tmp").glob("churnclv-prometheus-*"))
        assert len(folders) == 1 and list(folders[0].glob("*.db")), folders
        assert not (tmp_path / "bentoml" / "prometheus_multiproc_dir").exists()
        # the body limit cannot be bypassed with a length the server ignores (chunked framing)
        head = (
            f"POST /score HTTP/1.1\nHost: x\nX-API-Key: {kit.API_KEY}\nContent-Type: application/json\n"
            "Content-Length: 100\nTransfer-Encoding: chunked\n"
        )
        assert _raw_status(url, head) == 400
        head = (
            f"POST /score HTTP/1.1\nHost: x\nX-API-Key: {kit.API_KEY}\nContent-Type: application/json\n"
            "Transfer-Encoding: chunked\n"
        )
        assert _raw_status(url, head) == 411
        pgid = os.getpgid(proc.pid)
    assert proc.returncode is not None
    with pytest.raises(ProcessLookupError):  # the whole group is gone: no orphaned BentoML workers
        os.killpg(pgid, 0)
    text = log.read_text(errors="replace")
    assert "POST" in text and "/score" in text  # the access log ran ...
    assert "PRIVATE-7" not in text and kit.API_KEY not in text  # ... without bodies or keys
    assert not list((tmp_path / "tmp").glob("churnclv-prometheus-*"))  # removed when the server stopped


def test_serve_exits_before_starting_a_server_on_a_model_that_does_not_load(
    serving_store: dict, kit: Any, tmp_path: Path
) -> None:
    # BentoML restarts a worker whose service fails to start, forever: serve must never get there
    env = {k: v for k, v in os.environ.items() if k not in kit.SERVICE_VARS}
    env.update(CHURNCLV_API_KEY=kit.API_KEY, BENTOML_DO_NOT_TRACK="True", BENTOML_HOME=str(tmp_path / "bentoml"))
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "churnclv.cli",
            "-q",
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            str(free_port()),
            "--model",
            "models:/churnclv/999",
            "--tracking-uri",
            serving_store["tracking_uri"],
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=READY_DEADLINE_S,
        check=False,
    )
    assert done.returncode == 1, done.stderr[-2000:]
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error: model URI models:/churnclv/999"), done.stderr[-2000:]
    assert "Traceback" not in done.stderr and "bentoml" not in done.stdout.lower()


def test_serve_fails_fast_on_a_model_that_does_not_resolve(
    serving_store: dict, kit: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CHURNCLV_API_KEY", kit.API_KEY)
    with pytest.raises(ServeError, match="alias 'nope'"):
        serve(port=free_port(), model_uri="models:/churnclv@nope", tracking_uri=serving_store["tracking_uri"])
    # without --model, CHURNCLV_MODEL_URI is the model (the README's way to pin one)
    monkeypatch.setenv("CHURNCLV_MODEL_URI", "models:/churnclv@from-env")
    with pytest.raises(ServeError, match="alias 'from-env'"):
        serve(port=free_port(), tracking_uri=serving_store["tracking_uri"])


def test_packed_model_loads_from_the_bentoml_model_store(serving_store: dict, tmp_path: Path) -> None:
    # what `bentoml build` ships (bentofile.yaml: models + CHURNCLV_MODEL_URI=bento:...), without the build
    from bentoml._internal.configuration.containers import BentoMLContainer
    from bentoml._internal.models import ModelStore

    from churnclv.serving.model import load_model
    from churnclv.serving.pack import pack

    BentoMLContainer.model_store.set(ModelStore(tmp_path / "models"))
    try:
        tag = pack(serving_store["model_uri"], serving_store["tracking_uri"])
        assert tag.name == "churnclv-model"
        # the MLflow store is not needed any more
        loaded = load_model("bento:churnclv-model:latest", tracking_uri=f"sqlite:///{tmp_path}/absent.db")
    finally:
        BentoMLContainer.model_store.reset()
    assert (loaded.version, loaded.alias, loaded.name) == ("1", "champion", "churnclv")
    assert loaded.horizon_days == 90 and "region" in loaded.attributes


def test_bentoml_build_makes_a_bento_with_the_model_packed_in(serving_store: dict, tmp_path: Path) -> None:
    # the README's recipe: pack the champion, build the wheel, `bentoml build` with bentofile.yaml
    import json
    import shutil

    root = Path(__file__).resolve().parents[2]
    bin_dir = Path(sys.executable).parent
    env = {**os.environ, "BENTOML_HOME": str(tmp_path / "bentoml"), "BENTOML_DO_NOT_TRACK": "True"}
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    shutil.copy(root / "bentofile.yaml", ctx)

    def run(*cmd: str, cwd: Path = ctx) -> str:
        done = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=300, check=False)
        assert done.returncode == 0, f"{cmd[:4]} failed:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}"
        return done.stdout

    run(
        sys.executable,
        "-m",
        "churnclv.serving.pack",
        "--model",
        serving_store["model_uri"],
        "--tracking-uri",
        serving_store["tracking_uri"],
    )
    run(sys.executable, "-m", "build", "--wheel", "--outdir", str(ctx / "dist"), str(root), cwd=root)
    run(str(bin_dir / "bentoml"), "build")
    bento = json.loads(run(str(bin_dir / "bentoml"), "get", "churnclv:latest", "-o", "json"))
    assert bento["service"] == "churnclv.serving.service:ChurnCLVService"
    assert [m["tag"].split(":")[0] for m in bento["models"]] == ["churnclv-model"]
    bentos = list((tmp_path / "bentoml" / "bentos" / "churnclv").glob("*/env/python/wheels/churnclv-*.whl"))
    assert len(bentos) == 1  # the code ships as the wheel
