"""The data zoo: validate -> train -> score-batch -> HTTP /score on shapes of data we did not generate.

Every shape of :mod:`tests/zoo/shapes.py` either runs the whole path with exit status 0 and sane
scores, or stops at its first failing step with exit status 1 and one clear error line (no
traceback). The CLI runs in-process (click's CliRunner) against a private MLflow store per shape;
the HTTP service runs in-process (ASGI) on the champion the shape's training registered.
"""

from __future__ import annotations

import importlib.util
import logging
import math
import re
import shutil
import sys
import traceback
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner, Result

from churnclv.cli import cli
from churnclv.serving.snapshots import read_scores

pytestmark = pytest.mark.integration


def _load_shapes() -> Any:
    # tests/ is not a package and nothing edits sys.path (test_packaging): load the builders by path
    name = "churnclv_test_zoo_shapes"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, Path(__file__).with_name("zoo") / "shapes.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module  # dataclasses resolve their module while the class is built
        spec.loader.exec_module(module)
    return sys.modules[name]


shapes = _load_shapes()

# cheap training: two folds, three cutoffs each, few boosting rounds
FAST_CONFIG = """\
[train]
n_folds = 2
train_cutoffs = 3
candidates = ["recency", "rfm", "btyd", "gbm", "hybrid"]

[scorer]
gbm_rounds = 50
"""
API_KEY = "zoo-key-0123456789abcdef"
TIERS = {"Diamond", "Platinum", "Gold", "Silver", "Bronze"}  # the shipped tier policy


def _error_line(result: Result) -> str:
    """What a failed step said: its ``Error:`` line(s), or the unexpected exception's last frames."""
    exc = result.exception
    if exc is not None and not isinstance(exc, SystemExit):
        frames = traceback.extract_tb(exc.__traceback__)[-2:]
        where = " <- ".join(f"{Path(f.filename).name}:{f.lineno} {f.name}" for f in reversed(frames))
        return (
            f"unhandled {type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''} ({where})"
        )
    lines = [ln for ln in result.stderr.splitlines() if ln.startswith("Error:")]
    return " | ".join(lines) or result.stderr.strip()[-500:]


def _invoke(args: list[str]) -> Result:
    # the CLI points the root logger at its (captured) stderr: put pytest's handlers back afterwards
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    churn = logging.getLogger("churnclv")
    churn_level = churn.level
    try:
        return CliRunner().invoke(cli, args, catch_exceptions=True)
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)
        churn.setLevel(churn_level)


def _check_clean_stop(shape: Any, step: str, result: Result) -> None:
    """The shape cannot support a model: exit 1, one error line matching the expectation, no traceback."""
    assert isinstance(result.exception, SystemExit), f"{step}: {_error_line(result)}"
    assert result.exit_code == 1, f"{step}: exit {result.exit_code}: {_error_line(result)}"
    errors = [ln for ln in result.stderr.splitlines() if ln.startswith("Error:")]
    assert len(errors) == 1, f"{step}: expected one error line, got stderr:\n{result.stderr[-2000:]}"
    after = result.stderr.split(errors[0], 1)[1].strip()
    assert after == "", f"{step}: the error message runs over several lines: {errors[0]!r} + {after[:300]!r}"
    assert "Traceback" not in result.output and "Traceback" not in result.stderr
    assert re.search(shape.expect, errors[0]), f"{step}: error line does not say what is missing: {errors[0]!r}"


def _check_scores(scores: pd.DataFrame, built: Any, shape: Any) -> None:
    as_of = pd.Timestamp(shape.as_of)
    known = shapes.known_at(built.frames, shape.as_of)
    ids = scores["customer_id"]
    assert not ids.duplicated().any(), f"scored twice: {sorted(ids[ids.duplicated()])[:10]}"
    missing, extra = sorted(known - set(ids)), sorted(set(ids) - known)
    assert not missing and not extra, (
        f"{len(missing)} known customers not scored (e.g. {missing[:5]}), "
        f"{len(extra)} scored but not known or ids changed (e.g. {extra[:5]})"
    )
    assert (pd.to_datetime(scores["as_of"]) == as_of).all()
    for col in ("p_churn", "p_alive"):
        v = scores[col].to_numpy(dtype=float)
        assert np.isfinite(v).all() and ((v >= 0) & (v <= 1)).all(), (
            f"{col} outside [0, 1]: {v[~((v >= 0) & (v <= 1))][:5]}"
        )
    for col in ("expected_purchases", "expected_spend", "clv", "growth_score"):
        v = scores[col].to_numpy(dtype=float)
        assert np.isfinite(v).all(), f"{col} not finite for {ids[~np.isfinite(v)].tolist()[:5]}"
    assert (scores["expected_purchases"] >= 0).all()
    assert scores["tier"].notna().all() and set(scores["tier"]) <= TIERS, f"tiers: {set(scores['tier'])}"
    assert scores["stage"].notna().all() and scores["action"].notna().all()
    # reasons may be empty (a BTYD churn model gives no contributions and no fact may apply): not checked
    for group, members in built.notes.items():  # each shape's special customers, by exact id
        present = [m for m in members if m in known]
        assert set(present) <= set(ids), f"{group}: {sorted(set(present) - set(ids))} not scored"
    if "lapsed" in built.notes:
        # a subscription shop: who skipped a month is gone, where BG/NBD keeps them alive. The
        # backtest sees it and the totals take the learned models' own level (BTYD's: +18 %)
        tx = built.frames["transactions"]
        after = tx[(tx["ts"] > as_of) & (tx["ts"] <= as_of + pd.Timedelta(days=shape.horizon_days))]
        for col, realized in (
            ("expected_purchases", after.groupby("customer_id")["ts"].nunique().sum()),
            ("expected_spend", after["amount"].sum()),
        ):
            assert scores[col].sum() == pytest.approx(realized, rel=0.10), (col, scores[col].sum(), realized)
        lapsed = scores[ids.isin(built.notes["lapsed"])]
        assert lapsed["p_churn"].min() > 0.9, lapsed["p_churn"].describe()
    if "whales" in built.notes:
        # 1e6 lines must not inflate everyone else: ordinary customers buy about 35 a line
        small = scores[~ids.isin(built.notes["whales"])]
        assert small["clv"].median() < 2_000 and small["expected_spend"].max() < 1e5, small[
            ["clv", "expected_spend"]
        ].describe()


# --------------------------------------------------------------------------- HTTP


def _iso(ts: Any) -> str:
    return pd.Timestamp(ts).isoformat()


def _none(v: Any) -> Any:
    return None if v is None or (isinstance(v, float) and math.isnan(v)) else v


def history_body(built: Any, cid: str, as_of: str) -> dict[str, Any]:
    """A /score body with one customer's whole history up to as-of, as a CRM would send it."""
    end = pd.Timestamp(as_of) + pd.Timedelta(days=1)
    customer: dict[str, Any] = {"customer_id": cid}
    tx = built.frames["transactions"]
    tx = tx[(tx["customer_id"] == cid) & (pd.to_datetime(tx["ts"]) < end)]
    if len(tx):
        customer["transactions"] = [
            {
                "ts": _iso(r["ts"]),
                "amount": float(r["amount"]),
                **({"order_id": _none(r["order_id"])} if "order_id" in tx else {}),
            }
            for _, r in tx.iterrows()
        ]
    ev = built.frames.get("events")
    if ev is not None:
        ev = ev[(ev["customer_id"] == cid) & (pd.to_datetime(ev["ts"]) < end)]
        if len(ev):
            customer["events"] = [
                {"ts": _iso(r["ts"]), "event_type": r["event_type"], "value": _none(r["value"])}
                for _, r in ev.iterrows()
            ]
    cu = built.frames.get("customers")
    if cu is not None:
        row = cu[cu["customer_id"] == cid]
        if len(row):
            row = row.iloc[0]
            if "signup_ts" in cu:
                customer["signup_ts"] = _iso(row["signup_ts"])
            attrs = [c for c in cu.columns if c not in ("customer_id", "signup_ts")]
            if attrs:
                customer["attributes"] = {a: _none(row[a]) for a in attrs}
    return {"as_of": as_of, "customers": [customer]}


def _check_http(built: Any, shape: Any, tracking_uri: str, batch: pd.DataFrame, service_app: Any) -> None:
    env = {
        "CHURNCLV_MODEL_URI": "models:/churnclv@champion",
        "MLFLOW_TRACKING_URI": tracking_uri,
        "CHURNCLV_API_KEY": API_KEY,
        "CHURNCLV_RELOAD_INTERVAL_S": "0",
        "CHURNCLV_GC_FREEZE": "0",
        "BENTOML_DO_NOT_TRACK": "True",
    }
    body = history_body(built, built.probe, shape.as_of)
    with service_app.running(env) as client:
        r = client.post("/score", json=body, headers={"X-API-Key": API_KEY})
        info = client.post("/model_info", headers={"X-API-Key": API_KEY}).json()
    # a run without a backtest at its horizon says so to the CRM too
    assert info["backtested"] is shape.backtested, info
    assert (info["backtest_note"] is None) is shape.backtested, info
    assert r.status_code == 200, f"/score: {r.status_code} {r.text[:500]}"
    (score,) = r.json()["scores"]
    assert "error" not in score, f"/score: {score}"
    assert score["customer_id"] == built.probe
    assert 0 <= score["p_churn"] <= 1 and 0 <= score["p_alive"] <= 1
    assert all(math.isfinite(score[c]) for c in ("expected_purchases", "expected_spend", "clv", "growth_score"))
    assert score["tier"] in TIERS
    # one scorer for every path: the HTTP answer equals the batch row of the same customer
    ref = batch.set_index("customer_id").loc[built.probe]
    for col in ("p_churn", "p_alive", "expected_purchases", "expected_spend", "clv"):
        assert score[col] == pytest.approx(float(ref[col]), rel=1e-6, abs=1e-9), (col, score[col], ref[col])
    assert (score["tier"], score["stage"]) == (ref["tier"], ref["stage"])


# --------------------------------------------------------------------------- the zoo


@pytest.fixture(autouse=True)
def _restore_mlflow_uris() -> Iterator[None]:
    """The CLI points MLflow's process-wide tracking and registry URIs at each case's store: put them
    back, so tests that run later in this process see their own store."""
    import mlflow

    tracking, registry = mlflow.get_tracking_uri(), mlflow.get_registry_uri()
    yield
    mlflow.set_tracking_uri(tracking)
    mlflow.set_registry_uri(registry)


@pytest.fixture(scope="module")
def empty_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An MLflow SQLite database with its schema migrated and nothing else. Each shape gets its own
    copy (a store of its own) without paying the ~5 s of migrations again."""
    from mlflow.tracking import MlflowClient

    db = tmp_path_factory.mktemp("zoo-store-template") / "mlflow.db"
    MlflowClient(tracking_uri=f"sqlite:///{db}").search_experiments()  # creates and migrates the schema
    return db


@pytest.mark.parametrize("shape", shapes.SHAPES, ids=[s.name for s in shapes.SHAPES])
def test_zoo(shape: Any, tmp_path: Path, empty_store: Path, service_app: Any) -> None:
    built = shape.build(tmp_path / "raw", shape.seed)
    config = tmp_path / "fast.toml"
    config.write_text(FAST_CONFIG)
    work, out = tmp_path / "work", tmp_path / "scores"
    uri = f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}"
    (tmp_path / "mlruns").mkdir()
    shutil.copy2(empty_store, tmp_path / "mlruns" / "mlflow.db")
    steps = [
        ("validate", ["validate", "--data", str(built.folder), "--out", str(work)]),
        (
            "train",
            [
                "train",
                "--data",
                str(work / "clean"),
                "--trusted",
                "--as-of",
                shape.as_of,
                "--horizon-days",
                str(shape.horizon_days),
                "--config",
                str(config),
                "--tracking-uri",
                uri,
            ],
        ),
        (
            "score-batch",
            [
                "score-batch",
                "--data",
                str(work / "clean"),
                "--trusted",
                "--as-of",
                shape.as_of,
                "--out",
                str(out),
                "--tracking-uri",
                uri,
            ],
        ),
    ]
    said = {}
    for name, args in steps:  # a step runs only when the ones before it exited 0
        result = _invoke(args)
        if result.exit_code == 0:
            said[name] = result.output
            continue
        if shape.expect == shapes.OK:
            pytest.fail(f"{name}: exit {result.exit_code}: {_error_line(result)}", pytrace=False)
        _check_clean_stop(shape, name, result)
        return
    if shape.expect != shapes.OK:
        pytest.fail(
            f"every step exited 0, but the shape should stop with an error matching {shape.expect!r}", pytrace=False
        )
    scores = read_scores(out, shape.as_of)
    _check_scores(scores, built, shape)
    if "lapsed" in built.notes:  # the subscription shop: train says which level the totals take, and why
        assert "totals:    the learned models' own level (purchases: mean |error|" in said["train"], said["train"]
    _check_http(built, shape, uri, scores, service_app)
