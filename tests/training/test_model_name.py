"""A model name per data set: two data sets in one MLflow store, each registered, promoted and scored
under its own name; scoring one data set with the other's model stops with one clear line."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from click.testing import CliRunner
from mlflow.tracking import MlflowClient

from churnclv.cli import cli
from churnclv.names import MODEL_NAME, model_uri
from churnclv.serving.data_check import DataMismatchError, check_fits
from churnclv.training.config import RunConfig, TrainingError

from .conftest import CDNOW_AS_OF, GEN_AS_OF, invoke


def _model(attributes: tuple[str, ...], events: bool | None) -> Any:
    data = {} if events is None else {"data": {"events": events}}
    return SimpleNamespace(name="shop-a", version="3", attributes=attributes, metadata=data)


def test_the_data_must_have_the_attributes_and_events_the_model_was_trained_with() -> None:
    model = _model(("region",), events=True)
    check_fits(model, attributes=["region"], events=True, where="the data")  # the same shape: scored
    check_fits(model, attributes=["region"], events=None, where="the data")  # events unknown: not checked
    with pytest.raises(DataMismatchError) as missing:
        check_fits(model, attributes=[], events=False, where="the data in d")
    text = str(missing.value)
    assert "\n" not in text
    assert text.startswith("model shop-a version 3 was trained on another data set: ")
    assert "it reads customer attributes ['region'] that the data in d lacks" in text
    assert "it was trained with events and the data in d has none" in text
    assert text.endswith(
        "score with the model of this data set (--model-name NAME), or train one for it: "
        "churnclv train --model-name NAME"
    )
    with pytest.raises(DataMismatchError, match=r"has customer attributes \['tier'\] it was not trained with"):
        check_fits(model, attributes=["region", "tier"], events=True, where="the data")
    with pytest.raises(DataMismatchError, match="has events and it was trained without them"):
        check_fits(_model((), events=False), attributes=[], events=True, where="the data")
    check_fits(_model((), events=None), attributes=[], events=True, where="the data")  # an older model: no record


def test_a_transaction_column_the_model_was_trained_with_must_be_there() -> None:
    recorded = {"data": {"attributes": [], "events": False, "transaction_columns": ["channel", "order_id"]}}
    model = SimpleNamespace(name="a", version="1", attributes=(), metadata=recorded)
    same = ["category", "channel", "order_id"]  # a column added since is not refused
    check_fits(model, attributes=[], events=False, where="the data", transaction_columns=same)
    check_fits(model, attributes=[], events=False, where="the data")  # not known here: not checked
    with pytest.raises(DataMismatchError, match=r"transaction column\(s\) \['channel'\] that the data lacks"):
        check_fits(model, attributes=[], events=False, where="the data", transaction_columns=["order_id"])
    older = SimpleNamespace(name="a", version="1", attributes=(), metadata={"data": {"events": False}})
    check_fits(older, attributes=[], events=False, where="the data", transaction_columns=[])  # no record


def test_the_recorded_training_attributes_win_over_the_signature() -> None:
    # the signature is inferred from 20 example rows; the metadata holds the training data's attributes
    model = SimpleNamespace(
        name="a", version="1", attributes=(), metadata={"data": {"attributes": ["region"], "events": False}}
    )
    with pytest.raises(DataMismatchError, match=r"it reads customer attributes \['region'\]"):
        check_fits(model, attributes=[], events=False, where="the data")


def test_model_name_comes_from_the_config_and_the_option_wins(tmp_path: Path) -> None:
    path = tmp_path / "run.toml"
    path.write_text('[train]\nmodel_name = "churnclv-cdnow"\n')
    assert RunConfig.load(None).train.model_name == MODEL_NAME
    assert RunConfig.load(path).train.model_name == "churnclv-cdnow"
    assert RunConfig.load(path, model_name="other").train.model_name == "other"
    path.write_text('[train]\nmodel_name = "a/b"\n')
    with pytest.raises(TrainingError, match=r"\[train\] model_name: .*got 'a/b'.*fix: letters, digits"):
        RunConfig.load(path)


@pytest.mark.parametrize("command", [["train", "--data", "d", "--as-of", "2025-01-01"], ["models", "list"]])
def test_a_bad_model_name_is_a_usage_error(command: list[str]) -> None:
    result = CliRunner().invoke(cli, [*command, "--model-name", "my model"])
    assert result.exit_code == 2
    assert "--model-name" in result.stderr and "'my model': use letters, digits" in result.stderr


def test_model_and_model_name_together_is_a_usage_error(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        cli,
        [
            *("score-batch", "--data", str(tmp_path), "--as-of", "2025-01-01", "--out", str(tmp_path / "o")),
            *("--model", "models:/a@champion", "--model-name", "b"),
        ],
    )
    assert result.exit_code == 2
    assert f"give --model or --model-name, not both (--model-name b means --model {model_uri('b')})" in result.stderr


# ------------------------------------------------------------------ two data sets, one store


@pytest.mark.slow
def test_each_data_set_has_its_own_versions_and_champion(two_data_sets: dict[str, Any]) -> None:
    client = MlflowClient(tracking_uri=two_data_sets["uri"], registry_uri=two_data_sets["uri"])
    for name in ("cdnow", "gen"):
        assert str(client.get_model_version_by_alias(name, "champion").version) == "1"
    # the second data set was not compared with the first one's champion: it had none of its own
    assert "promoted to champion: no champion yet" in two_data_sets["loud"].stdout
    listed = invoke("models", "list", "--tracking-uri", two_data_sets["uri"], "--model-name", "cdnow").stdout
    assert listed.startswith("model cdnow\n") and CDNOW_AS_OF in listed and GEN_AS_OF not in listed
    default = invoke("models", "list", "--tracking-uri", two_data_sets["uri"]).stdout
    assert "no version of model churnclv registered yet" in default and "cdnow, gen (--model-name)" in default


@pytest.fixture(scope="module")
def scored(two_data_sets: dict[str, Any]) -> dict[str, Any]:
    """Each data set scored with its own model, and with the other's."""
    out, uri = two_data_sets["root"] / "scores", two_data_sets["uri"]
    runs = {}
    for data, as_of in (("cdnow", CDNOW_AS_OF), ("gen", GEN_AS_OF)):
        for name in ("cdnow", "gen"):
            runs[data, name] = invoke(
                "score-batch",
                *("--data", str(two_data_sets[data]), "--trusted", "--as-of", as_of, "--no-reasons"),
                *("--out", str(out / f"{data}-{name}"), "--tracking-uri", uri, "--model-name", name),
            )
    return {"out": out, "runs": runs}


@pytest.mark.slow
def test_each_data_set_scores_with_its_own_model(scored: dict[str, Any]) -> None:
    for name in ("cdnow", "gen"):
        result = scored["runs"][name, name]
        assert result.exit_code == 0, result.stderr
        assert f"with model version 1 (models:/{name}@champion" in result.stdout


@pytest.mark.slow
def test_scoring_one_data_set_with_the_others_model_stops_with_one_line(scored: dict[str, Any]) -> None:
    for data, name, why in (
        ("cdnow", "gen", "it reads customer attributes ['acquisition_channel', 'region'] that the data in"),
        ("gen", "cdnow", "has customer attributes ['acquisition_channel', 'region'] it was not trained with"),
    ):
        result = scored["runs"][data, name]
        assert result.exit_code == 1
        (error,) = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
        assert error.startswith(f"Error: model {name} version 1 was trained on another data set: ")
        assert why in error and error.endswith("churnclv train --model-name NAME")
        assert "Traceback" not in result.stderr
        assert not (scored["out"] / f"{data}-{name}" / "scores").exists()  # stopped before scoring


@pytest.mark.slow
def test_serve_refuses_a_snapshot_of_another_data_set_before_bentoml_starts(
    two_data_sets: dict[str, Any], scored: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    from churnclv.serving import server

    def never(*_args: Any) -> int:
        raise AssertionError("the BentoML server must not start")

    monkeypatch.setattr(server, "_run_server", never)
    monkeypatch.setattr(server, "check_port", lambda *_: None)  # the default port may be busy on this machine
    monkeypatch.setenv("CHURNCLV_API_KEY", "k" * 32)
    snapshot = scored["out"] / "gen-gen"  # the generated world's batch output
    with pytest.raises(server.ServeError) as refused:
        server.serve(model_uri=model_uri("cdnow"), tracking_uri=two_data_sets["uri"], snapshot=snapshot)
    text = str(refused.value)
    assert "\n" not in text and text.startswith("model cdnow version 1 was trained on another data set: ")
    assert "the feature snapshot" in text and "--model-name" in text
