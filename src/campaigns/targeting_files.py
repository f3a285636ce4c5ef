"""A fitted targeting's folder: JSON for the choice and its backtest, LightGBM model text for an uplift model.

``churnclv campaign fit-targeting --out DIR`` writes it and ``churnclv score-batch --targeting DIR`` reads
it; nothing is pickled::

    DIR/targeting.json      format and version, the id, the parameters, the chosen candidate and its
                            scale (a value column's), the features, the costs per action, the actions that
                            are no contact and the margin, the outcome window (horizon_days) and the model
                            that scored the campaigns (scores_model: its horizon, each campaign's model
                            name and version), the campaigns it learned from, the backtest per held-out
                            campaign and the comparisons of the choice
    DIR/uplift_model.json   only when the X-learner was chosen: its boosters as LightGBM model text

The id (``<candidate>-<12 hex digits>``, the ``targeting`` column of the scores) is a SHA-256 of both
files' content, checked on load: a file changed by hand, cut short or mixed with another fit's is
refused, as is a folder of another format version (version 1, written before the outcome window, the
scoring model and the actions that are no contact were recorded, is refused: fit it again).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from churnclv.campaigns.errors import CampaignError
from churnclv.campaigns.targeting import FORMAT_VERSION, UPLIFT_MODEL, CampaignTargeting

__all__ = ["MODEL_FILE", "TARGETING_FILE", "SavedTargeting", "load_targeting", "save_targeting"]

TARGETING_FILE = "targeting.json"
MODEL_FILE = "uplift_model.json"
_FIX = "fix: fit it again with churnclv campaign fit-targeting --out DIR"


@dataclass(frozen=True)
class SavedTargeting:
    """A targeting read from its folder, with its id and where it came from."""

    targeting: CampaignTargeting
    id: str
    folder: Path


def _canonical(doc: Mapping[str, Any]) -> str:
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), allow_nan=False)


def _targeting_id(chosen: str, doc: Mapping[str, Any], model: Mapping[str, Any] | None) -> str:
    digest = hashlib.sha256(_canonical(doc).encode())
    if model is not None:
        digest.update(_canonical(model).encode())
    return f"{chosen}-{digest.hexdigest()[:12]}"


def save_targeting(targeting: CampaignTargeting, folder: Path | str) -> SavedTargeting:
    """Write a fitted targeting into ``folder`` (created; its files replaced); returns it with its id."""
    folder = Path(folder)
    doc = targeting.to_dict()
    model = doc.pop("fitted") if doc["chosen"] == UPLIFT_MODEL else None
    if model is not None:
        doc["fitted"] = {"file": MODEL_FILE}
    tid = _targeting_id(doc["chosen"], doc, model)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / MODEL_FILE).unlink(missing_ok=True)
    if model is not None:
        (folder / MODEL_FILE).write_text(json.dumps(model, allow_nan=False), encoding="utf-8")
    (folder / TARGETING_FILE).write_text(json.dumps({"id": tid, **doc}, indent=1, allow_nan=False), encoding="utf-8")
    return SavedTargeting(targeting, tid, folder)


def _read_json(path: Path, missing: str) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CampaignError(f"{path}: missing; {missing}: {_FIX}") from None
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise CampaignError(f"{path}: cannot be read ({type(exc).__name__}): damaged; {_FIX}") from None


def load_targeting(folder: Path | str) -> SavedTargeting:
    """The targeting :func:`save_targeting` wrote into ``folder``.

    Raises
    ------
    CampaignError
        The folder or a file is missing, cannot be read, is another format version or was changed
        since it was written; the message names the file and the fix.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise CampaignError(
            f"targeting {folder}: not a folder; fix: pass the --out folder of churnclv campaign fit-targeting"
        )
    path = folder / TARGETING_FILE
    doc = _read_json(path, "the folder holds no saved targeting")
    if not isinstance(doc, dict):
        raise CampaignError(f"{path}: not a JSON object: damaged; {_FIX}")
    version = doc.get("format_version")
    if doc.get("format") != "churnclv.targeting" or version != FORMAT_VERSION:
        raise CampaignError(
            f"{path}: format {doc.get('format')!r} version {version!r}, this version of churnclv reads "
            f"churnclv.targeting version {FORMAT_VERSION}; {_FIX}"
        )
    tid = doc.pop("id", None)
    chosen = doc.get("chosen")
    uplift = f"{TARGETING_FILE} chose the uplift model, whose boosters this file holds (copy both files together)"
    model = _read_json(folder / MODEL_FILE, uplift) if chosen == UPLIFT_MODEL else None
    try:
        expected = _targeting_id(str(doc["chosen"]), doc, model)
    except (KeyError, TypeError, ValueError):
        raise CampaignError(f"{path}: fields are missing or malformed: damaged; {_FIX}") from None
    if tid != expected:
        raise CampaignError(
            f"{path}: its content does not match its id {tid!r} (changed since it was written, or mixed with "
            f"another fit's {MODEL_FILE}); {_FIX}"
        )
    if model is not None:
        doc["fitted"] = model
    try:
        targeting = CampaignTargeting.from_dict(doc)
    except (KeyError, TypeError, ValueError) as exc:
        if isinstance(exc, CampaignError):
            raise
        raise CampaignError(f"{path}: fields are missing or malformed ({type(exc).__name__}); {_FIX}") from None
    return SavedTargeting(targeting, tid, folder)
