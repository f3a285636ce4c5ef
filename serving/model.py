"""The served model: resolving an MLflow model URI to a version, loading its Scorer: the one loader
of the batch job, the HTTP service and ``serve``.

The model is downloaded with MLflow (:func:`mlflow.artifacts.download_artifacts`); its ``MLmodel``
names the folder of the saved :class:`churnclv.models.scorer.Scorer` (the pyfunc's ``scorer``
artifact), which :meth:`Scorer.load` reads, checking each booster against its SHA-256. The pyfunc
wrapper is never built: its per-call schema enforcement costs 5-9 ms a request, and the service
validates its input once at the HTTP edge instead. The features the service computes are
checked against the model's logged input signature once, at load
(:func:`churnclv.serving.scoring.check_model` scores a probe customer), so a model trained with
another feature configuration is refused before it serves.

Supported URIs: ``models:/NAME@ALIAS`` (the alias is resolved to a version first, and that version
is loaded, so an alias moving during the load cannot mix versions), ``models:/NAME/VERSION``, any
other MLflow model URI (``runs:/...``, a local path; the version is then ``unknown``), and
``bento:TAG`` for a model packed into the BentoML model store by :mod:`churnclv.serving.pack`.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import re
import tempfile
from collections.abc import MutableMapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from churnclv.errors import ChurnclvError
from churnclv.models.scorer import Scorer
from churnclv.models.scorer_files import ScorerFormatError
from churnclv.names import MODEL_NAME, SCORER_ARTIFACT
from churnclv.redaction import error_summary, redact_text, redact_url

log = logging.getLogger(__name__)

BENTO_SCHEME = "bento:"
PACK_INFO = "churnclv_model.json"  # written by churnclv.serving.pack next to the MLflow model
_REGISTRY_URI = re.compile(r"^models:/(?P<name>[^/@]+)(?:@(?P<alias>[^/]+)|/(?P<version>\d+))$")


class ModelLoadError(ChurnclvError, RuntimeError):
    """The model URI cannot be resolved or loaded (the message says which and how to fix it).

    The message is redacted here, once, whoever builds it: it reaches HTTP answers (``/reload``),
    logs (the periodic check) and the ``serve`` command's output, and tracking URIs carry database
    passwords (``postgresql://user:pw@host/db``), as do the errors of the libraries that read them.
    """

    def __init__(self, message: str) -> None:
        super().__init__(redact_text(message))


@dataclass(frozen=True)
class ModelRef:
    """Where a model comes from: the URI as configured and, for the registry, name/alias/version."""

    uri: str
    name: str | None = None
    alias: str | None = None
    version: str | None = None

    @classmethod
    def parse(cls, uri: str) -> ModelRef:
        """The reference of ``uri``: name and alias or version for ``models:/`` URIs, the URI alone otherwise."""
        m = _REGISTRY_URI.match(uri.strip())
        if m:
            return cls(uri=uri, name=m["name"], alias=m["alias"], version=m["version"])
        return cls(uri=uri)


@dataclass(frozen=True)
class LoadedModel:
    """A scorer ready to serve, with where it came from and what it reads.

    Attributes
    ----------
    scorer
        The model's scorer.
    name, version, alias
        Registered model name, version (``"unknown"`` outside the registry) and the alias it was
        resolved from (None for a pinned version).
    model_uri
        The URI as configured (what a reload resolves again).
    run_id
        The MLflow run that produced the model, when known.
    input_columns
        The feature frame columns of the model's logged signature (``customer_id`` first).
    attributes
        Customer attribute names the model reads (``attr_<name>`` input columns).
    path
        The downloaded MLflow model folder when :func:`load_model` was given ``dst`` (the batch
        job's Spark engine ships it to its executors); None when the download was temporary.
    """

    scorer: Scorer
    name: str
    version: str
    alias: str | None
    model_uri: str
    run_id: str | None = None
    input_columns: tuple[str, ...] = ()
    attributes: tuple[str, ...] = ()
    path: str | None = None

    @property
    def horizon_days(self) -> int:
        """The prediction horizon the scorer was trained for."""
        return int(self.scorer.config_.horizon_days)

    @property
    def resolved_uri(self) -> str:
        """The URI of exactly this version: ``models:/NAME/VERSION`` in the registry, else the URI as configured."""
        if ModelRef.parse(self.model_uri).name is not None and self.version != "unknown":
            return f"models:/{self.name}/{self.version}"
        return self.model_uri

    @functools.cached_property
    def attribute_levels(self) -> dict[str, frozenset[str]]:
        """The values of each attribute the model was trained with: the categories of its LightGBM models
        (an attribute none of them reads is absent; a value outside them is scored as missing)."""
        levels: dict[str, set[str]] = {}
        for part in ("churn_", "purchases_", "spend_"):
            fitted = getattr(self.scorer, part, None)  # None: that target is BTYD's
            for column, values in (getattr(fitted, "categories_", None) or {}).items():
                if column.startswith("attr_"):
                    levels.setdefault(column.removeprefix("attr_"), set()).update(values)
        return {name: frozenset(values) for name, values in levels.items()}

    @property
    def metadata(self) -> dict[str, Any]:
        """The scorer's training metadata (as-of, selected models, backtest means)."""
        return dict(getattr(self.scorer, "metadata_", None) or {})


_MODEL_URI_FORMS = "models:/NAME/VERSION, models:/NAME@ALIAS, runs:/RUN_ID/PATH or a model folder"
_MODEL_OPTION = "--model (CHURNCLV_MODEL_URI for the service)"  # the batch's option, the service's variable


# what the registry answers for a model or alias it does not have
_NOT_FOUND = frozenset({"RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"})


def _store_down(model_uri: str, reading: str, tracking_uri: str, exc: Exception) -> ModelLoadError:
    """The error for a tracking store that does not answer (a database driver's own errors)."""
    return ModelLoadError(
        f"model URI {redact_url(model_uri)}: cannot read {reading} {redact_url(tracking_uri)} "
        f"({error_summary(exc)}): check --tracking-uri / MLFLOW_TRACKING_URI and that its server or database is up"
    )


# MLflow retries an HTTP tracking server that does not answer 7 times with backoff, each request
# waiting up to 120 s: serve took 252 s to give up on a server that was down, and /reload outlived
# the 30 s traffic timeout (504). The service's own defaults; a value in the environment wins.
MLFLOW_HTTP_DEFAULTS = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "1", "MLFLOW_HTTP_REQUEST_TIMEOUT": "10"}


def bound_mlflow_http(environ: MutableMapping[str, str]) -> None:
    """Set :data:`MLFLOW_HTTP_DEFAULTS` in ``environ`` where it does not set them itself."""
    for key, value in MLFLOW_HTTP_DEFAULTS.items():
        environ.setdefault(key, value)


def _check_store(model_uri: str, tracking_uri: str) -> None:
    """A SQLite store that does not exist is an error here: opening it would create an empty one."""
    db = tracking_uri.removeprefix("sqlite:///").split("?", 1)[0] if tracking_uri.startswith("sqlite:///") else None
    if db and db != ":memory:" and not Path(db).exists():
        raise ModelLoadError(
            f"model URI {redact_url(model_uri)}: no MLflow store at {redact_url(tracking_uri)} (no such file): "
            "train a model first (churnclv train), or set --tracking-uri / MLFLOW_TRACKING_URI to the store "
            "that holds it"
        )


def _client(model_uri: str, tracking_uri: str) -> Any:
    """An MLflow client of the store; an unsupported URI is a store error, not a missing model (MLflow
    gives both the error code INVALID_PARAMETER_VALUE)."""
    from mlflow.tracking import MlflowClient

    try:
        return MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    except Exception as exc:  # noqa: BLE001 - MLflow's UnsupportedModelRegistryStoreURIException, raised at once
        raise _store_down(model_uri, "the registry at", tracking_uri, exc) from None


def resolve_version(model_uri: str, tracking_uri: str) -> str | None:
    """The registry version ``model_uri`` points at now (None outside the registry).

    Raises
    ------
    ModelLoadError
        The model or alias does not exist in the registry at ``tracking_uri``.
    """
    from mlflow.exceptions import MlflowException

    ref = ModelRef.parse(model_uri)
    if ref.name is None:
        return None
    if ref.version is not None:
        return ref.version
    _check_store(model_uri, tracking_uri)
    client = _client(model_uri, tracking_uri)
    try:
        return str(client.get_model_version_by_alias(ref.name, ref.alias).version)
    except MlflowException as exc:
        if exc.error_code not in _NOT_FOUND:  # the store did not answer (an HTTP server that is down)
            raise _store_down(model_uri, "the registry at", tracking_uri, exc) from None
        raise ModelLoadError(
            f"model URI {redact_url(model_uri)}: no version of model '{ref.name}' has the alias '{ref.alias}' "
            f"in the registry at {redact_url(tracking_uri)} ({error_summary(exc)}): train and promote a model "
            "(churnclv train), or set --model / CHURNCLV_MODEL_URI and --tracking-uri / MLFLOW_TRACKING_URI"
        ) from None
    except Exception as exc:  # noqa: BLE001 - the store is unreachable (a database driver's own errors)
        raise _store_down(model_uri, "the registry at", tracking_uri, exc) from None


def download_model(
    model_uri: str, tracking_uri: str, ref: ModelRef, version: str | None, dst: str
) -> tuple[str, str | None]:
    """Download the MLflow model into ``dst``; returns the local path and the run id."""
    import mlflow.artifacts
    from mlflow.exceptions import MlflowException

    if ":/" not in model_uri and not Path(model_uri).exists():  # a local folder (no scheme)
        raise ModelLoadError(
            f"model URI {model_uri}: no such model folder: check --model / CHURNCLV_MODEL_URI ({_MODEL_URI_FORMS})"
        )
    client = None
    if ref.name is not None:
        _check_store(model_uri, tracking_uri)
        client = _client(model_uri, tracking_uri)
    try:
        if client is not None:
            mv = client.get_model_version(ref.name, version)
            # download_artifacts resolves models:/ URIs against the global registry only: go through
            # this client's download URI so nothing global is touched
            source = client.get_model_version_download_uri(ref.name, version)
            return mlflow.artifacts.download_artifacts(
                artifact_uri=source, dst_path=dst, tracking_uri=tracking_uri
            ), mv.run_id
        return mlflow.artifacts.download_artifacts(
            artifact_uri=model_uri, dst_path=dst, tracking_uri=tracking_uri
        ), None
    except (MlflowException, OSError) as exc:
        raise ModelLoadError(
            f"model URI {redact_url(model_uri)}: cannot download it from {redact_url(tracking_uri)} "
            f"({error_summary(exc)}): check --model / CHURNCLV_MODEL_URI ({_MODEL_URI_FORMS}) "
            "and --tracking-uri / MLFLOW_TRACKING_URI"
        ) from None
    except Exception as exc:  # noqa: BLE001 - the store is unreachable (a database driver's own errors)
        raise _store_down(model_uri, "it from", tracking_uri, exc) from None


def _read_local(path: str | Path, model_uri: str) -> tuple[Scorer, tuple[str, ...]]:
    """The scorer and the logged input columns of the MLflow model folder ``path``.

    Reads the folder's ``MLmodel`` (the pyfunc flavour names the scorer artifact's folder, as
    :mod:`churnclv.training.mlflow_run` logged it) and loads that folder with :meth:`Scorer.load`,
    which checks each booster against its SHA-256; the pyfunc wrapper is never built.
    """
    from mlflow.models import Model

    folder = Path(path)
    if not (folder / "MLmodel").is_file() and (folder / "scorer.json").is_file():
        # a scorer folder of its own (ChurnCLV.save, Scorer.save): no logged signature
        scorer = _load_scorer(folder, model_uri)
        return scorer, _scorer_columns(scorer)
    try:
        meta = Model.load(str(folder))
    except Exception as exc:  # noqa: BLE001 - no MLmodel, or one that does not parse
        raise ModelLoadError(
            f"model {redact_url(model_uri)}: not a loadable MLflow model ({error_summary(exc)}); point "
            f"{_MODEL_OPTION} at a model registered by churnclv train or a folder of ChurnCLV.save"
        ) from None
    artifacts = (meta.flavors.get("python_function") or {}).get("artifacts") or {}
    relative = (artifacts.get(SCORER_ARTIFACT) or {}).get("path")
    scorer_dir = (folder / str(relative)).resolve() if relative else None
    if scorer_dir is None or not scorer_dir.is_relative_to(folder.resolve()):
        raise ModelLoadError(
            f"model {redact_url(model_uri)}: not a churnclv model (its MLmodel names no {SCORER_ARTIFACT!r} artifact "
            f"inside the model); point {_MODEL_OPTION} at a model registered by churnclv train"
        )
    scorer = _load_scorer(scorer_dir, model_uri)
    schema = meta.get_input_schema()
    columns = tuple(schema.input_names()) if schema is not None else ()
    return scorer, tuple(str(c) for c in columns) if columns else _scorer_columns(scorer)


def _load_scorer(folder: Path, model_uri: str) -> Scorer:
    try:
        return Scorer.load(folder)
    except (ScorerFormatError, OSError) as exc:
        raise ModelLoadError(
            f"model {redact_url(model_uri)}: its scorer cannot be loaded ({error_summary(exc)}); point "
            f"{_MODEL_OPTION} at a model registered by churnclv train or a folder of ChurnCLV.save"
        ) from None


def _scorer_columns(scorer: Scorer) -> tuple[str, ...]:
    """The input columns a scorer's learned models read (a model logged without a signature)."""
    names: list[str] = ["customer_id"]
    for target in ("churn_", "purchases_", "spend_"):
        model = getattr(scorer, target, None)
        if model is not None:
            names += [c for c in model.feature_names_ if c not in names]
    return tuple(names)


def _from_local(
    path: str | Path,
    *,
    name: str,
    version: str,
    alias: str | None,
    model_uri: str,
    run_id: str | None,
    keep: bool = False,
) -> LoadedModel:
    scorer, columns = _read_local(path, model_uri)
    return LoadedModel(
        scorer=scorer,
        name=name,
        version=version,
        alias=alias,
        model_uri=model_uri,
        run_id=run_id,
        input_columns=columns,
        attributes=tuple(c.removeprefix("attr_") for c in columns if c.startswith("attr_")),
        path=str(path) if keep else None,
    )


def _load_bento(model_uri: str) -> LoadedModel:
    import bentoml
    from bentoml.exceptions import NotFound

    tag = model_uri.removeprefix(BENTO_SCHEME)
    try:
        stored = bentoml.models.get(tag)
        info = json.loads(Path(stored.path_of(PACK_INFO)).read_text())
    except NotFound:
        raise ModelLoadError(
            f"model URI {model_uri}: no model {tag} in the BentoML model store: pack one with "
            "python -m churnclv.serving.pack, or use an MLflow models:/ URI"
        ) from None
    except Exception as exc:  # noqa: BLE001 - a malformed tag, or a model not packed by churnclv
        raise ModelLoadError(
            f"model URI {model_uri}: cannot read {tag} from the BentoML model store ({error_summary(exc)}): use a tag "
            "like bento:churnclv-model:latest, packed with python -m churnclv.serving.pack"
        ) from None
    return _from_local(
        stored.path_of("mlflow_model"),
        name=info["name"],
        version=str(info["version"]),
        alias=info.get("alias"),
        model_uri=model_uri,
        run_id=info.get("run_id"),
    )


def load_model(
    model_uri: str, tracking_uri: str, *, version: str | None = None, dst: str | Path | None = None
) -> LoadedModel:
    """Load ``model_uri``'s scorer (see the module docstring).

    The service checks the model against its own features on top
    (:func:`churnclv.serving.scoring.load_checked_model`).

    Parameters
    ----------
    model_uri
        ``models:/NAME@ALIAS``, ``models:/NAME/VERSION``, another MLflow model URI, or ``bento:TAG``.
    tracking_uri
        MLflow tracking and registry URI.
    version
        The version the alias was already resolved to (saves a registry call on reload).
    dst
        Download the model into this folder and keep it (:attr:`LoadedModel.path`); by default it
        goes to a temporary folder, removed once the scorer is loaded.

    Raises
    ------
    ModelLoadError
        The URI does not resolve, the download fails, or the model is not a churnclv model.
    """
    if model_uri.startswith(BENTO_SCHEME):
        loaded = _load_bento(model_uri)
    else:
        ref = ModelRef.parse(model_uri)
        version = version or resolve_version(model_uri, tracking_uri)
        with contextlib.ExitStack() as stack:
            folder = (
                str(dst)
                if dst is not None
                else stack.enter_context(tempfile.TemporaryDirectory(prefix="churnclv-model-"))
            )
            path, run_id = download_model(model_uri, tracking_uri, ref, version, folder)
            loaded = _from_local(
                path,
                name=ref.name or MODEL_NAME,
                version=version or "unknown",
                alias=ref.alias,
                model_uri=model_uri,
                run_id=run_id,
                keep=dst is not None,
            )
    # DEBUG: the batch summary and serve's own line name the version
    log.debug("loaded model %s version %s (horizon %d days)", loaded.name, loaded.version, loaded.horizon_days)
    return loaded


__all__ = [
    "BENTO_SCHEME",
    "LoadedModel",
    "ModelLoadError",
    "ModelRef",
    "download_model",
    "load_model",
    "resolve_version",
]
