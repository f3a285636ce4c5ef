"""Pack the registered model into the BentoML model store, so ``bentoml build`` ships it in the Bento.

A Bento must run without the MLflow store it was trained in. :func:`pack` resolves the model URI to
a version, downloads that MLflow model (the pyfunc folder with its ``scorer`` artifact) and saves it
as the BentoML model ``churnclv-model`` (``mlflow_model/`` plus ``churnclv_model.json``: name,
version, alias, run id). ``bentofile.yaml`` lists ``churnclv-model:latest`` under ``models`` and
sets ``CHURNCLV_MODEL_URI=bento:churnclv-model:latest``, so the Bento's service loads the packed
model through the same code path (its scorer artifact, the probe check) as a registry model.

Usage (from the project root)::

    python -m churnclv.serving.pack --model models:/churnclv@champion --tracking-uri sqlite:///mlruns/mlflow.db
    .venv/bin/python -m pip wheel --no-deps -w dist .
    bentoml build            # reads bentofile.yaml
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import tempfile
from pathlib import Path
from typing import Any

from churnclv.names import DEFAULT_MODEL_URI, DEFAULT_TRACKING_URI, MODEL_NAME
from churnclv.redaction import redact_url
from churnclv.serving.model import PACK_INFO, ModelLoadError, ModelRef, download_model, resolve_version

log = logging.getLogger(__name__)

BENTO_MODEL_NAME = "churnclv-model"


def pack(
    model_uri: str = DEFAULT_MODEL_URI, tracking_uri: str = DEFAULT_TRACKING_URI, *, name: str = BENTO_MODEL_NAME
) -> Any:
    """Save the MLflow model ``model_uri`` points at as a BentoML model; returns its tag.

    Raises
    ------
    churnclv.serving.model.ModelLoadError
        The URI does not resolve or the download fails.
    """
    import bentoml

    ref = ModelRef.parse(model_uri)
    version = resolve_version(model_uri, tracking_uri)
    # written into the Bento (a file that ships): the URI without credentials
    info = {
        "name": ref.name or MODEL_NAME,
        "version": version or "unknown",
        "alias": ref.alias,
        "source_uri": redact_url(model_uri),
    }
    with tempfile.TemporaryDirectory(prefix="churnclv-pack-") as tmp:
        path, run_id = download_model(model_uri, tracking_uri, ref, version, tmp)
        info["run_id"] = run_id
        labels = {"mlflow_model": info["name"], "mlflow_version": str(info["version"])}
        with bentoml.models.create(name, labels=labels, metadata=info) as model:
            shutil.copytree(path, model.path_of("mlflow_model"))
            Path(model.path_of(PACK_INFO)).write_text(json.dumps(info, indent=1, sort_keys=True))
    log.info("packed %s (version %s) as BentoML model %s", redact_url(model_uri), info["version"], model.tag)
    return model.tag


def main(argv: list[str] | None = None) -> None:
    """``python -m churnclv.serving.pack``: pack a model and print its BentoML tag."""
    parser = argparse.ArgumentParser(prog="python -m churnclv.serving.pack", description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=DEFAULT_MODEL_URI, help="MLflow model URI (default: %(default)s)")
    parser.add_argument(
        "--tracking-uri", default=DEFAULT_TRACKING_URI, help="MLflow tracking URI (default: %(default)s)"
    )
    parser.add_argument("--name", default=BENTO_MODEL_NAME, help="BentoML model name (default: %(default)s)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        tag = pack(args.model, args.tracking_uri, name=args.name)
    except ModelLoadError as exc:  # one line (its message is redacted), not a traceback
        parser.exit(1, f"error: {exc}\n")
    print(tag)  # noqa: T201 - the command's output


if __name__ == "__main__":
    main()
