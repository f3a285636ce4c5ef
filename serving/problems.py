"""The HTTP service's error answers: one shape, and one door that redacts them."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from starlette.responses import JSONResponse

from churnclv.redaction import redact_text

__all__ = ["CLIENT_CLOSED", "MAX_DETAIL", "MAX_TEXT", "bounded_detail", "problem"]

CLIENT_CLOSED = 499  # nginx's "client closed request": an aborted upload is the client's doing, not a 500


def problem(status: int, error: str, detail: Sequence[dict[str, Any]] = ()) -> JSONResponse:
    """An error answer shaped like BentoML's validation errors: ``{"error", "detail": [{loc, msg, type}]}``.

    ``error`` is redacted here: every error answer passes this one door, whatever it quotes.
    """
    return JSONResponse({"error": redact_text(error), "detail": list(detail)}, status_code=status)


MAX_DETAIL = 50  # field errors in one answer; more are counted in a last entry
MAX_TEXT = 200  # characters of one loc element or message (a 2 MB unknown key came back as 2 MB)


def _short(value: Any) -> Any:
    if isinstance(value, str) and len(value) > MAX_TEXT:
        return f"{value[:MAX_TEXT]}... ({len(value)} characters)"
    return value


def bounded_detail(detail: Sequence[Any]) -> list[Any]:
    """At most :data:`MAX_DETAIL` field errors with their long texts cut, then one entry counting the rest."""
    out: list[Any] = []
    for entry in detail[:MAX_DETAIL]:
        if not isinstance(entry, dict):
            out.append(entry)
            continue
        short = {
            k: ([_short(x) for x in v] if k == "loc" and isinstance(v, list) else _short(v)) for k, v in entry.items()
        }
        short.pop("input", None)  # the value sent: customer data, and unbounded
        out.append(short)
    if len(detail) > MAX_DETAIL:
        out.append(
            {
                "loc": [],
                "type": "too_many_errors",
                "msg": f"{len(detail) - MAX_DETAIL} more field error(s) not shown: fix these and send again",
            }
        )
    return out
