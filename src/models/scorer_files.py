"""A saved scorer's files: ``scorer.json`` plus one LightGBM model text file per booster, no pickles.

:func:`write_scorer` writes the folder; :func:`read_scorer` reads it back and checks it on the way
(the format stamp, every field, the booster files' names and checksums), so a damaged, tampered
or foreign folder fails with one line naming the file and the field (:class:`ScorerFormatError`),
never with a traceback from deep inside, and never reaches LightGBM's parser, which aborts the
whole process on a truncated model text.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
from lightgbm.basic import LightGBMError

from churnclv.features import FeatureConfig
from churnclv.models.btyd import BTYDModel
from churnclv.models.gbm import GBMChurnClassifier, GBMCountRegressor, GBMSpendRegressor, model_from_dict
from churnclv.models.intervals import SpendIntervals, fit_intervals
from churnclv.models.saved_format import SavedFormatError, check_stamp
from churnclv.models.scorer_config import ScorerConfig
from churnclv.models.seasonality import SeasonalBTYD
from churnclv.models.tier_policy import TierPolicy

__all__ = [
    "GBM_TARGETS",
    "NO_LEVELS",
    "SavedScorer",
    "ScorerFormatError",
    "feature_config_from_dict",
    "read_scorer",
    "write_scorer",
]

GBM_TARGETS = ("churn", "purchases", "spend")  # the targets a LightGBM model can score
NO_LEVELS = {"purchases": 1.0, "spend": 1.0}  # the learned totals as predicted (scorers saved before levels)
_STAMP = {"format": "churnclv.scorer", "format_version": 1}
# What the readers raise on a damaged or hand-edited scorer.json: bad values and types, missing
# fields, unreadable files, LightGBM's own parse errors.
_DAMAGED = (
    ValueError,
    ArithmeticError,
    RuntimeError,
    np.linalg.LinAlgError,
    LightGBMError,
    KeyError,
    TypeError,
    AttributeError,
    IndexError,
    OSError,
)


class ScorerFormatError(SavedFormatError):
    """Saved scorer files that this code cannot read (damaged, tampered with, another version)."""


@dataclass(frozen=True)
class SavedScorer:
    """What a saved scorer holds: its fitted parts, as :class:`churnclv.models.scorer.Scorer` has them."""

    config: ScorerConfig
    metadata: dict[str, Any]
    clv_fallback_ratio: float
    btyd: BTYDModel
    gbm: dict[str, GBMChurnClassifier | GBMCountRegressor | GBMSpendRegressor]  # by target, the chosen ones
    tiers: TierPolicy | None
    # (a, b): churn = expit(a + b s) on the blended log-odds s (None: no recalibration)
    churn_calibration: tuple[float, float] | None = None
    # per learned target, the factor on its output (purchases, spend)
    level_factors: dict[str, float] = field(default_factory=lambda: dict(NO_LEVELS))
    # the season and BTYD in operational time (None: no season was found or fitted)
    seasonal: SeasonalBTYD | None = None
    # the spend and CLV intervals: only their settings are saved, and they are fitted again on ``btyd``
    # at load (reads no data); None: the default settings
    intervals: SpendIntervals | None = None


def write_scorer(path: Path | str, saved: SavedScorer) -> Path:
    """Write ``scorer.json`` plus ``<target>.lgb.txt`` booster files into the folder ``path``."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    doc: dict[str, Any] = {
        **_STAMP,
        "config": asdict(saved.config),
        "metadata": saved.metadata,
        "clv_fallback_ratio": saved.clv_fallback_ratio,
        "churn_calibration": None if saved.churn_calibration is None else [float(v) for v in saved.churn_calibration],
        "level_factors": {k: float(v) for k, v in saved.level_factors.items()},
        "btyd": saved.btyd.to_dict(),
        "seasonal": None if saved.seasonal is None else saved.seasonal.to_dict(),
        "intervals": _interval_settings(saved.intervals),
        "gbm": {},
        "tiers": None if saved.tiers is None else saved.tiers.to_dict(),
    }
    for target in GBM_TARGETS:
        model = saved.gbm.get(target)
        booster_file = f"{target}.lgb.txt"
        if model is None:  # a folder saved over keeps no booster of an earlier model (MLflow would log it)
            (path / booster_file).unlink(missing_ok=True)
            continue
        d = model.to_dict()
        text = d.pop("booster")
        (path / booster_file).write_text(text)
        d["booster_file"] = booster_file
        d["booster_sha256"] = hashlib.sha256(text.encode("utf-8")).hexdigest()
        doc["gbm"][target] = d
    (path / "scorer.json").write_text(json.dumps(doc, indent=1, sort_keys=True))
    return path


def read_scorer(path: Path | str) -> SavedScorer:
    """Read a folder written by :func:`write_scorer`.

    Raises
    ------
    FileNotFoundError
        No ``scorer.json`` in ``path``.
    ScorerFormatError
        The files are not a scorer this code can read (damaged, tampered with, another
        version): one line naming the file and the field, never a traceback from deep inside.
    """
    path = Path(path)
    doc_path = path / "scorer.json"
    if not doc_path.is_file():
        raise FileNotFoundError(f"{doc_path} not found: pass the folder written by Scorer.save")
    try:
        return _from_doc(path, json.loads(doc_path.read_text(encoding="utf-8")))
    except ScorerFormatError:
        raise
    except _DAMAGED as exc:
        detail = f"{type(exc).__name__}: {exc}"[:300]
        raise ScorerFormatError(
            f"{doc_path}: not a valid churnclv scorer ({detail}); retrain the model or load "
            "the one churnclv train saved"
        ) from None


def _from_doc(path: Path, doc: Any) -> SavedScorer:
    where = path / "scorer.json"
    check_stamp(doc, _STAMP, reader=str(where), fix="retrain the model with this churnclv", error=ScorerFormatError)
    tiers = None if doc.get("tiers") is None else TierPolicy.from_dict(doc["tiers"])
    config = dict(doc["config"])
    # saved before the key existed: those regressors were refitted on every row
    config.setdefault("gbm_refit_full", True)
    scorer_config = ScorerConfig.from_dict(config)
    metadata = doc["metadata"]
    if not isinstance(metadata, dict):
        raise ScorerFormatError(f"{where}: field 'metadata' must be an object")
    btyd = BTYDModel.from_dict(doc["btyd"])
    feature_config_from_dict(metadata.get("features"))  # a damaged [features] record fails here, not at the first score
    ratio = float(doc["clv_fallback_ratio"])
    if not np.isfinite(ratio) or ratio < 0:
        raise ScorerFormatError(f"{where}: field 'clv_fallback_ratio' must be a finite number >= 0")
    calibration = _churn_calibration(where, doc.get("churn_calibration"))
    levels = dict(NO_LEVELS)  # absent before: the learned totals as predicted
    for k, v in dict(doc.get("level_factors") or {}).items():
        if k not in levels or not np.isfinite(float(v)) or float(v) <= 0:
            raise ScorerFormatError(f"{where}: field 'level_factors.{k}' must be a number > 0")
        levels[k] = float(v)
    gbm = {}
    for target, saved in dict(doc["gbm"]).items():
        if target not in GBM_TARGETS:
            raise ScorerFormatError(f"{where}: unknown model 'gbm.{target}'")
        d = dict(saved)
        name = d.pop("booster_file")
        # a plain file name inside the model folder: never a path that leads out of it
        if not isinstance(name, str) or Path(name).name != name or name in ("", ".", ".."):
            raise ScorerFormatError(
                f"{where}: field 'gbm.{target}.booster_file' must be a file name inside the model folder"
            )
        d["booster"] = _checked_booster(path / name, d.pop("booster_sha256", None))
        gbm[target] = model_from_dict(d)
    try:  # absent before: no season
        seasonal = SeasonalBTYD.from_dict(doc.get("seasonal"))
    except (KeyError, TypeError, ValueError) as exc:
        raise ScorerFormatError(f"{where}: field 'seasonal' is damaged ({type(exc).__name__}: {exc})") from None
    settings = doc.get("intervals")  # absent before: the default settings
    if settings is not None and not isinstance(settings, dict):
        raise ScorerFormatError(f"{where}: field 'intervals' must be an object such as {_interval_settings(None)}")
    try:
        intervals = fit_intervals(btyd, scorer_config, settings)
    except (TypeError, ValueError) as exc:
        raise ScorerFormatError(f"{where}: field 'intervals' is damaged ({type(exc).__name__}: {exc})") from None
    return SavedScorer(
        scorer_config, metadata, ratio, btyd, gbm, tiers, calibration, levels, seasonal, intervals=intervals
    )


def _interval_settings(intervals: SpendIntervals | None) -> dict[str, Any]:
    """What ``scorer.json`` keeps of the intervals: their settings (None: the defaults)."""
    est = intervals if intervals is not None else SpendIntervals()
    return {"n_draws": est.n_draws, "seed": est.seed}


def _churn_calibration(where: Path, value: Any) -> tuple[float, float] | None:
    """The saved ``churn_calibration`` (absent before: no recalibration)."""
    if value is None:
        return None
    pair = tuple(float(v) for v in value)
    if len(pair) != 2 or not all(np.isfinite(pair)):
        raise ScorerFormatError(f"{where}: field 'churn_calibration' must be two finite numbers")
    return (pair[0], pair[1])


def _checked_booster(path: Path, sha256: str | None) -> str:
    """The booster text, checked before LightGBM reads it: its parser aborts the whole process (no
    exception) on a truncated file. Scorers saved with a checksum are checked against it; older ones
    must at least hold LightGBM's end markers."""
    text = path.read_text(encoding="utf-8")
    if sha256 is not None and hashlib.sha256(text.encode("utf-8")).hexdigest() != sha256:
        raise ScorerFormatError(
            f"{path}: the booster file does not match the checksum in scorer.json (damaged or "
            "changed after training); retrain the model or restore the file"
        )
    if not text.startswith("tree\n") or "\nend of trees\n" not in text or "\nend of parameters\n" not in text:
        raise ScorerFormatError(f"{path}: not a complete LightGBM model text (truncated?); retrain the model")
    return text


def feature_config_from_dict(data: dict[str, Any] | None) -> FeatureConfig:
    """A :class:`FeatureConfig` from its ``dataclasses.asdict`` form (None: the defaults)."""
    if not data:
        return FeatureConfig()
    known = {f.name for f in fields(FeatureConfig)}
    values: dict[str, Any] = {k: tuple(v) if isinstance(v, list) else v for k, v in data.items() if k in known}
    return FeatureConfig(**values)
