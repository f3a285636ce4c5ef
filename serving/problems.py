"""The HTTP service's error answers: one shape, and one door that redacts them."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from starlette.responses import JSONResponse

from churnclv.redaction import redact_text

__all__ = ["CLIENT_CLOSED", "problem"]

CLIENT_CLOSED = 499  # nginx's "client closed request": an aborted upload is the client's doing, not a 500


def problem(status: int, error: str, detail: Sequence[dict[str, Any]] = ()) -> JSONResponse:
    """An error answer shaped like BentoML's validation errors: ``{"error", "detail": [{loc, msg, type}]}``.

    ``error`` is redacted here: every error answer passes this one door, whatever it quotes.
    """
    return JSONResponse({"error": redact_text(error), "detail": list(detail)}, status_code=status)
