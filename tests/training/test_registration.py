"""A model version is registered with its tags in one write: a training killed right after the
registration leaves a version that says what it was trained on, so the weekly job promotes it
instead of training a second one (a helper killed a weekly run there: an untagged version, 275 s of
training again)."""

from __future__ import annotations

from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from churnclv.datasets import write_cdnow
from churnclv.training import registry, tracking

from .conftest import CDNOW_AS_OF, invoke

pytestmark = pytest.mark.integration


class _KilledAfterRegistering(BaseException):
    """Stands for a SIGKILL at the first registry write after the version exists."""


def test_the_version_is_tagged_when_it_is_created(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = tmp_path / "cdnow"
    write_cdnow(data, "sample")
    config = tmp_path / "fast.toml"
    config.write_text('[train]\nn_folds = 1\ncandidates = ["btyd"]\n')
    uri = f"sqlite:///{tmp_path}/mlruns/mlflow.db"

    def killed(*_args: object, **_kwargs: object) -> None:
        raise _KilledAfterRegistering

    # every write to the registry after the version's creation dies: tags set one by one would be lost
    monkeypatch.setattr(MlflowClient, "set_model_version_tag", killed)
    monkeypatch.setattr(MlflowClient, "set_registered_model_alias", killed)
    with pytest.raises(_KilledAfterRegistering):
        invoke(
            "-q",
            "train",
            "--data",
            str(data),
            "--trusted",
            "--as-of",
            CDNOW_AS_OF,
            "--config",
            str(config),
            "--tracking-uri",
            uri,
        )
    tracking.configure(uri)
    (version,) = registry.list_versions("churnclv")
    assert version["as_of"] == CDNOW_AS_OF and str(version["version"]) == "1"
    tags = MlflowClient(tracking_uri=uri).get_model_version("churnclv", "1").tags
    assert {"as_of", "horizon_days", "selected", "metrics", "run_id", "backtested"} <= set(tags)
