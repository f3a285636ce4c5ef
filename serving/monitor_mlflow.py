"""The monitor's link to MLflow: what it reads of a model version, and what it logs for it.

Read: the version's backtest churn AUC (its ``metrics`` tag, written at training) and the training
run's ``features.zero_amount_is_purchase`` (what a purchase is, for the realised labels).

Logged: one run per model version in the training experiment, named ``monitor <name> v<version>``
and tagged ``churnclv.monitor.model`` / ``churnclv.monitor.version``, found again on every monitor
run, so each version has one production history. Quality metrics (``quality.churn_auc`` ...) are logged
at step ``YYYYMMDD`` of the scored partition, drift metrics (``drift.*``) at the step of this week's
partition, with timestamps fixed by those dates: a rerun logs the same points, which MLflow keeps once.
``monitor.json`` and ``report.md`` go under the artifacts ``monitoring/dt=DATE/``. The version gets
tags ``monitor.as_of``, ``monitor.partition``, ``monitor.quality`` (JSON), ``monitor.breaches`` (JSON)
and ``monitor.run_id``, and a description line starting ``Monitored:``, so the registry shows how it did
in production.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from churnclv.errors import ChurnclvError
from churnclv.names import EXPERIMENT
from churnclv.redaction import error_summary, redact_url

__all__ = ["MonitorTrackingError", "VersionFacts", "log_version", "open_client", "version_facts"]

RUN_TAG_MODEL = "churnclv.monitor.model"
RUN_TAG_VERSION = "churnclv.monitor.version"
QUALITY_METRICS = (
    "churn_auc",
    "churn_brier",
    "churn_ece",
    "realized_churn_rate",
    "predicted_churn_rate",
    "purchases_agg_pct_error",
    "spend_agg_pct_error",
    "spend_gini",
)
_DESCRIPTION = "Monitored:"
_UNSAFE = re.compile(r"[^A-Za-z0-9_\-. /]")


class MonitorTrackingError(ChurnclvError, RuntimeError):
    """The tracking store cannot be read or written (the message names it, redacted, and the fix)."""


@dataclass(frozen=True)
class VersionFacts:
    """What the monitor reads of a registered version."""

    backtest_auc: float | None
    zero_amount_is_purchase: bool | None
    run_id: str | None


def open_client(tracking_uri: str) -> Any:
    """An MLflow client of ``tracking_uri`` (tracking and registry), touching no global state."""
    from mlflow.tracking import MlflowClient

    try:
        return MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    except Exception as exc:  # noqa: BLE001 - an unsupported URI: MLflow's own error, raised at once
        raise _fail("open the store", tracking_uri, exc) from None


def _fail(what: str, tracking_uri: str, exc: Exception) -> MonitorTrackingError:
    return MonitorTrackingError(
        f"MLflow at {redact_url(tracking_uri)}: cannot {what} ({error_summary(exc)}): check --tracking-uri / "
        "MLFLOW_TRACKING_URI and that its database is up, then run the monitor again"
    )


def version_facts(client: Any, tracking_uri: str, name: str, version: str) -> VersionFacts:
    """The backtest AUC and purchase rule of ``name`` v``version`` (Nones when the registry lacks them)."""
    from mlflow.exceptions import MlflowException

    try:
        mv = client.get_model_version(name, version)
    except MlflowException:
        return VersionFacts(None, None, None)  # a version since deleted: its scores are still checked
    except Exception as exc:  # noqa: BLE001 - the store is unreachable (a database driver's own errors)
        raise _fail(f"read version {version} of model {name!r}", tracking_uri, exc) from None
    metrics = json.loads((mv.tags or {}).get("metrics") or "{}")
    auc = metrics.get("selected.churn_auc")
    zero = None
    if mv.run_id:
        try:
            value = client.get_run(mv.run_id).data.params.get("features.zero_amount_is_purchase")
        except MlflowException:
            value = None
        zero = None if value is None else value.lower() == "true"
    return VersionFacts(None if auc is None else float(auc), zero, mv.run_id)


def _step(day: str) -> int:
    return int(day.replace("-", ""))


def _ms(day: str) -> int:
    return int(dt.datetime.combine(dt.date.fromisoformat(day), dt.time(), dt.UTC).timestamp() * 1000)


def _metrics(doc: dict[str, Any], version: dict[str, Any]) -> list[Any]:
    """The metric points of one version's run (see the module doc)."""
    from mlflow.entities import Metric

    out = []
    for p in doc["partitions"]:
        if p["model"]["version"] != version["version"] or p["model"]["name"] != version["name"]:
            continue
        step, ts = _step(p["as_of"]), _ms(p["window_end"])
        for key in QUALITY_METRICS:
            value = p["metrics"].get(key)
            if value is not None:
                out.append(Metric(f"quality.{key}", float(value), ts, step))
        for t in p["tiers"]:
            tier = _UNSAFE.sub("_", str(t["tier"]))
            out.append(Metric(f"quality.tier.{tier}.realized_churn", t["realized_churn"], ts, step))
            if t["revenue_share"] is not None:
                out.append(Metric(f"quality.tier.{tier}.revenue_share", t["revenue_share"], ts, step))
    d = doc["drift"]
    if d is not None and d["model"]["version"] == version["version"] and d["model"]["name"] == version["name"]:
        step, ts = _step(d["as_of"]), _ms(d["as_of"])
        points = {f"drift.feature.{r['column']}.psi": r["psi"] for r in d["features"]}
        points.update({f"drift.score.{r['column']}.psi": r["psi"] for r in d["scores"]})
        points.update(
            {
                "drift.max_feature_psi": d["max_feature_psi"],
                "drift.tier_mix.psi": d["tier_mix"]["psi"],
                "drift.unseen_share": d["unseen_share"],
            }
        )
        out += [Metric(_UNSAFE.sub("_", k), float(v), ts, step) for k, v in points.items() if v is not None]
    mine = [b for b in doc["breaches"] if b["model"] == {"name": version["name"], "version": version["version"]}]
    out.append(Metric("monitor.breaches", float(len(mine)), _ms(doc["as_of"]), _step(doc["as_of"])))
    return out


def _run_id(client: Any, experiment_id: str, name: str, version: str) -> str:
    found = client.search_runs(
        [experiment_id],
        filter_string=f"tags.`{RUN_TAG_MODEL}` = '{name}' and tags.`{RUN_TAG_VERSION}` = '{version}'",
        max_results=1,
    )
    if found:
        return str(found[0].info.run_id)
    run = client.create_run(
        experiment_id,
        run_name=f"monitor {name} v{version}",
        tags={RUN_TAG_MODEL: name, RUN_TAG_VERSION: version, "churnclv.kind": "monitor"},
    )
    client.set_terminated(run.info.run_id)
    return str(run.info.run_id)


def _describe(client: Any, name: str, version: str, line: str) -> None:
    mv = client.get_model_version(name, version)
    kept = [x for x in (mv.description or "").splitlines() if not x.startswith(_DESCRIPTION)]
    client.update_model_version(name, version, description="\n".join([*kept, line]).strip())


def log_version(client: Any, tracking_uri: str, doc: dict[str, Any], version: dict[str, Any], files: Path) -> str:
    """Log ``doc``'s figures of one model version (an entry of ``doc["model_versions"]``) to its monitor
    run and tag the registered version; ``files``: the folder holding ``monitor.json`` and ``report.md``.
    Returns the run id."""
    from mlflow.exceptions import MlflowException

    name, number = version["name"], version["version"]
    try:
        exp = client.get_experiment_by_name(EXPERIMENT)
        exp_id = exp.experiment_id if exp is not None else client.create_experiment(EXPERIMENT)
        run_id = _run_id(client, exp_id, name, number)
        points = _metrics(doc, version)
        for i in range(0, len(points), 500):  # MLflow's batch limit is 1,000 metrics
            client.log_batch(run_id, metrics=points[i : i + 500])
        for f in ("monitor.json", "report.md"):
            client.log_artifact(run_id, str(files / f), artifact_path=f"monitoring/dt={doc['as_of']}")
    except MlflowException as exc:
        raise _fail(f"log the monitor run of {name} v{number}", tracking_uri, exc) from None
    except Exception as exc:  # noqa: BLE001 - the store is unreachable (a database driver's own errors)
        raise _fail(f"log the monitor run of {name} v{number}", tracking_uri, exc) from None
    latest = version.get("latest_quality")
    mine = [b for b in doc["breaches"] if b["model"] == {"name": name, "version": number}]
    tags = {
        "monitor.as_of": doc["as_of"],
        "monitor.partition": "" if latest is None else latest["partition"],
        "monitor.quality": json.dumps(latest, sort_keys=True)[:5000],
        "monitor.breaches": json.dumps([b["check"] for b in mine])[:5000],
        "monitor.run_id": run_id,
    }
    auc = None if latest is None else latest["metrics"].get("churn_auc")
    line = (
        f"{_DESCRIPTION} as of {doc['as_of']}, "
        + (
            "no closed partition yet"
            if latest is None
            else f"{latest['partition']} churn AUC {auc if auc is None else round(auc, 3)}"
        )
        + f", {len(mine)} breach(es)"
    )
    try:
        for k, v in tags.items():
            client.set_model_version_tag(name, number, k, v)
        _describe(client, name, number, line)
    except MlflowException:
        pass  # a version since deleted from the registry: the run keeps its history
    except Exception as exc:  # noqa: BLE001 - the store is unreachable
        raise _fail(f"tag version {number} of model {name!r}", tracking_uri, exc) from None
    return run_id
