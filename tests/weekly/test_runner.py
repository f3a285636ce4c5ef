"""The weekly job's steps with the commands faked: what runs when, the journal, reruns and failures."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable

import pytest

from churnclv.weekly.errors import WeeklyStepError
from churnclv.weekly.request import WeeklyRequest, WeeklyResult
from churnclv.weekly.runner import STEPS, run_weekly

from .conftest import AS_OF, FakeCommands, FakeRegistry


def _run(request: WeeklyRequest, commands: FakeCommands, hook=None) -> WeeklyResult:
    lines: list[str] = []
    return run_weekly(request, resolve=commands.resolve, registry=commands.registry, echo=lines.append, hook=hook)


def _days_ago(n: int) -> dt.date:
    return AS_OF - dt.timedelta(days=n)


def test_first_run_trains_then_scores(request_for: Callable[..., WeeklyRequest]) -> None:
    commands = FakeCommands(FakeRegistry())
    result = _run(request_for(), commands)
    # no champion: no score, nothing to monitor; train, then score with the new champion
    assert commands.names() == ["validate", "train", "score-batch"]
    steps = result.journal.steps
    assert steps["score"]["outcome"] == "no champion yet: scored after training"
    assert steps["retrain"]["reasons"] == ["no model registered yet"] and steps["retrain"]["promoted"]
    assert steps["rescore"]["version"] == "1"
    assert list(steps) == list(STEPS)


def test_cadence_due_retrains_promotes_and_scores_again(request_for: Callable[..., WeeklyRequest]) -> None:
    commands = FakeCommands(FakeRegistry("1", {"1": _days_ago(28)}))
    result = _run(request_for(retrain_every_days=28), commands)
    assert commands.names() == ["validate", "score-batch", "monitor", "train", "score-batch"]
    retrain = result.journal.steps["retrain"]
    assert retrain["version"] == "2" and retrain["promoted"] and retrain["reasons"][0].startswith("cadence")
    assert result.journal.steps["rescore"]["version"] == "2"
    assert result.journal.facts["champion_at_start"] == "1"


def test_not_due_and_no_breach_neither_trains_nor_rescores(request_for: Callable[..., WeeklyRequest]) -> None:
    commands = FakeCommands(FakeRegistry("1", {"1": _days_ago(7)}))
    result = _run(request_for(retrain_every_days=28), commands)
    assert commands.names() == ["validate", "score-batch", "monitor"]
    assert result.journal.steps["retrain"]["outcome"].startswith(
        "not due: the newest version was trained as of 2025-05-25"
    )
    assert result.journal.steps["rescore"]["outcome"].startswith("not needed")


def test_breach_on_the_champions_scores_retrains(request_for: Callable[..., WeeklyRequest]) -> None:
    commands = FakeCommands(FakeRegistry("1", {"1": _days_ago(7)}))
    # the champion's own partition of a week ago crossed a threshold
    commands.breaches = [{"check": "churn_ece", "value": 0.2, "threshold": 0.1, "partition": f"dt={AS_OF}"}]
    result = _run(request_for(retrain_every_days=28), commands)
    assert "train" in commands.names()
    assert result.journal.steps["monitor"]["exit_status"] == 3
    assert result.journal.steps["retrain"]["reasons"] == [f"breach: churn_ece = 0.2 beyond 0.1 on dt={AS_OF}"]


def test_gate_refusing_keeps_the_champion_and_says_so(request_for: Callable[..., WeeklyRequest]) -> None:
    commands = FakeCommands(FakeRegistry("1", {"1": _days_ago(30)}, promote=False))
    result = _run(request_for(), commands)
    assert result.journal.steps["retrain"]["outcome"].endswith("not promoted: the gate kept version 1")
    assert commands.names().count("score-batch") == 1  # the champion did not change: no second scoring


def test_a_complete_as_of_reruns_nothing(request_for: Callable[..., WeeklyRequest]) -> None:
    commands = FakeCommands(FakeRegistry("1", {"1": _days_ago(30)}))
    first = _run(request_for(), commands)
    calls = len(commands.calls)
    again = _run(request_for(), commands)
    assert len(commands.calls) == calls  # no command ran
    assert [line.ran for line in again.lines] == [False] * len(STEPS)
    assert all(line.outcome.startswith("done earlier") for line in again.lines)
    assert again.journal.steps == first.journal.steps


def test_a_failed_step_keeps_the_completed_ones(request_for: Callable[..., WeeklyRequest]) -> None:
    commands = FakeCommands(FakeRegistry("1", {"1": _days_ago(30)}), fail={"monitor"})
    with pytest.raises(
        WeeklyStepError, match=r"step monitor failed \(exit status 1.*completed steps \(validate, score\)"
    ):
        _run(request_for(), commands)
    journal = json.loads((request_for().out / "weekly" / f"dt={AS_OF}" / "journal.json").read_text())
    assert list(journal["steps"]) == ["validate", "score"]
    commands.fail.clear()
    commands.calls.clear()
    _run(request_for(), commands)
    assert commands.names() == ["monitor", "train", "score-batch"]  # validate and score not again


def test_killed_after_training_before_the_journal_does_not_train_twice(
    request_for: Callable[..., WeeklyRequest],
) -> None:
    commands = FakeCommands(FakeRegistry("1", {"1": _days_ago(30)}, promote=False))

    def die(step: str, when: str) -> None:
        if (step, when) == ("retrain", "after"):
            raise KeyboardInterrupt  # stands for the kill: the version is registered, the journal not written

    with pytest.raises(KeyboardInterrupt):
        _run(request_for(), commands, hook=die)
    assert commands.registry.versions.keys() == {"1", "2"}
    commands.registry.promote = True  # the gate's verdict is the same either way; here it promotes on rerun
    commands.calls.clear()
    result = _run(request_for(), commands)
    assert commands.registry.versions.keys() == {"1", "2"}  # version 2 is not trained again ...
    assert commands.calls[0] == ("models", ["promote", "--version", "2", *commands.calls[0][1][3:]])  # ... but gated
    assert "--tolerance" in commands.calls[0][1]
    assert result.journal.steps["retrain"]["outcome"].startswith("version 2 was already trained as of 2025-06-01")


def test_trusted_data_are_not_validated(request_for: Callable[..., WeeklyRequest], tmp_path) -> None:
    from dataclasses import replace

    commands = FakeCommands(FakeRegistry("1", {"1": _days_ago(1)}))
    result = _run(replace(request_for(), trusted=True), commands)
    assert commands.names()[0] == "score-batch"
    score_args = commands.calls[0][1]
    assert score_args[:3] == ["--data", str(tmp_path / "data"), "--trusted"] and "--resume" in score_args
    assert result.journal.steps["validate"]["outcome"].startswith("--trusted")


def test_validated_copy_is_removed_once_the_as_of_is_complete(request_for: Callable[..., WeeklyRequest]) -> None:
    commands = FakeCommands(FakeRegistry("1", {"1": _days_ago(1)}))
    result = _run(request_for(), commands)
    clean = result.journal.steps["validate"]["clean"]
    assert clean.endswith("weekly/validated/2025-06-01/clean")
    assert not (request_for().out / "weekly" / "validated" / "2025-06-01" / "clean").exists()


def test_summary_says_what_ran_what_changed_and_where(request_for: Callable[..., WeeklyRequest]) -> None:
    from churnclv.weekly.summary import summary_lines

    commands = FakeCommands(FakeRegistry("1", {"1": _days_ago(7)}))
    commands.breaches = [{"check": "churn_ece", "value": 0.2, "threshold": 0.1, "partition": f"dt={AS_OF}"}]
    text = "\n".join(summary_lines(_run(request_for(), commands)))
    assert "  retrain   now " in text and "  rescore   now " in text
    assert "champion version 1 -> 2" in text
    assert "breaches   1: churn_ece" in text
    assert "retrain    version 2: breach: churn_ece = 0.2 beyond 0.1 on dt=2025-06-01" in text
    assert f"journal    {request_for().out / 'weekly' / 'dt=2025-06-01' / 'journal.json'}" in text
    again = "\n".join(summary_lines(_run(request_for(), commands)))
    assert again.count(" earlier ") == len(STEPS)  # the rerun's table: every step done earlier


def test_model_name_needs_a_train_command_that_takes_it(request_for: Callable[..., WeeklyRequest]) -> None:
    from dataclasses import replace

    commands = FakeCommands(FakeRegistry("1", {"1": _days_ago(30)}))  # the fakes have no --model-name
    with pytest.raises(WeeklyStepError, match="churnclv train has no --model-name option"):
        _run(replace(request_for(), model_name="shop_b"), commands)
    assert commands.names() == ["validate", "score-batch", "monitor"]  # the monitor does without it
    assert "models:/shop_b@champion" in commands.calls[1][1]  # score-batch scores with that model


def test_data_exported_again_after_a_failure_are_validated_again(
    request_for: Callable[..., WeeklyRequest], tmp_path
) -> None:
    """The failure's fix is in the data: the rerun must read the new export, not the first run's copy."""
    data = tmp_path / "data"
    data.mkdir()
    (data / "transactions.csv").write_text("customer_id,ts,amount\n")  # the export without events
    commands = FakeCommands(FakeRegistry("1", {"1": _days_ago(30)}), fail={"score-batch"})
    with pytest.raises(WeeklyStepError, match="step score failed"):
        _run(request_for(), commands)
    (data / "events.csv").write_text("customer_id,ts,event_type\n")  # exported again, complete
    commands.fail.clear()
    commands.calls.clear()
    lines: list[str] = []
    run_weekly(request_for(), resolve=commands.resolve, registry=commands.registry, echo=lines.append)
    assert commands.names()[:2] == ["validate", "score-batch"]
    assert any("changed since an earlier run" in line for line in lines)
    commands.calls.clear()
    _run(request_for(), commands)  # the same data again: nothing reruns
    assert commands.names() == []


def test_a_complete_as_of_with_new_data_runs_nothing_and_says_how(
    request_for: Callable[..., WeeklyRequest], tmp_path
) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "transactions.csv").write_text("customer_id,ts,amount\n")
    commands = FakeCommands(FakeRegistry("1", {"1": _days_ago(30)}))
    _run(request_for(), commands)
    (data / "transactions.csv").write_text("customer_id,ts,amount\nc1,2025-05-30,10\n")
    commands.calls.clear()
    lines: list[str] = []
    run_weekly(request_for(), resolve=commands.resolve, registry=commands.registry, echo=lines.append)
    assert commands.names() == []
    (note,) = [line for line in lines if line.startswith("note:")]
    assert "nothing runs again" in note and f"dt={AS_OF}" in note


@pytest.mark.parametrize(
    ("lag", "settings", "stops"), [(7, {}, True), (3, {}, False), (7, {"max_data_lag_days": 7}, False)]
)
def test_data_a_week_short_of_the_as_of_stop_at_validation(
    request_for: Callable[..., WeeklyRequest], lag: int, settings: dict, stops: bool
) -> None:
    """A week's export missing (the data end 7 days before the as-of): scored, a week of silence would
    read as lapsing customers."""
    commands = FakeCommands(FakeRegistry("1", {"1": _days_ago(14)}), last_day=_days_ago(lag))
    if not stops:
        _run(request_for(**settings), commands)
        assert "score-batch" in commands.names()
        return
    with pytest.raises(WeeklyStepError, match=rf"{lag} days before the as-of.*max_data_lag_days = 3.*missing week"):
        _run(request_for(**settings), commands)
    assert commands.names() == ["validate"]


def test_transactions_a_week_short_stop_even_when_events_are_current(
    request_for: Callable[..., WeeklyRequest],
) -> None:
    """Only the transactions feed broke: the events alone must not make the data look current."""
    commands = FakeCommands(FakeRegistry("1", {"1": _days_ago(14)}), last_day=_days_ago(9), events_last_day=AS_OF)
    with pytest.raises(WeeklyStepError, match=r"the transactions' last date is .* 9 days before the as-of"):
        _run(request_for(), commands)
    assert commands.names() == ["validate"]


def test_keep_days_prunes_old_as_ofs_once_the_run_is_complete(request_for: Callable[..., WeeklyRequest]) -> None:
    old = _days_ago(500)  # closed before the monitor's default lookback of 365 days
    request = request_for(keep_days=91)
    folder = request.out / "scores" / f"dt={old}"
    folder.mkdir(parents=True)
    # scored by an earlier version: not the drift reference of the version in use
    (folder / "_manifest.json").write_text(json.dumps({"model": {"version": "0"}, "horizon_days": 28}))
    (request.out / "weekly" / f"dt={old}").mkdir(parents=True)
    commands = FakeCommands(FakeRegistry("1", {"1": _days_ago(30)}))
    lines: list[str] = []
    run_weekly(request, resolve=commands.resolve, registry=commands.registry, echo=lines.append)
    assert not folder.exists() and not (request.out / "weekly" / f"dt={old}").exists()
    assert (request.out / "scores" / f"dt={AS_OF}").is_dir()  # this week's stays
    assert any(line.startswith("== retention") and f"dt={old}" in line for line in lines)
