"""The README's feature catalogue is the one generated from the code."""

from __future__ import annotations

from pathlib import Path

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
