"""The built wheel holds every package folder of src/, training/ and serving/.

setuptools silently leaves an unlisted subpackage out of the wheel while the editable install
still imports it; this test catches that before a user does.
"""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
ROOTS = {"src": "churnclv", "training": "churnclv/training", "serving": "churnclv/serving"}


def _package_folders() -> set[str]:
    folders = set()
    for folder, prefix in ROOTS.items():
        base = ROOT / folder
        for init in base.rglob("__init__.py"):
            rel = init.parent.relative_to(base).as_posix()
            folders.add(prefix if rel == "." else f"{prefix}/{rel}")
    return folders


@pytest.mark.slow
def test_wheel_contains_every_package_folder(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", str(tmp_path), str(ROOT)],
        check=True,
    )
    (wheel,) = tmp_path.glob("churnclv-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    in_wheel = {n.rsplit("/", 1)[0] for n in names if n.endswith("/__init__.py")}
    expected = _package_folders()
    assert expected, "no package folders found"
    assert expected - in_wheel == set(), f"missing from the wheel; list them in pyproject.toml: {expected - in_wheel}"
    assert "churnclv/defaults/tiers.toml" in names, "package data missing: the tier policy defaults"
    modules = {n for n in names if n.endswith(".py")}
    for folder, prefix in ROOTS.items():
        for py in (ROOT / folder).rglob("*.py"):
            if "__pycache__" in py.parts:
                continue
            rel = py.relative_to(ROOT / folder).as_posix()
            assert f"{prefix}/{rel}" in modules, f"{folder}/{rel} is not in the wheel"


def test_nothing_imports_src_or_edits_sys_path() -> None:
    offenders = []
    for folder in ("src", "training", "serving", "tests", "bench", "notebooks"):
        for py in (ROOT / folder).rglob("*.py"):
            text = py.read_text()
            bad = ("import src", "from src", "sys.path.insert", "sys.path.append")
            if any(b in text for b in bad) and py.name != "test_packaging.py":
                offenders.append(str(py.relative_to(ROOT)))
    assert offenders == []


def test_src_never_imports_mlflow_or_bentoml() -> None:
    offenders = [
        str(py.relative_to(ROOT))
        for py in (ROOT / "src").rglob("*.py")
        for line in py.read_text().splitlines()
        if line.strip().startswith(("import mlflow", "from mlflow", "import bentoml", "from bentoml"))
    ]
    assert offenders == [], "src/ must not import mlflow or bentoml (see DESIGN.md)"
