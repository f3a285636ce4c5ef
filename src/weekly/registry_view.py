"""What the weekly job reads from the model registry: the champion and when each version was trained."""

from __future__ import annotations

import datetime as dt
from typing import Protocol

from churnclv.names import CHAMPION
from churnclv.training import tracking
from churnclv.training.registry import list_versions, mlflow_client

__all__ = ["MlflowRegistry", "Registry"]


class Registry(Protocol):
    """The registry as the weekly job sees it (faked in unit tests)."""

    def champion(self) -> str | None:
        """The version the champion alias points at (None: no champion)."""

    def trained(self) -> dict[str, dt.date]:
        """Every registered version and the as-of it was trained on."""


class MlflowRegistry:
    """The MLflow registry at ``tracking_uri`` (None: ``$MLFLOW_TRACKING_URI``, else the default), model ``name``."""

    def __init__(self, tracking_uri: str | None, name: str) -> None:
        self.tracking_uri = tracking_uri
        self.name = name

    def champion(self) -> str | None:
        """The champion's version now."""
        tracking.configure(self.tracking_uri)  # the store the commands use, configured as they do
        return tracking.alias_version(mlflow_client(), self.name, CHAMPION)

    def trained(self) -> dict[str, dt.date]:
        """Version -> training as-of, for every version tagged with one."""
        tracking.configure(self.tracking_uri)
        rows = list_versions(self.name)
        return {str(r["version"]): dt.date.fromisoformat(r["as_of"]) for r in rows if r["as_of"]}
