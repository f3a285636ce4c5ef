"""The MLflow pyfunc model, logged as "models from code": MLflow copies this file into the model
and runs it at load time, so the model holds no pickled code.

It wraps :class:`churnclv.models.scorer.Scorer` (saved as JSON + booster text in the artifact
``scorer``). Input: a feature frame (one row per customer as of a date); output: the score frame.
Notebooks score through it (`mlflow.pyfunc.load_model`); batch and HTTP load the saved scorer itself
(:mod:`churnclv.serving.model`).
"""

from __future__ import annotations

from typing import Any

import mlflow
import pandas as pd
from mlflow.pyfunc import PythonModel, PythonModelContext


class ChurnCLVModel(PythonModel):
    """Scores a feature frame with the scorer stored in the model's ``scorer`` artifact."""

    def load_context(self, context: PythonModelContext) -> None:
        """Load the scorer from the model's ``scorer`` artifact (once, when MLflow loads the model)."""
        from churnclv.models.scorer import Scorer
        from churnclv.names import SCORER_ARTIFACT

        self.scorer = Scorer.load(context.artifacts[SCORER_ARTIFACT])

    def predict(
        self, context: PythonModelContext, model_input: pd.DataFrame, params: dict[str, Any] | None = None
    ) -> pd.DataFrame:
        """Score a feature frame; ``params={"reasons": False}`` skips the reasons."""
        params = params or {}
        scores = self.scorer.score(model_input, reasons=bool(params.get("reasons", True)))
        # lists are not an MLflow column type: reasons travel as one "; "-joined string
        scores["reasons"] = scores["reasons"].map("; ".join)
        return scores


mlflow.models.set_model(ChurnCLVModel())
