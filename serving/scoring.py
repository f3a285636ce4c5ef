"""From validated requests to scores: history frames, features, the scorer, answers per customer.

The HTTP path computes features with :func:`churnclv.features.compute_features_frames`, the very
definitions the batch job runs over the whole base, so a customer scored over HTTP with the same
history and as-of gets the batch job's numbers (``score_by_id`` reads the batch job's feature
snapshot instead: :mod:`churnclv.serving.feature_snapshot`).

A customer that cannot be scored (no history, not known at the as-of, a history the feature or
scoring code refuses) gets an error entry in the answer, and the others of the request are scored.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
from collections.abc import Callable, Sequence, Sized
from typing import Any, TypeVar

import numpy as np
import pandas as pd

from churnclv.features import FeatureConfig, compute_features_frames
from churnclv.models.inputs import model_input
from churnclv.models.next_purchase import DATE_COLUMNS, next_purchase_dates
from churnclv.names import SCORE_NUMBERS
from churnclv.redaction import error_summary, redact_url
from churnclv.serving.model import LoadedModel, ModelLoadError, load_model
from churnclv.serving.schemas import CustomerError, CustomerHistory, CustomerScore, Transaction
from churnclv.serving.snapshots import NULLABLE_NUMBERS

log = logging.getLogger(__name__)

NO_HISTORY = (
    "no transaction and no signup_ts: nothing to score the customer on; send their transactions, or their "
    "signup_ts when they have not bought yet"
)
NOT_KNOWN_AT_AS_OF = "no transaction or signup on or before as_of: nothing to score the customer on"
REFUSED = (
    "this customer's history cannot be scored ({error}): the other customers are scored; check the history's "
    "dates and amounts, or report it with the as_of"
)
_TX_OPTIONAL = ("order_id", "channel", "category")
_TX_FIELDS = ("ts", "amount", *_TX_OPTIONAL)  # of a request's Transaction, in the table's column order
_EV_FIELDS = ("ts", "event_type", "value")  # of a request's Event
T = TypeVar("T", bound=Sized)  # a list or a frame, sliced by position


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


def drop_duplicate_lines(customers: Sequence[CustomerHistory]) -> tuple[list[CustomerHistory], int]:
    """The customers without the transaction lines that repeat an earlier line of theirs (same
    ``order_id``, not null, and identical values), and how many were dropped: the batch's validation
    rejects the same lines (``duplicate line: same order_id and identical values``), so a history
    scores the same over HTTP as in the batch."""
    out: list[CustomerHistory] = []
    dropped = 0
    for customer in customers:
        seen: set[tuple[Any, ...]] = set()
        kept = []
        for t in customer.transactions:
            key = (t.ts, t.amount, t.order_id, t.channel, t.category)
            if t.order_id is not None and key in seen:
                continue
            seen.add(key)
            kept.append(t)
        extra = len(customer.transactions) - len(kept)
        dropped += extra
        out.append(customer.model_copy(update={"transactions": kept}) if extra else customer)
    return out, dropped


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


def probe_features(model: LoadedModel) -> pd.DataFrame:
    """The features the service computes for a probe customer with ``model``'s attributes and feature
    configuration: what a model (or a targeting) must find among the service's feature columns."""
    probe = CustomerHistory(customer_id="probe", transactions=[Transaction(ts=dt.datetime(2024, 12, 1), amount=10.0)])
    return feature_frames([probe], dt.date(2025, 1, 1), model.attributes, model.scorer.feature_config())


def check_model(loaded: LoadedModel) -> None:
    """Score a probe customer through the service's own feature path; refuse a model that fails.

    Raises
    ------
    ModelLoadError
        The model's input columns differ from the features the service computes, or scoring fails.
    """
    try:
        features = probe_features(loaded)
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
    dates = {
        date: next_purchase_dates(scores[days].to_numpy(dtype=np.float64), as_of).tolist()
        for days, date in DATE_COLUMNS.items()
    }
    for i, row in enumerate(scores.to_dict("records")):
        cid = row["customer_id"]
        numbers: dict[str, Any] = {k: float(row[k]) for k in SCORE_NUMBERS}
        numbers.update({k: _finite_or_none(row[k]) for k in NULLABLE_NUMBERS})  # null where not finite, as in the batch
        out[cid] = CustomerScore(
            customer_id=cid,
            as_of=as_of,
            **numbers,
            **{name: values[i] for name, values in dates.items()},
            risk_band=str(row["risk_band"]),
            tier=str(row["tier"]),
            tier_level=int(row["tier_level"]),
            stage=str(row["stage"]),
            action=str(row["action"]),
            reasons=[str(r) for r in row["reasons"]],
            model_version=version,
            rows_after_as_of=after.get(cid, 0),
        )
    return out


def isolate_failures(
    items: T,
    score: Callable[[T], dict[str, CustomerScore]],
    ident: Callable[[T], str],
    why: Callable[[Exception], str],
    failed: dict[str, str],
) -> dict[str, CustomerScore]:
    """``score(items)``; when it raises, find the items it refuses by halving and score the others.

    Each refused item lands in ``failed`` (``ident`` of the one-item slice -> ``why(error)``): an item
    that breaks the feature or scoring code costs its customer an answer, never the request. ``items``
    is a list or a frame (sliced by position); at most a request's customers are searched, so the
    search is bounded (about ``2 k log2(n)`` calls for ``k`` refused items of ``n``).
    """
    try:
        return score(items)
    except Exception as exc:  # noqa: BLE001 - reported per customer, and logged without data by the caller
        if len(items) == 1:
            failed[ident(items)] = why(exc)
            return {}
        half = len(items) // 2
        whole: Any = items.iloc if isinstance(items, pd.DataFrame) else items
        first, second = whole[:half], whole[half:]
        return {
            **isolate_failures(first, score, ident, why, failed),
            **isolate_failures(second, score, ident, why, failed),
        }


def _unscorable(customer: CustomerHistory, as_of: dt.date) -> str | None:
    """Why ``customer`` cannot be scored as of ``as_of`` before any feature is computed; None: they can."""
    if not customer.transactions and customer.signup_ts is None:
        return NO_HISTORY
    return None if known_at(customer, as_of) else NOT_KNOWN_AT_AS_OF


def score_histories(
    model: LoadedModel,
    customers: Sequence[CustomerHistory],
    as_of: dt.date,
    *,
    features_out: list[pd.DataFrame] | None = None,
) -> list[CustomerScore | CustomerError]:
    """Score validated customers with their history, in request order.

    A customer with no transaction and no signup, or none on or before ``as_of``, gets an error
    entry; so does a customer whose features the feature or scoring code refuses (found by
    :func:`isolate_failures`). The others are scored. ``features_out`` (a list) receives the feature
    frames of the scored customers, for a caller that decides on them too.
    """
    failed = {c.customer_id: why for c in customers if (why := _unscorable(c, as_of)) is not None}
    known = [c for c in customers if c.customer_id not in failed]

    def score(part: list[CustomerHistory]) -> dict[str, CustomerScore]:
        features = feature_frames(part, as_of, model.attributes, model.scorer.feature_config())
        after = {c.customer_id: rows_after(c, as_of) for c in part}
        scores = to_customer_scores(score_features(model, features, as_of), model.version, as_of, after)
        if features_out is not None:  # only a part that scored: the parts kept are disjoint
            features_out.append(features)
        return scores

    refused: dict[str, str] = {}
    scored = (
        isolate_failures(
            known, score, lambda one: one[0].customer_id, lambda e: REFUSED.format(error=type(e).__name__), refused
        )
        if known
        else {}
    )
    if refused:
        # every one refused looks like the service's fault (a bug, an outage), not the customers'
        log.log(
            logging.ERROR if len(refused) == len(known) else logging.WARNING,
            "score: %d of %d customer(s) could not be scored and were answered with an error: %s",
            len(refused),
            len(known),
            sorted(set(refused.values())),
        )
        failed.update(refused)
    # a customer the feature code leaves out is one it does not know at as_of (its rule, to the second)
    return [
        scored.get(c.customer_id)
        or CustomerError(customer_id=c.customer_id, error=failed.get(c.customer_id, NOT_KNOWN_AT_AS_OF))
        for c in customers
    ]


_SEP = "\x1f"  # joins a request's number to its customer ids in a shared call (split at the first one)


def _joined(frames: list[pd.DataFrame]) -> pd.DataFrame:
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame({"customer_id": pd.Series(dtype=str)})


def score_histories_together(
    requests: Sequence[tuple[LoadedModel, Sequence[CustomerHistory], dt.date]],
    *,
    features_out: list[pd.DataFrame] | None = None,
) -> list[list[CustomerScore | CustomerError]]:
    """:func:`score_histories` for several requests of one model and as-of, in one call.

    Each request's customers are renamed ``<request number><US><customer_id>`` for the call, so two
    requests may hold the same id with different histories; the answers carry the original ids.
    ``features_out`` (a list) receives one frame per request: the features of its scored customers,
    under their original ids.
    """
    model, _, as_of = requests[0]
    frames: list[pd.DataFrame] | None = None if features_out is None else []
    if len(requests) == 1:
        answers = [score_histories(model, requests[0][1], as_of, features_out=frames)]
        if features_out is not None and frames is not None:
            features_out.append(_joined(frames))
        return answers
    renamed = [
        c.model_copy(update={"customer_id": f"{i}{_SEP}{c.customer_id}"})
        for i, (_, customers, _) in enumerate(requests)
        for c in customers
    ]
    flat = score_histories(model, renamed, as_of, features_out=frames)
    if features_out is not None and frames is not None:
        whole = _joined(frames)
        parts = whole["customer_id"].astype(str).str.split(_SEP, n=1, expand=True).reindex(columns=[0, 1])
        for i in range(len(requests)):
            mine = (parts[0] == str(i)).to_numpy()
            features_out.append(whole[mine].assign(customer_id=parts[1][mine].to_numpy()).reset_index(drop=True))
    out: list[list[CustomerScore | CustomerError]] = []
    pos = 0
    for _, customers, _ in requests:
        part = flat[pos : pos + len(customers)]
        pos += len(customers)
        for r in part:
            r.customer_id = r.customer_id.split(_SEP, 1)[1]
        out.append(part)
    return out


__all__ = [
    "NOT_KNOWN_AT_AS_OF",
    "NO_HISTORY",
    "REFUSED",
    "check_model",
    "drop_duplicate_lines",
    "feature_frames",
    "history_frames",
    "isolate_failures",
    "known_at",
    "load_checked_model",
    "probe_features",
    "rows_after",
    "score_features",
    "score_histories",
    "score_histories_together",
    "to_customer_scores",
]
