"""Two data sets trained into one MLflow store under two model names, through the command line."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from churnclv.cli import cli
from churnclv.datasets import write_cdnow

# fast, and without the hybrid candidate: the run must not log churn_model=hybrid
FAST_CONFIG = """
[train]
n_folds = 3
train_cutoffs = 3
candidates = ["recency", "btyd", "gbm"]

[scorer]
gbm_rounds = 40
seed = 1
"""
CDNOW_AS_OF, GEN_AS_OF = "1997-09-30", "2025-10-02"


def invoke(*args: str) -> Any:
    """``churnclv ARGS`` in this process; stdout and stderr apart."""
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


@pytest.fixture(scope="session")
def two_data_sets(small_world: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """CDNOW's 10% sample (transactions only; 2 of the 3 folds fit) trained first, with ``-q``, as
    model ``cdnow`` into a new store; then the small generated world (customer attributes, events)
    as model ``gen`` into the same store, with ``--progress``. Returns the folders and both results."""
    root = tmp_path_factory.mktemp("two_data_sets")
    cdnow = root / "cdnow"
    write_cdnow(cdnow, "sample")
    config = root / "fast.toml"
    config.write_text(FAST_CONFIG)
    uri = f"sqlite:///{root}/mlruns/mlflow.db"
    common = ["--trusted", "--config", str(config), "--tracking-uri", uri]
    with pytest.MonkeyPatch.context() as mp:
        mp.delenv("MLFLOW_LOGGING_LEVEL", raising=False)  # the CLI sets it; restored afterwards
        quiet = invoke("-q", "train", "--data", str(cdnow), "--as-of", CDNOW_AS_OF, "--model-name", "cdnow", *common)
        loud = invoke(
            "train", "--data", str(small_world), "--as-of", GEN_AS_OF, "--model-name", "gen", "--progress", *common
        )
    return {"uri": uri, "root": root, "cdnow": cdnow, "gen": small_world, "quiet": quiet, "loud": loud}
