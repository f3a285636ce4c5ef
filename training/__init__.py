"""Training pipeline: backtests, model selection, MLflow tracking, registry (churnclv.training)."""
