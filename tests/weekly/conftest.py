"""Fakes for the weekly job's unit tests: the churnclv commands as tiny click commands that record
their command lines and act on a fake registry, so the step logic runs in milliseconds."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click
import pytest

from churnclv.weekly.config import WeeklyConfig
from churnclv.weekly.request import WeeklyRequest

AS_OF = dt.date(2025, 6, 1)


@dataclass
class FakeRegistry:
    """The registry: versions with their training as-of, and the champion."""

    champion_version: str | None = None
    versions: dict[str, dt.date] = field(default_factory=dict)
    promote: bool = True  # whether the gate promotes a new version

    def champion(self) -> str | None:
        return self.champion_version

    def trained(self) -> dict[str, dt.date]:
        return dict(self.versions)

    def register(self, day: dt.date) -> str:
        version = str(len(self.versions) + 1)
        self.versions[version] = day
        if self.promote or self.champion_version is None:
            self.champion_version = version
        return version


def _options(args: list[str]) -> dict[str, Any]:
    found: dict[str, Any] = {}
    i = 0
    while i < len(args):
        key = args[i].lstrip("-")
        if i + 1 < len(args) and not args[i + 1].startswith("--"):
            found[key], i = args[i + 1], i + 2
        else:
            found[key], i = True, i + 1
    return found


@dataclass
class FakeCommands:
    """``churnclv validate | score-batch | monitor | train | models`` acting on ``registry``."""

    registry: FakeRegistry
    calls: list[tuple[str, list[str]]] = field(default_factory=list)
    breaches: list[dict[str, Any]] = field(default_factory=list)
    fail: set[str] = field(default_factory=set)  # commands that exit 1
    last_day: dt.date | None = None  # the validated transactions' last date (None: not recorded)
    events_last_day: dt.date | None = None  # the events' (None: no events)

    def _validate(self, o: dict[str, Any]) -> None:
        (Path(o["out"]) / "clean").mkdir(parents=True, exist_ok=True)
        if self.last_day is not None:
            tables = {"transactions": {"read": 1, "accepted": 1, "rejected": 0, "ts_max": f"{self.last_day} 12:00:00"}}
            if self.events_last_day is not None:
                tables["events"] = {"read": 1, "accepted": 1, "rejected": 0, "ts_max": f"{self.events_last_day} 09:00"}
            (Path(o["out"]) / "source.json").write_text(json.dumps({"source": o["data"], "tables": tables}))

    def _score(self, o: dict[str, Any]) -> None:
        folder = Path(o["out"]) / "scores" / f"dt={o['as-of']}"
        folder.mkdir(parents=True, exist_ok=True)
        model = {"version": self.registry.champion_version}
        manifest = {"counts": {"rows_written": 100}, "model": model, "horizon_days": 28}
        (folder / "_manifest.json").write_text(json.dumps(manifest))

    def _monitor(self, o: dict[str, Any]) -> None:
        folder = Path(o["out"]) / "monitoring" / f"dt={o['as-of']}"
        folder.mkdir(parents=True, exist_ok=True)
        doc = {"as_of": o["as-of"], "partitions": [], "breaches": self.breaches, "model_versions": []}
        (folder / "monitor.json").write_text(json.dumps(doc))
        if self.breaches:
            raise click.exceptions.Exit(3)

    def _train(self, o: dict[str, Any]) -> None:
        self.registry.register(dt.date.fromisoformat(o["as-of"]))

    def _models(self, o: dict[str, Any]) -> None:
        if self.registry.promote:
            self.registry.champion_version = o["version"]

    def resolve(self, name: str) -> click.Command | None:
        actions: dict[str, Callable[[dict[str, Any]], None]] = {
            "validate": self._validate,
            "score-batch": self._score,
            "monitor": self._monitor,
            "train": self._train,
            "models": self._models,
        }
        if name not in actions:
            return None

        @click.command(name, context_settings={"ignore_unknown_options": True, "allow_extra_args": True})
        @click.pass_context
        def command(ctx: click.Context) -> None:
            self.calls.append((name, list(ctx.args)))
            if name in self.fail:
                raise click.ClickException(f"{name} failed on purpose")
            actions[name](_options(list(ctx.args)))

        return command

    def names(self) -> list[str]:
        return [name for name, _ in self.calls]


@pytest.fixture
def request_for(tmp_path: Path) -> Callable[..., WeeklyRequest]:
    def make(**settings: Any) -> WeeklyRequest:
        return WeeklyRequest(
            out=tmp_path / "out", as_of=AS_OF, data=str(tmp_path / "data"), settings=WeeklyConfig(**settings)
        )

    return make
