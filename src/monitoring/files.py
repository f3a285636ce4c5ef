"""The names of a monitoring run's files, apart from the report's code: what reads a run's results
(the batch's summary) needs them without matplotlib, which the report's figures import (0.4 s)."""

from __future__ import annotations

__all__ = ["MONITOR_FILE", "REPORT_FILE"]

MONITOR_FILE = "monitor.json"
REPORT_FILE = "report.md"
