"""What lets a killed batch run continue: the progress file of its temp partition and the resume key.

The temp partition holds ``_progress.json``: the run's key (as-of, engine, chunk size, reasons,
hysteresis, model version and URI, and the input's :func:`churnclv.fingerprint.resume_identity`)
and the chunks already written. ``resume=True`` continues the newest temp partition of the as-of
only when its key equals the new run's: the chunks are fixed slices of the sorted feature
snapshot, so the result equals an uninterrupted run's. When the key changed (other data, model or
settings), the run says so and starts over: its chunks could not be used, and the weekly job, which
always passes ``--resume``, would otherwise fail on every rerun.
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from churnclv.fingerprint import resume_identity
from churnclv.serving.atomic_files import write_json
from churnclv.serving.model import LoadedModel
from churnclv.serving.publication import temp_dirs

__all__ = ["PROGRESS_FILE", "open_temp", "resume_key"]

PROGRESS_FILE = "_progress.json"


def resume_key(
    *,
    day: dt.date,
    engine: str,
    chunk_size: int,
    hysteresis: bool,
    reasons: bool,
    model: LoadedModel,
    fp: dict[str, Any],
    prev_name: str | None,
) -> dict[str, Any]:
    """What a resumed run must share with the interrupted one (``fp``: the input fingerprint)."""
    return {
        "as_of": day.isoformat(),
        "engine": engine,
        "chunk_size": chunk_size,
        "reasons": reasons,
        "hysteresis": hysteresis,
        "hysteresis_from": prev_name if hysteresis else None,
        "model_version": model.version,
        "model_uri": model.resolved_uri,
        "input": resume_identity(fp),
    }


def open_temp(
    out: Path, name: str, key: dict[str, Any], resume: bool, echo: Callable[[str], Any]
) -> tuple[Path, dict[str, Any]]:
    """The temp partition to write into, with its progress (resumed or fresh)."""
    stale = temp_dirs(out, name)
    if resume:
        for tmp in reversed(stale):
            progress_path = tmp / PROGRESS_FILE
            if not progress_path.is_file():
                continue
            progress = json.loads(progress_path.read_text())
            changed = [k for k in key if progress.get("key", {}).get(k) != key[k]]
            if changed:  # its chunks would not line up; refusing would stall the weekly job, which always resumes
                echo(
                    f"cannot resume {tmp.name}: {', '.join(changed)} changed since the interrupted run (was "
                    f"{', '.join(repr(progress.get('key', {}).get(k)) for k in changed)}): starting a fresh run"
                )
                break
            for other in stale:
                if other != tmp:
                    shutil.rmtree(other, ignore_errors=True)
            done = len(progress.get("chunks", {}))
            echo(f"resuming {tmp.name}: {done} chunk(s) already scored")
            return tmp, progress
        else:
            echo(f"nothing to resume for {name}: starting a fresh run")
    for tmp in stale:  # left by killed runs; we hold the as-of's lock, so nobody writes them
        shutil.rmtree(tmp, ignore_errors=True)
    tmp = out / f".{name}.tmp-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    fresh: dict[str, Any] = {"key": key, "features": False, "chunks": {}}
    write_json(tmp / PROGRESS_FILE, fresh)
    return tmp, fresh
