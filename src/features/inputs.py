"""The feature jobs' inputs: the clean tables as Ibis tables, and a fixed sample of their customers."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

import ibis.expr.types as ir
import numpy as np

from churnclv.features.errors import FeatureError
from churnclv.schema import TRANSACTIONS
from churnclv.tables import DataError

__all__ = ["FeatureTables", "in_sample", "in_sample_ids", "sample_customers"]


@dataclass(frozen=True)
class FeatureTables:
    """The clean tables as Ibis tables (see :mod:`churnclv.schema` for their columns).

    ``events`` and ``customers`` are optional. Optional columns (``order_id``, ``channel``,
    ``category``, ``signup_ts``) may be absent; the features that need them are then null.
    """

    transactions: ir.Table
    events: ir.Table | None = None
    customers: ir.Table | None = None

    def __post_init__(self) -> None:
        _require(self.transactions, "transactions", ("customer_id", "ts", "amount"))
        if self.events is not None:
            _require(self.events, "events", ("customer_id", "ts", "event_type"))
        if self.customers is not None:
            _require(self.customers, "customers", ("customer_id",))

    @property
    def attributes(self) -> tuple[str, ...]:
        """Customer attribute columns passed through as ``attr_<name>``."""
        if self.customers is None:
            return ()
        return tuple(c for c in self.customers.columns if c not in ("customer_id", "signup_ts"))

    @property
    def transaction_columns(self) -> tuple[str, ...]:
        """The optional transaction columns present (``order_id``, ``channel``, ``category``): features
        such as ``n_channels`` read them, and are null without them."""
        return tuple(c for c in TRANSACTIONS.optional if c in self.transactions.columns)


def _require(table: ir.Table, name: str, columns: Sequence[str]) -> None:
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise DataError(
            f"{name} table: required column(s) {missing} missing (has {list(table.columns)}): "
            f"map them onto the canonical names of churnclv.schema"
        )


def in_sample(customer_id: ir.StringValue, fraction: float) -> ir.BooleanValue:
    """True for a fixed pseudo-random share ``fraction`` of customer ids.

    A customer is in the sample when the first 32 bits of ``md5(customer_id)`` (as 8 lowercase hex
    digits) fall below ``fraction * 2**32``: the same customers on every run, engine and library
    version, and a sample of fraction f is contained in every sample of a larger fraction.
    """
    return customer_id.hexdigest("md5").substr(0, 8) < _threshold(fraction)


def in_sample_ids(customer_ids: Sequence[str] | np.ndarray, fraction: float) -> np.ndarray:
    """:func:`in_sample` on ids in memory: a boolean per id, the same customers as the expression."""
    threshold = _threshold(fraction)
    ids = np.asarray(customer_ids, dtype=object)
    uniq, inverse = np.unique(ids, return_inverse=True)
    keep = np.fromiter(
        (hashlib.md5(str(i).encode(), usedforsecurity=False).hexdigest()[:8] < threshold for i in uniq),
        dtype=bool,
        count=len(uniq),
    )
    return keep[inverse.ravel()]


def _threshold(fraction: float) -> str:
    if not 0.0 < fraction <= 1.0:
        raise FeatureError(f"sample fraction={fraction!r}: must be in (0, 1]")
    return f"{min(int(fraction * 16**8), 16**8 - 1):08x}"


def sample_customers(tables: FeatureTables, fraction: float) -> FeatureTables:
    """``tables`` restricted to the customers of :func:`in_sample` (every table, whole histories).

    Training reads a sample of a large base this way: each sampled customer keeps every row, so
    their features and labels are exactly those of the whole base. ``fraction`` 1 returns
    ``tables`` unchanged.
    """
    if fraction == 1.0:
        return tables

    def keep(t: ir.Table | None) -> ir.Table | None:
        return None if t is None else t.filter(in_sample(t.customer_id, fraction))

    # in_sample checks the fraction (transactions are always there, so a bad one always raises)
    return FeatureTables(
        transactions=keep(tables.transactions), events=keep(tables.events), customers=keep(tables.customers)
    )
