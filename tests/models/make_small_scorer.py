"""Write the small committed scorer of the unit tests: ``tests/models/small_scorer/``.

A real :class:`~churnclv.models.scorer.Scorer` (BG/NBD, Gamma-Gamma, three LightGBM models and the
tier policy) fitted on a generated world of 400 customers with 20 boosting rounds, saved in the
pickle-free format (``scorer.json`` plus LightGBM model text). The unit tests load it with
``Scorer.load`` instead of fitting one; the tests of fitting itself fit their own (marked ``slow``).

Regenerate it after a change of the scorer's file format or of what a fit produces::

    .venv/bin/python tests/models/make_small_scorer.py
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import pandas as pd

from churnclv.features import compute_features, compute_training_frame
from churnclv.generate import generate_world_to_parquet
from churnclv.generator.world import WorldConfig
from churnclv.models.scorer import Scorer
from churnclv.models.scorer_config import ScorerConfig

FOLDER = Path(__file__).with_name("small_scorer")
AS_OF = pd.Timestamp("2025-10-02")
HORIZON = 90


def make_small_scorer(folder: Path = FOLDER) -> Path:
    """Fit the small scorer and write it to ``folder`` (replaced whole)."""
    with tempfile.TemporaryDirectory() as tmp:
        world = Path(tmp)
        generate_world_to_parquet(WorldConfig(n_customers=400, seed=11), world, horizon_days=HORIZON)
        train = compute_training_frame(world, AS_OF, HORIZON, n_cutoffs=3)
        snapshot = compute_features(world, AS_OF)
    scorer = Scorer(config=ScorerConfig(horizon_days=HORIZON, gbm_rounds=20, seed=3)).fit(train, snapshot, as_of=AS_OF)
    shutil.rmtree(folder, ignore_errors=True)
    return scorer.save(folder)


if __name__ == "__main__":
    print(f"wrote {make_small_scorer()}")
