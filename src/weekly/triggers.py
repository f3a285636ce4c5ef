"""When the weekly job retrains: the cadence of ``[weekly] retrain_every_days`` and the monitor's
breaches. Pure functions of what the registry, the monitor and the manifests say."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["RetrainDecision", "not_due_text", "retrain_decision"]


@dataclass(frozen=True)
class RetrainDecision:
    """Whether to retrain, why (``reasons``), and the breaches left aside and why (``ignored``)."""

    retrain: bool
    reasons: tuple[str, ...]
    ignored: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """As plain data (the journal)."""
        return {"retrain": self.retrain, "reasons": list(self.reasons), "ignored": list(self.ignored)}


def _number(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _breach_text(breach: Mapping[str, Any]) -> str:
    where = f" on {breach['partition']}" if breach.get("partition") else ""
    return f"{breach.get('check')} = {_number(breach.get('value'))} beyond {_number(breach.get('threshold'))}{where}"


def retrain_decision(
    *,
    day: dt.date,
    trained: Sequence[dt.date],
    every_days: int,
    breaches: Sequence[Mapping[str, Any]],
    on_breach: bool,
    champion: str | None,
    scored_by: Mapping[str, str | None],
) -> RetrainDecision:
    """Whether the weekly run as of ``day`` retrains.

    Parameters
    ----------
    day
        The run's as-of.
    trained
        The as-of dates of every registered version (empty: none yet).
    every_days
        The cadence: retrain when the newest registered version was trained ``every_days`` or more
        days before ``day``.
    breaches
        The monitor's breaches (``{check, value, threshold, partition}``).
    on_breach
        Whether a breach triggers a retrain.
    champion
        The champion's version now.
    scored_by
        The model version that scored each partition (``dt=DATE`` -> version; None: unknown).

    A breach measured on a partition scored by an earlier version than the champion says nothing
    about the champion (its scores' horizons have not closed yet): it is ignored, with the reason,
    so one change does not retrain every week until the old scores age out. A breach without a
    partition (drift of this week's data) or on a partition of unknown version counts.
    """
    reasons: list[str] = []
    ignored: list[str] = []
    if not trained:
        reasons.append("no model registered yet")
    else:
        last = max(trained)
        age = (day - last).days
        if age >= every_days:
            reasons.append(f"cadence: the newest version was trained as of {last}, {age} days ago (every {every_days})")
    for breach in breaches:
        version = scored_by.get(str(breach.get("partition")))
        if not on_breach:
            ignored.append(f"{_breach_text(breach)}: [weekly] retrain_on_breach is false")
        elif version is not None and champion is not None and version != champion:
            ignored.append(f"{_breach_text(breach)}: scored by version {version}, no longer the champion ({champion})")
        else:
            reasons.append(f"breach: {_breach_text(breach)}")
    return RetrainDecision(bool(reasons), tuple(reasons), tuple(ignored))


def not_due_text(day: dt.date, trained: Sequence[dt.date], every_days: int) -> str:
    """Why the cadence does not retrain as of ``day`` (``trained`` not empty)."""
    last = max(trained)
    return f"not due: the newest version was trained as of {last}, {(day - last).days} of {every_days} days ago"
