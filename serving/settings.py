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
- ``CHURNCLV_CAMPAIGN``: the campaign whose arm (``campaign``, ``holdout``) each answer carries
  (default: the campaign of the snapshot's partition, if it drew one; none: both null).
- ``CHURNCLV_HOLDOUT_SHARE``: the holdout share of that campaign for customers drawn live (default:
  the snapshot's share when it drew the same campaign, else the ``[campaigns]`` default 0.1).
- ``CHURNCLV_TARGETING``: a targeting folder (``churnclv campaign fit-targeting --out DIR``): every score
  then carries its decision (``contact``, ``expected_incremental_revenue``, ``expected_profit``,
  ``targeting``; :mod:`churnclv.serving.targeting_decisions`), as ``score-batch --targeting`` writes it;
  unset, the four fields are null. Read once, at start-up, and checked against the model (``churnclv
  serve`` refuses to start the server on a targeting the model or the features cannot serve); ``/reload``
  keeps it and loads only a model it can serve; a new folder takes a restart
  (:mod:`churnclv.serving.served_targeting`).
- ``CHURNCLV_API_KEY``: the key clients send in ``X-API-Key``; required, at least 16 characters.
- ``CHURNCLV_ALLOW_NO_AUTH``: ``1`` serves without a key (local development only; default ``0``).
- ``CHURNCLV_MAX_CUSTOMERS``: customers (or ids) per request (default 100).
- ``CHURNCLV_MAX_HISTORY_ROWS``: transactions + events per customer (default 10,000).
- ``CHURNCLV_MAX_BODY_BYTES``: request body size (default 8 MiB).
- ``CHURNCLV_RELOAD_INTERVAL_S``: seconds between checks for a moved alias or a new snapshot
  (default 60; 0 turns the checks off, ``POST /reload`` still works).
- ``CHURNCLV_AS_OF_WARNING_DAYS``: an answer whose as-of lies more than this many days before or
  after the model's training as-of carries a warning (default 90; 0 turns the warning off).
- ``CHURNCLV_WORKERS``: BentoML worker processes started by ``churnclv serve`` (default 1).
- ``CHURNCLV_PRECOMPUTE_SCORES``: ``1`` (default) scores every customer of the snapshot once per
  model and snapshot, in the background, so ``score_by_id`` answers by lookup
  (:mod:`churnclv.serving.score_table`; about 500 bytes a customer per worker); ``0`` scores each
  request's ids when it comes.
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
from dataclasses import field
from pathlib import Path
from typing import Annotated, Any

from pydantic import Field, TypeAdapter, ValidationError

from churnclv.campaigns.config import CampaignId
from churnclv.config_schema import Fix, environment, format_errors, settings
from churnclv.errors import ChurnclvError
from churnclv.names import AS_OF_WARNING_DAYS, DEFAULT_MODEL_URI, DEFAULT_TRACKING_URI

__all__ = ["VARIABLES", "ServiceSettings", "SettingsError"]

MIN_KEY_LENGTH = 16

#: The environment variable of each setting.
VARIABLES = {
    "model_uri": "CHURNCLV_MODEL_URI",
    "tracking_uri": "MLFLOW_TRACKING_URI",
    "snapshot": "CHURNCLV_SNAPSHOT",
    "campaign": "CHURNCLV_CAMPAIGN",
    "holdout_share": "CHURNCLV_HOLDOUT_SHARE",
    "targeting": "CHURNCLV_TARGETING",
    "api_key": "CHURNCLV_API_KEY",
    "allow_no_auth": "CHURNCLV_ALLOW_NO_AUTH",
    "max_customers": "CHURNCLV_MAX_CUSTOMERS",
    "max_history_rows": "CHURNCLV_MAX_HISTORY_ROWS",
    "max_body_bytes": "CHURNCLV_MAX_BODY_BYTES",
    "reload_interval_s": "CHURNCLV_RELOAD_INTERVAL_S",
    "as_of_warning_days": "CHURNCLV_AS_OF_WARNING_DAYS",
    "workers": "CHURNCLV_WORKERS",
    "gc_freeze": "CHURNCLV_GC_FREEZE",
    "precompute_scores": "CHURNCLV_PRECOMPUTE_SCORES",
}
_ENVIRONMENT = environment(VARIABLES)


class SettingsError(ChurnclvError, ValueError):
    """A service setting (environment variable) is missing or invalid."""


@settings(_ENVIRONMENT, error=SettingsError)
class ServiceSettings:
    """What the service serves and its limits (see the module docstring for the variables)."""

    model_uri: str = DEFAULT_MODEL_URI
    tracking_uri: str = DEFAULT_TRACKING_URI
    snapshot: Path | None = None
    campaign: CampaignId | None = None
    holdout_share: Annotated[
        float | None, Field(gt=0, le=0.5, allow_inf_nan=False), Fix("a share in (0, 0.5], e.g. 0.1")
    ] = None
    targeting: Path | None = None
    # never shown: settings get logged and printed
    api_key: str | None = field(default=None, repr=False)
    allow_no_auth: bool = False
    max_customers: Annotated[int, Field(ge=1)] = 100
    max_history_rows: Annotated[int, Field(ge=1)] = 10_000
    max_body_bytes: Annotated[int, Field(ge=1024)] = 8 * 1024 * 1024
    # 0 turns the checks off
    reload_interval_s: Annotated[float, Field(ge=0, allow_inf_nan=False)] = 60.0
    # 0 turns the warning off
    as_of_warning_days: Annotated[int, Field(ge=0)] = AS_OF_WARNING_DAYS
    workers: Annotated[int, Field(ge=1)] = 1
    gc_freeze: bool = True
    precompute_scores: bool = True

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> ServiceSettings:
        """Read the settings from ``environ`` (default: ``os.environ``); an unset or empty variable
        keeps the default, text converts to the field's type (``"7"``, ``"2.5"``, ``"1"``/``"yes"``).

        Raises
        ------
        SettingsError
            When a variable is malformed (the message names it and the fix).
        """
        env = os.environ if environ is None else environ
        given: dict[str, Any] = {}
        for name, variable in VARIABLES.items():
            text = env.get(variable, "")
            if name == "api_key":  # as given: check_auth refuses a key with surrounding spaces
                if text:
                    given[name] = text
            elif text.strip():
                given[name] = text.strip()
        try:
            return _FROM_TEXT.validate_python(given, strict=False)
        except ValidationError as exc:
            raise SettingsError(format_errors(exc, cls, _ENVIRONMENT)) from None

    @property
    def requires_key(self) -> bool:
        """Whether requests need ``X-API-Key``: always, unless ``CHURNCLV_ALLOW_NO_AUTH=1`` and no key
        (without a key and without the opt-out the service does not start at all)."""
        return self.api_key is not None or not self.allow_no_auth

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
        values = {variable: getattr(self, name) for name, variable in VARIABLES.items()}
        return {variable: _ENVIRONMENT.render(value) for variable, value in values.items() if value is not None}


_FROM_TEXT = TypeAdapter(ServiceSettings)
