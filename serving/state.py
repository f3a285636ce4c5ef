"""What a service worker serves right now: the model and the feature snapshot, swapped atomically.

A request reads :attr:`ServingState.model` once and scores with that object to the end, so a reload
never changes the model under a request in flight: :meth:`ServingState.refresh` loads the new
version completely (and checks it on a probe customer) before it replaces the reference, and a
failed load keeps the current model. The same holds for the snapshot when ``LATEST`` moves.

Each BentoML worker process holds its own state: ``POST /reload`` refreshes the worker that answers
it, and the periodic check (``CHURNCLV_RELOAD_INTERVAL_S``) refreshes every worker.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from churnclv.redaction import error_summary, redact_text
from churnclv.serving.feature_snapshot import FeatureSnapshot, SnapshotError
from churnclv.serving.model import LoadedModel, ModelLoadError, resolve_version
from churnclv.serving.scoring import load_checked_model

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RefreshOutcome:
    """What a refresh did."""

    model_changed: bool
    previous_version: str
    version: str
    snapshot_changed: bool
    snapshot: str | None
    snapshot_error: str | None = None  # why the snapshot LATEST names could not be loaded (redacted)


class ServingState:
    """The current model and snapshot of one worker, and how they are refreshed.

    Parameters
    ----------
    model_uri, tracking_uri
        What to serve (see :func:`churnclv.serving.scoring.load_checked_model`).
    snapshot
        The batch output folder holding ``LATEST``, or None (``score_by_id`` is then unavailable).
    loader, resolver
        Load a model / resolve a URI's current version (injectable for tests).
    """

    def __init__(
        self,
        *,
        model_uri: str,
        tracking_uri: str,
        snapshot: Path | None = None,
        loader: Callable[..., LoadedModel] = load_checked_model,
        resolver: Callable[[str, str], str | None] = resolve_version,
    ) -> None:
        self.model_uri = model_uri
        self.tracking_uri = tracking_uri
        self.snapshot_folder = snapshot
        self._loader = loader
        self._resolver = resolver
        self._lock = threading.Lock()  # one refresh at a time; requests never take it
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._model: LoadedModel = loader(model_uri, tracking_uri)
        self._snapshot: FeatureSnapshot | None = None
        self.snapshot_error: str | None = None
        if snapshot is not None:
            self._load_snapshot()

    @property
    def model(self) -> LoadedModel:
        """The model served now (read it once per request)."""
        return self._model

    @property
    def snapshot(self) -> FeatureSnapshot | None:
        """The feature snapshot served now, None when there is none."""
        return self._snapshot

    def _load_snapshot(self) -> bool:
        """Load the snapshot named by ``LATEST`` when it is not the current one; True if swapped."""
        assert self.snapshot_folder is not None
        try:
            partition = FeatureSnapshot.latest_partition(self.snapshot_folder)
            if self._snapshot is not None and self._snapshot.partition == partition:
                return False
            snap = FeatureSnapshot.load(self.snapshot_folder)
        except (SnapshotError, OSError, ValueError) as exc:
            # keep serving the snapshot we have; score_by_id reports the problem when there is none
            self.snapshot_error = redact_text(str(exc))
            log.error("feature snapshot not loaded: %s", self.snapshot_error)
            return False
        self._snapshot = snap
        self.snapshot_error = None
        return True

    def refresh(self) -> RefreshOutcome:
        """Load the model version the URI points at now and the latest snapshot, if they changed.

        Raises
        ------
        ModelLoadError
            The URI no longer resolves or the new version fails to load; the current model stays.
        """
        with self._lock:
            current = self._model
            version = self._resolver(self.model_uri, self.tracking_uri)
            changed = version is not None and version != current.version
            if changed:
                new = self._loader(self.model_uri, self.tracking_uri, version=version)
                self._model = new  # a single reference assignment: requests see old or new, never half
                log.info("model %s: version %s -> %s", self.model_uri, current.version, new.version)
            snapshot_changed = False
            if self.snapshot_folder is not None:
                self.snapshot_error = None  # an error of an earlier refresh is not this one's
                snapshot_changed = self._load_snapshot()
            return RefreshOutcome(
                model_changed=changed,
                previous_version=current.version,
                version=self._model.version,
                snapshot_changed=snapshot_changed,
                snapshot=None if self._snapshot is None else self._snapshot.partition,
                snapshot_error=self.snapshot_error,
            )

    def start(self, interval_s: float) -> None:
        """Refresh every ``interval_s`` seconds in a daemon thread (no-op when 0)."""
        if interval_s <= 0 or self._thread is not None:
            return

        def loop() -> None:
            while not self._stop.wait(interval_s):
                try:
                    self.refresh()
                except ModelLoadError as exc:  # its message is redacted
                    log.error("periodic model check failed, still serving version %s: %s", self._model.version, exc)
                except Exception as exc:
                    # one redacted line; the traceback only at DEBUG (the service's log filter redacts it too)
                    log.error(
                        "periodic model check failed, still serving version %s: %s",
                        self._model.version,
                        redact_text(error_summary(exc)),
                    )
                    log.debug("periodic model check failure", exc_info=True)

        self._thread = threading.Thread(target=loop, name="churnclv-reload", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the periodic refresh."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None


__all__ = ["RefreshOutcome", "ServingState"]
