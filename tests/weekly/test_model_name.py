"""The weekly job names its model as ``churnclv train`` does: the option, else ``[train] model_name``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from churnclv.cli import cli
from churnclv.weekly import runner


class _StopError(Exception):
    """Raised by the captured runner once the request is seen: nothing else runs."""


@pytest.fixture
def captured(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    seen: dict[str, Any] = {}

    def run_weekly(request: Any, *, registry: Any, **_: Any) -> Any:
        seen["request"], seen["registry"] = request, registry
        raise _StopError

    monkeypatch.setattr(runner, "run_weekly", run_weekly)
    return seen


def _weekly(tmp_path: Path, config_text: str | None, *extra: str) -> list[str]:
    args = ["weekly", "--data", str(tmp_path / "data"), "--as-of", "2025-10-02", "--out", str(tmp_path / "out")]
    if config_text is not None:
        config = tmp_path / "run.toml"
        config.write_text(config_text)
        args += ["--config", str(config)]
    return [*args, *extra]


@pytest.mark.parametrize(
    ("config_text", "extra", "expected"),
    [
        ('[train]\nmodel_name = "shop_x"\n', (), "shop_x"),  # the config alone names the model
        ('[train]\nmodel_name = "shop_x"\n', ("--model-name", "shop_y"), "shop_y"),  # the option wins
        (None, (), "churnclv"),  # neither: the default
    ],
)
def test_weekly_uses_the_model_name_train_would_use(
    tmp_path: Path, captured: dict[str, Any], config_text: str | None, extra: tuple[str, ...], expected: str
) -> None:
    result = CliRunner().invoke(cli, _weekly(tmp_path, config_text, *extra))
    assert isinstance(result.exception, _StopError), result.output
    assert captured["request"].name == expected
    assert captured["registry"].name == expected
