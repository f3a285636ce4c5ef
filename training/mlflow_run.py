"""A training run logged to MLflow: params, metrics, report, the registered model and promotion."""

from __future__ import annotations

import contextlib
import json
import tempfile
import time
import warnings
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from churnclv.fingerprint import BackgroundFingerprint
from churnclv.models.inputs import model_input
from churnclv.names import CHALLENGER, EXPERIMENT, SCORER_ARTIFACT
from churnclv.training.config import Progress, RunConfig
from churnclv.training.folds import to_day
from churnclv.training.pipeline import train
from churnclv.training.reports import write_artifacts
from churnclv.training.result import TrainResult


def train_and_log(
    clean: Path | str,
    as_of: Any,
    config: RunConfig | None = None,
    *,
    tracking_uri: str | None = None,
    promote: bool = True,
    progress: Progress | None = None,
    data_fingerprint: dict[str, Any] | None = None,
) -> TrainResult:
    """:func:`train`, then log everything to MLflow, register the model (``[train] model_name``) and
    move ``challenger`` to it; with ``promote``, run the promotion check (see
    :mod:`churnclv.training.promotion`). The parameters logged are what ran: ``train.n_folds`` the
    folds that fit (``train.n_folds_requested`` the configured ones), ``scorer.*`` the fitted scorer's
    settings (``scorer.churn_model`` the selected model, not the configured one)."""
    import mlflow
    from mlflow.models import infer_signature

    from churnclv.training import promotion, registry, tracking

    config = config or RunConfig()
    say = progress or (lambda _m: None)
    name = config.train.model_name
    tracking.configure(tracking_uri)
    as_of = to_day(as_of)
    # the content fingerprint (every row read) runs beside the training, on one DuckDB thread
    fingerprinting = (
        contextlib.nullcontext(None)
        if data_fingerprint is not None
        else BackgroundFingerprint(clean, memory_limit=config.train.memory_limit)
    )
    with mlflow.start_run(run_name=f"train {name} as of {as_of:%Y-%m-%d}") as run, fingerprinting as background:
        mlflow.set_tags(
            {
                "churnclv.model_name": name,
                "churnclv.as_of": str(as_of.date()),
                "churnclv.horizon_days": config.train.horizon_days,
                "mlflow.source.git.commit": tracking.code_version(),
                "churnclv.code_version": tracking.code_version(),
            }
        )
        requested = _flat_params(config.to_dict())
        # what training decides (the folds that fit, the models selected) is logged once it ran
        mlflow.log_params({k: v for k, v in requested.items() if not _decided(k)})
        mlflow.log_param("as_of", str(as_of.date()))
        result = train(clean, as_of, config, progress=progress)
        result.run_id, result.model_name = run.info.run_id, name
        result.experiment, result.artifact_uri = EXPERIMENT, run.info.artifact_uri
        mlflow.log_params(ran_params(result, config))
        say("logging to MLflow")
        t_log = time.perf_counter()
        sample = result.scorer.metadata_["training_sample"]
        mlflow.log_params(
            {
                "data.customers": sample["customers"],
                "train.sample_fraction": sample["fraction"],
                "train.sampled_customers": sample["sampled_customers"],
            }
        )
        fingerprint = background.result() if background is not None else data_fingerprint or {}
        mlflow.log_dict(fingerprint, "data_fingerprint.json")
        for table, fp in fingerprint.items():
            mlflow.log_param(f"data.{table}.rows", fp.get("rows"))
            mlflow.log_param(f"data.{table}.sha256", fp.get("sha256_16"))
        for _, row in result.backtest.iterrows():
            for metric in [c for c in row.index if c.startswith(("churn_", "purchases_", "spend_"))]:
                if np.isfinite(row[metric]):
                    mlflow.log_metric(f"{row['candidate']}.{metric}", float(row[metric]), step=int(row["fold"]))
        for cand, row in result.summary.iterrows():
            for metric, value in row.items():
                if np.isfinite(value):
                    mlflow.log_metric(f"mean.{cand}.{metric}", float(value))
        selected_metrics = selected_means(result)
        mlflow.log_metrics(selected_metrics)
        mlflow.log_dict(result.selected, "selected.json")
        plan = result.plan.to_dict() if result.plan is not None else {}
        if result.readiness is not None:
            mlflow.log_dict(result.readiness.to_dict(), "readiness.json")
        mlflow.log_dict(
            {"plan": plan, "dropped": result.dropped, "fit_notes": result.scorer.metadata_.get("fit_notes", [])},
            "training_notes.json",
        )
        mlflow.set_tags(
            {
                "churnclv.backtested": str(plan.get("backtested", True)).lower(),
                "churnclv.backtest_horizon_days": str(plan.get("backtest_horizon_days")),
                "churnclv.dropped_subfits": str(len(result.dropped)),
            }
        )
        if plan.get("note"):
            mlflow.set_tag("churnclv.backtest_note", plan["note"][:5000])
        mlflow.log_metrics({f"timing.{k}": v for k, v in result.timings.items()})
        with tempfile.TemporaryDirectory() as tmp:
            art = write_artifacts(result, Path(tmp) / "report")
            for p in art.values():
                mlflow.log_artifact(str(p), artifact_path="report")
            scorer_dir = result.scorer.save(Path(tmp) / SCORER_ARTIFACT)
            rows = result.example_features if result.example_features is not None else result.snapshot_features
            example = model_input(rows.head(20))
            out = result.scorer.score(example)
            out["reasons"] = out["reasons"].map("; ".join)
            with warnings.catch_warnings():
                # integer outputs (tier_level) are never missing; MLflow's hint about them is noise here
                warnings.filterwarnings("ignore", message="Hint: Inferred schema contains integer")
                signature = infer_signature(example, out, params={"reasons": True})
            info = mlflow.pyfunc.log_model(
                name="model",
                python_model=str(Path(__file__).with_name("model_code.py")),
                artifacts={SCORER_ARTIFACT: str(scorer_dir)},
                signature=signature,
                input_example=example.head(3),
                pip_requirements=_requirements(),
            )
        tags = registry.version_tags(
            as_of=str(as_of.date()),
            horizon_days=config.train.horizon_days,
            run_id=run.info.run_id,
            selected=result.selected,
            metrics=selected_metrics,
            backtested=result.plan is None or result.plan.backtested,
        )
        say(f"registering the model {name}")
        with tracking.registry_prints_off():  # the summary says which version it is
            version = registry.register_version(info.model_uri, tags, name)
        result.model_version = version
        registry.set_alias(CHALLENGER, version, name)
        if promote:
            decision = promotion.promote(
                tolerance=config.train.promote_tolerance,
                name=name,
                data=clean,  # the champion is scored on the challenger's folds it has not seen
                memory_limit=config.train.memory_limit,
            )
            result.promotion = decision.to_dict()  # promote() logged it in this run
        result.timings["log_and_register_s"] = time.perf_counter() - t_log
        mlflow.log_metric("timing.log_and_register_s", result.timings["log_and_register_s"])
    return result


def _decided(key: str) -> bool:
    """A parameter training decides: the folds that fit and the fitted scorer's settings."""
    return key == "train.n_folds" or key.startswith("scorer.")


def ran_params(result: TrainResult, config: RunConfig) -> dict[str, Any]:
    """The parameters training decided, as they ran: the folds that fit (and the configured count), and
    the fitted scorer's settings (the selected models, the churn blend weight, the label horizon)."""
    return {
        "train.n_folds": len(result.folds),
        "train.n_folds_requested": config.train.n_folds,
        **_flat_params({"scorer": asdict(result.scorer.config_)}),
    }


def selected_means(result: TrainResult) -> dict[str, float]:
    """The backtest means of the selected model per target: what promotion compares. Empty when the
    run is not backtested at its own horizon (means at another horizon do not compare)."""
    out: dict[str, float] = {}
    if result.plan is not None and not result.plan.backtested:
        return out
    for target, cand in result.selected.items():
        if cand not in result.summary.index:
            continue
        prefix = {"churn": "churn_", "purchases": "purchases_", "spend": "spend_"}[target]
        for metric, value in result.summary.loc[cand].items():
            if metric.startswith(prefix) and np.isfinite(value):
                out[f"selected.{metric}"] = float(value)
    return out


def _requirements() -> list[str]:
    from importlib.metadata import version

    pkgs = ["pandas", "numpy", "lightgbm", "lifetimes", "scikit-learn", "scipy", "ibis-framework", "duckdb", "pyarrow"]
    return [f"{p}=={version(p)}" for p in pkgs] + ["churnclv"]


def _flat_params(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(_flat_params(v, key + "."))
        else:
            out[key] = json.dumps(v) if isinstance(v, (list, tuple)) else v
    return out
