"""The scheduling files in deploy/ run only ``churnclv weekly``, with options the command has."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from churnclv.weekly.commands import BUSY_EXIT, weekly

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"


def _command_lines() -> list[tuple[str, str]]:
    cron = (DEPLOY / "cron" / "churnclv-weekly").read_text()
    service = (DEPLOY / "systemd" / "churnclv-weekly.service").read_text()
    lines = [("cron", line) for line in cron.splitlines() if line and not line.startswith("#") and "=" not in line[:30]]
    lines += [("systemd", line.split("=", 1)[1]) for line in service.splitlines() if line.startswith("ExecStart=")]
    return lines


@pytest.mark.parametrize(("where", "line"), _command_lines())
def test_schedules_run_the_weekly_command_with_known_options(where: str, line: str) -> None:
    # the shell's date becomes a date; then every --option must be one of churnclv weekly's
    text = re.sub(r'"\$\(date[^)]*\)"', "2025-06-01", line.replace("\\%", "%"))
    # systemd: /bin/sh -c 'exec churnclv ...'; cron: cd DIR && churnclv ... >> LOG 2>&1
    words = shlex.split(shlex.split(text)[2]) if where == "systemd" else shlex.split(text.split("&& ", 1)[1])
    start = next(i for i, w in enumerate(words) if w.endswith("/churnclv"))
    assert words[start + 1] == "weekly"
    known = {opt for param in weekly.params for opt in getattr(param, "opts", ())}
    options = [w for w in words[start + 2 :] if w.startswith("--")]
    assert options and set(options) <= known, set(options) - known
    assert {"--data", "--as-of", "--out"} <= set(options)


def test_systemd_treats_a_busy_lock_as_success_and_the_timer_starts_the_service() -> None:
    service = (DEPLOY / "systemd" / "churnclv-weekly.service").read_text()
    timer = (DEPLOY / "systemd" / "churnclv-weekly.timer").read_text()
    assert f"SuccessExitStatus={BUSY_EXIT}" in service and "Type=oneshot" in service
    assert "Unit=churnclv-weekly.service" in timer and "OnCalendar=" in timer
