"""Ask a running scoring service to pick up the new champion and snapshot: ``POST /reload`` with the
API key (:mod:`churnclv.serving.auth`). A service that cannot be reached or refuses is a warning for
the summary, never a failure of the run: the service also checks the alias on its own
(``CHURNCLV_RELOAD_INTERVAL_S``)."""

from __future__ import annotations

import base64
import json
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit

from churnclv.redaction import redact_text, redact_url
from churnclv.serving.auth import API_KEY_HEADER

__all__ = ["ReloadOutcome", "reload_service"]


@dataclass(frozen=True)
class ReloadOutcome:
    """What the service answered: ``ok`` and one line for the summary (a warning when not ok)."""

    ok: bool
    message: str
    answer: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        """As plain data (the journal)."""
        return {"ok": self.ok, "outcome": self.message, "answer": self.answer}


def _detail(body: bytes) -> str:
    try:
        doc = json.loads(body)
    except ValueError:
        return ""
    if not isinstance(doc, dict):
        return ""
    return str(doc.get("error") or doc.get("detail") or doc.get("title") or "")  # the service's answers: "error"


def _credentials(url: str) -> tuple[str, dict[str, str]]:
    """``url`` without its ``user:password@`` and those credentials as an HTTP basic-auth header (a
    proxy in front of the service): urllib would read them as part of the host name."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return url, {}
    creds, at, hostport = parts.netloc.rpartition("@")
    if not at:
        return url, {}
    user, _, password = creds.partition(":")
    token = base64.b64encode(f"{unquote(user)}:{unquote(password)}".encode()).decode("ascii")
    return urlunsplit(parts._replace(netloc=hostport)), {"Authorization": f"Basic {token}"}


def _reload_url(bare: str) -> str:
    """``/reload`` appended to the URL's path (a query string stays after it)."""
    parts = urlsplit(bare)
    return urlunsplit(parts._replace(path=parts.path.rstrip("/") + "/reload"))


def reload_service(
    url: str, api_key: str | None, api_key_env: str, timeout_s: float, published: str | None = None
) -> ReloadOutcome:
    """POST ``url``/reload with ``api_key``; the outcome in one line, URLs redacted, the key never shown.
    ``published``: the partition ``LATEST`` names now; a service with a snapshot that serves another is
    told in a warning (its snapshot folder is not this run's output, or it could not load it)."""
    where = redact_url(url)
    if api_key is None:
        return ReloadOutcome(False, f"warning: service {where} not reloaded: {api_key_env} is not set (the API key)")
    bare, auth = _credentials(url)
    headers = {API_KEY_HEADER: api_key, "Content-Type": "application/json", **auth}
    request = urllib.request.Request(_reload_url(bare), data=b"{}", method="POST", headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            answer = json.loads(response.read())
    except urllib.error.HTTPError as exc:
        hint = f": check {api_key_env}" if exc.code in (401, 403) else ""
        detail = redact_text(_detail(exc.read()))
        return ReloadOutcome(False, f"warning: service {where} answered {exc.code} {detail}{hint}".rstrip())
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        return ReloadOutcome(
            False, f"warning: service {where} not reachable ({redact_text(str(reason))}): not reloaded"
        )
    status, old, new = answer.get("status"), answer.get("previous_version"), answer.get("version")
    text = f"version {old} -> {new}" if old != new else f"version {new}"
    served = answer.get("snapshot")
    if served is not None and published is not None and served != published:
        return ReloadOutcome(
            False,
            f"warning: service {where} serves snapshot {served}, not the published {published}: check the "
            "service's CHURNCLV_SNAPSHOT folder and its log",
            answer,
        )
    return ReloadOutcome(True, f"service {where}: {status}, {text}, snapshot {served}", answer)
