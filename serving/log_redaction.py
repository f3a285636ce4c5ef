"""The log redaction of the HTTP service: no request content and no credentials in any log line."""

from __future__ import annotations

import logging
import traceback

from churnclv.redaction import redact_text

__all__ = [
    "REQUEST_ERROR_LOGGERS",
    "SERVICE_LOGGERS",
    "RedactURLs",
    "RedactValidationInput",
    "install_log_redaction",
]

BENTOML_APP_LOGGER = "bentoml._internal.server.http_app"
# loggers that log the exceptions of requests (BentoML's handler; uvicorn, for what escapes the app)
REQUEST_ERROR_LOGGERS = (BENTOML_APP_LOGGER, "uvicorn.error")
# loggers whose records may quote a URL or a request: the redaction filters sit on them (a filter
# on a logger sees only that logger's own records, so each is named)
SERVICE_LOGGERS = (
    "churnclv",
    "churnclv.serving.service",
    "churnclv.serving.server",
    "churnclv.serving.auth",
    "churnclv.serving.state",
    "churnclv.serving.model",
    "churnclv.serving.scoring",
    "churnclv.serving.batcher",
    "churnclv.serving.pack",
    BENTOML_APP_LOGGER,
    "_bentoml_impl.server.app",
    "bentoml",
    "bentoml.access",
    "uvicorn.error",
    "mlflow",
    "mlflow.store.db.utils",
)


class RedactValidationInput(logging.Filter):
    """Keep request content out of the logs of request errors (:data:`REQUEST_ERROR_LOGGERS`).

    BentoML logs every exception of a request with its traceback, and exception messages quote
    input values (a pydantic ``ValidationError`` quotes customer ids and amounts; a library error
    may quote a value it choked on): request content must not reach the logs.

    - a ``ValidationError`` (answered 400) becomes one INFO line: the path, the method and the
      error count;
    - a client that went away (``ClientDisconnect``) becomes one INFO line;
    - any other exception keeps its traceback (files, lines, functions) and its type, not its message.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        """Rewrite ``record`` without request content (see the class docstring); always keeps it."""
        from pydantic import ValidationError
        from starlette.requests import ClientDisconnect

        exc = record.exc_info[1] if record.exc_info else None
        if exc is None:
            return True
        if isinstance(exc, ValidationError):
            note = f"{exc.error_count()} validation error(s), answered 400 (input not logged)"
        elif isinstance(exc, ClientDisconnect):
            note = "the client closed the connection"
        else:
            record.exc_text = _traceback_without_messages(exc)
            return True
        record.msg = f"{record.getMessage()}: {note}"
        record.args = ()
        record.exc_info = None
        record.exc_text = None
        record.levelno, record.levelname = logging.INFO, "INFO"
        return True


def _traceback_without_messages(exc: BaseException) -> str:
    """The traceback of ``exc`` and of its causes, each exception named by its type only."""
    chain: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and all(current is not seen for seen in chain):
        chain.append(current)
        current = current.__cause__ or (None if current.__suppress_context__ else current.__context__)
    lines: list[str] = []
    for e in reversed(chain):
        lines.append("Traceback (most recent call last):\n")
        lines.extend(traceback.format_tb(e.__traceback__))
        lines.append(f"{type(e).__module__}.{type(e).__qualname__}: (message not logged: it may quote request data)\n")
    return "".join(lines).rstrip("\n")


class RedactURLs(logging.Filter):
    """Redact every URL in a log record: its message, its arguments and its traceback text.

    Belt and braces: the service's own messages are built with redacted URLs, but libraries
    (MLflow, SQLAlchemy, BentoML) log and raise with the URLs they were given.
    """

    _formatter = logging.Formatter()

    def filter(self, record: logging.LogRecord) -> bool:
        """Redact the URLs of ``record``; always keeps it."""
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a broken format string is the handler's to report
            return True
        if "://" in message:
            record.msg, record.args = redact_text(message), ()
        if record.exc_info and record.exc_info[1] is not None and not record.exc_text:
            record.exc_text = self._formatter.formatException(record.exc_info)
        if record.exc_text and "://" in record.exc_text:
            record.exc_text = redact_text(record.exc_text)
        return True


def _add_filter_once(target: logging.Logger | logging.Handler, kind: type[logging.Filter]) -> None:
    if not any(isinstance(f, kind) for f in target.filters):
        target.addFilter(kind())


def install_log_redaction() -> None:
    """Attach the log redaction filters (once per process; the service and ``serve`` call it).

    :class:`RedactValidationInput` on the loggers of :data:`REQUEST_ERROR_LOGGERS`, then
    :class:`RedactURLs` on the loggers of :data:`SERVICE_LOGGERS` and on the handlers configured
    now (the root logger's and theirs), which also see the records that other libraries' loggers
    pass up to them.
    """
    for name in REQUEST_ERROR_LOGGERS:
        _add_filter_once(logging.getLogger(name), RedactValidationInput)
    loggers = [logging.getLogger(name) for name in SERVICE_LOGGERS]
    for logger in loggers:
        _add_filter_once(logger, RedactURLs)
    for logger in [logging.getLogger(), *loggers]:
        for handler in logger.handlers:
            _add_filter_once(handler, RedactURLs)
