"""What ``churnclv campaign evaluate`` and ``fit-targeting`` read: a campaign's scores, its arms, its contact log,
and its evaluation against the data after it.

A scores partition of the batch (``OUT/scores/dt=D``) is read with its manifest (``_manifest.json``: the
model that scored it, the feature snapshot beside it); training does not import serving, so the
manifest's file name and the partition folder's pattern are spelled here (a test checks they agree with
:mod:`churnclv.serving.snapshots`).
"""

from __future__ import annotations

import csv
import datetime as dt
import json
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from churnclv.campaigns.errors import CampaignError
from churnclv.campaigns.past_campaign import ScoringModel
from churnclv.ingestion.raw import other_separator
from churnclv.names import MAX_DAYS_AFTER_DATA

if TYPE_CHECKING:
    from churnclv.campaigns.config import CampaignConfig
    from churnclv.campaigns.evaluate import CampaignEvaluation

__all__ = [
    "CAMPAIGN_EXPERIMENT",
    "MANIFEST_FILE",
    "SCORES_HELP",
    "campaign_arms",
    "evaluate_from_files",
    "partition_day",
    "partition_manifest",
    "read_table",
    "scores_as_of",
    "scoring_model",
]

CAMPAIGN_EXPERIMENT = "churnclv-campaigns"  # the MLflow experiment of campaign evaluations and targetings
SCORES_HELP = "The scores of the campaign's as-of: a Parquet file, a partition folder (OUT/scores/dt=D) or a CSV."
MANIFEST_FILE = "_manifest.json"  # churnclv.serving.snapshots.MANIFEST_FILE
_PARTITION = re.compile(r"^dt=(\d{4}-\d{2}-\d{2})$")  # churnclv.serving.snapshots.partition_name's folders


def _read_parquet(path: Path) -> pd.DataFrame:
    """A Parquet file, or every ``*.parquet`` under a folder (``_``- and ``.``-prefixed names skipped) with
    their schemas unified by column name: partitions written with and without a targeting's columns read
    together, the columns a file lacks as nulls (``pd.read_parquet`` would take the first file's schema)."""
    if not path.is_dir():
        return pd.read_parquet(path)
    files = sorted(
        f for f in path.rglob("*.parquet") if not any(p.startswith(("_", ".")) for p in f.relative_to(path).parts)
    )
    if not files:
        raise ValueError("no Parquet file in the folder")
    return pa.concat_tables([pq.read_table(f) for f in files], promote_options="default").to_pandas()


def _read_csv(path: Path, what: str) -> pd.DataFrame:
    """A comma-separated file, every ``customer_id`` as text; one of another separator is refused by name."""
    with path.open("rb") as f:
        first = f.readline().decode("utf-8-sig", errors="replace")  # the header only: names, no customer data
    sep = other_separator(next(csv.reader([first]), []))
    if sep:
        raise CampaignError(
            f"{what} {path}: the header was read as one column, so the file is not comma-separated (it looks "
            f"{sep}-separated); fix: export it with commas as the separator (CSV files are read comma-separated), "
            "or as Parquet"
        )
    try:
        return pd.read_csv(path, dtype={"customer_id": str})
    except ValueError as exc:  # ParserError, EmptyDataError, UnicodeDecodeError
        raise CampaignError(
            f"{what} {path}: not valid CSV ({type(exc).__name__}); fix: write it as UTF-8 text, comma-separated, "
            'with every row as many fields as the header and fields that hold commas quoted ("a,b")'
        ) from None


def read_table(path: Path, what: str) -> pd.DataFrame:
    """A Parquet file or folder (its files unified by column name), or a CSV, with ``customer_id`` kept as
    strings (leading zeros)."""
    try:
        if path.suffix.lower() == ".csv" and path.is_file():
            return _read_csv(path, what)
        frame = _read_parquet(path)
    except CampaignError:
        raise
    except (OSError, ValueError, pa.ArrowInvalid) as exc:
        raise CampaignError(f"{what} {path}: cannot be read ({type(exc).__name__}); fix: pass Parquet or CSV") from None
    if "customer_id" in frame.columns:
        frame["customer_id"] = frame["customer_id"].astype(str)
    return frame


def scores_as_of(scores: pd.DataFrame, given: Any) -> pd.Timestamp:
    """``given``, else the one as-of of the scores' ``as_of`` column."""
    if given is not None:
        return pd.Timestamp(given)
    days = pd.to_datetime(scores["as_of"]).dt.normalize().unique() if "as_of" in scores.columns else []
    if len(days) != 1:
        raise CampaignError(
            f"the scores hold {len(days)} as-of dates; fix: pass the scores of one as-of or --campaign-as-of"
        )
    return pd.Timestamp(days[0])


def campaign_arms(frame: pd.DataFrame, campaign_id: str, plan: pd.DataFrame | None, config: CampaignConfig) -> Any:
    """The arms of ``campaign_id``: the plan when given, else the scores' holdout column when their campaign
    column is this campaign (a batch partition's), else the plan recomputed from the scores."""
    if plan is not None:
        return plan
    if (
        "holdout" in frame.columns
        and frame["holdout"].notna().all()
        and ("campaign" not in frame.columns or frame["campaign"].eq(campaign_id).all())
    ):  # a batch partition's holdout is this campaign's (null: it drew none)
        return frame[["customer_id", "holdout"]]
    from churnclv.campaigns.holdout import assign_holdout  # the CLI loads this module to list its commands

    s = config.settings
    return assign_holdout(frame, campaign_id, share=s.holdout_share, strata=s.strata, min_controls=s.min_controls)


def evaluate_from_files(
    clean: Any,
    frame: pd.DataFrame,
    arms: pd.DataFrame,
    log: pd.DataFrame,
    *,
    campaign_id: str,
    campaign_day: pd.Timestamp,
    horizon: int,
    as_of: Any,
    config: CampaignConfig,
) -> CampaignEvaluation:
    """:func:`~churnclv.campaigns.evaluate.evaluate_campaign` on the outcomes in the clean tables ``clean``
    over ``horizon`` days after ``campaign_day``, known up to ``as_of`` (default: the window's end)."""
    from churnclv.campaigns.evaluate import campaign_outcomes, evaluate_campaign  # ibis: only when it runs

    _check_window(clean, campaign_day, horizon, as_of)
    known_at = as_of if as_of is not None else campaign_day + pd.Timedelta(days=horizon)
    outcomes = campaign_outcomes(clean, campaign_day, horizon, known_at=known_at)
    return evaluate_campaign(
        frame,
        arms,
        log,
        outcomes,
        campaign=campaign_id,
        as_of=campaign_day,
        horizon_days=horizon,
        costs=config.costs,
        confidence=config.settings.confidence,
        margin=config.settings.margin,
    )


def _check_window(clean: Any, campaign_day: pd.Timestamp, horizon: int, as_of: Any) -> None:
    """Refuse an outcome window that has not closed at ``--as-of`` or runs past the data, in the command's
    words (``--horizon-days``, ``--as-of``); the label job would refuse it in its Python parameters'."""
    from churnclv.monitoring.quality import last_transaction_day  # ibis: only when it runs

    end = (campaign_day + pd.Timedelta(days=horizon)).date()
    start = f"the outcome window ({horizon} days after the scores' as-of {campaign_day.date()}) ends on {end}"
    if as_of is not None and pd.Timestamp(as_of).date() < end:
        raise CampaignError(
            f"--as-of {pd.Timestamp(as_of).date()}: {start}, after it, so it has not closed; fix: pass --as-of {end} "
            "or later (the data must run to it), or a shorter --horizon-days"
        )
    last = last_transaction_day(clean)
    if last is not None and (end - last).days > MAX_DAYS_AFTER_DATA:
        longest = (last + dt.timedelta(days=MAX_DAYS_AFTER_DATA) - campaign_day.date()).days
        raise CampaignError(
            f"--horizon-days {horizon}: {start}, {(end - last).days:,} days after the data's last transaction "
            f"({last}): its days without data would count as days without a purchase; fix: "
            + (f"--horizon-days {longest} or fewer, or " if longest >= 1 else "")
            + "evaluate once the data covers the window"
        )


def partition_day(path: Path) -> dt.date | None:
    """The as-of of a batch partition's folder or file: the date of the ``dt=YYYY-MM-DD`` folder ``path``
    is or lies in (None: neither)."""
    for name in (path.name, path.parent.name):
        match = _PARTITION.match(name)
        if match:
            return dt.date.fromisoformat(match.group(1))
    return None


def partition_manifest(scores: Path) -> tuple[Path, dict[str, Any]] | None:
    """The batch output folder and the manifest of the scores partition ``scores`` (its folder, or a part
    file in it); None when ``scores`` is not a published partition."""
    folder = scores if scores.is_dir() else scores.parent
    path = folder / MANIFEST_FILE
    if partition_day(folder) is None or not path.is_file():
        return None
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise CampaignError(f"{path}: cannot be read ({type(exc).__name__}); fix: run score-batch again") from None
    return folder.parent.parent, doc


def scoring_model(manifest: dict[str, Any] | None, scores: pd.DataFrame) -> ScoringModel:
    """The model that scored a campaign: from its partition's manifest (registered name, version, horizon),
    else the scores' one ``model_version``; what is unknown stays None."""
    if manifest is not None:
        m = manifest.get("model") or {}
        resolved = str(m.get("resolved_uri") or "")
        name = resolved.removeprefix("models:/").split("/")[0] if resolved.startswith("models:/") else None
        horizon = m.get("horizon_days", manifest.get("horizon_days"))
        version = m.get("version")
        return ScoringModel(name, None if version is None else str(version), None if horizon is None else int(horizon))
    versions = scores["model_version"].dropna().unique() if "model_version" in scores.columns else []
    return ScoringModel(version=str(versions[0]) if len(versions) == 1 else None)


def targeted_population(
    frame: pd.DataFrame, arms: pd.DataFrame, no_contact: Any
) -> tuple[pd.DataFrame, pd.DataFrame, str | None]:
    """A campaign that ran with a targeting (its scores carry ``expected_profit``) contacted only the treated
    customers the targeting chose: its treated arm holds customers nobody meant to contact, its holdout the
    same mix. Both arms are cut to the customers the targeting would contact (``expected_profit > 0``, an
    action that is a contact): the cut depends on the scores alone, so it keeps the arms comparable. Returns
    the scores, the arms and a note (None: the campaign ran without a targeting, nothing is cut)."""
    if "expected_profit" not in frame.columns or frame["expected_profit"].isna().all():
        return frame, arms, None
    profit = pd.to_numeric(frame["expected_profit"], errors="coerce").to_numpy(float)
    would = (profit > 0) & ~frame["action"].astype(str).isin(list(no_contact)).to_numpy()
    kept = frame[would].reset_index(drop=True)
    ids = set(kept["customer_id"].astype(str))
    ran = sorted(frame["targeting"].dropna().astype(str).unique()) if "targeting" in frame.columns else []
    note = (
        f"ran with targeting {', '.join(ran) or '(unnamed)'}: learning from the {len(kept):,} of {len(frame):,} "
        "customers it would contact (expected_profit > 0), in both arms"
    )
    return kept, arms[arms["customer_id"].astype(str).isin(ids)].reset_index(drop=True), note
