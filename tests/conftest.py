"""Fixtures shared across the test packages: small generated worlds, built once per session."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from churnclv.generate import WorldConfig, generate_world_to_parquet

# The small world's timeline: data to 2025-12-31; train as of TRAIN_AS_OF with a 90-day horizon.
TRAIN_AS_OF = pd.Timestamp("2025-10-02")
HORIZON = 90


@pytest.fixture(scope="session")
def small_world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A generated world of 1,500 customers as Parquet files (with truth.parquet)."""
    out = tmp_path_factory.mktemp("world")
    generate_world_to_parquet(WorldConfig(n_customers=1_500, seed=11), out, horizon_days=HORIZON)
    return out


@pytest.fixture(scope="session")
def small_frames(small_world: Path) -> dict[str, pd.DataFrame]:
    return {n: pd.read_parquet(small_world / f"{n}.parquet") for n in ("transactions", "events", "customers")}


@pytest.fixture(scope="session")
def trained_store(small_world: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """A real MLflow store (SQLite + local artifacts) holding one trained model, version 1, with the
    aliases ``champion`` and ``challenger``. Trained on :func:`small_world` as of TRAIN_AS_OF with a
    fast configuration. Returns the tracking URI, the model URI and the training result."""
    from churnclv.models.scorer import ScorerConfig
    from churnclv.training.pipeline import RunConfig, TrainConfig, train_and_log

    store = tmp_path_factory.mktemp("mlruns")
    uri = f"sqlite:///{store}/mlflow.db"
    config = RunConfig(
        train=TrainConfig(horizon_days=HORIZON, n_folds=2, train_cutoffs=3),
        scorer=ScorerConfig(horizon_days=HORIZON, gbm_rounds=80, seed=1),
    )
    result = train_and_log(small_world, TRAIN_AS_OF, config, tracking_uri=uri)
    return {"tracking_uri": uri, "model_uri": "models:/churnclv@champion", "result": result,
            "store": store, "config": config}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Run the Spark tests first, whatever files are selected.

    Launching Spark's Java gateway forks this process; after the in-process BentoML service of the
    HTTP tests has run in it, the forked child segfaults (seen with pyspark 4 and bentoml 1.4:
    ``JAVA_GATEWAY_EXITED``), so the Spark session has to start before them.
    """
    items.sort(key=lambda item: 0 if "spark" in item.nodeid else 1)  # stable: keeps the order within each group
