"""The one redaction: no password, query string or fragment of a URL survives, in a URL or in text."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from churnclv.redaction import PLACEHOLDER, error_summary, redact_text, redact_url


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("postgresql://u:pw@db/x?password=secret", "postgresql://u:***@db/x"),
        ("postgresql://u@h/shop?password=S3cret", "postgresql://u@h/shop"),
        ("postgresql+psycopg://u:pw@db:5432/x?sslpassword=k", "postgresql+psycopg://u:***@db:5432/x"),
        ("postgresql://u:p@ss@db/x", "postgresql://u:***@db/x"),  # an unescaped @ in the password
        ("https://user:token@host/api#frag", "https://user:***@host/api"),
        ("sqlite:///mlruns/mlflow.db", "sqlite:///mlruns/mlflow.db"),
        ("mlruns", "mlruns"),  # a path, not a URL
        ("http://h:notaport/x", PLACEHOLDER),
    ],
)
def test_redact_url(url: str, shown: str) -> None:
    assert redact_url(url) == shown


def test_redact_text_finds_every_url_in_a_message() -> None:
    msg = "registry at postgresql://user:S3cret@host/mlflowdb failed ('http://a:b@c/d?token=T')"
    out = redact_text(msg)
    assert "S3cret" not in out and "token=T" not in out and ":b@" not in out
    assert out.startswith("registry at postgresql://user:***@host/mlflowdb failed")


secret = st.text(
    alphabet=st.characters(min_codepoint=33, max_codepoint=126, exclude_characters="/?#@ "), min_size=4, max_size=20
)


@given(secret, secret)
def test_no_secret_survives(password: str, query_secret: str) -> None:
    url = f"postgresql://user:{password}@db.example:5432/shop?password={query_secret}"
    for out in (redact_url(url), redact_text(f"cannot connect to {url} now")):
        assert f":{password}@" not in out and query_secret not in out.split("shop", 1)[-1]


@pytest.mark.parametrize(
    "message",
    [
        "Retrying (Retry(total=4)) after connection broken: /?token=SECRET/api/2.0/mlflow/runs/search",
        "GET /api/2.0/x?run=1&api_key=SECRET HTTP/1.1",
        "path /db?sslpassword=SECRET;timeout=3",
        "/?X-Amz-Signature=SECRET&X-Amz-Credential=SECRET",
    ],
)
def test_secret_query_parameters_outside_a_whole_url_are_hidden(message: str) -> None:
    """An HTTP library's retry warning quotes the request's path and query, not the whole URL (an
    HTTP probe found ``?token=SECRET`` of a tracking URI in serve's stderr this way)."""
    out = redact_text(message)
    assert "SECRET" not in out and "***" in out
    for plain in ("a=b and /x?page=2&q=shoes", "/x?design=blue&signup=2024&author=me&monkey=1;keyword=k"):
        assert redact_text(plain) == plain  # a secret's word inside another word is not a secret's name
    assert redact_text("(see /x?token=abc, then)") == "(see /x?token=***, then)"  # the value ends at , and )


def test_an_error_summary_is_one_redacted_line() -> None:
    """A library's message may quote the URL it was given (MLflow's unsupported-URI error does)."""
    exc = ValueError("unsupported URI 'foo://bob:S3cretPW@bar?token=T0K'\nsecond line")
    assert error_summary(exc) == "ValueError: unsupported URI 'foo://bob:***@bar'"
    assert error_summary(ValueError()) == "ValueError"
