"""The campaign holdout in the batch output: columns, share, cells, stability across as-ofs, a fresh draw
per campaign, resume, no campaign, the database sink and the command line."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from churnclv.campaigns.config import CampaignSettings
from churnclv.campaigns.holdout import holdout_draws
from churnclv.cli import cli
from churnclv.serving.batch import run_batch
from churnclv.serving.batch_errors import BatchError
from churnclv.serving.batch_holdout import HoldoutOptions, write_holdout
from churnclv.serving.sinks import ScoreSink, normalize_url
from churnclv.serving.snapshots import (
    HOLDOUT_COLUMNS,
    OUTPUT_SCHEMA,
    manifest_path,
    part_files,
    read_scores,
    scores_dir,
)

pytestmark = pytest.mark.integration

AS_OF = "2025-10-02"
MID = "2025-10-30"  # another campaign in between
LATER = "2025-11-20"
CHUNK = 400  # 1,500 customers: four chunks
SHARE = 0.1
OTHER_SHARE = 0.3


class CrashError(RuntimeError):
    pass


def batch(world: Path, out: Path, store: dict, as_of: str, **kwargs) -> dict:
    kwargs.setdefault("chunk_size", CHUNK)
    return run_batch(
        clean=world,
        as_of=as_of,
        out=out,
        model_uri=store["model_uri"],
        tracking_uri=store["tracking_uri"],
        echo=lambda _m: None,
        progress=False,
        reasons=False,  # the arms do not depend on them; twice as fast
        **kwargs,
    )


@pytest.fixture(scope="module")
def runs(small_world: Path, trained_store: dict, tmp_path_factory: pytest.TempPathFactory) -> SimpleNamespace:
    """One output folder: campaign ``spring`` at AS_OF (with a SQLite sink), ``autumn`` at MID, ``spring``
    again at LATER (its arms come from AS_OF, past the other campaign's partition)."""
    out = tmp_path_factory.mktemp("holdout-out")
    db = f"sqlite:///{out / 'scores.db'}"
    first = batch(small_world, out, trained_store, AS_OF, campaign="spring", db=db)
    other = batch(
        small_world,
        out,
        trained_store,
        MID,
        campaign="autumn",
        campaign_settings=CampaignSettings(holdout_share=OTHER_SHARE),
    )
    later = batch(small_world, out, trained_store, LATER, campaign="spring")
    return SimpleNamespace(out=out, db=db, first=first, other=other, later=later)


def scores(out: Path, as_of: str) -> pd.DataFrame:
    return read_scores(out, as_of).set_index("customer_id")


def test_the_partition_carries_the_campaign_its_share_and_controls_in_every_cell(runs: SimpleNamespace) -> None:
    frame = scores(runs.out, AS_OF)
    assert list(frame.columns[-3:]) == ["campaign", "holdout", "model_version"]
    assert frame["campaign"].eq("spring").all() and frame["holdout"].notna().all()
    n = len(frame)
    share = frame["holdout"].astype(bool).mean()
    assert abs(share - SHARE) < 4 * np.sqrt(SHARE * (1 - SHARE) / n), share  # binomial noise, 4 sigma
    cells = frame.groupby(["tier", "action"], dropna=False)["holdout"].agg(["size", "sum"])
    assert len(cells) > 1
    assert (cells.loc[cells["size"] >= 2, "sum"] >= 1).all(), cells  # every cell of two or more has controls
    doc = runs.first["campaign"]
    assert doc["id"] == "spring" and doc["holdout_share"] == SHARE and doc["previous"] is None
    assert doc["customers"] == n and doc["controls"] == int(frame["holdout"].sum())
    recorded = {(c["tier"], c["action"]): (c["customers"], c["controls"]) for c in doc["cells"]}
    assert recorded == {k: (int(v["size"]), int(v["sum"])) for k, v in cells.iterrows()}
    # the arm is the draw but for the top-ups and releases the manifest counts
    by_draw = holdout_draws("spring", frame.index) < SHARE
    assert int((frame["holdout"].to_numpy(bool) != by_draw).sum()) == doc["top_ups"] + doc["releases"]
    assert json.loads(manifest_path(runs.out, AS_OF).read_text())["campaign"] == doc


def test_a_customer_keeps_their_arm_for_the_life_of_the_campaign(runs: SimpleNamespace) -> None:
    first, later = scores(runs.out, AS_OF), scores(runs.out, LATER)
    doc = runs.later["campaign"]
    assert doc["previous"] == "dt=2025-10-02"  # past the other campaign's partition
    both = first.index.intersection(later.index)
    assert doc["carried"] == len(both) > 0
    assert (first.loc[both, "holdout"] == later.loc[both, "holdout"]).all()
    moved = both[(first.loc[both, "tier"] != later.loc[both, "tier"]).to_numpy()]
    assert len(moved) > 0  # seven weeks on, some customers changed tier: they too keep their arm
    assert (first.loc[moved, "holdout"] == later.loc[moved, "holdout"]).all()


def test_top_ups_are_carried_to_the_next_as_of(small_world: Path, trained_store: dict, tmp_path: Path) -> None:
    """Fine strata and two controls per cell force top-ups; the next as-of keeps every one of them."""
    fine = CampaignSettings(strata=("tier", "action", "stage", "risk_band"), min_controls=2)
    first = batch(small_world, tmp_path, trained_store, AS_OF, campaign="fine", campaign_settings=fine)
    later = batch(small_world, tmp_path, trained_store, LATER, campaign="fine", campaign_settings=fine)
    a, b = scores(tmp_path, AS_OF), scores(tmp_path, LATER)
    topped = a.index[(a["holdout"].to_numpy(bool)) & (holdout_draws("fine", a.index) >= SHARE)]
    assert first["campaign"]["top_ups"] == len(topped) > 0
    kept = topped.intersection(b.index)
    assert len(kept) > 0 and b.loc[kept, "holdout"].all()
    assert later["campaign"]["top_ups"] >= len(kept)  # carried top-ups are still counted as top-ups
    # stability wins over balance: a cell short of controls (its controls moved away) is topped up from its
    # newcomers only, so every newcomer of such a cell is a control
    b = b.assign(new=~b.index.isin(a.index), free=lambda f: f["new"] & ~f["holdout"].astype(bool))
    cells = b.groupby(list(fine.strata), dropna=False).agg(
        size=("new", "size"), held=("holdout", "sum"), free=("free", "sum")
    )
    short = cells[(cells["size"] >= 2) & (cells["held"] < np.minimum(2, cells["size"] // 2))]
    assert (short["free"] == 0).all(), short


def test_a_backfilled_earlier_as_of_keeps_the_arms_of_the_later_partition(
    small_world: Path, trained_store: dict, tmp_path: Path
) -> None:
    """A helper backfilled an as-of before the campaign's first partition: two top-ups swapped arms.
    With nothing before it, the oldest later partition of the campaign gives the arms."""
    fine = CampaignSettings(strata=("tier", "action", "stage", "risk_band"), min_controls=2)
    batch(small_world, tmp_path, trained_store, LATER, campaign="fine", campaign_settings=fine)
    earlier = batch(small_world, tmp_path, trained_store, AS_OF, campaign="fine", campaign_settings=fine)
    assert earlier["campaign"]["previous"] == "dt=2025-11-20"
    a, b = scores(tmp_path, AS_OF), scores(tmp_path, LATER)
    both = a.index.intersection(b.index)
    assert len(both) > 0 and (a.loc[both, "holdout"] == b.loc[both, "holdout"]).all()
    topped = b.index[(b["holdout"].to_numpy(bool)) & (holdout_draws("fine", b.index) >= SHARE)]
    assert len(topped.intersection(both)) > 0  # the arms that only a carried plan keeps


def test_a_new_campaign_draws_an_independent_holdout(runs: SimpleNamespace) -> None:
    first, other = scores(runs.out, AS_OF), scores(runs.out, MID)
    assert other["campaign"].eq("autumn").all() and runs.other["campaign"]["previous"] is None
    both = first.index.intersection(other.index)
    a, b = first.loc[both, "holdout"].to_numpy(bool), other.loc[both, "holdout"].to_numpy(bool)
    overlap = (a & b).mean()
    expected = SHARE * OTHER_SHARE  # independent draws: the product of the shares
    assert abs(overlap - expected) < 4 * np.sqrt(expected * (1 - expected) / len(both)), overlap
    assert abs(b[a].mean() - OTHER_SHARE) < 0.1  # autumn's share among spring's controls: no link


def test_a_resumed_run_writes_the_same_bytes(
    small_world: Path, trained_store: dict, runs: SimpleNamespace, tmp_path: Path
) -> None:
    def crash(i: int) -> None:
        if i == 1:
            raise CrashError

    with pytest.raises(CrashError):
        batch(small_world, tmp_path, trained_store, AS_OF, campaign="spring", after_chunk=crash)
    manifest = batch(small_world, tmp_path, trained_store, AS_OF, campaign="spring", resume=True)
    assert manifest["resumed_chunks"] == 2 and manifest["campaign"] == runs.first["campaign"]
    resumed, whole = part_files(scores_dir(tmp_path, AS_OF)), part_files(scores_dir(runs.out, AS_OF))
    assert [f.name for f in resumed] == [f.name for f in whole] and len(whole) == 4
    assert all(r.read_bytes() == w.read_bytes() for r, w in zip(resumed, whole, strict=True))


def test_without_a_campaign_both_columns_are_null(small_world: Path, trained_store: dict, tmp_path: Path) -> None:
    manifest = batch(small_world, tmp_path, trained_store, AS_OF)
    frame = read_scores(tmp_path, AS_OF)
    assert frame["campaign"].isna().all() and frame["holdout"].isna().all()
    assert manifest["campaign"] is None
    schema = pq.read_schema(part_files(scores_dir(tmp_path, AS_OF))[0])
    assert all(schema.field(c).nullable for c in HOLDOUT_COLUMNS)


def test_the_holdout_stage_is_idempotent_and_clears_a_dropped_campaign(runs: SimpleNamespace, tmp_path: Path) -> None:
    for f in part_files(scores_dir(runs.out, AS_OF)):
        shutil.copy2(f, tmp_path / f.name)
    before = [f.read_bytes() for f in part_files(tmp_path)]
    write_holdout(tmp_path, None, None)  # a resumed run without the campaign
    cleared = pd.concat(pd.read_parquet(f) for f in part_files(tmp_path))
    assert cleared["campaign"].isna().all() and cleared["holdout"].isna().all()
    write_holdout(tmp_path, HoldoutOptions("spring", SHARE, ("tier", "action"), 1), None)
    assert [f.read_bytes() for f in part_files(tmp_path)] == before


def test_the_database_table_gets_the_columns(runs: SimpleNamespace) -> None:
    engine = sa.create_engine(normalize_url(runs.db))
    try:
        columns = {c["name"]: c for c in sa.inspect(engine).get_columns("churnclv_scores")}
        with engine.connect() as conn:
            rows = pd.read_sql(sa.text("SELECT customer_id, campaign, holdout FROM churnclv_scores"), conn)
    finally:
        engine.dispose()
    assert all(columns[c]["nullable"] for c in HOLDOUT_COLUMNS)
    frame = scores(runs.out, AS_OF)
    rows = rows.set_index("customer_id").loc[frame.index]
    assert rows["campaign"].eq("spring").all()
    assert rows["holdout"].astype(bool).tolist() == frame["holdout"].astype(bool).tolist()


def test_an_existing_table_gains_the_columns(runs: SimpleNamespace, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'old.db'}"
    sink = ScoreSink(url)
    earlier = [  # the table as an earlier version created it
        sa.Column(c.name, c.type, primary_key=c.primary_key, nullable=c.nullable)
        for c in sink.table.columns
        if c.name not in HOLDOUT_COLUMNS
    ]
    sa.Table(sink.table_name, sa.MetaData(), *earlier).create(sink.engine)
    try:
        sink.prepare()
        parts = [pq.read_table(f, schema=OUTPUT_SCHEMA) for f in part_files(scores_dir(runs.out, AS_OF))]
        sink.replace(AS_OF, parts).commit()
    finally:
        sink.close()
    engine = sa.create_engine(normalize_url(url))
    try:
        assert set(HOLDOUT_COLUMNS) <= {c["name"] for c in sa.inspect(engine).get_columns("churnclv_scores")}
        with engine.connect() as conn:
            held = conn.execute(sa.text("SELECT count(*) FROM churnclv_scores WHERE holdout")).scalar_one()
    finally:
        engine.dispose()
    assert held == runs.first["campaign"]["controls"]


def test_the_command_line_option_wins_over_the_config(small_world: Path, trained_store: dict, tmp_path: Path) -> None:
    config = tmp_path / "run.toml"
    config.write_text('[campaigns]\ncampaign = "from-config"\nholdout_share = 0.2\n')
    out = tmp_path / "out"
    args = ["score-batch", "--data", str(small_world), "--trusted", "--as-of", AS_OF, "--out", str(out)]
    args += ["--tracking-uri", trained_store["tracking_uri"], "--no-reasons", "--config", str(config)]
    result = CliRunner().invoke(cli, [*args, "--campaign", "from-option"])
    assert result.exit_code == 0, result.output
    doc = json.loads(manifest_path(out, AS_OF).read_text())["campaign"]
    assert doc["id"] == "from-option" and doc["holdout_share"] == 0.2
    assert "campaign   from-option:" in result.output
    bad = CliRunner().invoke(cli, [*args, "--campaign", "tab\there"])
    assert bad.exit_code == 1 and "--campaign" in bad.output and "control characters" in bad.output
    config.write_text("[campaigns]\nholdout_share = 0.7\n")
    bad = CliRunner().invoke(cli, args)
    assert bad.exit_code == 1 and "[campaigns] holdout_share" in bad.output


def test_strata_must_be_label_columns_of_the_scores() -> None:
    with pytest.raises(BatchError, match=r"strata \['p_churn'\].*fix: use some of"):
        HoldoutOptions("spring", SHARE, ("tier", "p_churn"), 1)
    assert HoldoutOptions.of(None, None) is None
    assert HoldoutOptions.of(None, CampaignSettings(campaign="c")) == HoldoutOptions("c", 0.1, ("tier", "action"), 1)


def test_an_unreadable_earlier_partition_of_the_campaign_stops_the_run(
    small_world: Path, trained_store: dict, tmp_path: Path
) -> None:
    batch(small_world, tmp_path, trained_store, AS_OF, campaign="spring")
    part_files(scores_dir(tmp_path, AS_OF))[1].write_bytes(b"damaged")
    with pytest.raises(
        BatchError, match=r"arms of its earlier partition .*dt=2025-10-02.* cannot be read.*--campaign spring"
    ):
        batch(small_world, tmp_path, trained_store, LATER, campaign="spring")
    assert not scores_dir(tmp_path, LATER).exists()
    # another campaign does not need those arms
    assert batch(small_world, tmp_path, trained_store, LATER, campaign="autumn")["campaign"]["previous"] is None
