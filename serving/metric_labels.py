"""Bounded metric labels: BentoML's HTTP metrics labelled by a fixed set of paths, not by every
path a client invents."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import bentoml
from starlette.middleware import Middleware

from churnclv.serving.auth import DOCS_PATHS, DOCS_PREFIXES, OPEN_PATHS

__all__ = ["OTHER_PATH", "BoundedMetricsService", "MetricPathLabels", "RestorePath", "bound_metric_labels"]

OTHER_PATH = "other"  # the metric label of every request path that is not one of the service's routes


class MetricPathLabels:
    """ASGI middleware, outside BentoML's metrics middleware: it shows that middleware a path from
    a fixed set, so the ``endpoint`` label cannot grow with the paths clients invent.

    BentoML 1.4 (``RunnerTrafficMetricsMiddleware``) labels its HTTP metrics with ``scope["path"]``
    as sent, 401s and 404s included: 10,853 distinct paths took ``/metrics`` from 5 kB to 44 MB.
    Here a route keeps its path, a path under a docs prefix (``/static_content/...``) becomes the
    prefix, anything else becomes ``other``; :class:`RestorePath`, just inside the metrics
    middleware, puts the real path back for routing and the access log.
    """

    KEY = "churnclv.path"

    def __init__(self, app: Any, routes: Iterable[str] = ()) -> None:
        self.app = app
        self.routes = frozenset(routes) | OPEN_PATHS | DOCS_PATHS

    def label(self, path: str) -> str:
        """The metric label of ``path``: a route itself, a docs prefix, or ``other``."""
        if path in self.routes:
            return path
        return next((p for p in DOCS_PREFIXES if path.startswith(p)), OTHER_PATH)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        """Hand the request on with its path relabelled (the real one kept under :attr:`KEY`)."""
        if scope["type"] in ("http", "websocket"):
            label = self.label(scope["path"])
            if label != scope["path"]:
                scope = {**scope, "path": label, self.KEY: scope["path"]}
        await self.app(scope, receive, send)


class RestorePath:
    """ASGI middleware: the request path as sent, after :class:`MetricPathLabels` relabelled it."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        """Hand the request on with the path it was sent with."""
        if MetricPathLabels.KEY in scope:
            scope = dict(scope)
            scope["path"] = scope.pop(MetricPathLabels.KEY)
        await self.app(scope, receive, send)


def bound_metric_labels(app: Any, routes: Iterable[str]) -> None:
    """Put :class:`MetricPathLabels` before BentoML's metrics middleware of ``app`` (a Starlette app
    not started yet) and :class:`RestorePath` right after it; nothing when metrics are off."""
    from bentoml._internal.server.http.instruments import RunnerTrafficMetricsMiddleware

    stack = app.user_middleware
    at = next((i for i, m in enumerate(stack) if m.cls is RunnerTrafficMetricsMiddleware), None)
    if at is None:
        return
    stack.insert(at + 1, Middleware(RestorePath))
    stack.insert(at, Middleware(MetricPathLabels, routes=tuple(routes)))


class BoundedMetricsService(bentoml.Service):
    """BentoML's service, whose ASGI app labels its metrics from a fixed set (:class:`MetricPathLabels`).

    ``bentoml serve`` and the tests build the app through :meth:`to_asgi`; BentoML's own hook for
    middleware (``add_asgi_middleware``) places it inside the metrics middleware, too late.
    """

    def to_asgi(self, is_main: bool = True) -> Any:
        """BentoML's ASGI app, with :func:`bound_metric_labels` around its metrics middleware."""
        app = super().to_asgi(is_main=is_main)
        prefix = (self.path_prefix or "").rstrip("/")
        bound_metric_labels(app, [prefix + api.route for api in self.apis.values()])
        return app
