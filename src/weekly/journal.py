"""The journal of one weekly run: which steps of an as-of are complete, and what each found.

``OUT/weekly/dt=DATE/journal.json`` is rewritten atomically (temp file, fsync, rename) after every
step, so a run killed at any point leaves the journal of the steps it completed and never a
half-written one. A rerun of the as-of skips those steps and says so; the journal also keeps what
the later steps decide on (the champion when the as-of's first run started, the monitor's breaches,
the retrain decision), so a rerun decides as the interrupted run would have.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from churnclv.serving.atomic_files import write_json
from churnclv.serving.snapshots import partition_name
from churnclv.weekly.errors import WeeklyError

__all__ = ["JOURNAL_FILE", "JOURNAL_FORMAT", "WEEKLY_DIR", "Journal", "validated_dir", "weekly_dir"]

JOURNAL_FILE = "journal.json"
JOURNAL_FORMAT = "churnclv.weekly"
WEEKLY_DIR = "weekly"


def weekly_dir(out: Path, day: dt.date) -> Path:
    """``OUT/weekly/dt=DATE``: the as-of's journal."""
    return Path(out) / WEEKLY_DIR / partition_name(day)


def validated_dir(out: Path, day: dt.date) -> Path:
    """``OUT/weekly/validated/DATE``: the as-of's validated tables (``clean/``, ``rejects/``). Not under
    ``dt=DATE``: DuckDB reads a ``key=value`` folder in a table's path as a column of that table."""
    return Path(out) / WEEKLY_DIR / "validated" / day.isoformat()


@dataclass
class Journal:
    """The completed steps of one as-of (in the order they completed) and the run's shared facts."""

    path: Path
    as_of: dt.date
    steps: dict[str, dict[str, Any]] = field(default_factory=dict)
    facts: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def open(cls, out: Path, day: dt.date) -> Journal:
        """The as-of's journal (empty when no run of it started yet)."""
        path = weekly_dir(out, day) / JOURNAL_FILE
        if not path.is_file():
            return cls(path=path, as_of=day)
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
            if doc.get("format") != JOURNAL_FORMAT or doc.get("as_of") != day.isoformat():
                raise ValueError(f"not the journal of the weekly run as of {day}")
            return cls(path=path, as_of=day, steps=dict(doc["steps"]), facts=dict(doc.get("facts", {})))
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise WeeklyError(
                f"journal {path} cannot be read ({exc}): move it away to run every step of {day} again"
            ) from None

    def done(self, step: str) -> bool:
        """Whether ``step`` completed in an earlier or this run."""
        return step in self.steps

    def record(self, step: str, seconds: float, detail: dict[str, Any]) -> None:
        """Mark ``step`` complete (how long it took, what it found) and write the journal."""
        self.steps[step] = {"seconds": round(seconds, 3), **detail}
        self.save()

    def forget(self, *steps: str) -> None:
        """Mark ``steps`` not complete (they run again; the facts are kept) and write the journal."""
        for step in steps:
            self.steps.pop(step, None)
        self.save()

    def remember(self, **facts: Any) -> None:
        """Keep facts later steps (and reruns) decide on; written at once."""
        self.facts.update(facts)
        self.save()

    def save(self) -> None:
        """Write the journal atomically."""
        doc = {"format": JOURNAL_FORMAT, "as_of": self.as_of.isoformat(), "facts": self.facts, "steps": self.steps}
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            write_json(self.path, doc)
        except OSError as exc:
            raise WeeklyError(
                f"cannot write the journal {self.path} ({exc.strerror or type(exc).__name__}): make that folder "
                "writable (a file in its place, a full or read-only disk), then run the same command again"
            ) from None
