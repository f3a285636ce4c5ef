"""The README's feature catalogue is the one generated from the code; its Python example runs."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from churnclv.features import render_markdown

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_catalogue_matches_the_code() -> None:
    text = README.read_text()
    start = text.index("<!-- catalogue:start -->\n") + len("<!-- catalogue:start -->\n")
    end = text.index("<!-- catalogue:end -->")
    assert text[start:end] == render_markdown(), "regenerate the README catalogue from render_markdown()"


def test_readme_names_the_two_setup_commands() -> None:
    text = README.read_text()
    assert "make demo" in text and "make test" in text


@pytest.mark.slow
def test_readme_python_api_example_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    text = README.read_text()
    block = text[text.index("<!-- python-api:start -->") : text.index("<!-- python-api:end -->")]
    code = block.split("```python\n", 1)[1].split("```", 1)[0]
    assert len([line for line in code.splitlines() if line.strip()]) <= 10, "the README promises ten lines"
    monkeypatch.chdir(tmp_path)  # the example saves its model to the working directory
    namespace: dict[str, Any] = {}
    exec(compile(code, "README.md (Python API)", "exec"), namespace)
    assert len(namespace["scores"]) == 2_357 and namespace["scores"]["tier"].notna().all()
    auc = namespace["model"].score(namespace["holdout"], as_of="1997-09-30")
    assert 0.6 < auc < 1
    assert f"{auc:.3f}" in text, "the README quotes the AUC the example prints"
    assert (tmp_path / "cdnow-model" / "scorer.json").is_file()


def test_readme_score_answer_example_has_every_field_of_the_answer() -> None:
    """The `/score` answer shown in the README has exactly the fields the service answers with."""
    import json

    from churnclv.serving.schemas import CustomerScore

    text = README.read_text()
    start = text.index('```json\n{"as_of": "2025-10-02", "model_version": "1", "scores": [') + len("```json\n")
    example = json.loads(text[start : text.index("```", start)])
    assert set(example["scores"][0]) == set(CustomerScore.model_fields)


def _github_anchor(heading: str) -> str:
    """The anchor GitHub gives a heading: lower case, punctuation dropped, spaces as hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def test_readme_in_page_links_reach_a_heading() -> None:
    """Every ``](#anchor)`` link of the README (its contents by role) lands on one of its headings."""
    text = README.read_text()
    prose = re.sub(r"```.*?```", "", text, flags=re.DOTALL)  # a '# comment' in a code block is no heading
    anchors = {_github_anchor(line.lstrip("#")) for line in prose.splitlines() if re.match(r"#{1,6} ", line)}
    links = re.findall(r"\]\(#([^)]+)\)", text)
    assert len(links) >= 10, "the README's contents by role links its sections"
    assert sorted(set(links) - anchors) == []
