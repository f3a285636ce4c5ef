"""The notebooks run top to bottom on small data, each in a fresh working directory, and show what
they promise (plots, the published CDNOW fit, a champion in the local MLflow store).

Executing one takes 5-45 s (a kernel, real MLflow stores, real data): marked ``integration``, so
``make test`` runs them and ``make test-fast`` skips them.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nbformat
import pytest
from nbclient import NotebookClient

from churnclv.campaigns.targeting import CampaignTargeting
from churnclv.models.estimator import ChurnCLV

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
KERNEL = "churnclv-test"

# CI sizes: a few seconds of training each (the notebooks' defaults are for people)
FAST = {
    "N_CUSTOMERS": 800,
    "GBM_ROUNDS": 40,
    "N_FOLDS": 2,
    "TRAIN_CUTOFFS": 2,
    "CANDIDATES": ("recency", "btyd", "gbm"),
}
PARAMETERS = {
    "01-quickstart.ipynb": FAST,
    "02-retrain-and-promote.ipynb": FAST,
    "03-cdnow-btyd.ipynb": {"COMPARE_VARIANT": "sample", "GBM_ROUNDS": 40},
    "04-diagnostics.ipynb": {"VARIANT": "sample", "GBM_ROUNDS": 40},
    "05-campaign-uplift.ipynb": {"N_CUSTOMERS": 3000, "GBM_ROUNDS": 40, "EARLIER_CAMPAIGNS": 1},
}


@pytest.fixture(scope="module")
def kernel(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A kernelspec that runs this interpreter, found first on JUPYTER_PATH: the notebooks import the
    package installed here, whatever 'python3' resolves to on the machine."""
    root = tmp_path_factory.mktemp("jupyter")
    spec = root / "kernels" / KERNEL
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(
        json.dumps(
            {
                "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
                "display_name": "churnclv tests",
                "language": "python",
            }
        )
    )
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("JUPYTER_PATH", str(root))
        yield KERNEL


def run(name: str, kernel: str, cwd: Path) -> nbformat.NotebookNode:
    """Execute a notebook in ``cwd`` with the CI parameters injected after its parameters cell."""
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    at = next(i for i, c in enumerate(nb.cells) if "parameters" in c.metadata.get("tags", []))
    injected = "\n".join(f"{k} = {v!r}" for k, v in PARAMETERS[name].items())
    nb.cells.insert(at + 1, nbformat.v4.new_code_cell(injected, metadata={"tags": ["injected-parameters"]}))
    NotebookClient(nb, timeout=600, kernel_name=kernel, resources={"metadata": {"path": str(cwd)}}).execute()
    return nb


def outputs(nb: nbformat.NotebookNode, tag: str | None = None) -> list[dict]:
    return [
        o
        for c in nb.cells
        if c.cell_type == "code" and (tag is None or tag in c.metadata.get("tags", []))
        for o in c.get("outputs", [])
    ]


def text(outs: list[dict]) -> str:
    parts = []
    for o in outs:
        parts.append(o.get("text", ""))
        parts.append(o.get("data", {}).get("text/plain", ""))
    return "\n".join(parts)


def images(nb: nbformat.NotebookNode) -> int:
    return sum("image/png" in o.get("data", {}) for o in outputs(nb))


@pytest.mark.parametrize("path", sorted(NOTEBOOKS.glob("*.ipynb")), ids=lambda p: p.name)
def test_notebooks_are_stored_without_outputs(path: Path) -> None:
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None, f"{path.name}: strip the outputs"
    assert sum("parameters" in c.metadata.get("tags", []) for c in nb.cells) == 1


def test_every_notebook_has_ci_parameters() -> None:
    assert sorted(PARAMETERS) == sorted(p.name for p in NOTEBOOKS.glob("*.ipynb"))


def parameters(name: str) -> dict[str, Any]:
    """The values a notebook's parameters cell sets, as its first run sees them."""
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    cell = next(c for c in nb.cells if "parameters" in c.metadata.get("tags", []))
    values: dict[str, Any] = {}
    exec(cell.source, {}, values)  # the cell only assigns literals
    return values


def markdown(name: str) -> str:
    return "\n".join(c.source for c in nbformat.read(NOTEBOOKS / name, as_version=4).cells if c.cell_type == "markdown")


@pytest.mark.parametrize("path", sorted(NOTEBOOKS.glob("*.ipynb")), ids=lambda p: p.name)
def test_a_notebooks_title_carries_its_number(path: Path) -> None:
    first = nbformat.read(path, as_version=4).cells[0]
    assert first.cell_type == "markdown" and first.source.startswith(f"# {path.name[:2]} ")


def test_the_challenger_changes_every_parameter_it_names() -> None:
    # a challenger setting gbm_num_leaves to 15, the default, compared two runs with the same value
    defaults = ChurnCLV().get_params()
    changed = parameters("02-retrain-and-promote.ipynb")["CHALLENGER"]
    assert changed and all(defaults[k] != v for k, v in changed.items())


def test_notebook_05_states_the_targeting_rule_the_code_applies() -> None:
    said = re.findall(r"by\s+more\s+than\s+(one|two|three)\s+standard\s+errors?", markdown("05-campaign-uplift.ipynb"))
    assert said and {("one", "two", "three").index(n) + 1 for n in said} == {CampaignTargeting().min_gain_se}


@pytest.mark.integration
def test_quickstart(kernel: str, tmp_path: Path) -> None:
    nb = run("01-quickstart.ipynb", kernel, tmp_path)
    assert (tmp_path / "mlruns" / "mlflow.db").is_file()  # the store lives in the working directory
    assert (tmp_path / "data" / "world" / "transactions.parquet").is_file()
    shown = text(outputs(nb))
    assert "promoted to champion: True" in shown
    assert "selected.churn_auc" in shown
    # logged calibration, gain and holdout-by-frequency PNGs, the re-plot, the tier mix, after as-of
    assert images(nb) >= 6
    assert "reasons:" in shown and "Diamond" in shown  # scored customers and the tier mix table
    logged = text(outputs(nb, "logged-plots"))
    assert "holdout_by_frequency.csv" in logged and "7+" in logged  # the logged table, read back
    assert list(tmp_path.glob("reports/*/report/holdout_by_frequency.csv"))  # downloaded here, not to /tmp
    after = text(outputs(nb, "after-as-of"))
    assert "churned by 2025-12-31" in after and "after as-of" in after and "churn_auc" in after


@pytest.mark.integration
def test_retrain_and_promote(kernel: str, tmp_path: Path) -> None:
    from mlflow.tracking import MlflowClient

    nb = run("02-retrain-and-promote.ipynb", kernel, tmp_path)
    uri = f"sqlite:///{tmp_path}/mlruns/mlflow.db"
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    versions = client.search_model_versions("name='churnclv'")
    assert sorted(int(v.version) for v in versions) == [1, 2]  # the first champion, then the challenger
    assert str(client.get_model_version_by_alias("churnclv", "challenger").version) == "2"
    shown = text(outputs(nb))
    assert "challenger version 2 vs champion 1" in shown
    assert "changed tier" in shown
    assert images(nb) >= 1  # migration heat map and tier mix


@pytest.mark.integration
def test_cdnow_reproduces_the_published_fit(kernel: str, tmp_path: Path) -> None:
    nb = run("03-cdnow-btyd.ipynb", kernel, tmp_path)
    # the cell asserting the published parameters ran and said so
    assert "published BG/NBD and Gamma-Gamma reproduced on 2,357 customers" in text(outputs(nb, "published-fit"))
    shown = text(outputs(nb))
    for model in ("recency baseline", "btyd", "gbm", "hybrid"):
        assert model in shown
    assert images(nb) >= 2  # calibration/gain panel and feature importance


@pytest.mark.integration
def test_diagnostics(kernel: str, tmp_path: Path) -> None:
    nb = run("04-diagnostics.ipynb", kernel, tmp_path)
    by_frequency = text(outputs(nb, "holdout-by-frequency"))
    assert "7+" in by_frequency and "predicted" in by_frequency  # the table next to its plot
    assert "observed_high" in text(outputs(nb, "calibration"))
    assert "lift_cumulative" in text(outputs(nb, "gain"))
    assert "1997-12-31" in text(outputs(nb, "tiers"))  # the second scoring
    assert "1997-01" in text(outputs(nb, "cohorts"))
    assert "churn_rate" in text(outputs(nb, "rfm"))
    # holdout by frequency twice, tracking, matrices, calibration, gain/lift/Lorenz, tiers, cohorts, RFM
    assert images(nb) >= 9


@pytest.mark.integration
def test_campaign_uplift(kernel: str, tmp_path: Path) -> None:
    nb = run("05-campaign-uplift.ipynb", kernel, tmp_path)
    assert "held out" in text(outputs(nb, "plan")) and "strata" in text(outputs(nb, "plan"))
    assert (tmp_path / "reports" / "campaign" / "campaign.md").is_file()  # the report, as the command writes it
    evaluated = text(outputs(nb, "evaluation"))
    assert "revenue_uplift" in evaluated and "contacted_treated" in evaluated
    assert "covered" in text(outputs(nb, "truth"))
    targeting = text(outputs(nb, "targeting"))
    assert "chosen on 2 held-out campaigns" in targeting and "uplift_model" in targeting
    assert "targeting.json" in text(outputs(nb, "saved-targeting"))  # saved as JSON and loaded back
    policies = text(outputs(nb, "policies"))
    assert "true optimum" in policies and "share_of_optimum" in policies
    assert images(nb) >= 1  # one figure: uplift by tier and the Qini curves
