"""When the weekly job retrains: cadence and breaches (pure rules, no registry)."""

from __future__ import annotations

import datetime as dt

from hypothesis import given
from hypothesis import strategies as st

from churnclv.weekly.triggers import retrain_decision

DAY = dt.date(2025, 6, 1)


def _decide(trained: list[dt.date], breaches: list[dict] | None = None, **kw):
    args = {"every_days": 28, "on_breach": True, "champion": "3", "scored_by": {}}
    return retrain_decision(day=DAY, trained=trained, breaches=breaches or [], **{**args, **kw})


def _breach(partition: str | None = "dt=2025-04-27") -> dict:
    return {"check": "churn_auc", "value": 0.55, "threshold": 0.6, "partition": partition}


def test_no_model_yet_trains() -> None:
    decision = _decide([])
    assert decision.retrain and decision.reasons == ("no model registered yet",)


def test_cadence_due_and_not_due() -> None:
    assert not _decide([DAY - dt.timedelta(days=27)]).retrain
    due = _decide([DAY - dt.timedelta(days=40), DAY - dt.timedelta(days=28)])
    assert due.retrain
    assert due.reasons == ("cadence: the newest version was trained as of 2025-05-04, 28 days ago (every 28)",)


def test_an_as_of_before_the_newest_training_is_not_due() -> None:
    assert not _decide([DAY + dt.timedelta(days=7)]).retrain  # rerunning an older week


def test_breach_on_the_champions_scores_retrains() -> None:
    decision = _decide([DAY - dt.timedelta(days=7)], [_breach()], scored_by={"dt=2025-04-27": "3"})
    assert decision.retrain
    assert decision.reasons == ("breach: churn_auc = 0.55 beyond 0.6 on dt=2025-04-27",)


def test_breach_on_a_replaced_versions_scores_is_ignored() -> None:
    decision = _decide([DAY - dt.timedelta(days=7)], [_breach()], scored_by={"dt=2025-04-27": "2"})
    assert not decision.retrain
    assert decision.ignored == (
        "churn_auc = 0.55 beyond 0.6 on dt=2025-04-27: scored by version 2, no longer the champion (3)",
    )


def test_drift_breach_without_partition_or_unknown_version_counts() -> None:
    assert _decide([DAY], [_breach(None)]).retrain
    assert _decide([DAY], [_breach("dt=2025-01-05")], scored_by={}).retrain


def test_breach_ignored_when_switched_off() -> None:
    decision = _decide([DAY], [_breach()], on_breach=False, scored_by={"dt=2025-04-27": "3"})
    assert not decision.retrain and "retrain_on_breach is false" in decision.ignored[0]


@given(
    ages=st.lists(st.integers(min_value=-400, max_value=400), min_size=1, max_size=6),
    every=st.integers(min_value=1, max_value=120),
)
def test_cadence_retrains_exactly_when_the_newest_version_is_old_enough(ages: list[int], every: int) -> None:
    trained = [DAY - dt.timedelta(days=a) for a in ages]
    assert _decide(trained, every_days=every).retrain == (min(ages) >= every)
