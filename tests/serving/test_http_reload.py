"""The champion alias and the snapshot move while the service runs: ``/reload`` picks both up, and
requests in flight during the reload all succeed (in-process, on a private copy of the registry)."""

from __future__ import annotations

import shutil
import threading
from pathlib import Path
from typing import Any

import mlflow
import pytest
from mlflow.tracking import MlflowClient

from churnclv.features import compute_features
from churnclv.serving.snapshots import LATEST, features_path, partition_name

pytestmark = pytest.mark.integration

NEXT_AS_OF = "2025-10-09"


@pytest.fixture
def moving(serving_store: dict, batch_out: Path, tmp_path: Path) -> dict:
    """A registry copy whose champion can move, and a batch output folder whose LATEST can move."""
    db = tmp_path / "mlflow.db"
    shutil.copy2(serving_store["tracking_uri"].removeprefix("sqlite:///"), db)
    out = tmp_path / "batch"
    shutil.copytree(batch_out, out, ignore=shutil.ignore_patterns("part-*", "tier_report"))
    return {"store": {**serving_store, "tracking_uri": f"sqlite:///{db}"}, "out": out}


def test_reload_follows_the_alias_and_latest_without_failing_requests(
    moving: dict, kit: Any, small_world: Path
) -> None:
    store, out = moving["store"], moving["out"]
    body = {
        "as_of": kit.AS_OF,
        "customers": [
            {
                "customer_id": "n1",
                "signup_ts": "2025-09-01T00:00:00",
                "transactions": [{"ts": "2025-09-02T00:00:00", "amount": 30.0}],
            }
        ],
    }
    with kit.running_service(kit.service_env(store, out)) as c:
        unchanged = c.post("/reload", headers=kit.HEADERS).json()
        assert unchanged == {
            "status": "unchanged",
            "previous_version": "1",
            "version": "1",
            "snapshot": partition_name(kit.AS_OF),
        }

        # a second version of the same model, then the champion moves to it
        registry = MlflowClient(tracking_uri=store["tracking_uri"], registry_uri=store["tracking_uri"])
        v1 = registry.get_model_version("churnclv", "1")
        # MLflow resolves a models:/ source through the *global* tracking URI, whatever the client's:
        # point it at this copy, as an earlier test may have left it elsewhere
        previous = mlflow.get_tracking_uri()
        mlflow.set_tracking_uri(store["tracking_uri"])
        try:
            v2 = str(registry.create_model_version("churnclv", source=v1.source, run_id=v1.run_id).version)
        finally:
            mlflow.set_tracking_uri(previous)
        registry.set_registered_model_alias("churnclv", "champion", v2)
        # and the batch job publishes a newer snapshot
        features_path(out, NEXT_AS_OF).parent.mkdir()
        compute_features(small_world, NEXT_AS_OF).to_parquet(features_path(out, NEXT_AS_OF), index=False)
        (out / LATEST).write_text(f"{partition_name(NEXT_AS_OF)}\n")

        answers: list[tuple[int, str | None]] = []
        done = threading.Event()

        def traffic() -> None:
            while not done.is_set() or not answers:
                r = c.post("/score", json=body, headers=kit.HEADERS)
                answers.append((r.status_code, r.json().get("model_version")))

        t = threading.Thread(target=traffic)
        t.start()
        try:
            reloaded = c.post("/reload", headers=kit.HEADERS)
        finally:
            done.set()
            t.join(60)
        assert reloaded.status_code == 200, reloaded.text
        assert reloaded.json() == {
            "status": "reloaded",
            "previous_version": "1",
            "version": v2,
            "snapshot": partition_name(NEXT_AS_OF),
        }
        assert answers and all(code == 200 and v in {"1", v2} for code, v in answers)

        assert c.post("/model_info", headers=kit.HEADERS).json()["version"] == v2
        assert c.post("/score", json=body, headers=kit.HEADERS).json()["scores"][0]["model_version"] == v2
        by_id = c.post("/score_by_id", json={"customer_ids": ["00000002"]}, headers=kit.HEADERS).json()
        assert by_id["as_of"] == NEXT_AS_OF and by_id["model_version"] == v2


def test_reload_failure_keeps_serving(moving: dict, kit: Any) -> None:
    store = moving["store"]
    with kit.running_service(kit.service_env(store, None)) as c:
        MlflowClient(
            tracking_uri=store["tracking_uri"], registry_uri=store["tracking_uri"]
        ).delete_registered_model_alias("churnclv", "champion")
        r = c.post("/reload", headers=kit.HEADERS)
        assert r.status_code == 503 and "still serving version 1" in r.json()["error"]
        assert c.post("/model_info", headers=kit.HEADERS).json()["version"] == "1"
        # no snapshot configured: score_by_id says how to get one
        r = c.post("/score_by_id", json={"customer_ids": ["00000002"]}, headers=kit.HEADERS)
        assert r.status_code == 503 and "--snapshot" in r.json()["error"]


def test_a_snapshot_that_cannot_be_loaded_fails_the_reload(moving: dict, kit: Any, small_world: Path) -> None:
    # helper: a damaged features.parquet answered 200 "unchanged", and the weekly job recorded a success
    store, out = moving["store"], moving["out"]
    with kit.running_service(kit.service_env(store, out)) as c:
        features_path(out, NEXT_AS_OF).parent.mkdir()
        features_path(out, NEXT_AS_OF).write_bytes(b"not parquet")
        (out / LATEST).write_text(f"{partition_name(NEXT_AS_OF)}\n")
        r = c.post("/reload", headers=kit.HEADERS)
        assert r.status_code == 503, r.text
        error = r.json()["error"]
        assert error.startswith("reload: version 1 served, but the snapshot LATEST names cannot be loaded")
        assert f"still serving {partition_name(kit.AS_OF)}" in error
        # a snapshot that loads is a change the answer names
        compute_features(small_world, NEXT_AS_OF).to_parquet(features_path(out, NEXT_AS_OF), index=False)
        ok = c.post("/reload", headers=kit.HEADERS).json()
        assert ok["status"] == "reloaded" and ok["snapshot"] == partition_name(NEXT_AS_OF) and ok["version"] == "1"
