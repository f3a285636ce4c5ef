"""Every output column is in the catalogue and every catalogue entry is an output column."""

from __future__ import annotations

import ibis
import pytest

from churnclv.features import (
    FEATURES,
    LABELS,
    FeatureConfig,
    FeatureTables,
    build_features,
    build_training_frame,
    compute_features_frames,
    render_markdown,
)
from churnclv.features.catalogue import expand

TX = {
    "customer_id": "string",
    "ts": "timestamp",
    "amount": "float64",
    "order_id": "string",
    "channel": "string",
    "category": "string",
}
EV = {"customer_id": "string", "ts": "timestamp", "event_type": "string", "value": "float64"}
CU = {"customer_id": "string", "signup_ts": "timestamp", "region": "string", "acquisition_channel": "string"}

CONFIGS = [
    FeatureConfig(),
    FeatureConfig(
        windows=(7, 28), trend_days=28, event_types=("login", "visit"), event_windows=(7,), event_trend_days=7
    ),
]


def tables(events: bool = True, customers: bool = True) -> FeatureTables:
    return FeatureTables(
        ibis.table(TX, name="tx"),
        ibis.table(EV, name="ev") if events else None,
        ibis.table(CU, name="cu") if customers else None,
    )


@pytest.mark.parametrize("config", CONFIGS)
@pytest.mark.parametrize(("events", "customers"), [(True, True), (False, False), (True, False)])
def test_output_columns_are_the_catalogue(config, events, customers):
    t = tables(events, customers)
    attrs = ("region", "acquisition_channel") if customers else ()
    expr = build_features(t, "2024-06-30", config=config)
    spec = expand(config, attrs)
    assert list(expr.columns) == [f.name for f in spec]
    # each catalogue type is the expression's type
    kinds = {"string": "string", "int64": "int64", "float64": "float64"}
    assert {f.name: kinds[f.dtype] for f in spec} == {n: str(ty) for n, ty in expr.schema().items()}


def test_every_template_is_used_and_names_are_unique():
    config = FeatureConfig()
    names = [f.name for f in expand(config, ("region",))]
    assert len(names) == len(set(names))
    for template in FEATURES:
        prefix = template.name.split("{")[0]
        assert any(n.startswith(prefix) for n in names), template.name


def test_training_frame_columns(tx):
    expr = build_training_frame(tables(), "2024-12-31", 90, n_cutoffs=2)
    feature_names = [f.name for f in expand(FeatureConfig(), ("region", "acquisition_channel"))]
    assert list(expr.columns) == ["cutoff", *feature_names, "churned", "purchases", "spend"]
    assert [f.name for f in LABELS] == ["cutoff", "churned", "purchases", "spend"]


def test_pandas_output_follows_catalogue(tx):
    f = compute_features_frames(tx([("1", "2024-06-01 10:00", 5.0)]), as_of="2024-06-30")
    spec = expand(FeatureConfig(), ())
    assert list(f.columns) == [f_.name for f_ in spec]
    for feature in spec:
        want = {"string": "str", "float64": "float64", "int64": "Int64" if feature.nullable else "int64"}
        assert str(f[feature.name].dtype) == want[feature.dtype], feature.name


def test_markdown():
    md = render_markdown()
    rows = [r for r in md.splitlines() if r.startswith("|")]
    assert rows[0] == "| column | meaning | unit | type |"
    assert len(rows) == 2 + len(FEATURES) + len(LABELS)
    assert "| `frequency` |" in md and "| `{event}_count_{ew}d` |" in md and "| `churned` |" in md
    assert all(r.count("|") - r.count("\\|") == 5 for r in rows)
    assert "`{etw}` = 7" in render_markdown(config=CONFIGS[1])
