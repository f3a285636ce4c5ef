"""The canonical data contract: tables, their columns and the rules a row must keep.

A clean (validated) table always has exactly these dtypes:

- ``customer_id``: string (ids keep leading zeros)
- ``ts`` / ``signup_ts``: naive timestamp in UTC
- ``amount`` / ``value``: float64
- other optional columns: string
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class TableSpec:
    """One canonical table: required and optional columns with their clean types."""

    name: str
    required: tuple[str, ...]
    optional: tuple[str, ...] = ()
    # canonical column -> clean type: "string", "timestamp" or "float"
    types: dict[str, str] = field(default_factory=dict)
    # keeps extra, unmapped columns as string attributes (customers' categorical attributes)
    keep_extra: bool = False

    @property
    def columns(self) -> tuple[str, ...]:
        """Every column of the table: the required ones, then the optional ones."""
        return self.required + self.optional


TRANSACTIONS = TableSpec(
    name="transactions",
    required=("customer_id", "ts", "amount"),
    optional=("order_id", "channel", "category"),
    types={
        "customer_id": "string",
        "ts": "timestamp",
        "amount": "float",
        "order_id": "string",
        "channel": "string",
        "category": "string",
    },
)

EVENTS = TableSpec(
    name="events",
    required=("customer_id", "ts", "event_type"),
    optional=("value",),
    types={"customer_id": "string", "ts": "timestamp", "event_type": "string", "value": "float"},
)

CUSTOMERS = TableSpec(
    name="customers",
    required=("customer_id",),
    optional=("signup_ts",),
    types={"customer_id": "string", "signup_ts": "timestamp"},
    keep_extra=True,
)

TABLES: dict[str, TableSpec] = {t.name: t for t in (TRANSACTIONS, EVENTS, CUSTOMERS)}

# Event types the generator writes and the engagement features know by name. The contract is
# open-ended: other event types are accepted and get features only when configured.
KNOWN_EVENT_TYPES: tuple[str, ...] = (
    "login",
    "session",
    "email_open",
    "email_click",
    "support_ticket",
    "complaint",
)
