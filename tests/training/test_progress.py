"""Training tells you where it is: progress with the time left, quiet by default, ``-q`` quiet, warnings
said once, an end summary naming the run, and logged parameters that are what ran."""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any

import click
import pytest
from mlflow.tracking import MlflowClient

from churnclv.cli import _configure_logging
from churnclv.cli_options import StepProgress, show_progress
from churnclv.training.progress import BacktestProgress, format_seconds
from churnclv.training.summary import COLUMNS


class FakeClock:
    """Seconds that move only when a test says so."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _fit(progress: BacktestProgress, clock: FakeClock, fold: int, candidate: str, seconds: float) -> None:
    progress.start(fold, candidate)
    clock.now += seconds
    progress.finish()


def test_time_left_is_each_candidates_seconds_per_row_times_the_folds_rows() -> None:
    clock = FakeClock()
    progress = BacktestProgress({1: 100, 2: 200, 3: 300}, ("btyd", "gbm"), clock=clock)
    assert progress.total == 6 and progress.seconds_left() is None
    _fit(progress, clock, 1, "btyd", 1.0)  # 0.01 s a row
    assert progress.seconds_left() is None  # gbm not timed yet: no made-up estimate
    assert progress.status() == "1/6 fits, time left after fold 1"
    _fit(progress, clock, 1, "gbm", 3.0)  # 0.03 s a row
    # folds 2 and 3 have 500 rows: btyd 5 s, gbm 15 s
    assert progress.seconds_left() == pytest.approx(20.0)
    assert progress.status() == "2/6 fits, about 20 s left"
    _fit(progress, clock, 2, "btyd", 4.0)  # slower than fold 1: 5 s over 300 rows now
    assert progress.seconds_left() == pytest.approx(5.0 / 300 * 300 + 3.0 / 100 * 500)
    for fold, cand in ((2, "gbm"), (3, "btyd"), (3, "gbm")):
        _fit(progress, clock, fold, cand, 1.0)
    assert progress.done == 6 and progress.seconds_left() == 0.0


def test_a_failed_fit_counts_its_time() -> None:
    clock = FakeClock()
    progress = BacktestProgress({1: 10, 2: 10}, ("gbm",), clock=clock)
    progress.start(1, "gbm")
    clock.now += 2.0
    assert progress.finish() == 2.0
    assert progress.seconds_left() == pytest.approx(2.0)
    with pytest.raises(RuntimeError, match="without start"):
        progress.finish()


@pytest.mark.parametrize(
    ("seconds", "text"), [(0.4, "0 s"), (45, "45 s"), (65, "1 min 05 s"), (3725, "1 h 02 min"), (-3, "0 s")]
)
def test_format_seconds(seconds: float, text: str) -> None:
    assert format_seconds(seconds) == text


def test_step_progress_writes_a_line_per_step_with_the_elapsed_time(capsys: pytest.CaptureFixture[str]) -> None:
    clock = FakeClock()
    with StepProgress("training", clock=clock) as steps:  # stderr is not a terminal here: plain lines
        clock.now = 1.5
        steps("fold 1/2: btyd")
        clock.now = 12.25
        steps("fold 2/2: btyd")
    assert capsys.readouterr().err.splitlines() == ["[   1.5s] fold 1/2: btyd", "[  12.2s] fold 2/2: btyd"]
    assert steps.steps == 2
    with StepProgress("training", enabled=False, clock=clock) as off:
        off("nothing")
    assert capsys.readouterr().err == "" and off.steps == 0


def test_progress_is_off_with_q_on_with_the_flag_and_else_on_a_terminal_only() -> None:
    @click.group()
    @click.option("-q", "--quiet", is_flag=True)
    def root(quiet: bool) -> None:
        pass

    seen: list[bool] = []

    @root.command()
    @click.option("--progress/--no-progress", default=None)
    def job(progress: bool | None) -> None:
        seen.append(show_progress(progress))

    from click.testing import CliRunner

    for args in (["job"], ["job", "--progress"], ["-q", "job", "--progress"], ["job", "--no-progress"]):
        assert CliRunner().invoke(root, args).exit_code == 0
    assert seen == [False, True, False, False]  # CliRunner's stderr is no terminal


def test_a_warning_repeated_word_for_word_is_said_once(capsys: pytest.CaptureFixture[str]) -> None:
    _configure_logging(0, False)
    log = logging.getLogger("churnclv.training.test")
    for _ in range(3):
        log.warning("fold %d: gbm dropped: no churners", 1)
    log.warning("fold %d: gbm dropped: no churners", 2)
    log.info("said every time")
    log.info("said every time")
    logging.getLogger("churnclv.models.btyd").info("model-fit details: -v")
    err = capsys.readouterr().err
    assert err.count("fold 1: gbm dropped") == 1 and err.count("fold 2: gbm dropped") == 1
    assert err.count("said every time") == 2
    assert "model-fit details" not in err
    _configure_logging(1, False)  # -v: the details and the parameters
    logging.getLogger("churnclv.models.btyd").debug("fitted bgnbd: {'r': 0.9}")
    assert "fitted bgnbd" in capsys.readouterr().err
    _configure_logging(0, True)  # -q
    log.info("not with -q")
    logging.getLogger("mlflow.store.db.utils").info("Creating initial MLflow database tables...")
    assert capsys.readouterr().err == ""


# ------------------------------------------------------------------ through the command line


def _log_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if re.match(r"^\d\d:\d\d:\d\d (DEBUG|INFO|WARNING|ERROR) ", line)]


@pytest.mark.slow
def test_train_shows_every_fit_with_the_time_left(two_data_sets: dict[str, Any]) -> None:
    result = two_data_sets["loud"]
    assert result.exit_code == 0, result.stderr
    fits = re.findall(r"\] fold (\d)/(\d): (\w+) \((\d+)/(\d+) fits, ([^)]*)\)", result.stderr)
    n_folds, total = int(fits[0][1]), int(fits[0][4])
    assert total == n_folds * 3 == len(fits)  # folds x the 3 candidates, each announced once
    assert len({(f[0], f[2]) for f in fits}) == total
    done = [int(f[3]) for f in fits]  # fits run side by side: counted up, never down, never past
    assert done == sorted(done) and all(d < total for d in done) and done[0] == 0
    assert all(f[5] == "time left after fold 1" for f in fits[:3])
    assert all(re.fullmatch(r"about (\d+ s|\d+ min \d\d s) left", f[5]) for f in fits[3:])
    assert f"backtest done: {total} fits in " in result.stderr


@pytest.mark.slow
def test_train_ends_with_a_summary_naming_the_run_the_columns_the_plots_and_the_ui(
    two_data_sets: dict[str, Any],
) -> None:
    out = two_data_sets["loud"].stdout
    client = MlflowClient(tracking_uri=two_data_sets["uri"], registry_uri=two_data_sets["uri"])
    mv = client.get_model_version_by_alias("gen", "challenger")
    run = client.get_run(mv.run_id)
    assert f"run:       {mv.run_id} in experiment churnclv" in out
    assert f"model:     gen version {mv.version} (alias challenger); promoted to champion" in out
    for column, meaning in COLUMNS.items():  # every column of the table, one line each
        assert f"  {column:<10} {meaning}" in out
    assert "top10%" in COLUMNS and "agg err %" in COLUMNS
    plots = Path(re.search(r"^plots: +(.+)$", out, re.M).group(1))  # type: ignore[union-attr]
    assert plots == Path(run.info.artifact_uri.removeprefix("file://")) / "report"
    assert {"calibration.png", "gain_churn.png", "tier_mix.png"} <= {p.name for p in plots.iterdir()}
    assert f"MLflow UI: mlflow ui --backend-store-uri {two_data_sets['uri']}" in out
    assert "(as of 2025-10-02, horizon 90 days)" in out


@pytest.mark.slow
def test_q_prints_nothing_but_warnings(two_data_sets: dict[str, Any]) -> None:
    result = two_data_sets["quiet"]
    assert result.exit_code == 0
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert lines and all(" WARNING " in line for line in lines), lines  # MLflow's INFO and prints too
    assert any("only 2 of 3 backtest folds fit" in line for line in lines)


@pytest.mark.slow
def test_no_message_is_said_twice(two_data_sets: dict[str, Any]) -> None:
    for result in (two_data_sets["quiet"], two_data_sets["loud"]):
        messages = [line.split(": ", 1)[1] for line in _log_lines(result.stderr)]
        assert len(messages) == len(set(messages)), messages
        assert not [m for m in messages if m in result.stdout]  # the summary does not repeat the log
    loud = two_data_sets["loud"]
    assert "INFO churnclv.models" not in loud.stderr  # the fit details are for -v
    assert "Successfully registered model" not in loud.stderr and "Created version" not in loud.stderr


@pytest.mark.slow
def test_logged_parameters_are_what_ran(two_data_sets: dict[str, Any]) -> None:
    client = MlflowClient(tracking_uri=two_data_sets["uri"], registry_uri=two_data_sets["uri"])
    mv = client.get_model_version_by_alias("cdnow", "challenger")
    params = client.get_run(mv.run_id).data.params
    assert params["train.n_folds"] == "2" and params["train.n_folds_requested"] == "3"  # 2 of 3 fit
    selected = client.get_model_version("cdnow", mv.version).tags["selected"]
    for target in ("churn", "purchases", "spend"):
        assert f'"{target}": "{params[f"scorer.{target}_model"]}"' in selected
    assert params["scorer.churn_model"] != "hybrid"  # hybrid was not a candidate
    assert params["train.model_name"] == "cdnow"


@pytest.mark.slow
def test_a_dropped_subfit_is_said_once_and_the_summary_counts_it(
    small_world: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from churnclv.models.scorer_config import ScorerConfig
    from churnclv.training import backtest
    from churnclv.training.config import RunConfig, TrainConfig
    from churnclv.training.pipeline import train
    from churnclv.training.summary import summary_lines

    real = backtest.evaluate_candidate

    def flaky(name: str, *args: Any) -> Any:
        if name == "gbm" and not flaky.failed:  # type: ignore[attr-defined]
            flaky.failed = True  # type: ignore[attr-defined]
            raise FloatingPointError("p_churn is not finite (injected)")
        return real(name, *args)

    flaky.failed = False  # type: ignore[attr-defined]
    monkeypatch.setattr(backtest, "evaluate_candidate", flaky)
    config = RunConfig(
        train=TrainConfig(n_folds=2, train_cutoffs=2, candidates=("btyd", "gbm")), scorer=ScorerConfig(gbm_rounds=30)
    )
    steps: list[str] = []
    with caplog.at_level(logging.INFO, logger="churnclv.training"):
        result = train(small_world, "2025-10-02", config, progress=steps.append)
    said = [r.getMessage() for r in caplog.records if "injected" in r.getMessage()]
    assert said == ["fold 1: gbm dropped: FloatingPointError: p_churn is not finite (injected)"]
    assert not [s for s in steps if "injected" in s or "dropped" in s]  # the progress does not repeat it
    assert len([s for s in steps if re.match(r"fold \d/2: ", s)]) == 4  # the failed fit was announced too
    lines = summary_lines(result, as_of="2025-10-02", horizon_days=90, tracking_uri="sqlite:///x.db")
    assert "note: 1 sub-fit(s) left out (the warnings above; training_notes.json in the run)" in lines
    assert not [line for line in lines if "injected" in line]
