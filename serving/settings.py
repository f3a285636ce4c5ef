"""Settings of the HTTP scoring service, read from environment variables.

The service runs in BentoML worker processes that ``churnclv serve`` (or ``bentoml serve``) starts,
so its settings travel as environment variables; :meth:`ServiceSettings.from_env` reads and checks
them once, in the service's ``__init__``, never at import time.

- ``CHURNCLV_MODEL_URI``: the MLflow model URI (default ``models:/churnclv@champion``; a pinned
  version ``models:/churnclv/3`` works too), or ``bento:TAG`` for a model packed into a Bento
  (:mod:`churnclv.serving.pack`).
- ``MLFLOW_TRACKING_URI``: MLflow tracking and registry URI (default ``sqlite:///mlruns/mlflow.db``).
- ``CHURNCLV_SNAPSHOT``: the batch job's output folder (it holds ``LATEST``), for ``score_by_id``;
  unset, ``score_by_id`` answers 503.
- ``CHURNCLV_API_KEY``: the key clients send in ``X-API-Key``; required, at least 16 characters.
- ``CHURNCLV_ALLOW_NO_AUTH``: ``1`` serves without a key (local development only; default ``0``).
- ``CHURNCLV_MAX_CUSTOMERS``: customers (or ids) per request (default 100).
- ``CHURNCLV_MAX_HISTORY_ROWS``: transactions + events per customer (default 10,000).
- ``CHURNCLV_MAX_BODY_BYTES``: request body size (default 8 MiB).
- ``CHURNCLV_RELOAD_INTERVAL_S``: seconds between checks for a moved alias or a new snapshot
  (default 60; 0 turns the checks off, ``POST /reload`` still works).
- ``CHURNCLV_WORKERS``: BentoML worker processes started by ``churnclv serve`` (default 1).
- ``CHURNCLV_GC_FREEZE``: ``1`` (default) freezes the objects alive after the model loads out of
  Python's garbage collector (:func:`gc.freeze`), which removes ~330 ms stalls, and spaces its
  collections out (thresholds 10,000 / 10 / 1,000 instead of 700 / 10 / 10: at 600 requests/s the
  objects of the requests in flight set off a full collection about once a second, 10-50 ms
  each, which was the p99; they are freed by reference counting, full collections found under
  100 cyclic objects each); ``0`` for in-process use (tests).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

DEFAULT_MODEL_URI = "models:/churnclv@champion"
DEFAULT_TRACKING_URI = "sqlite:///mlruns/mlflow.db"
MIN_KEY_LENGTH = 16
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


class SettingsError(ValueError):
    """A service setting (environment variable) is missing or invalid."""


def _int(env: Mapping[str, str], name: str, default: int, *, minimum: int) -> int:
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise SettingsError(f"{name}={raw!r} is not a whole number: set e.g. {name}={default}") from None
    if value < minimum:
        raise SettingsError(f"{name}={value} must be >= {minimum}: set e.g. {name}={default}")
    return value


def _float(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise SettingsError(f"{name}={raw!r} is not a number of seconds: set e.g. {name}={default:g}") from None
    if not value >= 0 or value == float("inf"):
        raise SettingsError(f"{name}={raw!r} must be a finite number >= 0 (0 turns the checks off)")
    return value


def _bool(env: Mapping[str, str], name: str, default: bool = False) -> bool:
    raw = env.get(name, "").strip().lower()
    if raw == "":
        return default
    if raw in _TRUE:
        return True
    if raw in _FALSE:
        return False
    raise SettingsError(f"{name}={raw!r}: use 1 or 0")


@dataclass(frozen=True)
class ServiceSettings:
    """What the service serves and its limits (see the module docstring for the variables)."""

    model_uri: str = DEFAULT_MODEL_URI
    tracking_uri: str = DEFAULT_TRACKING_URI
    snapshot: Path | None = None
    # never shown: settings get logged and printed
    api_key: str | None = field(default=None, repr=False)
    allow_no_auth: bool = False
    max_customers: int = 100
    max_history_rows: int = 10_000
    max_body_bytes: int = 8 * 1024 * 1024
    reload_interval_s: float = 60.0
    workers: int = 1
    gc_freeze: bool = True

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> ServiceSettings:
        """Read the settings from ``environ`` (default: ``os.environ``).

        Raises
        ------
        SettingsError
            When a variable is malformed (the message names it and the fix).
        """
        env = os.environ if environ is None else environ
        snapshot = env.get("CHURNCLV_SNAPSHOT", "").strip()
        key = env.get("CHURNCLV_API_KEY")
        return cls(
            model_uri=env.get("CHURNCLV_MODEL_URI", "").strip() or DEFAULT_MODEL_URI,
            tracking_uri=env.get("MLFLOW_TRACKING_URI", "").strip() or DEFAULT_TRACKING_URI,
            snapshot=Path(snapshot) if snapshot else None,
            api_key=key if key else None,
            allow_no_auth=_bool(env, "CHURNCLV_ALLOW_NO_AUTH"),
            max_customers=_int(env, "CHURNCLV_MAX_CUSTOMERS", cls.max_customers, minimum=1),
            max_history_rows=_int(env, "CHURNCLV_MAX_HISTORY_ROWS", cls.max_history_rows, minimum=1),
            max_body_bytes=_int(env, "CHURNCLV_MAX_BODY_BYTES", cls.max_body_bytes, minimum=1024),
            reload_interval_s=_float(env, "CHURNCLV_RELOAD_INTERVAL_S", cls.reload_interval_s),
            workers=_int(env, "CHURNCLV_WORKERS", cls.workers, minimum=1),
            gc_freeze=_bool(env, "CHURNCLV_GC_FREEZE", default=True),
        )

    def check_auth(self) -> None:
        """Refuse to serve without a usable API key, unless ``CHURNCLV_ALLOW_NO_AUTH=1``.

        Raises
        ------
        SettingsError
            No key and no explicit opt-out, or a key shorter than 16 characters.
        """
        if self.api_key is None:
            if not self.allow_no_auth:
                raise SettingsError(
                    "CHURNCLV_API_KEY is not set: the service refuses to start without an API key. "
                    "Set CHURNCLV_API_KEY (e.g. export CHURNCLV_API_KEY=$(openssl rand -hex 24)), or "
                    "set CHURNCLV_ALLOW_NO_AUTH=1 to serve without authentication (local use only)"
                )
            return
        if len(self.api_key) < MIN_KEY_LENGTH or self.api_key.strip() != self.api_key:
            raise SettingsError(
                f"CHURNCLV_API_KEY must be at least {MIN_KEY_LENGTH} characters without surrounding "
                "spaces (short keys can be guessed): generate one with openssl rand -hex 24"
            )

    def to_env(self) -> dict[str, str]:
        """The variables that reproduce these settings in a child process (includes the key)."""
        env = {
            "CHURNCLV_MODEL_URI": self.model_uri,
            "MLFLOW_TRACKING_URI": self.tracking_uri,
            "CHURNCLV_ALLOW_NO_AUTH": "1" if self.allow_no_auth else "0",
            "CHURNCLV_MAX_CUSTOMERS": str(self.max_customers),
            "CHURNCLV_MAX_HISTORY_ROWS": str(self.max_history_rows),
            "CHURNCLV_MAX_BODY_BYTES": str(self.max_body_bytes),
            "CHURNCLV_RELOAD_INTERVAL_S": repr(self.reload_interval_s),
            "CHURNCLV_WORKERS": str(self.workers),
            "CHURNCLV_GC_FREEZE": "1" if self.gc_freeze else "0",
        }
        if self.snapshot is not None:
            env["CHURNCLV_SNAPSHOT"] = str(self.snapshot)
        if self.api_key is not None:
            env["CHURNCLV_API_KEY"] = self.api_key
        return env


__all__ = ["DEFAULT_MODEL_URI", "DEFAULT_TRACKING_URI", "ServiceSettings", "SettingsError"]
