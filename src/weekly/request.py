"""What a weekly run is asked (:class:`WeeklyRequest`, the ``churnclv weekly`` options) and what it
returns (:class:`WeeklyResult`: the steps, their times and outcomes, the journal)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path

from churnclv.names import MODEL_NAME
from churnclv.weekly.config import WeeklyConfig
from churnclv.weekly.journal import Journal

__all__ = ["StepLine", "WeeklyRequest", "WeeklyResult"]


@dataclass(frozen=True)
class WeeklyRequest:
    """What one weekly run is asked to do (the ``churnclv weekly`` options)."""

    out: Path
    as_of: dt.date
    data: str
    settings: WeeklyConfig
    mapping: Path | None = None
    work: Path | None = None
    trusted: bool = False
    memory_limit: str | None = None
    config_path: Path | None = None
    tracking_uri: str | None = None
    db: str | None = None
    horizon_days: int | None = None
    model_name: str | None = None
    api_key: str | None = field(default=None, repr=False)

    @property
    def name(self) -> str:
        """The registered model's name."""
        return self.model_name or MODEL_NAME

    @property
    def day(self) -> str:
        """The as-of as typed: ``YYYY-MM-DD``."""
        return self.as_of.isoformat()


@dataclass(frozen=True)
class StepLine:
    """One line of the summary: a step, whether it ran now, its time and what it found."""

    step: str
    ran: bool
    seconds: float
    outcome: str


@dataclass
class WeeklyResult:
    """The run's summary: the steps, the journal and what changed."""

    request: WeeklyRequest
    journal: Journal
    lines: list[StepLine]
    seconds: float
    warnings: list[str]
