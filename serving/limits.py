"""The request limits of the HTTP service: customers (or ids) per request, history rows per
customer, each customer once; past them, a 413 or 400 answer naming the field and the fix."""

from __future__ import annotations

from collections.abc import Sequence

from starlette.responses import JSONResponse

from churnclv.serving.problems import problem
from churnclv.serving.schemas import CustomerHistory
from churnclv.serving.settings import ServiceSettings

__all__ = ["check_id_limit", "check_limits"]


def _too_many(count: int, field: str, what: str, short: str, settings: ServiceSettings) -> JSONResponse | None:
    """413 when ``count`` items of ``field`` pass CHURNCLV_MAX_CUSTOMERS; else None."""
    if count <= settings.max_customers:
        return None
    return problem(
        413,
        f"{count} {what} in one request: the limit is {settings.max_customers}",
        [
            {
                "loc": [field],
                "type": "too_long",
                "msg": f"at most {settings.max_customers} {short} per request "
                "(CHURNCLV_MAX_CUSTOMERS): split the request",
            }
        ],
    )


def check_limits(customers: Sequence[CustomerHistory], settings: ServiceSettings) -> JSONResponse | None:
    """413 past the customer or history limits, 400 on a customer id given twice; else None."""
    too_many = _too_many(len(customers), "customers", "customers", "customers", settings)
    if too_many is not None:
        return too_many
    detail = []
    for i, c in enumerate(customers):
        rows = len(c.transactions) + len(c.events)
        if rows > settings.max_history_rows:
            detail.append(
                {
                    "loc": ["customers", i],
                    "type": "too_long",
                    # the position names the customer: no customer data in an error message
                    "msg": f"customer {i} has {rows} history rows (transactions + events): "
                    f"the limit is {settings.max_history_rows} (CHURNCLV_MAX_HISTORY_ROWS); "
                    "send the rows of the last few years",
                }
            )
    if detail:
        return problem(413, f"{len(detail)} customer(s) over the history limit", detail)
    seen: dict[str, int] = {}
    for i, c in enumerate(customers):
        if c.customer_id in seen:
            detail.append(
                {
                    "loc": ["customers", i, "customer_id"],
                    "type": "duplicate",
                    "msg": f"customer {i} has the customer_id of customer {seen[c.customer_id]}: "
                    "send each customer once, with all their rows",
                }
            )
        seen.setdefault(c.customer_id, i)
    if detail:
        return problem(400, f"{len(detail)} duplicated customer_id(s)", detail)
    return None


def check_id_limit(ids: Sequence[str], settings: ServiceSettings) -> JSONResponse | None:
    """413 past the limit of customer ids per request (``score_by_id``); else None."""
    return _too_many(len(ids), "customer_ids", "customer ids", "ids", settings)
