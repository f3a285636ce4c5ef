"""Whom to contact in the batch output: a saved targeting's decisions written with the scores (part files,
database, manifest), exactly ``decide()``'s, never for a holdout customer nor for an action that is no contact;
without a targeting the output is unchanged (and partitions with and without read together by column name); a
targeting the model or the data cannot serve (features, costs, contact flags, horizon) is refused before any
chunk is scored."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from churnclv.campaigns.candidates import VALUE_COLUMNS
from churnclv.campaigns.config import CampaignSettings
from churnclv.campaigns.past_campaign import ScoringModel
from churnclv.campaigns.targeting import UPLIFT_MODEL, CampaignTargeting
from churnclv.campaigns.targeting_files import load_targeting, save_targeting
from churnclv.cli import cli
from churnclv.models.tier_config import default_tier_config
from churnclv.serving.batch import run_batch
from churnclv.serving.batch_errors import BatchError
from churnclv.serving.batch_targeting import TARGETING_COLUMNS, TargetingOptions, write_targeting
from churnclv.serving.snapshots import (
    NULLABLE_NUMBERS,
    OUTPUT_SCHEMA,
    features_path,
    manifest_path,
    part_files,
    read_scores,
    scores_dir,
)

pytestmark = pytest.mark.integration

AS_OF = "2025-10-02"
CHUNK = 400  # 1,500 customers: four part files
COSTS = default_tier_config().playbook.costs  # the trained model's playbook
NO_CONTACT = default_tier_config().playbook.no_contact


def batch(world: Path, out: Path, store: dict, **kwargs) -> dict:
    return run_batch(
        clean=world,
        as_of=AS_OF,
        out=out,
        model_uri=store["model_uri"],
        tracking_uri=store["tracking_uri"],
        echo=lambda _m: None,
        progress=False,
        reasons=False,
        chunk_size=CHUNK,
        **kwargs,
    )


@pytest.fixture(scope="module")
def runs(
    small_world: Path, trained_store: dict, fit_targeting: Any, tmp_path_factory: pytest.TempPathFactory
) -> SimpleNamespace:
    """A run without targeting (campaign ``spring``), a targeting (X-learner) fitted on its base and saved, and
    the same run with the targeting and a SQLite sink."""
    tmp = tmp_path_factory.mktemp("batch-targeting")
    plain = tmp / "plain"
    batch(small_world, plain, trained_store, campaign="spring")
    features = pd.read_parquet(features_path(plain, AS_OF))
    scores = read_scores(plain, AS_OF)
    saved = save_targeting(fit_targeting(features, scores, (UPLIFT_MODEL,)), tmp / "targeting")
    out = tmp / "targeted"
    db = f"sqlite:///{tmp / 'scores.db'}"
    manifest = batch(small_world, out, trained_store, campaign="spring", targeting=saved.folder, db=db)
    return SimpleNamespace(
        tmp=tmp,
        plain=plain,
        out=out,
        db=db,
        saved=saved,
        manifest=manifest,
        features=features,
        scores=scores,
        fit=fit_targeting,
    )


def test_the_decisions_are_the_saved_targetings_and_holdouts_are_never_contacted(runs) -> None:
    parts = [pq.read_table(f) for f in part_files(scores_dir(runs.out, AS_OF))]
    assert len(parts) == 4
    assert all(p.schema.names == [*OUTPUT_SCHEMA.names, *TARGETING_COLUMNS] for p in parts)
    got = read_scores(runs.out, AS_OF)
    decided = load_targeting(runs.saved.folder).targeting.decide(runs.features, runs.scores).set_index("customer_id")
    expected = decided.loc[got["customer_id"]]
    assert np.array_equal(got["expected_profit"].to_numpy(), expected["expected_profit"].to_numpy())
    margin = runs.saved.targeting.margin
    assert np.array_equal(margin * got["expected_incremental_revenue"], expected["incremental_value"])
    held = got["holdout"].astype(bool).to_numpy()
    assert held.any() and not got.loc[held, "contact"].any()
    assert (got["contact"] == (expected["contact"].to_numpy() & ~held)).all()
    # the default playbook's no_contact action (cost 0) is never contacted, though a contact would "profit"
    leave = got["action"].isin(NO_CONTACT).to_numpy()
    assert (got.loc[leave & ~held, "expected_profit"] > 0).any() and not got.loc[leave, "contact"].any()
    assert got["contact"].any() and not got["contact"].all()
    assert (got["targeting"] == runs.saved.id).all()
    # the scores themselves are the run without targeting's
    plain = read_scores(runs.plain, AS_OF)
    pd.testing.assert_frame_equal(got.drop(columns=list(TARGETING_COLUMNS)), plain)


def test_the_manifest_and_the_database_carry_the_targeting(runs) -> None:
    got = read_scores(runs.out, AS_OF)
    doc = runs.manifest["targeting"]
    assert doc["id"] == runs.saved.id and doc["chosen"] == UPLIFT_MODEL and doc["campaigns"] == ["past0", "past1"]
    assert doc["customers"] == len(got) and doc["contacted"] == int(got["contact"].sum())
    assert doc["expected_profit"] == pytest.approx(got.loc[got["contact"], "expected_profit"].sum())
    would = (got["expected_profit"] > 0) & ~got["action"].isin(NO_CONTACT)
    assert doc["held_out_not_contacted"] == int((got["holdout"] & would).sum())
    engine = sa.create_engine(runs.db)
    with engine.connect() as conn:
        table = pd.read_sql("SELECT customer_id, contact, expected_profit, targeting FROM churnclv_scores", conn)
    engine.dispose()
    merged = table.merge(got[["customer_id", "contact", "expected_profit"]], on="customer_id", suffixes=("", "_pq"))
    assert len(merged) == len(got) and (merged["contact"].astype(bool) == merged["contact_pq"]).all()
    assert np.array_equal(merged["expected_profit"], merged["expected_profit_pq"])
    assert (table["targeting"] == runs.saved.id).all()


def test_without_a_targeting_the_output_is_unchanged(runs, small_world: Path, trained_store: dict) -> None:
    files = part_files(scores_dir(runs.plain, AS_OF))
    assert all(pq.read_schema(f).names == OUTPUT_SCHEMA.names for f in files)
    plain_manifest = json.loads(manifest_path(runs.plain, AS_OF).read_text())
    assert "targeting" not in plain_manifest and "targeting" not in plain_manifest["timings_s"]
    # a resumed run's part files that a targeting had written to get their bytes back
    before = [f.read_bytes() for f in files]
    copy = runs.tmp / "resumed"
    copy.mkdir()
    for f in part_files(scores_dir(runs.out, AS_OF)):
        (copy / f.name).write_bytes(f.read_bytes())
    assert write_targeting(copy, None, features_path(runs.plain, AS_OF)) is None
    assert [f.read_bytes() for f in part_files(copy)] == before


def _saved(tmp: Path, name: str, targeting: CampaignTargeting) -> Path:
    return save_targeting(targeting, tmp / name).folder


def test_a_targeting_the_data_or_the_model_cannot_serve_fails_before_scoring(
    runs, small_world: Path, trained_store: dict, tmp_path: Path
) -> None:
    chunks: list[int] = []
    missing = runs.features.assign(attr_loyalty_card=1.0)
    lacking = _saved(tmp_path, "lacking", runs.fit(missing, runs.scores, (UPLIFT_MODEL,)))
    with pytest.raises(BatchError, match=r"lacks 1 of the \d+ features .*\['attr_loyalty_card'\].*nothing was scored"):
        batch(small_world, tmp_path / "o1", trained_store, targeting=lacking, after_chunk=chunks.append)
    assert chunks == []
    absent = sorted(set(COSTS) - set(runs.scores["action"]))  # an action the model can write, not written here
    few = {k: v for k, v in COSTS.items() if k != absent[0]}
    cheap = _saved(tmp_path, "cheap", runs.fit(runs.features, runs.scores, ("expected_spend",), costs=few))
    with pytest.raises(BatchError, match=r"no cost for 1 action\(s\) the model's playbook writes"):
        batch(small_world, tmp_path / "o2", trained_store, targeting=cheap, after_chunk=chunks.append)
    assert chunks == []
    with pytest.raises(BatchError, match=r"--targeting: .*targeting\.json: missing"):
        batch(small_world, tmp_path / "o3", trained_store, targeting=tmp_path)
    action = sorted(COSTS)[0]
    dearer = _saved(
        tmp_path, "dearer", runs.fit(runs.features, runs.scores, ("expected_spend",), costs={**COSTS, action: 99.0})
    )
    with pytest.raises(
        BatchError, match=rf"action '{action[:20]}.*' costs {COSTS[action]:g} in the model's playbook but 99 "
    ):
        batch(small_world, tmp_path / "o4", trained_store, targeting=dearer, after_chunk=chunks.append)
    contacts = _saved(tmp_path, "contacts", runs.fit(runs.features, runs.scores, ("expected_spend",), no_contact=()))
    with pytest.raises(BatchError, match=r"marks 'No contact: .*' as no contact \(contact = false\) but the targeting"):
        batch(small_world, tmp_path / "o5", trained_store, targeting=contacts, after_chunk=chunks.append)
    horizon = int(runs.manifest["horizon_days"])
    other = ScoringModel("churnclv", "1", horizon + 30)
    longer = _saved(tmp_path, "longer", runs.fit(runs.features, runs.scores, ("expected_spend",), model=other))
    match = rf"scores of a model with a {horizon + 30}-day horizon, but model .* predicts over {horizon} days"
    with pytest.raises(BatchError, match=match):
        batch(small_world, tmp_path / "o6", trained_store, targeting=longer, after_chunk=chunks.append)
    assert chunks == []


def test_score_batch_takes_the_targeting_from_the_option_over_the_config(
    runs, small_world: Path, trained_store: dict, tmp_path: Path
) -> None:
    spend = _saved(tmp_path, "spend", runs.fit(runs.features, runs.scores, ("expected_spend",)))
    assert TargetingOptions.of(None, CampaignSettings(targeting=str(spend))).id.startswith("expected_spend-")
    config = tmp_path / "run.toml"
    config.write_text(f'[campaigns]\ntargeting = "{tmp_path / "nowhere"}"\n')
    args = ["score-batch", "--data", str(small_world), "--trusted", "--as-of", AS_OF, "--out", str(tmp_path / "o")]
    args += ["--model", trained_store["model_uri"], "--tracking-uri", trained_store["tracking_uri"], "--no-reasons"]
    bad = CliRunner().invoke(cli, [*args, "--config", str(config)])
    assert bad.exit_code == 1 and "not a folder" in bad.output and "Traceback" not in bad.output
    result = CliRunner().invoke(cli, [*args, "--config", str(config), "--targeting", str(spend)])
    assert result.exit_code == 0, result.output
    assert "targeting  expected_spend-" in result.output and "expected profit" in result.output
    assert "--targeting without a campaign: nobody is held out" in result.output  # the log's warning (stderr)
    got = read_scores(tmp_path / "o", AS_OF)
    # no campaign: nobody is held out, so contact is exactly a positive expected profit of a contact action
    contactable = ~got["action"].isin(NO_CONTACT)
    assert got["holdout"].isna().all() and (got["contact"] == ((got["expected_profit"] > 0) & contactable)).all()


def test_the_value_columns_a_targeting_may_scale_are_the_batchs_number_columns() -> None:
    numbers = [f.name for f in OUTPUT_SCHEMA if f.type == pa.float64() and f.name not in NULLABLE_NUMBERS]
    assert list(VALUE_COLUMNS) == numbers


def test_partitions_with_and_without_a_targeting_read_together_by_column_name(runs, tmp_path: Path) -> None:
    """As serving.snapshots documents: union by name (DuckDB) or a unified schema (pandas); plain reads lose
    the targeting's columns."""
    for name, src in (("dt=2025-10-02", runs.plain), ("dt=2025-10-09", runs.out)):
        (tmp_path / "scores" / name).mkdir(parents=True)
        for f in part_files(scores_dir(src, AS_OF)):
            (tmp_path / "scores" / name / f.name).write_bytes(f.read_bytes())
    n = len(runs.scores)
    files = str(tmp_path / "scores" / "*" / "*.parquet")
    got = duckdb.sql(f"SELECT count(*), count(contact) FROM read_parquet('{files}', union_by_name = true)").fetchall()[
        0
    ]
    assert got == (2 * n, n)
    schema = pa.unify_schemas([pq.read_schema(f) for f in sorted((tmp_path / "scores").glob("*/*.parquet"))])
    frame = pd.read_parquet(tmp_path / "scores", schema=schema)
    assert len(frame) == 2 * n and frame["contact"].notna().sum() == n
    assert "contact" not in pd.read_parquet(tmp_path / "scores").columns  # the plain read drops them
