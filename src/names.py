"""The names and defaults that training, serving and the CLI share: defined here once.

The registered model, its aliases, the MLflow experiment and the default tracking store (a SQLite
database with artifacts under ``mlruns/``, see the README).
"""

from __future__ import annotations

__all__ = [
    "AS_OF_WARNING_DAYS",
    "CHALLENGER",
    "CHAMPION",
    "DEFAULT_MODEL_URI",
    "DEFAULT_TRACKING_URI",
    "EXPERIMENT",
    "MAX_DAYS_AFTER_DATA",
    "MODEL_NAME",
    "MODEL_NAME_PATTERN",
    "SCORER_ARTIFACT",
    "SCORE_NUMBERS",
    "model_uri",
]

MODEL_NAME = "churnclv"  # the registered model (one per data set: ``--model-name``, ``[train] model_name``)
# what a registered model name may be: it goes into ``models:/NAME@ALIAS`` URIs and registry filters
MODEL_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$"
CHAMPION = "champion"  # the alias the batch job and the HTTP service score with
CHALLENGER = "challenger"  # the alias of a trained version that has not (yet) passed the gate
EXPERIMENT = "churnclv"  # the MLflow experiment of training runs
DEFAULT_TRACKING_URI = "sqlite:///mlruns/mlflow.db"


def model_uri(name: str = MODEL_NAME, alias: str = CHAMPION) -> str:
    """The registry URI of a model's alias, ``models:/NAME@ALIAS``."""
    return f"models:/{name}@{alias}"


DEFAULT_MODEL_URI = model_uri()
SCORER_ARTIFACT = "scorer"  # the logged model's artifact holding the saved Scorer folder
# scores further than this many days from the model's training as-of, either way, carry a warning:
# the batch's limit and the HTTP service's default (CHURNCLV_AS_OF_WARNING_DAYS)
AS_OF_WARNING_DAYS = 90
# an as-of further than this after the last line of the data is refused (a typo of the year, or
# data that stopped): score-batch (--max-days-after-data), validate and train
MAX_DAYS_AFTER_DATA = 31
#: The number columns every score carries, always a number (the batch output's float64 columns but the
#: nullable ones; ``tests/serving/test_batch_targeting.py`` checks them against ``OUTPUT_SCHEMA``).
SCORE_NUMBERS: tuple[str, ...] = (
    "p_churn",
    "p_alive",
    "expected_purchases",
    "expected_spend",
    "clv",
    "historic_clv",
    "total_clv",
    "clv_at_risk",
    "growth_score",
)
