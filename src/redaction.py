"""The one redaction of URLs and credentials: every URL that reaches an error, a log, a file, a
metric or an HTTP answer passes through :func:`redact_url` (one URL) or :func:`redact_text` (a
message that may quote URLs).

The rule: keep the scheme, the user, the host, the port and the path; drop the password, the query
string (``?password=...``, ``?sslpassword=...``, ``?token=...`` carry secrets too) and the fragment.
A URL that cannot be parsed is replaced by a fixed placeholder: we cannot tell where its secret is.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

__all__ = ["PLACEHOLDER", "error_summary", "redact_text", "redact_url"]

PLACEHOLDER = "<url redacted>"
HIDDEN = "***"
# a scheme, "://", then everything up to white space (a password may hold quotes or brackets); the
# punctuation that closes a quote or a sentence after the URL is given back
_URL = re.compile(r"""[A-Za-z][A-Za-z0-9+.\-]*://\S*""")
_TRAILING = "'\")]}>.,;:!"


def redact_url(url: str) -> str:
    """``url`` without its password, query string and fragment.

    Parameters
    ----------
    url : str
        A database, tracking or HTTP URL (``postgresql://user:pw@host/db?password=x``).

    Returns
    -------
    str
        e.g. ``postgresql://user:***@host/db``; :data:`PLACEHOLDER` when it does not parse as a URL.
        A string without ``://`` (a local path such as ``mlruns``) is returned as it is.
    """
    if "://" not in url:
        return url
    try:
        parts = urlsplit(url)
        port = parts.port  # raises on a malformed port
    except ValueError:
        return PLACEHOLDER
    # the last "@" ends the credentials: an unescaped "@" inside a password stays hidden too
    netloc = parts.netloc
    creds, at, hostport = netloc.rpartition("@")
    if at:
        user, colon, _password = creds.partition(":")
        netloc = f"{user}:{HIDDEN}@{hostport}" if colon else f"{user}@{hostport}"
    if port is not None and not netloc.endswith(f":{port}"):
        return PLACEHOLDER
    return f"{parts.scheme}://{netloc}{parts.path}"


# a query parameter whose name says it holds a secret, outside a whole URL: an HTTP library's retry
# warning quotes the request's path and query only (``/?token=SECRET/api/2.0/...``)
_SECRET_PARAM = re.compile(
    # the name holds a secret's word as a whole part (split on _ . -): api_key, access_token,
    # X-Amz-Signature, client_secret, sslpassword; not design, signup, author or monkey
    r"([?&;](?:[A-Za-z0-9]+[_.\-])*(?:token|password|passwd|pwd|sslpassword|secret|key|apikey|auth|sig|signature"
    r"|credential|credentials)(?:[_.\-][A-Za-z0-9]+)*=)[^&;\s'\",)]+",
    re.IGNORECASE,
)


def redact_text(text: str) -> str:
    """``text`` with every URL in it redacted by :func:`redact_url`, and the value of every query
    parameter named like a secret (``?token=``, ``&password=``, ``?api_key=``) hidden (for error
    messages and logs)."""
    if "://" in text:

        def one(match: re.Match[str]) -> str:
            url = match.group(0)
            core = url.rstrip(_TRAILING)
            return redact_url(core) + url[len(core) :]

        text = _URL.sub(one, text)
    if "=" in text:
        text = _SECRET_PARAM.sub(lambda m: m.group(1) + HIDDEN, text)
    return text


def error_summary(exc: BaseException) -> str:
    """The first line of an exception, named by its type when it says nothing, redacted by
    :func:`redact_text` (for one-line errors: a library's message may quote the URL it was given,
    password and all)."""
    text = str(exc).strip()
    first = redact_text(text.splitlines()[0].strip()) if text else ""
    return f"{type(exc).__name__}: {first}" if first else type(exc).__name__
