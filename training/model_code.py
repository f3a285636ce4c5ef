"""The MLflow pyfunc model, logged as "models from code": MLflow copies this file into the model
and runs it at load time, so the model holds no pickled code.

It wraps :class:`churnclv.models.scorer.Scorer` (saved as JSON + booster text in the artifact
``scorer``). Input: a feature frame (one row per customer as of a date); output: the score frame.
Batch, HTTP and notebooks all score through this one model.
"""

from __future__ import annotations

from typing import Any

import mlflow
import pandas as pd
from mlflow.pyfunc import PythonModel, PythonModelContext


class ChurnCLVModel(PythonModel):
    """Scores a feature frame with the scorer stored in the model's ``scorer`` artifact."""

    def load_context(self, context: PythonModelContext) -> None:
        from churnclv.models.scorer import Scorer

        self.scorer = Scorer.load(context.artifacts["scorer"])

    def predict(
        self, context: PythonModelContext, model_input: pd.DataFrame, params: dict[str, Any] | None = None
    ) -> pd.DataFrame:
        params = params or {}
        scores = self.scorer.score(model_input, reasons=bool(params.get("reasons", True)))
        # lists are not an MLflow column type: reasons travel as one "; "-joined string
        scores["reasons"] = scores["reasons"].map(lambda r: "; ".join(r))
        return scores


mlflow.models.set_model(ChurnCLVModel())
