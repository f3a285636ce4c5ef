"""``import churnclv as cc``: a short, documented API whose names load on first use, so the import
itself stays fast (it loads neither pandas, LightGBM nor MLflow)."""

from __future__ import annotations

import importlib
import inspect
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure

import churnclv as cc
from churnclv.datasets import load_cdnow
from churnclv.schema import TABLES

HEAVY = ("pandas", "numpy", "lightgbm", "mlflow", "sklearn", "ibis", "duckdb", "matplotlib", "pyarrow")


def _modules_after(code: str) -> list[str]:
    """The top-level modules a fresh interpreter holds after running ``code``."""
    probe = f"{code}\nimport json, sys\nprint(json.dumps(sorted({{m.split('.')[0] for m in sys.modules}})))"
    out = subprocess.run([sys.executable, "-c", probe], check=True, capture_output=True, text=True).stdout
    return json.loads(out.splitlines()[-1])


def test_import_churnclv_loads_no_heavy_library() -> None:
    loaded = _modules_after("import churnclv as cc\ncc.__version__\ndir(cc)")
    assert not [m for m in HEAVY if m in loaded], "import churnclv must stay lazy"
    assert "typing" not in loaded  # TYPE_CHECKING without importing typing: most of the import's cost


def test_a_name_loads_on_first_use_only() -> None:
    loaded = _modules_after("import churnclv as cc\ncc.ChurnCLV")
    assert {"pandas", "lightgbm", "sklearn"} <= set(loaded)
    assert "mlflow" not in loaded  # the core never imports it


def test_the_batch_job_loads_no_plotting_library() -> None:
    # the weekly batch reads the last monitoring run's summary, never draws it: matplotlib cost 0.4 s a run
    assert "matplotlib" not in _modules_after("import churnclv.serving.batch")


def test_all_lists_the_lazy_table_and_every_name_is_documented() -> None:
    assert cc.__all__ == sorted(cc.__all__)
    assert set(cc.__all__) == {"__version__", *cc._LAZY}
    assert dir(cc) == sorted(cc.__all__)
    doc = cc.__doc__ or ""
    for name in cc.__all__:
        assert f"``{name}``" in doc, f"{name} is not in churnclv's docstring table"
        value = getattr(cc, name)
        if name != "__version__":
            assert inspect.getdoc(value), f"churnclv.{name} has no docstring"


@pytest.mark.parametrize(("name", "module"), sorted(cc._LAZY.items()))
def test_each_name_is_its_definition(name: str, module: tuple[str, str | None]) -> None:
    path, attribute = module
    target = importlib.import_module(path)
    assert getattr(cc, name) is (target if attribute is None else getattr(target, attribute))
    assert name in vars(cc)  # kept after the first lookup: the next one is a plain attribute


def test_unknown_names_raise_attribute_error_and_submodules_still_import() -> None:
    with pytest.raises(AttributeError, match="module 'churnclv' has no attribute 'nope'"):
        cc.nope  # noqa: B018
    from churnclv import values  # a submodule outside the table

    assert values.__name__ == "churnclv.values"
    namespace: dict[str, object] = {}
    exec("from churnclv import *", namespace)
    assert {n for n in namespace if not n.startswith("__")} | {"__version__"} == set(cc.__all__)


def test_version_and_omp_wait_policy_are_kept() -> None:
    assert cc.__version__ == "0.1.0"
    probe = "import os\nos.environ.pop('OMP_WAIT_POLICY', None)\nimport churnclv\nprint(os.environ['OMP_WAIT_POLICY'])"
    out = subprocess.run([sys.executable, "-c", probe], check=True, capture_output=True, text=True).stdout
    assert out.strip() == "PASSIVE"


def test_plots_are_the_diagnostics_kit() -> None:
    import churnclv.diagnostics

    assert cc.plots is churnclv.diagnostics
    plots = [n for n in cc.plots.__all__ if n.startswith("plot_")]
    assert len(plots) >= 10, "the diagnostics kit exports its plot_* functions"
    for name in plots:  # the house style: ax=None in, the Axes out
        assert inspect.signature(getattr(cc.plots, name)).parameters["ax"].default is None, name
    ax = Figure().add_subplot()
    churned = np.arange(200) % 4 == 0
    assert cc.plots.plot_calibration_curve(churned, np.where(churned, 0.7, 0.2), ax=ax) is ax
    assert ax.lines or ax.collections  # something was drawn on the Axes it was given


def test_datasets_cdnow_is_the_clean_tables_the_feature_functions_read() -> None:
    data = cc.datasets.cdnow("sample")
    assert list(data) == ["transactions"]  # CDNOW has no events and no sign-up dates
    pd.testing.assert_frame_equal(data["transactions"], load_cdnow("sample"))
    features = cc.compute_features(data, "1997-09-30")
    assert len(features) == 2_357 and features["customer_id"].iloc[0] == "00004"  # leading zeros kept


def test_datasets_tables_of_a_generated_world() -> None:
    world = cc.generate_world(cc.WorldConfig(n_customers=200, seed=5))
    tables = cc.datasets.tables(world)
    assert list(tables) == list(TABLES)
    assert all(tables[name] is getattr(world, name) for name in TABLES)
    features = cc.compute_features(tables, world.config.end)
    # every customer known at as-of gets a row, sign-ups with no purchase included
    assert set(features["customer_id"]) == set(world.customers["customer_id"])


SMALL_SCORER = Path(__file__).parent / "models" / "small_scorer"  # a real fitted Scorer (make_small_scorer.py)
FITTED = {"params": {"r": 0.24, "alpha": 4.4, "a": 0.79, "b": 2.4}, "log_likelihood": -1.0, "gg_params": None}
FITTED |= {
    "gg_log_likelihood": None,
    "mean_order_value": 35.0,
    "n_customers": 3,
    "n_unique_rows": 3,
    "n_repeat_buyers": 2,
}
SUMMARY = pd.DataFrame({"frequency": [0.0, 2.0, 1.0], "recency": [0.0, 30.0, 10.0], "T": [40.0, 60.0, 20.0]}).assign(
    monetary_value=[0.0, 25.0, 10.0]
)


@pytest.mark.parametrize(
    "call",
    [
        lambda: cc.BTYDModel(model="paretonbd").fit(SUMMARY),
        lambda: cc.BTYDModel().fit(SUMMARY.drop(columns="T")),
        lambda: cc.BTYDModel().fit(SUMMARY.assign(frequency=[-1.0, 2.0, 1.0])),
        lambda: cc.BTYDModel.from_dict({**cc.BTYDModel().to_dict(), "fitted": FITTED}).predict(SUMMARY, 0),
        lambda: cc.ChurnCLV.load(SMALL_SCORER).predict(
            pd.DataFrame({"customer_id": ["007"]}).join(SUMMARY[:1]), as_of="2025-10-02"
        ),
        lambda: cc.metrics.churn_metrics([0, 1, 1], [0.2, 0.9]),
        lambda: cc.datasets.cdnow("full"),
    ],
    ids=[
        "btyd setting",
        "summary column",
        "summary rule",
        "predict argument",
        "model columns",
        "metric shapes",
        "dataset",
    ],
)
def test_bad_input_through_the_api_is_a_churnclv_error_and_still_a_value_error(call) -> None:
    # cc.ChurnclvError is documented as the base of every error raised on purpose: these were plain ValueErrors
    with pytest.raises(cc.ChurnclvError) as refused:
        call()
    assert isinstance(refused.value, ValueError)
