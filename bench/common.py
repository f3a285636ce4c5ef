"""What the bench scripts share: their options, the results file each writes, and for the end-to-end
benches the CLI in a child process, its peak memory, cached worlds.

The results file
----------------
Every bench takes ``--json PATH`` (default ``work/bench-results/<bench>.json`` in the repository; ``-``:
none) and writes one JSON object there when it ends, format ``churnclv-bench/1``::

    {
      "format": "churnclv-bench/1",
      "bench": "btyd",                                  # the script's name without ".py"
      "status": "ok",                                   # or "skipped", "failed" (written by bench/suite.py)
      "command": ["bench/btyd.py", "--n-customers", "100000"],   # the command line as typed
      "started_at": "2026-12-05T19:50:00+00:00", "finished_at": "...", "wall_s": 12.3,
      "machine": {"cores": 2, "ram_gb": 23.4, "load_avg_start": [3.1, 3.5, 4.0],
                  "load_avg_end": [3.0, 3.4, 4.0], "python": "3.11.9", "duckdb": "1.2.1",
                  "lightgbm": "4.6.0", "platform": "Linux-...", "cpu": "...",
                  "git_commit": "17c66a1...", "git_dirty": true},
      "records": [{"fit": "compressed (default)", "total_s": 0.41, ...}, ...],   # the printed table's rows
      "headlines": [                                    # the rows of `bench/summary.py`'s table
        {"metric": "BG/NBD + Gamma-Gamma fit, 100,000 customers", "unit": "s", "ours": 0.41,
         "reference": 2.3, "reference_name": "uncompressed (lifetimes on every customer)", "ratio": 0.18,
         "goal": {"of": "ratio", "op": "<=", "value": 0.25, "scale": "", "applies": true}, "met": true}
      ],
      "notes": ["free text, e.g. what a reference is or why a goal does not apply"],
      "reason": "...", "full_command": "..."             # only when skipped or failed
    }

``ratio`` is ours / reference. A goal is on ``ours``, ``ratio``, ``difference`` (ours - reference) or
``abs_difference`` (its size), with ``<=`` or ``>=``; a goal stated at a scale (``"1M customers"``) has
``applies: false`` in a run at another size, and then ``met`` is null. :func:`goal_met` is the one
rule; ``bench/summary.py`` applies it again when it reads a file. Write the file with
:class:`Results`; ``bench_parser`` adds ``--json`` (and refuses abbreviated options).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

FORMAT = "churnclv-bench/1"
ROOT = Path(__file__).resolve().parents[1]
RESULTS_DIR = ROOT / "work" / "bench-results"
OPS = {"<=": float.__le__, ">=": float.__ge__}
KINDS = ("ours", "ratio", "difference", "abs_difference")
# A quick training configuration (2 folds, 3 cutoffs, 80 rounds: the tests' settings), for benches
# that need a model rather than measure training
FAST_CONFIG = "[train]\nn_folds = 2\ntrain_cutoffs = 3\n[scorer]\ngbm_rounds = 80\nseed = 1\n"


# Files in bench/ with a command line that are not benches: the runner, the summary, and the child
# processes of a bench (called with positional arguments by their bench only).
NOT_BENCHES = frozenset({"suite", "summary", "features_workers"})


def bench_scripts() -> list[str]:
    """The bench scripts: the files in bench/ with a command line (a ``__main__`` guard), but NOT_BENCHES."""
    guard = re.compile(r"^if __name__ == .__main__.:", re.MULTILINE)
    here = Path(__file__).parent
    return sorted(p.stem for p in here.glob("*.py") if p.stem not in NOT_BENCHES and guard.search(p.read_text()))


# --------------------------------------------------------------------------- options


def bench_parser(file: str, description: str | None = None, raw: bool = True) -> argparse.ArgumentParser:
    """The bench's option parser: no abbreviated options (``--work`` is never ``--worker``), and ``--json``."""
    parser = argparse.ArgumentParser(
        prog=f"bench/{Path(file).name}",
        description=description,
        formatter_class=argparse.RawDescriptionHelpFormatter if raw else argparse.HelpFormatter,
        allow_abbrev=False,
    )
    name = Path(file).stem
    parser.add_argument(
        "--json",
        type=_json_path,
        default=RESULTS_DIR / f"{name}.json",
        metavar="PATH",
        help=f"write the results here as JSON (default: work/bench-results/{name}.json; '-': not at all)",
    )
    return parser


def day(text: str) -> dt.date:
    """An option's date (YYYY-MM-DD), or an argparse error naming the format."""
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text}: not a date, use YYYY-MM-DD (e.g. 2025-06-30)") from None


def _json_path(text: str) -> Path | None:
    if not text:
        raise argparse.ArgumentTypeError("an empty path; give a file name, or '-' to write no JSON")
    return None if text == "-" else Path(text)


# --------------------------------------------------------------------------- goals and headlines


@dataclass(frozen=True)
class Goal:
    """A target for one headline figure: ``of`` (ours, ratio, difference) ``op`` (<=, >=) ``value``."""

    of: str
    op: str
    value: float
    scale: str = ""  # where the goal is stated, e.g. "1M customers"; empty: any size

    def __post_init__(self) -> None:
        if self.of not in KINDS or self.op not in OPS:
            raise ValueError(f"goal {self.of} {self.op} {self.value}: of is one of {KINDS}, op is <= or >=")


def goal_text(goal: dict[str, Any] | None, unit: str = "") -> str:
    """The goal in words, e.g. ``<= 40 s (1M customers)``, ``ratio <= 2``, ``ours - ref >= -0.02``."""
    if not goal:
        return ""
    what = {"ours": "", "ratio": "ratio ", "difference": "ours - ref ", "abs_difference": "|ours - ref| "}[goal["of"]]
    value = f"{goal['value']:g}" + (f" {unit}" if unit and goal["of"] == "ours" else "")
    at = f" ({goal['scale']})" if goal.get("scale") else ""
    return f"{what}{goal['op']} {value}{at}"


def goal_met(goal: dict[str, Any] | None, ours: float | None, reference: float | None) -> bool | None:
    """Whether the headline meets its goal; None without a goal, a figure, or where the goal does not apply."""
    if not goal or not goal.get("applies", True) or ours is None:
        return None
    if goal["of"] == "ours":
        value: float | None = ours
    elif reference is None:
        return None
    elif goal["of"] == "difference":
        value = ours - reference
    elif goal["of"] == "abs_difference":
        value = abs(ours - reference)
    else:
        value = ours / reference if reference else None
    return None if value is None else bool(OPS[goal["op"]](float(value), float(goal["value"])))


def _number(x: Any) -> float | None:
    return None if x is None else float(x)


# --------------------------------------------------------------------------- machine facts


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def _git(*args: str) -> str | None:
    try:
        out = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=10, check=True)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip()


def _cpu() -> str | None:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or None


def machine_facts() -> dict[str, Any]:
    """Cores, RAM, load average now, the versions that shape the figures and the git commit."""
    status = _git("status", "--porcelain", "--untracked-files=no")
    return {
        "cores": os.cpu_count(),
        "ram_gb": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 2),
        "load_avg_start": [round(x, 2) for x in os.getloadavg()],
        "python": platform.python_version(),
        "duckdb": _version("duckdb"),
        "lightgbm": _version("lightgbm"),
        "platform": platform.platform(),
        "cpu": _cpu(),
        "git_commit": _git("rev-parse", "HEAD"),
        "git_dirty": None if status is None else bool(status),
    }


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


# --------------------------------------------------------------------------- the results file


@dataclass
class Results:
    """A bench's results file: create it when the bench starts, add rows, ``write()`` at the end."""

    path: Path | None
    file: str  # the bench script's __file__
    records: list[dict[str, Any]] = field(default_factory=list)
    headlines: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.bench = Path(self.file).stem
        self.command = [f"bench/{self.bench}.py", *sys.argv[1:]]
        self.started_at = _now()
        self._start = time.perf_counter()
        self.machine = machine_facts()

    def headline(
        self,
        metric: str,
        ours: float | None,
        unit: str = "",
        reference: float | None = None,
        reference_name: str = "",
        goal: Goal | None = None,
        goal_applies: bool = True,
    ) -> None:
        """One row of the summary table; ``goal_applies=False`` when the run is not at the goal's scale."""
        ours, reference = _number(ours), _number(reference)
        goal_dict = None if goal is None else {**asdict(goal), "applies": goal_applies}
        self.headlines.append(
            {
                "metric": metric,
                "unit": unit,
                "ours": ours,
                "reference": reference,
                "reference_name": reference_name,
                "ratio": ours / reference if ours is not None and reference else None,
                "goal": goal_dict,
                "met": goal_met(goal_dict, ours, reference),
            }
        )

    def document(self, status: str = "ok") -> dict[str, Any]:
        machine = {**self.machine, "load_avg_end": [round(x, 2) for x in os.getloadavg()]}
        return {
            "format": FORMAT,
            "bench": self.bench,
            "status": status,
            "command": self.command,
            "started_at": self.started_at,
            "finished_at": _now(),
            "wall_s": round(time.perf_counter() - self._start, 3),
            "machine": machine,
            "records": self.records,
            "headlines": self.headlines,
            "notes": self.notes,
        }

    def write(self) -> Path | None:
        """Write the file (atomically: a reader never sees half of it); prints where, on stderr."""
        if self.path is None:
            return None
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f".{self.path.name}.tmp")
        tmp.write_text(json.dumps(self.document(), indent=1, default=_jsonable) + "\n")
        tmp.replace(self.path)
        print(f"results: {self.path}", file=sys.stderr)
        return self.path


def _jsonable(x: Any) -> Any:
    """numpy scalars, dates and paths in records."""
    if hasattr(x, "item"):
        return x.item()
    return str(x)


# --------------------------------------------------------------------------- the CLI in a child process


def cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "churnclv.cli", *args]


def run(cmd: list[str], log: Path, cwd: Path | None = None) -> tuple[float, float, int]:
    """Run ``cmd``; returns (wall seconds, peak RSS in GB of the child, exit status)."""
    start = time.perf_counter()
    with log.open("w") as fh:
        proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, cwd=cwd)
        _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    return time.perf_counter() - start, usage.ru_maxrss / 2**20, proc.returncode  # ru_maxrss is KiB on Linux


def world(work: Path, n: int, seed: int) -> tuple[Path, float | None]:
    """A generated world of ``n`` customers under ``work`` (made once; returns its generation time then)."""
    path = work / f"world-{n}-s{seed}"
    if (path / "customers.parquet").is_file():
        return path, None
    shutil.rmtree(path, ignore_errors=True)
    wall, _, rc = run(
        cli("generate", "--customers", str(n), "--seed", str(seed), "--out", str(path)), work / f"generate-{n}.log"
    )
    if rc:
        sys.exit(f"generate failed: see {work / f'generate-{n}.log'}")
    return path, wall


def rows_of(path: Path, name: str) -> int:
    import pyarrow.parquet as pq

    return pq.ParquetFile(path / f"{name}.parquet").metadata.num_rows
