"""From validated requests to scores: history frames, features, the scorer, the feature snapshot.

The HTTP path computes features with :func:`churnclv.features.compute_features_frames`, the very
definitions the batch job runs over the whole base, so a customer scored over HTTP with the same
history and as-of gets the batch job's numbers. ``score_by_id`` reads the batch job's feature
snapshot instead (``OUT/LATEST`` names the partition ``as_of=YYYY-MM-DD``; its
``features.parquet`` holds one row per customer).
"""

from __future__ import annotations

import datetime as dt
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from churnclv.errors import ChurnclvError
from churnclv.features import FeatureConfig, compute_features_frames
from churnclv.models.inputs import model_input, stable_floats
from churnclv.models.next_purchase import next_purchase_dates
from churnclv.redaction import redact_url
from churnclv.serving.model import LoadedModel, ModelLoadError, error_summary, load_model
from churnclv.serving.schemas import CustomerError, CustomerHistory, CustomerScore, Transaction
from churnclv.serving.snapshots import FEATURES_FILE, LATEST, parse_partition, read_latest

log = logging.getLogger(__name__)

UNKNOWN_ID = "unknown customer_id"
REBUILD = "rerun the batch job (churnclv score-batch) to rebuild the snapshot"
NOT_KNOWN_AT_AS_OF = "no transaction or signup on or before as_of: nothing to score the customer on"
_TX_OPTIONAL = ("order_id", "channel", "category")
_TX_FIELDS = ("ts", "amount", *_TX_OPTIONAL)  # of a request's Transaction, in the table's column order
_EV_FIELDS = ("ts", "event_type", "value")  # of a request's Event
_SCORE_FLOATS = ("p_churn", "p_alive", "expected_purchases", "expected_spend", "clv", "growth_score")


class SnapshotError(ChurnclvError, RuntimeError):
    """The feature snapshot folder is missing, incomplete or does not fit the model."""


def _end(as_of: dt.date) -> dt.datetime:
    return dt.datetime.combine(as_of + dt.timedelta(days=1), dt.time())


def _append_rows(columns: dict[str, list[Any]], customer_id: str, rows: Sequence[Any], fields: Sequence[str]) -> None:
    """Append each of a customer's ``rows`` (transactions or events) to ``columns``, one value per field."""
    for row in rows:
        columns["customer_id"].append(customer_id)
        for name in fields:
            columns[name].append(getattr(row, name))


def history_frames(customers: Sequence[CustomerHistory], attributes: Sequence[str]) -> dict[str, pd.DataFrame]:
    """The clean tables (:mod:`churnclv.schema`) of validated customers.

    Every frame has every column of the contract, null where the request has no value, so the
    features have the batch job's columns whatever the request sends: the model's ``attributes``
    become ``customers`` columns, other attributes are dropped.
    """
    tx: dict[str, list[Any]] = {c: [] for c in ("customer_id", *_TX_FIELDS)}
    ev: dict[str, list[Any]] = {c: [] for c in ("customer_id", *_EV_FIELDS)}
    cu: dict[str, list[Any]] = {c: [] for c in ("customer_id", "signup_ts", *attributes)}
    for c in customers:
        _append_rows(tx, c.customer_id, c.transactions, _TX_FIELDS)
        _append_rows(ev, c.customer_id, c.events, _EV_FIELDS)
        cu["customer_id"].append(c.customer_id)
        cu["signup_ts"].append(c.signup_ts)
        for a in attributes:
            cu[a].append(c.attributes.get(a))
    return {
        "transactions": pd.DataFrame(
            {
                "customer_id": pd.array(tx["customer_id"], dtype="str"),
                "ts": pd.to_datetime(pd.Series(tx["ts"], dtype="object")).astype("datetime64[us]"),
                "amount": np.asarray(tx["amount"], dtype=np.float64),
                **{k: pd.array(tx[k], dtype="str") for k in _TX_OPTIONAL},
            }
        ),
        "events": pd.DataFrame(
            {
                "customer_id": pd.array(ev["customer_id"], dtype="str"),
                "ts": pd.to_datetime(pd.Series(ev["ts"], dtype="object")).astype("datetime64[us]"),
                "event_type": pd.array(ev["event_type"], dtype="str"),
                "value": np.asarray([np.nan if v is None else v for v in ev["value"]], dtype=np.float64),
            }
        ),
        "customers": pd.DataFrame(
            {
                "customer_id": pd.array(cu["customer_id"], dtype="str"),
                "signup_ts": pd.to_datetime(pd.Series(cu["signup_ts"], dtype="object")).astype("datetime64[us]"),
                **{a: pd.array(cu[a], dtype="str") for a in attributes},
            }
        ),
    }


def known_at(customer: CustomerHistory, as_of: dt.date) -> bool:
    """Whether the customer has a transaction line or a signup on or before ``as_of``."""
    end = _end(as_of)
    if customer.signup_ts is not None and customer.signup_ts < end:
        return True
    return any(t.ts < end for t in customer.transactions)


def rows_after(customer: CustomerHistory, as_of: dt.date) -> int:
    """History rows (transactions and events) dated after ``as_of``: the features ignore them."""
    end = _end(as_of)
    return sum(t.ts >= end for t in customer.transactions) + sum(e.ts >= end for e in customer.events)


def feature_frames(
    customers: Sequence[CustomerHistory], as_of: dt.date, attributes: Sequence[str], config: FeatureConfig | None = None
) -> pd.DataFrame:
    """Features as of ``as_of`` of the customers known then (one row each, sorted by id), with the
    model's feature configuration (``Scorer.feature_config()``; default: the defaults)."""
    frames = history_frames(customers, attributes)
    return compute_features_frames(
        frames["transactions"], frames["events"], frames["customers"], as_of=as_of, config=config or FeatureConfig()
    )


def score_features(model: LoadedModel, features: pd.DataFrame, as_of: dt.date | None = None) -> pd.DataFrame:
    """Score a feature frame as of ``as_of`` (default: the training as-of) with the model's scorer
    (the pyfunc's input types, no schema check)."""
    return model.scorer.score(model_input(features), as_of=as_of)


def check_model(loaded: LoadedModel) -> None:
    """Score a probe customer through the service's own feature path; refuse a model that fails.

    Raises
    ------
    ModelLoadError
        The model's input columns differ from the features the service computes, or scoring fails.
    """
    as_of = dt.date(2025, 1, 1)
    probe = CustomerHistory(customer_id="probe", transactions=[Transaction(ts=dt.datetime(2024, 12, 1), amount=10.0)])
    try:
        features = feature_frames([probe], as_of, loaded.attributes, loaded.scorer.feature_config())
    except Exception as exc:
        raise ModelLoadError(
            f"model {redact_url(loaded.model_uri)}: computing probe features failed: {error_summary(exc)}"
        ) from exc
    missing = [c for c in loaded.input_columns if c not in features.columns]
    if missing:
        raise ModelLoadError(
            f"model {redact_url(loaded.model_uri)} version {loaded.version} reads columns {missing} that the service's "
            "features do not have (it was trained with another feature configuration): serve a model "
            "trained by this churnclv version"
        )
    try:
        score_features(loaded, features)
    except Exception as exc:
        raise ModelLoadError(
            f"model {redact_url(loaded.model_uri)} version {loaded.version}: scoring a probe customer failed: "
            f"{error_summary(exc)}"
        ) from exc


def load_checked_model(model_uri: str, tracking_uri: str, *, version: str | None = None) -> LoadedModel:
    """:func:`churnclv.serving.model.load_model`, then :func:`check_model`: what the service serves.

    Raises
    ------
    ModelLoadError
        The model cannot be loaded, or it cannot score the features the service computes.
    """
    loaded = load_model(model_uri, tracking_uri, version=version)
    check_model(loaded)
    return loaded


def _finite_or_none(x: Any) -> float | None:
    x = float(x)
    return x if math.isfinite(x) else None


def to_customer_scores(
    scores: pd.DataFrame, version: str, as_of: dt.date, after: dict[str, int] | None = None
) -> dict[str, CustomerScore]:
    """The score frame as answer objects, by customer id."""
    out: dict[str, CustomerScore] = {}
    after = after or {}
    dates = next_purchase_dates(scores["expected_next_purchase_days"].to_numpy(dtype=np.float64), as_of)
    for row, date in zip(scores.to_dict("records"), dates.tolist(), strict=True):
        cid = row["customer_id"]
        out[cid] = CustomerScore(
            expected_next_purchase_date=date,
            customer_id=cid,
            **{k: float(row[k]) for k in _SCORE_FLOATS},
            expected_next_purchase_days=_finite_or_none(row["expected_next_purchase_days"]),
            tier=str(row["tier"]),
            tier_level=int(row["tier_level"]),
            stage=str(row["stage"]),
            action=str(row["action"]),
            reasons=[str(r) for r in row["reasons"]],
            model_version=version,
            rows_after_as_of=after.get(cid, 0),
        )
    return out


def score_histories(
    model: LoadedModel, customers: Sequence[CustomerHistory], as_of: dt.date
) -> list[CustomerScore | CustomerError]:
    """Score validated customers with their history, in request order.

    A customer with neither a transaction nor a signup on or before ``as_of`` gets an error entry.
    """
    known = [c for c in customers if known_at(c, as_of)]
    scored: dict[str, CustomerScore] = {}
    if known:
        features = feature_frames(known, as_of, model.attributes, model.scorer.feature_config())
        after = {c.customer_id: rows_after(c, as_of) for c in known}
        scored = to_customer_scores(score_features(model, features, as_of), model.version, as_of, after)
    return [
        scored.get(c.customer_id) or CustomerError(customer_id=c.customer_id, error=NOT_KNOWN_AT_AS_OF)
        for c in customers
    ]


_SEP = "\x1f"  # joins a request's number to its customer ids in a shared call (split at the first one)


def score_histories_together(
    requests: Sequence[tuple[LoadedModel, Sequence[CustomerHistory], dt.date]],
) -> list[list[CustomerScore | CustomerError]]:
    """:func:`score_histories` for several requests of one model and as-of, in one call.

    Each request's customers are renamed ``<request number><US><customer_id>`` for the call, so two
    requests may hold the same id with different histories; the answers carry the original ids.
    """
    model, _, as_of = requests[0]
    if len(requests) == 1:
        return [score_histories(model, requests[0][1], as_of)]
    renamed = [
        c.model_copy(update={"customer_id": f"{i}{_SEP}{c.customer_id}"})
        for i, (_, customers, _) in enumerate(requests)
        for c in customers
    ]
    flat = score_histories(model, renamed, as_of)
    out: list[list[CustomerScore | CustomerError]] = []
    pos = 0
    for _, customers, _ in requests:
        part = flat[pos : pos + len(customers)]
        pos += len(customers)
        for r in part:
            r.customer_id = r.customer_id.split(_SEP, 1)[1]
        out.append(part)
    return out


def score_ids_together(
    requests: Sequence[tuple[LoadedModel, FeatureSnapshot, Sequence[str]]],
) -> list[list[CustomerScore | CustomerError]]:
    """:func:`score_ids` for several requests of one model and snapshot, in one call."""
    model, snapshot, _ = requests[0]
    if len(requests) == 1:
        return [score_ids(model, snapshot, requests[0][2])]
    ids = [cid for _, _, request_ids in requests for cid in request_ids]
    flat = score_ids(model, snapshot, ids)
    out: list[list[CustomerScore | CustomerError]] = []
    pos = 0
    for _, _, request_ids in requests:
        # answers are shared objects when two requests ask for one id: copy so each request owns its own
        out.append([r.model_copy() for r in flat[pos : pos + len(request_ids)]])
        pos += len(request_ids)
    return out


@dataclass(frozen=True)
class FeatureSnapshot:
    """The batch job's latest feature snapshot, in memory, indexed by ``customer_id``.

    Attributes
    ----------
    folder
        The batch output folder (holding ``LATEST``).
    partition
        The partition read, e.g. ``as_of=2025-10-02``.
    as_of
        Its as-of date.
    features
        The features as the model reads them (:func:`churnclv.models.inputs.model_input`).
    invalid
        ``customer_id`` -> why, for the rows that hold infinite values: those customers are
        answered with an error, the others are scored (see :func:`score_ids`).
    """

    folder: Path
    partition: str
    as_of: dt.date
    features: pd.DataFrame
    index: pd.Index
    invalid: dict[str, str] = field(default_factory=dict)

    @staticmethod
    def latest_partition(folder: Path | str) -> str:
        """The partition named in ``folder/LATEST``.

        Raises
        ------
        SnapshotError
            ``LATEST`` is missing or does not name an ``as_of=YYYY-MM-DD`` partition.
        """
        return FeatureSnapshot._latest(folder)[0]

    @staticmethod
    def _latest(folder: Path | str) -> tuple[str, dt.date]:
        """:meth:`latest_partition` and its as-of date."""
        path = Path(folder) / LATEST
        try:
            name = read_latest(folder)
        except OSError:
            raise SnapshotError(
                f"{path} not found: run the batch job (churnclv score-batch --out {folder}) or point "
                "--snapshot / CHURNCLV_SNAPSHOT at its output folder"
            ) from None
        day = parse_partition(name)
        if day is None:
            raise SnapshotError(f"{path} holds {name!r}: expected a partition name like as_of=2025-10-02")
        return name, day

    @classmethod
    def load(cls, folder: Path | str) -> FeatureSnapshot:
        """Read the latest snapshot of the batch output ``folder``.

        Raises
        ------
        SnapshotError
            No ``LATEST``, no features file, or duplicated customer ids.
        """
        folder = Path(folder)
        partition, as_of = cls._latest(folder)
        path = folder / partition / FEATURES_FILE
        if not path.is_file():
            raise SnapshotError(f"{path} not found: LATEST names {partition} but it holds no {FEATURES_FILE}")
        frame = pd.read_parquet(path)
        if "customer_id" not in frame.columns:
            raise SnapshotError(f"{path}: no customer_id column: not a churnclv feature snapshot")
        # rounded once here, so the scorer finds the rows stable and skips its own rounding per call
        frame = stable_floats(model_input(frame.reset_index(drop=True)))
        frame["customer_id"] = frame["customer_id"].astype("str")
        index = pd.Index(frame["customer_id"].to_numpy(dtype=object))
        if not index.is_unique:
            raise SnapshotError(f"{path}: customer_id is not unique: the snapshot is broken, rerun the batch job")
        invalid = _infinite_rows(frame)
        if invalid:
            log.warning(
                "feature snapshot %s: %d customer(s) have infinite feature values; score_by_id answers "
                "them with an error and scores the others: %s",
                path,
                len(invalid),
                REBUILD,
            )
        log.info("loaded feature snapshot %s (%d customers)", path, len(frame))
        return cls(
            folder=folder,
            partition=partition,
            as_of=as_of,
            features=frame,
            index=index,
            invalid=invalid,
        )

    def check(self, model: LoadedModel) -> None:
        """Raise :class:`SnapshotError` when the snapshot lacks a column the model reads."""
        missing = [c for c in model.input_columns if c not in self.features.columns]
        if missing:
            raise SnapshotError(
                f"feature snapshot {self.folder / self.partition} lacks columns {missing} that model version "
                f"{model.version} reads: rerun the batch job with this model"
            )

    def lookup(self, customer_ids: Sequence[str]) -> tuple[pd.DataFrame, np.ndarray]:
        """The feature rows of the known ids (in request order) and a mask of which ids are known."""
        pos = self.index.get_indexer(list(customer_ids))
        found = pos >= 0
        return self.features.iloc[pos[found]], found


def _infinite_rows(frame: pd.DataFrame) -> dict[str, str]:
    """``customer_id`` -> why, for the rows with an infinite value (column by column: no full copy)."""
    hits: list[tuple[str, np.ndarray]] = []
    for col, series in frame.items():
        if pd.api.types.is_float_dtype(series.dtype):
            mask = np.isinf(series.to_numpy(dtype=np.float64, na_value=np.nan))
            if mask.any():
                hits.append((str(col), mask))
    if not hits:
        return {}
    ids = frame["customer_id"].to_numpy(dtype=object)
    rows = np.flatnonzero(np.logical_or.reduce([mask for _, mask in hits]))
    return {
        str(ids[i]): f"the feature snapshot holds infinite values for this customer in "
        f"{[col for col, mask in hits if mask[i]]}: {REBUILD}"
        for i in rows
    }


def _score_rows(
    model: LoadedModel, as_of: dt.date, rows: pd.DataFrame, failed: dict[str, str]
) -> dict[str, CustomerScore]:
    """Score snapshot rows; when the scorer refuses the rows, find the ones it refuses by halving.

    Each refused row lands in ``failed`` (its id -> why) and the others are scored: a row the
    scorer's own checks refuse (say frequency known but T missing) costs its customer an answer,
    never the request. At most a request's ids are scored, so the search is bounded.
    """
    try:
        return to_customer_scores(model.scorer.score(rows, as_of=as_of), model.version, as_of)
    except Exception as exc:  # noqa: BLE001 - reported per customer below, and logged without data
        if len(rows) == 1:
            failed[str(rows["customer_id"].iloc[0])] = (
                f"the feature snapshot's row for this customer cannot be scored ({type(exc).__name__}): {REBUILD}"
            )
            return {}
        half = len(rows) // 2
        return {
            **_score_rows(model, as_of, rows.iloc[:half], failed),
            **_score_rows(model, as_of, rows.iloc[half:], failed),
        }


def score_ids(
    model: LoadedModel, snapshot: FeatureSnapshot, customer_ids: Sequence[str]
) -> list[CustomerScore | CustomerError]:
    """Score customers by id from the snapshot, in request order; an unknown id gets an error entry.

    A snapshot row that cannot be scored (infinite values, found at load; or refused by the
    scorer's checks) gets an error entry for its customer, and the others are scored: one broken
    row must not turn every request that names it into a 500, nor take the snapshot away from
    everyone (refusing the whole snapshot at load would).
    """
    unique = list(dict.fromkeys(customer_ids))
    rows, found = snapshot.lookup(unique)
    known = dict(zip(unique, found, strict=True))
    failed = {cid: snapshot.invalid[cid] for cid in unique if known[cid] and cid in snapshot.invalid}
    if failed:
        rows = rows[~rows["customer_id"].isin(list(failed))]
    scored: dict[str, CustomerScore] = {}
    if len(rows):
        refused: dict[str, str] = {}
        scored = _score_rows(model, snapshot.as_of, rows, refused)
        if refused:
            log.warning(
                "score_by_id: %d of %d snapshot row(s) of %s were refused by the scorer and answered with an error: %s",
                len(refused),
                len(rows),
                snapshot.partition,
                REBUILD,
            )
            failed.update(refused)
    return [
        scored[cid] if cid in scored else CustomerError(customer_id=cid, error=failed.get(cid, UNKNOWN_ID))
        for cid in customer_ids
    ]


__all__ = [
    "FeatureSnapshot",
    "SnapshotError",
    "check_model",
    "feature_frames",
    "history_frames",
    "known_at",
    "load_checked_model",
    "rows_after",
    "score_features",
    "score_histories",
    "score_histories_together",
    "score_ids",
    "score_ids_together",
    "to_customer_scores",
]
