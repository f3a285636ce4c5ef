"""Fixtures of the HTTP service tests: a private copy of the trained store, the batch job's output,
the service in-process (ASGI), and request bodies built from the small world's histories."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pandas as pd
import pytest

from churnclv.campaigns.targeting import CampaignTargeting, PastCampaign
from churnclv.models.tier_config import default_tier_config

AS_OF = "2025-10-02"
CAMPAIGN = "crm-pilot"
API_KEY = "test-key-0123456789abcdef"
HEADERS = {"X-API-Key": API_KEY}
# small limits keep the limit tests cheap; the consistency test sends pages of MAX_CUSTOMERS
MAX_CUSTOMERS = 100
MAX_HISTORY_ROWS = 1_000
MAX_BODY_BYTES = 4_000_000


@pytest.fixture(scope="session")
def serving_store(trained_store: dict, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """A private copy of the trained store's registry (tests here move aliases and add versions;
    the artifacts stay where the shared store wrote them and are only read)."""
    folder = tmp_path_factory.mktemp("serving-mlruns")
    shutil.copy2(Path(trained_store["store"]) / "mlflow.db", folder / "mlflow.db")
    return {
        "tracking_uri": f"sqlite:///{folder}/mlflow.db",
        "model_uri": "models:/churnclv@champion",
        "scorer": trained_store["result"].scorer,
    }


@pytest.fixture(scope="session")
def batch_out(serving_store: dict, small_world: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The batch job's output folder for AS_OF (scores, features.parquet, LATEST): the reference."""
    from churnclv.serving.batch import run_batch

    out = tmp_path_factory.mktemp("batch-out")
    run_batch(
        clean=small_world,
        as_of=AS_OF,
        out=out,
        tracking_uri=serving_store["tracking_uri"],
        progress=False,
        echo=lambda _line: None,
        campaign=CAMPAIGN,  # the HTTP answers carry its arms, as the batch rows do
    )
    return out


def service_env(serving_store: dict, snapshot: Path | None, **extra: str) -> dict[str, str]:
    env = {
        "CHURNCLV_MODEL_URI": serving_store["model_uri"],
        "MLFLOW_TRACKING_URI": serving_store["tracking_uri"],
        "CHURNCLV_API_KEY": API_KEY,
        "CHURNCLV_MAX_CUSTOMERS": str(MAX_CUSTOMERS),
        "CHURNCLV_MAX_HISTORY_ROWS": str(MAX_HISTORY_ROWS),
        "CHURNCLV_MAX_BODY_BYTES": str(MAX_BODY_BYTES),
        "CHURNCLV_RELOAD_INTERVAL_S": "0",
        "CHURNCLV_GC_FREEZE": "0",  # in-process: leave the test process's collector alone
        "BENTOML_DO_NOT_TRACK": "True",
    }
    if snapshot is not None:
        env["CHURNCLV_SNAPSHOT"] = str(snapshot)
    env.update(extra)
    return env


@pytest.fixture(scope="session")
def client(serving_store: dict, batch_out: Path, service_app: SimpleNamespace) -> Iterator[Any]:
    """The service with the champion (version 1) and the batch job's snapshot, shared read-only."""
    with service_app.running(service_env(serving_store, batch_out), metrics=True) as c:
        yield c


def _iso(ts: Any) -> str | None:
    return None if pd.isna(ts) else pd.Timestamp(ts).isoformat()


def history_body(frames: dict[str, pd.DataFrame], ids: list[str], as_of: str = AS_OF) -> dict[str, Any]:
    """A ``/score`` body with the full history of ``ids`` from clean frames (as a CRM would send it)."""
    want = set(ids)
    tx = frames["transactions"][frames["transactions"]["customer_id"].isin(want)]
    ev = frames["events"][frames["events"]["customer_id"].isin(want)]
    cu = frames["customers"][frames["customers"]["customer_id"].isin(want)].set_index("customer_id")
    # iter(): a GroupBy has a ``keys`` attribute, so dict() would read it as a mapping
    tx_by = dict(iter(tx.groupby("customer_id", sort=False)))
    ev_by = dict(iter(ev.groupby("customer_id", sort=False)))
    attrs = [c for c in cu.columns if c != "signup_ts"]
    customers = []
    for cid in ids:
        row = cu.loc[cid] if cid in cu.index else None
        customer: dict[str, Any] = {"customer_id": cid}
        if row is not None:
            customer["signup_ts"] = _iso(row["signup_ts"])
            customer["attributes"] = {a: (None if pd.isna(row[a]) else str(row[a])) for a in attrs}
        t = tx_by.get(cid)
        if t is not None:
            customer["transactions"] = [
                {
                    "ts": _iso(r.ts),
                    "amount": float(r.amount),
                    "order_id": None if pd.isna(r.order_id) else r.order_id,
                    "channel": None if pd.isna(r.channel) else r.channel,
                    "category": None if pd.isna(r.category) else r.category,
                }
                for r in t.itertuples(index=False)
            ]
        e = ev_by.get(cid)
        if e is not None:
            customer["events"] = [
                {"ts": _iso(r.ts), "event_type": r.event_type, "value": None if pd.isna(r.value) else float(r.value)}
                for r in e.itertuples(index=False)
            ]
        customers.append(customer)
    return {"as_of": as_of, "customers": customers}


@pytest.fixture(scope="session")
def kit(service_app: SimpleNamespace) -> SimpleNamespace:
    """Constants and helpers of this folder (test modules cannot import conftest under importlib mode)."""
    return SimpleNamespace(
        AS_OF=AS_OF,
        API_KEY=API_KEY,
        HEADERS=HEADERS,
        MAX_CUSTOMERS=MAX_CUSTOMERS,
        MAX_HISTORY_ROWS=MAX_HISTORY_ROWS,
        history_body=history_body,
        running_service=service_app.running,
        service_env=service_env,
        SERVICE_VARS=service_app.SERVICE_VARS,
    )


def _fit_made_up_targeting(
    features: pd.DataFrame, scores: pd.DataFrame, candidates: tuple[str, ...], **kwargs: Any
) -> CampaignTargeting:
    """A targeting fitted on two made-up campaigns over this base: the effect grows with expected spend.

    ``costs``, ``no_contact`` (default: the shipped playbook's) and ``model`` (the scoring model recorded)
    may be given; other keyword arguments go to :class:`CampaignTargeting`."""
    playbook = default_tier_config().playbook
    costs = kwargs.pop("costs", playbook.costs)
    no_contact = kwargs.pop("no_contact", playbook.no_contact)
    model = kwargs.pop("model", None)
    campaigns = []
    for k in range(2):
        rng = np.random.default_rng(k)
        treated = rng.random(len(scores)) < 0.5
        spend = scores["expected_spend"].to_numpy(float)
        outcome = spend * rng.gamma(2.0, 0.5, len(spend)) + treated * (0.8 * spend - 3) + rng.normal(0, 2, len(spend))
        campaigns.append(PastCampaign.from_frames(f"past{k}", features, scores, treated, outcome, model=model))
    params = {"candidates": candidates, "uplift_params": {"num_boost_round": 20}, "min_gain_se": 0.0}
    return CampaignTargeting(**{**params, **kwargs}).fit(campaigns, costs, no_contact)


@pytest.fixture(scope="session")
def fit_targeting() -> Any:
    """:func:`_fit_made_up_targeting`, for the batch and HTTP targeting tests."""
    return _fit_made_up_targeting
