"""The weekly job: validate, score, monitor, retrain when due, score again, reload the service.

:func:`run_weekly` runs the steps of one as-of in order, each the ``churnclv`` command an operator
would type (:mod:`churnclv.weekly.invoke`), and records each in the as-of's journal
(:mod:`churnclv.weekly.journal`) as it completes; a rerun skips what is recorded. The caller holds
the output folder's lock (:mod:`churnclv.weekly.lock`).

Steps
-----
``validate``  ``churnclv validate`` into ``OUT/weekly/validated/DATE`` (or ``--work``); later
              steps read its clean tables with ``--trusted``. With ``--trusted`` the data are used
              as they are (each step still checks the value rules).
``score``     ``churnclv score-batch --resume`` with the champion (skipped while there is none).
``monitor``   ``churnclv monitor``: past partitions against what happened, drift; exit 3 = breach.
``retrain``   when due (``[weekly] retrain_every_days`` since the newest version's as-of, or no
              version yet) or on a breach of the champion's scores: ``churnclv train``, which
              registers a challenger and runs the promotion gate. A version trained as of the
              date already (a run killed after training) is not trained again: the gate
              (``churnclv models promote``) runs on it instead.
``rescore``   ``churnclv score-batch`` again when the published partition was not scored by the
              champion (it changed, or there was none at ``score``).
``reload``    ``POST /reload`` to the service (``[weekly] service_url``), a warning when it fails;
              a failed reload is not recorded, so running the same command again retries it.
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
import time
from collections.abc import Callable
from typing import Any

from churnclv.config_schema import read_run_config
from churnclv.ingest import validated_counts
from churnclv.monitoring.thresholds import parse_monitor
from churnclv.names import MODEL_NAME
from churnclv.redaction import redact_text
from churnclv.serving.snapshots import LATEST, MANIFEST_FILE, partition_name, partitions, read_latest, scores_dir
from churnclv.training.config import RunConfig
from churnclv.weekly.errors import WeeklyStepError
from churnclv.weekly.invoke import Invocation, Resolve, invoke, takes_option
from churnclv.weekly.journal import Journal, validated_dir, weekly_dir
from churnclv.weekly.registry_view import Registry
from churnclv.weekly.reload import ReloadOutcome, reload_service
from churnclv.weekly.request import StepLine, WeeklyRequest, WeeklyResult
from churnclv.weekly.retention import prune
from churnclv.weekly.source import source_identity
from churnclv.weekly.triggers import not_due_text, retrain_decision

__all__ = ["MONITOR_BREACH", "STEPS", "run_weekly"]

STEPS = ("validate", "score", "monitor", "retrain", "rescore", "reload")
MONITOR_BREACH = 3  # churnclv monitor's exit status when a threshold is breached

Hook = Callable[[str, str], None]  # (step, "before" | "after"): fault injection for tests and drills


class _Run:
    def __init__(
        self,
        request: WeeklyRequest,
        resolve: Resolve,
        registry: Registry,
        echo: Callable[[str], Any],
        hook: Hook | None,
    ) -> None:
        self.request = request
        self.resolve = resolve
        self.registry = registry
        self.echo: Callable[[str], Any] = lambda line: echo(redact_text(line))  # a URL may hold a password
        self.hook = hook or (lambda step, when: None)
        self.journal = Journal.open(request.out, request.as_of)
        self.lines: list[StepLine] = []
        self.source_seen = None if request.trusted else source_identity(request.data)

    # --- the frame of every step

    def step(self, name: str, body: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        done = self.journal.steps.get(name)
        if done is not None:
            self.echo(f"== {name}: done in an earlier run of {self.request.day}, skipped ({done['outcome']})")
            self.lines.append(StepLine(name, False, float(done["seconds"]), f"done earlier: {done['outcome']}"))
            return done
        self.hook(name, "before")
        started = time.perf_counter()
        detail = body()
        seconds = time.perf_counter() - started
        self.hook(name, "after")
        if detail.get("ok", True):  # a service not reloaded is tried again by the next run of the as-of
            self.journal.record(name, seconds, detail)
        self.lines.append(StepLine(name, True, seconds, detail["outcome"]))
        return detail

    def run(self, step: str, command: str, args: list[str], *, ok: tuple[int, ...] = (0,)) -> tuple[int, str]:
        invocation = Invocation(command, tuple(args))
        line = invocation.display()
        self.echo(f"== {step}: {line}")
        code = invoke(self.resolve, invocation)
        if code not in ok:
            done = [s for s in STEPS if self.journal.done(s)]
            kept = f"completed steps ({', '.join(done)}) are kept and skipped" if done else "nothing was completed"
            raise WeeklyStepError(
                f"step {step} failed (exit status {code}; its message is above): fix the cause and run the same "
                f"churnclv weekly command again: {kept}. The step's command: {line}"
            )
        return code, line

    # --- what the steps share

    @property
    def clean(self) -> str:
        return str(self.journal.steps["validate"]["clean"])

    def source(self) -> list[str]:
        r = self.request
        return ["--data", self.clean, "--trusted", *(["--memory-limit", r.memory_limit] if r.memory_limit else [])]

    def common(self, *, config: bool = True, db: bool = False) -> list[str]:
        r = self.request
        args = ["--tracking-uri", r.tracking_uri] if r.tracking_uri else []
        if config and r.config_path is not None:
            args += ["--config", str(r.config_path)]
        if db and r.db:
            args += ["--db", r.db]
        return args

    def model_name(self, command: str, *, needed: bool = True) -> list[str]:
        """``--model-name NAME`` for ``command`` when asked for; a command without the option is an error
        when it ``needed`` it (training registers under the name), else it is left out."""
        r = self.request
        if r.model_name is None:
            return []
        if not takes_option(self.resolve, command, "--model-name"):
            if not needed:
                return []
            raise WeeklyStepError(
                f"--model-name: churnclv {command} has no --model-name option in this version: drop --model-name "
                f"(the model is then {MODEL_NAME})"
            )
        return ["--model-name", r.model_name]

    def manifest(self) -> dict[str, Any] | None:
        path = scores_dir(self.request.out, self.request.as_of) / MANIFEST_FILE
        return json.loads(path.read_text()) if path.is_file() else None

    def score_args(self) -> list[str]:
        r = self.request
        model = ["--model", f"models:/{r.name}@champion"]
        return [
            *self.source(),
            "--as-of",
            r.day,
            "--out",
            str(r.out),
            "--resume",
            *model,
            *self.common(db=True),
        ]

    def scored(self, line: str) -> dict[str, Any]:
        manifest = self.manifest() or {}
        rows = manifest.get("counts", {}).get("rows_written")
        version = manifest.get("model", {}).get("version")
        return {
            "outcome": f"scored {rows:,} customers with version {version}",
            "rows": rows,
            "version": version,
            "scores": str(scores_dir(self.request.out, self.request.as_of)),
            "command": line,
        }

    # --- the steps

    def validate(self) -> dict[str, Any]:
        r = self.request
        if r.trusted:
            return {"outcome": "--trusted: the data are used as they are", "clean": r.data}
        work = r.work or validated_dir(r.out, r.as_of)
        args = ["--data", r.data, "--out", str(work), "--as-of", r.day]
        args += ["--mapping", str(r.mapping)] if r.mapping else []
        args += ["--horizon-days", str(r.horizon_days or RunConfig.load(r.config_path).train.horizon_days)]
        _, line = self.run("validate", "validate", args)
        counts = validated_counts(work)
        self.check_lag(counts)
        rejected = {t: c for t, c in counts.items() if c.get("rejected")}
        outcome = f"clean tables in {work / 'clean'}"
        if rejected:
            outcome += "; rejected " + ", ".join(f"{t} {c['rejected']:,} of {c['read']:,}" for t, c in rejected.items())
        return {
            "outcome": outcome,
            "clean": str(work / "clean"),
            "command": line,
            "tables": counts,
            "source": self.source_seen,
        }

    def check_lag(self, counts: dict[str, dict[str, Any]]) -> None:
        """Stop when the data, or the transactions alone, end more than ``[weekly] max_data_lag_days`` before
        the as-of: a week's export missing would be scored as a week without purchases, and the drift
        breach that follows would retrain on it."""
        r = self.request
        ends = {t: dt.datetime.fromisoformat(str(c["ts_max"])).date() for t, c in counts.items() if c.get("ts_max")}
        if not ends:
            return
        lag, last = r.settings.max_data_lag_days, max(ends.values())
        what = f"the data's last date is {last}"
        end = last
        if (r.as_of - last).days <= lag and "transactions" in ends:
            end = ends["transactions"]
            what = f"the transactions' last date is {end} (the other tables run to {last})"
        if (r.as_of - end).days <= lag:
            return
        raise WeeklyStepError(
            f"step validate: {what}, {(r.as_of - end).days:,} days before the as-of {r.day} (more than [weekly] "
            f"max_data_lag_days = {lag}): a missing week, a late or partial export, or a wrong --as-of; scores, "
            "monitoring and training would count the missing days as days without a purchase. Fix the export or "
            "the date (or raise max_data_lag_days for data often quiet that long), then run the same churnclv "
            "weekly command again"
        )

    def check_source(self) -> None:
        """Data exported again since an earlier run of the as-of validated them: an unfinished as-of
        validates again and runs the steps after it again (they read the earlier copy; a rerun would
        otherwise fail on the old data however often the export is fixed). A complete as-of runs
        nothing again, as documented, and says how to score the new data."""
        r = self.request
        done = self.journal.steps.get("validate")
        if r.trusted or done is None or done.get("source") is None or self.source_seen is None:
            return
        if done["source"] == self.source_seen:
            return
        changed = f"the data in {r.data} changed since an earlier run of {r.day} validated them"
        if all(self.journal.done(s) for s in STEPS if s != "reload"):
            self.echo(
                f"note: {changed}; the as-of is complete, so nothing runs again. To score the new data, move "
                f"{weekly_dir(r.out, r.as_of)} away and run the same command again"
            )
            return
        self.echo(f"== {changed}: validating them again; the steps after validate run again")
        self.journal.forget(*STEPS)

    def score(self) -> dict[str, Any]:
        champion = self.registry.champion()
        if champion is None:
            return {"outcome": "no champion yet: scored after training", "rows": None, "version": None}
        _, line = self.run("score", "score-batch", self.score_args())
        return self.scored(line)

    def monitor(self) -> dict[str, Any]:
        r = self.request
        if not any(day <= r.as_of for day, _ in partitions(r.out)):
            return {"outcome": "nothing to monitor yet: no published partition", "breaches": [], "partitions": []}
        args = ["--out", str(r.out), "--as-of", r.day, *self.source(), *self.common(db=True)]
        code, line = self.run(
            "monitor", "monitor", [*args, *self.model_name("monitor", needed=False)], ok=(0, MONITOR_BREACH)
        )
        report = r.out / "monitoring" / partition_name(r.as_of) / "monitor.json"
        doc = json.loads(report.read_text()) if report.is_file() else {}
        breaches = list(doc.get("breaches") or [])
        if code == MONITOR_BREACH and not breaches:
            breaches = [{"check": "monitor", "value": None, "threshold": None, "partition": None}]
        outcome = (
            f"{len(breaches)} breach(es): " + "; ".join(str(b.get("check")) for b in breaches)
            if breaches
            else "no breach"
        )
        monitored = list(doc.get("partitions") or [])
        return {
            "outcome": f"{outcome} ({len(monitored)} partition(s) with closed horizons)",
            "exit_status": code,
            "breaches": breaches,
            "partitions": monitored,
            "report": str(report),
            "command": line,
        }

    def scored_by(self) -> dict[str, str | None]:
        found: dict[str, str | None] = {}
        for day, folder in partitions(self.request.out):
            manifest = json.loads((folder / MANIFEST_FILE).read_text())
            found[partition_name(day)] = manifest.get("model", {}).get("version")
        return found

    def decide(self) -> dict[str, Any]:
        """The retrain decision, made once per as-of and kept in the journal: a rerun after a kill
        decides as the first run did (its own training would otherwise make the cadence look met)."""
        decided = self.journal.facts.get("retrain")
        if decided is not None:
            return dict(decided)
        r = self.request
        trained = list(self.registry.trained().values())
        decision = retrain_decision(
            day=r.as_of,
            trained=trained,
            every_days=r.settings.retrain_every_days,
            breaches=self.journal.steps["monitor"]["breaches"],
            on_breach=r.settings.retrain_on_breach,
            champion=self.registry.champion(),
            scored_by=self.scored_by(),
        )
        decided = decision.to_dict()
        if not decision.retrain:
            decided["outcome"] = not_due_text(r.as_of, trained, r.settings.retrain_every_days)
        self.journal.remember(retrain=decided)
        return decided

    def retrain(self) -> dict[str, Any]:
        r = self.request
        decided = self.decide()
        champion = self.registry.champion()
        if not decided["retrain"]:
            return {**decided, "retrained": False, "champion": champion}
        trained = self.registry.trained()
        existing = sorted((v for v, day in trained.items() if day == r.as_of), key=int)
        if existing:
            version = existing[-1]
            line = None
            if version != champion:
                _, line = self.run(
                    "retrain",
                    "models",
                    [
                        "promote",
                        "--version",
                        version,
                        *self.tolerance(),
                        *self.source(),  # the same-window comparison reads the data
                        *self.common(config=False),
                        *self.model_name("models promote"),
                    ],
                )
            how = f"version {version} was already trained as of {r.day}: not trained again"
        else:
            args = [*self.source(), "--as-of", r.day, *self.common()]
            args += ["--horizon-days", str(r.horizon_days)] if r.horizon_days else []
            _, line = self.run("retrain", "train", [*args, *self.model_name("train")])
            version = max(self.registry.trained().items(), key=lambda kv: int(kv[0]))[0]
            how = f"trained version {version}"
        now = self.registry.champion()
        promoted = now == version
        gate = "promoted to champion" if promoted else f"not promoted: the gate kept version {now}"
        return {
            **decided,
            "outcome": f"{how} ({'; '.join(decided['reasons'])}); {gate}",
            "retrained": True,
            "version": version,
            "promoted": promoted,
            "champion": now,
            "command": line,
        }

    def tolerance(self) -> list[str]:
        config = RunConfig.load(self.request.config_path)
        return [a for k, v in config.train.promote_tolerance.items() for a in ("--tolerance", f"{k}={v}")]

    def rescore(self) -> dict[str, Any]:
        champion = self.registry.champion()
        if champion is None:
            return {"outcome": "no champion: nothing to score with (see the retrain step)", "rows": None}
        manifest = self.manifest()
        version = None if manifest is None else manifest.get("model", {}).get("version")
        if version == champion:
            return {"outcome": f"not needed: the partition was scored by the champion, version {champion}"}
        _, line = self.run("rescore", "score-batch", self.score_args())
        return self.scored(line)

    def reload(self) -> dict[str, Any]:
        s = self.request.settings
        if s.service_url is None:
            return {"outcome": "no service to reload ([weekly] service_url or --service-url)", "ok": True}
        self.echo(f"== reload: POST {s.service_url.rstrip('/')}/reload")  # echo redacts the URL
        published = read_latest(self.request.out) if (self.request.out / LATEST).is_file() else None
        outcome: ReloadOutcome = reload_service(
            s.service_url, self.request.api_key, s.api_key_env, s.reload_timeout_s, published
        )
        return outcome.to_dict()

    def finish(self) -> None:
        """The validated copy of a complete run is no longer needed (its rejects are kept)."""
        r = self.request
        if r.trusted or r.work is not None:
            return
        clean = validated_dir(r.out, r.as_of) / "clean"
        if clean.is_dir() and all(self.journal.done(s) for s in STEPS if s != "reload"):  # reload reads none
            shutil.rmtree(clean)

    def retain(self) -> None:
        """``[weekly] keep_days``: once the as-of is complete, remove the as-ofs older than that which no
        later run reads (:mod:`churnclv.weekly.retention`)."""
        r = self.request
        keep = r.settings.keep_days
        if keep is None or not all(self.journal.done(s) for s in STEPS if s != "reload"):
            return
        lookback = parse_monitor(read_run_config(r.config_path).get("monitor", {})).lookback_days
        removed, note = prune(r.out, r.as_of, keep, lookback)
        if note or removed:
            what = note or f"removed {len(removed)} as-of(s) older than {keep} days: {', '.join(removed)}"
            self.echo(f"== retention ([weekly] keep_days = {keep}): {what}")


def run_weekly(
    request: WeeklyRequest,
    *,
    resolve: Resolve,
    registry: Registry,
    echo: Callable[[str], Any],
    hook: Hook | None = None,
) -> WeeklyResult:
    """Run (or finish) the weekly job of ``request.as_of``; see the module doc.

    Parameters
    ----------
    request
        The options.
    resolve
        A ``churnclv`` command by name (the CLI group's ``get_command``).
    registry
        The model registry (:class:`~churnclv.weekly.registry_view.MlflowRegistry`).
    echo
        Where progress lines go.
    hook
        Called with ``(step, "before")`` and ``(step, "after")`` around each step that runs (after:
        before the journal records it): fault injection for tests and drills.

    Raises
    ------
    WeeklyStepError
        A step's command failed; the completed steps stay in the journal.
    """
    started = time.perf_counter()
    run = _Run(request, resolve, registry, echo, hook)
    run.check_source()
    if "champion_at_start" not in run.journal.facts:
        run.journal.remember(champion_at_start=registry.champion())
    for name in STEPS:
        run.step(name, getattr(run, name))
    run.finish()
    run.retain()
    warnings = [d["outcome"] for d in run.journal.steps.values() if str(d.get("outcome", "")).startswith("warning")]
    return WeeklyResult(request, run.journal, run.lines, time.perf_counter() - started, warnings)
