from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import click
import pandas as pd
import pytest
from click.testing import CliRunner, Result

from churnclv.cli import cli


def _commands(group: click.Group, prefix: list[str]) -> list[list[str]]:
    out = [prefix]
    ctx = click.Context(group)
    for name in group.list_commands(ctx):  # also the entry-point commands (training, serving)
        command = group.get_command(ctx, name)
        assert command is not None, name
        out += _commands(command, [*prefix, name]) if isinstance(command, click.Group) else [[*prefix, name]]
    return out


def _imported_after(args: list[str]) -> set[str]:
    code = (
        "import sys\nfrom churnclv.cli import cli\n"
        f"try:\n    cli({args!r}, prog_name='churnclv')\nexcept SystemExit:\n    pass\n"
        "print('\\n'.join(m for m in sys.modules if m.startswith('churnclv.')), file=sys.stderr)"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    return set(proc.stderr.split())


def test_training_and_serving_commands_load_lazily_from_entry_points() -> None:
    from importlib.metadata import entry_points

    names = {ep.name for ep in entry_points(group="churnclv.commands")}
    assert names == {"train", "models", "score-batch", "serve", "monitor", "weekly", "campaign"}
    # a core command's help imports neither training nor serving
    assert not {
        m for m in _imported_after(["validate", "--help"]) if m.startswith(("churnclv.training", "churnclv.serving"))
    }
    # the group's help lists every command, loading only the command modules
    help_text = subprocess.run(
        [sys.executable, "-m", "churnclv.cli", "--help"], capture_output=True, text=True, timeout=120, check=True
    ).stdout
    for name in ("generate", "datasets", "validate", "features", "train", "models", "score-batch", "serve", "monitor"):
        assert f"  {name} " in help_text, name
    assert {"churnclv.training.commands", "churnclv.serving.commands"} <= _imported_after(
        ["train", "--help"]
    ) | _imported_after(["serve", "--help"])


def test_features_config_is_checked_without_training(tmp_path: Path) -> None:
    bad = tmp_path / "run.toml"
    bad.write_text("[features]\nno_such_key = 1\n", encoding="utf-8")
    unknown = tmp_path / "unknown.toml"
    unknown.write_text("[trian]\n", encoding="utf-8")
    runner = CliRunner()
    for path, says in ((bad, "no_such_key"), (unknown, "unknown sections")):
        result = runner.invoke(
            cli,
            [
                "features",
                "--data",
                str(tmp_path),
                "--as-of",
                "2024-01-01",
                "--out",
                str(tmp_path / "f.parquet"),
                "--config",
                str(path),
            ],
        )
        assert result.exit_code == 1, result.output
        assert says in result.output


def test_every_command_has_help() -> None:
    commands = _commands(cli, [])  # walked from the group: a new command is covered without editing this
    assert {"generate", "validate", "features", "train", "score-batch", "serve"} <= {c[0] for c in commands if c}
    assert ["models", "promote"] in commands and ["datasets", "cdnow"] in commands
    runner = CliRunner()
    for cmd in commands:
        result = runner.invoke(cli, [*cmd, "--help"])
        assert result.exit_code == 0, (cmd, result.output)
        assert "Usage:" in result.output


def test_usage_error_exits_2() -> None:
    result = CliRunner().invoke(cli, ["validate", "--no-such-option"])
    assert result.exit_code == 2


@pytest.mark.slow  # a Python process of its own: seconds of imports
def test_data_error_exits_1_with_message_on_stderr(tmp_path: Path) -> None:
    (tmp_path / "transactions.csv").write_text("customer_id,when,amount\n1,2024-01-01,3\n")
    proc = subprocess.run(
        [sys.executable, "-m", "churnclv.cli", "validate", "--data", str(tmp_path), "--out", str(tmp_path / "o")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 1
    assert "'ts'" in proc.stderr and "transactions.csv" in proc.stderr
    assert proc.stdout == ""


def test_validate_prints_summary_and_writes_rejects(tmp_path: Path) -> None:
    (tmp_path / "transactions.csv").write_text(
        "customer_id,ts,amount\n001,2024-01-01,3\n002,bad,1\n001,2024-02-01,-1\n"
    )
    out = tmp_path / "v"
    result = CliRunner().invoke(cli, ["validate", "--data", str(tmp_path), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "transactions" in result.output and "unparseable ts" in result.output
    rejects = pd.read_csv(out / "rejects" / "transactions.csv", dtype=str)
    assert rejects["customer_id"].tolist() == ["002"]
    assert len(pd.read_parquet(out / "clean" / "transactions.parquet")) == 2


def test_datasets_cdnow_sample(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["datasets", "cdnow", "--sample", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    frame = pd.read_parquet(tmp_path / "transactions.parquet")
    assert len(frame) == 6_919 and frame["customer_id"].nunique() == 2_357


# --- generate: the ground-truth dates and horizon


def _generate(out: Path, *extra: str) -> Result:
    return CliRunner().invoke(cli, ["generate", "--customers", "200", "--seed", "3", "--out", str(out), *extra])


def test_generate_default_truth_is_unchanged(tmp_path: Path) -> None:
    from churnclv.generate import generate_world_to_parquet
    from churnclv.generator.world import WorldConfig

    result = _generate(tmp_path / "cli")
    assert result.exit_code == 0, result.output
    truth = pd.read_parquet(tmp_path / "cli" / "truth.parquet")
    assert sorted(truth["as_of"].unique()) == [pd.Timestamp(d) for d in ("2025-08-03", "2025-09-02", "2025-10-02")]
    assert (truth["horizon_days"] == 90).all()
    # what the command wrote before it took --truth-as-of
    before = generate_world_to_parquet(WorldConfig(n_customers=200, seed=3), tmp_path / "api", horizon_days=90)
    pd.testing.assert_frame_equal(truth, pd.read_parquet(before["truth"]))


def test_generate_writes_truth_for_the_requested_dates_and_horizon(tmp_path: Path) -> None:
    from churnclv.generate import generate_world_to_parquet
    from churnclv.generator.world import WorldConfig

    # out of order and repeated on purpose: one row per (customer, as-of), sorted by as-of
    result = _generate(
        tmp_path / "cli",
        "--truth-as-of",
        "2025-06-01",
        "--truth-as-of",
        "2024-03-15",
        "--truth-as-of",
        "2025-06-01",
        "--horizon-days",
        "30",
    )
    assert result.exit_code == 0, result.output
    assert "as of 2024-03-15, 2025-06-01, horizon 30 days" in result.output
    truth = pd.read_parquet(tmp_path / "cli" / "truth.parquet")
    customers = pd.read_parquet(tmp_path / "cli" / "customers.parquet")
    assert (truth["horizon_days"] == 30).all()
    assert not truth.duplicated(["customer_id", "as_of"]).any()
    key = truth[["customer_id", "as_of"]]
    assert key.equals(key.sort_values(["customer_id", "as_of"]))
    for as_of in ("2024-03-15", "2025-06-01"):
        got = truth.loc[truth["as_of"] == pd.Timestamp(as_of), "customer_id"]
        known = customers.loc[customers["signup_ts"] <= pd.Timestamp(as_of), "customer_id"]
        assert sorted(got) == sorted(known)  # every customer signed up by as-of, no one else
    assert set(truth["as_of"]) == {pd.Timestamp("2024-03-15"), pd.Timestamp("2025-06-01")}
    assert 0 < (truth["as_of"] == pd.Timestamp("2024-03-15")).sum() < 200  # signups still arriving then
    expected = generate_world_to_parquet(
        WorldConfig(n_customers=200, seed=3),
        tmp_path / "api",
        truth_as_of=["2024-03-15", "2025-06-01"],
        horizon_days=30,
    )
    pd.testing.assert_frame_equal(truth, pd.read_parquet(expected["truth"]))


def test_generate_truth_window_may_end_on_the_last_day(tmp_path: Path) -> None:
    result = _generate(tmp_path, "--truth-as-of", "2025-12-30", "--horizon-days", "1")
    assert result.exit_code == 0, result.output


@pytest.mark.parametrize(
    ("args", "option", "says"),
    [
        (["--truth-as-of", "2025-13-01"], "--truth-as-of", "is not a date: use YYYY-MM-DD"),
        (["--truth-as-of", "soon"], "--truth-as-of", "is not a date: use YYYY-MM-DD"),
        (
            ["--truth-as-of", "2025-10-03"],
            "--truth-as-of",
            "(2025-10-03, 2026-01-01] ends after the data ends (2025-12-31)",
        ),
        (["--truth-as-of", "2025-09-01", "--horizon-days", "150"], "--truth-as-of", "ends after the data ends"),
        (["--truth-as-of", "2022-12-31"], "--truth-as-of", "is before the data starts (2023-01-01)"),
        (["--horizon-days", "0"], "--horizon-days", "must last 1 to 1095 days"),
        (["--horizon-days", "-5"], "--horizon-days", "must last 1 to 1095 days"),
        (["--horizon-days", "1096"], "--horizon-days", "must last 1 to 1095 days"),
        (["--horizon-days", "1050"], "--horizon-days", "with the default truth as-of dates"),
    ],
)
def test_generate_rejects_bad_truth_options(tmp_path: Path, args: list[str], option: str, says: str) -> None:
    result = _generate(tmp_path / "out", *args)
    assert result.exit_code == 2, result.output
    message = " ".join(result.output.split())
    assert f"Invalid value for '{option}'" in message and says in message
    assert "Pass " in message or "use " in message  # the fix, not only the rule
    assert not (tmp_path / "out").exists()  # refused before writing anything


def test_generate_help_describes_truth_and_matches_the_defaults() -> None:
    from churnclv.generator.truth import default_truth_as_of
    from churnclv.generator.world import WorldConfig

    result = CliRunner().invoke(cli, ["generate", "--help"])
    assert result.exit_code == 0
    text = " ".join(result.output.split())
    for column in (
        "customer_id",
        "as_of",
        "horizon_days",
        "alive",
        "p_no_purchase",
        "expected_purchases",
        "expected_spend",
        "satisfaction",
    ):
        assert column in text
    # the help spells the world's dates out: keep it in step with WorldConfig
    config = WorldConfig()
    assert f"from {config.start:%Y-%m-%d} to {config.end:%Y-%m-%d}" in text
    assert ", ".join(f"{a:%Y-%m-%d}" for a in default_truth_as_of(config, 90)) in text


@pytest.mark.parametrize(
    ("frame", "as_of", "says"),
    [
        ({"ts": ["2024-01-01"], "amount": [1.0]}, "2024-06-30", "transactions.ts has type string"),
        (
            {"ts": pd.to_datetime(["2024-01-01"]), "amount": [True]},
            "2024-06-30",
            "transactions.amount has type boolean",
        ),
        ({"ts": pd.to_datetime(["2024-01-01"]), "amount": [1.0]}, "2023-06-30", "before any data"),
        (None, "2024-06-30", "not a directory"),
    ],
    ids=["ts-text", "amount-bool", "as-of-early", "no-folder"],
)
def test_features_on_bad_trusted_input_exits_1_with_one_line(
    tmp_path: Path, frame: dict[str, object] | None, as_of: str, says: str
) -> None:
    data = tmp_path / "data"
    if frame is not None:
        data.mkdir()
        pd.DataFrame({"customer_id": ["a"], **frame}).to_parquet(data / "transactions.parquet")
    out = tmp_path / "f.parquet"
    result = CliRunner().invoke(
        cli, ["features", "--data", str(data), "--trusted", "--as-of", as_of, "--out", str(out)]
    )
    assert result.exit_code == 1 and isinstance(result.exception, SystemExit), result.output
    errors = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and says in errors[0] and "Traceback" not in result.output
    assert not out.exists()


def test_duckdb_out_of_memory_is_one_line_naming_the_fix(small_world: Path, tmp_path: Path) -> None:
    """A memory limit too small for the job (a real DuckDB OutOfMemoryException): one line with the
    setting to raise, no traceback, no output written."""
    out = tmp_path / "f.parquet"
    args = ["features", "--data", str(small_world), "--trusted", "--as-of", "2025-10-02", "--out", str(out)]
    result = CliRunner().invoke(cli, [*args, "--memory-limit", "1MB"])
    assert result.exit_code == 1 and isinstance(result.exception, SystemExit), result.output
    errors = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and "DuckDB ran out of memory" in errors[0] and "--memory-limit" in errors[0]
    assert "Traceback" not in result.output and not out.exists()


def _out(command: str, tmp_path: Path) -> list[str]:
    return ["--out", str(tmp_path / "out")] if command in ("features", "score-batch") else []


@pytest.mark.parametrize("value", ["30/06/1997", "06/30/1997", "01/02/1997", "1997/06/30", "19970630",
                                   "June 30 1997", "1997-06-30T12:00", "now", "today", "1997-02-30"])  # fmt: skip
@pytest.mark.parametrize("command", ["features", "train", "score-batch"])
def test_as_of_is_a_day_written_yyyy_mm_dd_and_nothing_else(tmp_path: Path, command: str, value: str) -> None:
    """Day-first, month-first and compact forms are refused, not guessed; ``now`` would read the clock."""
    result = CliRunner().invoke(cli, [command, "--data", str(tmp_path), "--as-of", value, *_out(command, tmp_path)])
    assert result.exit_code == 2, result.output
    message = " ".join(result.output.split())
    assert f"Invalid value for '--as-of': '{value}' is not a date: use YYYY-MM-DD" in message
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("command", "missing"),
    [(c, o) for c in ("features", "train", "score-batch") for o in ("--as-of", "--data")] + [("validate", "--data")],
)  # validate's --as-of is optional (default: the last transaction)
def test_a_required_option_left_out_is_a_usage_error(tmp_path: Path, command: str, missing: str) -> None:
    """Since click 8.3 an explicit ``default=None`` satisfies ``required=True``: left out, ``--as-of``
    reached the jobs as NaT (a traceback in ``train``). Now click refuses it, exit 2."""
    given = {"--data": str(tmp_path), "--as-of": "1997-06-30"}
    args = [command, *(x for opt, v in given.items() if opt != missing for x in (opt, v))]
    result = CliRunner().invoke(cli, [*args, *_out(command, tmp_path)])
    assert result.exit_code == 2, result.output
    assert f"Missing option '{missing}'" in result.output


def test_serve_refuses_a_snapshot_folder_that_does_not_exist(tmp_path: Path) -> None:
    """A typo in --snapshot stops the server before it starts, instead of a 503 at every score_by_id."""
    result = CliRunner().invoke(cli, ["serve", "--snapshot", str(tmp_path / "scoers")])
    assert result.exit_code == 2, result.output
    assert "Invalid value for '--snapshot'" in result.output and "does not exist" in result.output


def test_the_default_validation_folder_never_swaps_one_source_for_another(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every job without --work (and validate without --out) validates into work/validated, which the
    quick tour's --trusted commands read: a second source must not silently replace the first's tables
    there. An explicit --out replaces them, as documented."""
    monkeypatch.chdir(tmp_path)
    for name, ids in (("shop", ["a", "b"]), ("other", ["x", "y"])):
        (tmp_path / name).mkdir()
        rows = [{"customer_id": c, "ts": f"2024-0{m}-01", "amount": 10.0} for c in ids for m in (1, 2, 3)]
        pd.DataFrame(rows).to_csv(tmp_path / name / "transactions.csv", index=False)
    clean = tmp_path / "work" / "validated" / "clean" / "transactions.parquet"
    runner = CliRunner()

    assert runner.invoke(cli, ["validate", "--data", "shop"]).exit_code == 0
    assert set(pd.read_parquet(clean)["customer_id"]) == {"a", "b"}
    assert runner.invoke(cli, ["validate", "--data", "shop"]).exit_code == 0  # the same source again: fine

    refused = runner.invoke(cli, ["validate", "--data", "other", "--as-of", "2024-03-31"])
    assert refused.exit_code == 1
    assert f"work/validated holds the validated tables of {tmp_path / 'shop'}" in refused.output
    assert "pass --out DIR for this source" in refused.output
    job = runner.invoke(cli, ["features", "--data", "other", "--as-of", "2024-03-31", "--out", "f.parquet"])
    assert job.exit_code == 1 and "pass --work DIR for this source" in job.output
    assert set(pd.read_parquet(clean)["customer_id"]) == {"a", "b"}  # untouched

    assert runner.invoke(cli, ["validate", "--data", "other", "--out", "work/validated"]).exit_code == 0  # asked for
    assert set(pd.read_parquet(clean)["customer_id"]) == {"x", "y"}


def test_features_refuses_a_text_file_name_and_warns_of_an_as_of_after_the_data(
    small_world: Path, tmp_path: Path
) -> None:
    """A reviewer's ``--out f.csv`` held Parquet bytes; an as-of years after the data wrote features
    whose recency counted the empty years, without a word."""
    args = ["features", "--data", str(small_world), "--trusted", "--out"]
    refused = CliRunner().invoke(cli, [*args, str(tmp_path / "f.csv"), "--as-of", "2025-10-02"])
    assert refused.exit_code == 2 and "written as Parquet, not .csv" in refused.output
    assert not (tmp_path / "f.csv").exists()
    late = CliRunner().invoke(cli, [*args, str(tmp_path / "f.parquet"), "--as-of", "2030-01-01"])
    assert late.exit_code == 0 and "WARNING" in late.output, late.output
    assert "features as of 2030-01-01, " in late.output and "days after the last transaction line" in late.output
    on_time = CliRunner().invoke(cli, [*args, str(tmp_path / "g.parquet"), "--as-of", "2025-10-02"])
    assert on_time.exit_code == 0 and "after the last transaction line" not in on_time.output
