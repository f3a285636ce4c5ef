"""The names and defaults that training, serving and the CLI share: defined here once.

The registered model, its aliases, the MLflow experiment and the default tracking store (a SQLite
database with artifacts under ``mlruns/``, see the README).
"""

from __future__ import annotations

__all__ = [
    "CHALLENGER",
    "CHAMPION",
    "DEFAULT_MODEL_URI",
    "DEFAULT_TRACKING_URI",
    "EXPERIMENT",
    "MODEL_NAME",
    "SCORER_ARTIFACT",
]

MODEL_NAME = "churnclv"  # the registered model
CHAMPION = "champion"  # the alias the batch job and the HTTP service score with
CHALLENGER = "challenger"  # the alias of a trained version that has not (yet) passed the gate
EXPERIMENT = "churnclv"  # the MLflow experiment of training runs
DEFAULT_TRACKING_URI = "sqlite:///mlruns/mlflow.db"
DEFAULT_MODEL_URI = f"models:/{MODEL_NAME}@{CHAMPION}"
SCORER_ARTIFACT = "scorer"  # the logged model's artifact holding the saved Scorer folder
