"""One weekly run per output folder: a second run refuses (exit 75) or, with --wait, queues."""

from __future__ import annotations

import fcntl
import threading
from pathlib import Path

import pytest
from click.testing import CliRunner

from churnclv.cli import cli
from churnclv.weekly.commands import BUSY_EXIT
from churnclv.weekly.errors import WeeklyBusyError
from churnclv.weekly.lock import lock_path, run_lock


def _hold(out: Path):
    path = lock_path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    fh = path.open("a")
    fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    return fh


def test_second_run_refuses_with_its_own_exit_status_and_changes_nothing(tmp_path: Path) -> None:
    out = tmp_path / "out"
    held = _hold(out)  # another weekly run, as far as the lock can tell
    try:
        args = ["weekly", "--data", str(tmp_path), "--as-of", "2025-06-01", "--out", str(out)]
        result = CliRunner().invoke(cli, args)
    finally:
        held.close()
    assert result.exit_code == BUSY_EXIT, result.output
    message = " ".join(result.output.split())
    assert "another churnclv weekly run is writing into" in message and "--wait" in message
    assert sorted(p.name for p in out.iterdir()) == [".locks"]  # no journal, no scores, nothing


def test_wait_queues_behind_the_running_one(tmp_path: Path) -> None:
    out = tmp_path / "out"
    held = _hold(out)
    waiting = threading.Event()
    entered = threading.Event()
    said: list[str] = []

    def second() -> None:
        with run_lock(out, wait=True, on_wait=lambda m: (said.append(m), waiting.set())):
            entered.set()

    thread = threading.Thread(target=second)
    thread.start()
    assert waiting.wait(timeout=30)  # signalled, not slept: it told us it waits ...
    assert not entered.is_set()  # ... and has not entered while the lock is held
    held.close()  # the first run ends
    thread.join(timeout=30)
    assert entered.is_set()
    assert "waiting for it to finish" in said[0]


def test_the_lock_is_free_again_after_a_run(tmp_path: Path) -> None:
    # the second attempt names the holder's process id
    with run_lock(tmp_path, wait=False, on_wait=print), pytest.raises(WeeklyBusyError, match="process"):  # noqa: SIM117
        with run_lock(tmp_path, wait=False, on_wait=print):
            pass
    with run_lock(tmp_path, wait=False, on_wait=print):
        pass


@pytest.mark.parametrize("where", ["file", "journal"])
def test_an_output_folder_that_cannot_be_written_is_one_line_not_a_traceback(
    tmp_path: Path, where: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A file where --out (or its weekly/ folder) should be: root ignores permissions, a file does not."""
    # a store of its own: a tracking URI another test left in the environment is checked before the journal
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}")
    out = tmp_path / "out"
    if where == "file":  # a file where a parent folder of --out should be
        (tmp_path / "afile").write_text("")
        out = tmp_path / "afile" / "out"
    else:
        out.mkdir()
        (out / "weekly").write_text("")
    args = ["weekly", "--data", str(tmp_path), "--as-of", "2025-06-01", "--out", str(out)]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 1, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    line = " ".join(result.output.split())
    wanted = "cannot create the weekly lock" if where == "file" else "cannot write the journal"
    assert wanted in line and "Traceback" not in result.output
