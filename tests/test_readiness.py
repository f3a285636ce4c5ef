from __future__ import annotations

import datetime as dt
import json
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from churnclv.cli import cli
from churnclv.readiness import assess
from churnclv.readiness_report import Readiness

START = pd.Timestamp("1997-01-01")
END = pd.Timestamp("1998-06-30")


def _write(folder: Path, **tables: pd.DataFrame) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, frame in tables.items():
        frame.to_parquet(folder / f"{name}.parquet", index=False)
    return folder


def _tx(rows: list[tuple[str, str, float]]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "customer_id": pd.Series([r[0] for r in rows], dtype="str"),
            "ts": pd.to_datetime([r[1] for r in rows], format="ISO8601"),
            "amount": [float(r[2]) for r in rows],
        }
    )


def _cdnow_like(n: int = 300, seed: int = 0) -> pd.DataFrame:
    """Transactions only, CDNOW's shape: a cohort joining over the first quarter, a few repeat
    purchases, several lines a day, some returns and zero amounts."""
    rng = np.random.default_rng(seed)
    ids, ts, amount = [], [], []
    for i in range(n):
        cid = f"cust-{i:04d}"
        first = START + pd.Timedelta(days=0 if i == 0 else int(rng.integers(0, 84)))
        days = [first] + [
            first + pd.Timedelta(days=int(d))
            for d in np.sort(rng.integers(1, (END - first).days + 1, rng.geometric(0.4) - 1))
        ]
        for day in days:
            for _ in range(int(rng.integers(1, 3))):
                ids.append(cid)
                ts.append(day + pd.Timedelta(hours=int(rng.integers(0, 24))))
                amount.append(float(rng.choice([0.0, 12.5, 30.0, 80.0], p=[0.05, 0.35, 0.4, 0.2])))
        if len(days) > 1 and i % 10 == 1:  # a same-day return larger than the repeat day's sales
            ids.append(cid)
            ts.append(days[-1] + pd.Timedelta(hours=23))
            amount.append(-500.0)
        if rng.random() < 0.1:  # a return on a later day: not a purchase
            ids.append(cid)
            ts.append(days[-1] + pd.Timedelta(days=3))
            amount.append(-12.5)
    frame = pd.DataFrame({"customer_id": pd.Series(ids, dtype="str"), "ts": ts, "amount": amount})
    return frame[frame.ts < END + pd.Timedelta(days=1)].reset_index(drop=True)


def _oracle(tx: pd.DataFrame, as_of: pd.Timestamp) -> dict[str, int]:
    """The counts, computed another way (pandas) from the definitions."""
    tx = tx[tx.ts < as_of + pd.Timedelta(days=1)].assign(day=lambda f: f.ts.dt.normalize())
    daily = tx.groupby(["customer_id", "day"]).amount.agg(net="sum", top="max").reset_index()
    bought = daily[daily.top > 0].sort_values(["customer_id", "day"])
    n_days = bought.groupby("customer_id").size()
    repeat_mv = bought[bought.groupby("customer_id").cumcount() > 0].groupby("customer_id").net.mean()
    return {
        "customers_known": tx.customer_id.nunique(),
        "customers_with_purchase": len(n_days),
        "repeat_buyers": int((n_days >= 2).sum()),
        "repeat_buyers_positive_spend": int((repeat_mv > 0).sum()),
    }


def _messages(r: Readiness) -> list[str]:
    return [*r.errors, *r.warnings, *(m.detail for m in r.models), *(m.rule for m in r.models)]


def test_cdnow_like_transactions_only(tmp_path: Path) -> None:
    tx = _cdnow_like()
    clean = _write(tmp_path / "clean", transactions=tx)
    r = assess(clean, END, 90)
    for key, value in _oracle(tx, END).items():
        assert getattr(r, key) == value, key
    assert r.customers_known == 300
    assert 20 <= r.repeat_buyers_positive_spend < r.repeat_buyers < r.customers_with_purchase  # net of returns
    assert (r.first_transaction, r.last_transaction) == (START.date(), tx.ts.max().date())
    assert r.history_days == (END - START).days == 545
    # monthly cutoffs as-of - 90 - 30k that keep 60 days of history before them
    cutoffs = [END - pd.Timedelta(days=90 + 30 * k) for k in range(30)]
    assert r.labelled_cutoffs == sum(c >= START + pd.Timedelta(days=60) for c in cutoffs) == 14
    assert r.latest_labelled_cutoff == dt.date(1998, 4, 1)
    assert r.backtest_fits and r.max_backtest_horizon_days == (545 - 60) // 2
    assert (r.has_events, r.has_customers, r.has_signup_ts) == (False, False, False)
    assert {m.name: m.ok for m in r.models} == {
        "btyd": True,
        "gamma_gamma": True,
        "gbm": True,
        "hybrid": True,
        "backtest": True,
    }
    assert r.ok and not r.errors
    assert any("no events" in w for w in r.warnings) and any("signup_ts" in w for w in r.warnings)
    assert not any("cust-" in m for m in _messages(r))  # no customer ids in any message
    # JSON-able, dates as ISO strings
    d = json.loads(json.dumps(r.to_dict()))
    assert d["latest_labelled_cutoff"] == "1998-04-01" and d["models"][0]["name"] == "btyd"
    text = r.format()
    assert "readiness as of 1998-06-30, horizon 90 days" in text
    assert sum(line.lstrip().startswith(("ok ", "not ok")) for line in text.splitlines()) == len(r.models)


def test_labels_at_the_latest_cutoff_match_a_direct_count(tmp_path: Path) -> None:
    tx = _cdnow_like()
    r = assess(_write(tmp_path, transactions=tx), END, 90)
    c = pd.Timestamp(r.latest_labelled_cutoff)
    bought = tx[tx.amount > 0].assign(day=lambda f: f.ts.dt.normalize())
    first = bought.groupby("customer_id").day.min()
    at_c = set(first[first <= c].index)
    in_window = set(bought[(bought.day > c) & (bought.day <= c + pd.Timedelta(days=90))].customer_id)
    assert r.customers_at_latest_cutoff == len(at_c)
    assert r.churners_at_latest_cutoff == len(at_c - in_window) > 0


def test_six_months_and_a_180_day_horizon_leave_only_btyd(tmp_path: Path) -> None:
    tx = _cdnow_like()
    as_of = START + pd.Timedelta(days=180)
    r = assess(_write(tmp_path, transactions=tx), as_of.date(), 180)
    assert r.history_days == 180
    assert r.labelled_cutoffs == 0 and r.latest_labelled_cutoff is None
    assert not r.backtest_fits and r.max_backtest_horizon_days == 60
    verdict = {m.name: m.ok for m in r.models}
    assert verdict == {
        "btyd": True,
        "gamma_gamma": verdict["gamma_gamma"],
        "gbm": False,
        "hybrid": False,
        "backtest": False,
    }
    assert not r.errors  # BTYD can be fitted: not an error
    assert any("no labelled cutoff" in w and "240 days of history" in w for w in r.warnings)
    assert any("no backtest at horizon 180" in w and "at most 60 days" in w for w in r.warnings)
    assert "no labelled cutoff" in r.model("gbm").detail
    # a 60-day horizon is the longest a backtest fits in 180 days; 61 is too long
    assert assess(tmp_path, as_of.date(), 60).backtest_fits
    assert not assess(tmp_path, as_of.date(), 61).backtest_fits


def test_small_cohort_has_no_learned_models(tmp_path: Path) -> None:
    tx = _cdnow_like(n=60)
    r = assess(_write(tmp_path, transactions=tx), END, 90)
    n = r.customers_at_latest_cutoff
    assert r.labelled_cutoffs > 0 and 50 < n == r.customers_with_purchase < 100  # all bought by 1998-04
    assert r.model("btyd").ok and not r.model("gbm").ok and not r.model("hybrid").ok
    said = [w for w in r.warnings if f"only {n} customers" in w and "need 100" in w]
    # it said 'the learned models are not trained', but training backtests them and may select one
    assert len(said) == 1 and "not trained" not in said[0] and "only where it beats BTYD" in said[0]


def test_every_purchase_on_the_as_of_day_is_an_error(tmp_path: Path) -> None:
    rows = [(f"cust-{i}", f"2024-03-01 {h:02d}:00", 10.0) for i in range(30) for h in (9, 15)]
    clean = _write(tmp_path, transactions=_tx(rows))
    r = assess(clean, "2024-03-01", 90)
    assert r.customers_with_purchase == 30 and r.repeat_buyers == 0  # two lines on one day: one purchase day
    assert not r.ok and len(r.errors) == 1 and "T is 0" in r.errors[0]
    assert not any(m.ok for m in r.models)
    assert "NOTHING CAN BE FITTED" in r.format() and "error: every first purchase" in r.format()
    # later, T > 0 but still nobody bought twice: still nothing to fit
    later = assess(clean, "2024-06-01", 30)
    assert not later.ok and "no repeat buyer" in later.errors[0]


def test_no_repeat_buyers(tmp_path: Path) -> None:
    rows = [(f"cust-{i}", str(dt.date(2024, 1, 1) + dt.timedelta(days=i)), 20.0) for i in range(150)]
    rows += [(f"cust-{i}", str(dt.date(2024, 1, 1) + dt.timedelta(days=i + 5)), -20.0) for i in range(0, 150, 3)]
    r = assess(_write(tmp_path, transactions=_tx(rows)), "2024-06-30", 90)  # the data end 2024-06-03
    assert r.customers_with_purchase == 150 and r.repeat_buyers == 0  # a return day is not a purchase
    assert not r.model("btyd").ok and not r.model("gamma_gamma").ok
    assert len(r.errors) == 1 and "no repeat buyer" in r.errors[0]
    assert not any("cust-" in m for m in _messages(r))


def test_few_repeat_buyers_warn_and_fall_back_to_the_mean_order_value(tmp_path: Path) -> None:
    rows = [(f"cust-{i}", "2024-01-10", 20.0) for i in range(150)]
    rows += [(f"cust-{i}", "2024-02-10", 25.0) for i in range(5)]
    r = assess(_write(tmp_path, transactions=_tx(rows)), "2024-03-10", 90)  # within 31 days of the data's end
    assert r.repeat_buyers == 5 and r.model("btyd").ok and not r.model("gamma_gamma").ok
    assert "population mean" in r.model("gamma_gamma").detail
    assert any("poorly identified" in w for w in r.warnings)
    assert any("Gamma-Gamma needs 20" in w for w in r.warnings)


def test_a_history_too_short_to_see_anyone_lapse_warns(tmp_path: Path) -> None:
    # a helper's shop: 10 days of 924 repeat buyers passed readiness, then no BG/NBD fit converged
    rows = [(f"cust-{i}", f"2024-01-0{1 + i % 3}", 20.0) for i in range(300)]
    rows += [(f"cust-{i}", "2024-01-09", 25.0) for i in range(0, 300, 2)]
    short = assess(_write(tmp_path, transactions=_tx(rows)), "2024-01-10", 30)
    assert short.model("btyd").ok and short.repeat_buyers == 150
    assert any(w.startswith("the longest customer history is 9 days (under 60)") for w in short.warnings)
    later = assess(tmp_path, "2024-03-31", 30)  # the same buyers seen for three months: no warning
    assert not any("longest customer history" in w for w in later.warnings)


def test_repeat_spend_is_the_mean_of_the_repeat_days_net_of_returns(tmp_path: Path) -> None:
    # first day 100; the repeat day nets -5 (a sale and a larger return the same day): a repeat buyer
    # whose repeat spend is not positive, although the mean over all days is
    rows = [
        ("cust-1", "2024-01-01", 100.0),
        ("cust-1", "2024-02-01 10:00", 10.0),
        ("cust-1", "2024-02-01 11:00", -15.0),
        ("cust-2", "2024-01-01", 10.0),
        ("cust-2", "2024-03-01", 30.0),
    ]
    r = assess(_write(tmp_path, transactions=_tx(rows)), "2024-06-01", 30)
    assert r.repeat_buyers == 2 and r.repeat_buyers_positive_spend == 1


def test_labels_of_one_class_rule_out_the_classifier(tmp_path: Path) -> None:
    # 150 customers who bought twice early and never again: every label at the latest cutoff is "churned"
    rows = [(f"cust-{i}", day, 20.0) for i in range(150) for day in ("2024-01-01", "2024-01-20")]
    rows.append(("late-1", "2024-12-20", 20.0))  # the data go on to December: a new customer's first purchase
    r = assess(_write(tmp_path, transactions=_tx(rows)), "2024-12-31", 90)
    assert r.customers_at_latest_cutoff == r.churners_at_latest_cutoff == 150
    assert r.model("btyd").ok and not r.model("gbm").ok and not r.model("hybrid").ok
    assert any("every customer churned" in w for w in r.warnings)


def test_leading_zero_ids_stay_distinct(tmp_path: Path) -> None:
    # CSV: read as text, so 007, 07 and 7 are three customers
    (tmp_path / "transactions.csv").write_text(
        "customer_id,ts,amount\n007,2024-01-01,5\n007,2024-02-01,5\n07,2024-01-05,5\n7,2024-01-07,5\n"
    )
    r = assess(tmp_path, "2024-03-01", 30)
    assert r.customers_known == 3 and r.customers_with_purchase == 3 and r.repeat_buyers == 1


def test_signups_and_events_count_up_to_as_of(tmp_path: Path) -> None:
    tx = _tx([("cust-1", "2024-01-01", 5.0), ("cust-1", "2024-02-01", 5.0)])
    customers = pd.DataFrame(
        {
            "customer_id": pd.Series(["cust-1", "cust-2", "cust-3"], dtype="str"),
            "signup_ts": pd.to_datetime(["2023-12-01", "2024-02-15", "2024-05-01"]),
        }
    )
    events = pd.DataFrame(
        {
            "customer_id": pd.Series(["cust-2"], dtype="str"),
            "ts": pd.to_datetime(["2024-04-01"]),
            "event_type": pd.Series(["login"], dtype="str"),
        }
    )
    clean = _write(tmp_path, transactions=tx, customers=customers, events=events)
    r = assess(clean, "2024-03-01", 30)
    assert r.customers_known == 2  # the third signs up after as-of
    assert (r.has_customers, r.has_signup_ts, r.has_events) == (True, True, False)  # the event is later
    assert assess(clean, "2024-04-01", 30).has_events


def test_the_as_of_day_counts_whole(tmp_path: Path) -> None:
    rows = [("cust-1", "2024-01-01", 5.0), ("cust-1", "2024-03-01 23:59:59", 5.0), ("cust-2", "2024-03-02", 5.0)]
    r = assess(_write(tmp_path, transactions=_tx(rows)), "2024-03-01", 30)
    assert r.repeat_buyers == 1 and r.customers_known == 1
    assert r.last_transaction == dt.date(2024, 3, 1)


def test_as_of_none_is_the_last_transaction_date(tmp_path: Path) -> None:
    tx = _cdnow_like(n=50)
    clean = _write(tmp_path, transactions=tx)
    assert assess(clean, None, 90) == assess(clean, tx.ts.max().date(), 90)


def test_bad_arguments_name_the_rule(tmp_path: Path) -> None:
    clean = _write(tmp_path, transactions=_cdnow_like(n=20))
    with pytest.raises(ValueError, match="horizon_days=0"):
        assess(clean, END, 0)
    with pytest.raises(ValueError, match="time of day"):
        assess(clean, "1998-01-01 12:00", 90)


# --- point in time: rows after as-of change nothing

_AS_OF = pd.Timestamp("1997-09-30")
_BASE_TX = _cdnow_like(n=120, seed=3)
_BASE_TX = _BASE_TX[_BASE_TX.ts < _AS_OF + pd.Timedelta(days=1)].reset_index(drop=True)
_BASE_CUSTOMERS = pd.DataFrame(
    {
        "customer_id": pd.Series(["cust-0000", "cust-9000"], dtype="str"),
        "signup_ts": pd.to_datetime(["1996-12-01", "1997-08-01"]),
    }
)
_BASE_EVENTS = pd.DataFrame(
    {
        "customer_id": pd.Series(["cust-0001"], dtype="str"),
        "ts": pd.to_datetime(["1997-05-01"]),
        "event_type": pd.Series(["login"], dtype="str"),
    }
)

_later = st.tuples(
    st.sampled_from(["cust-0000", "cust-0005", "cust-0042", "cust-7777", "cust-8888"]),
    st.integers(min_value=0, max_value=400 * 24 * 60),  # minutes after as-of's midnight + 1 day
    st.sampled_from([-30.0, 0.0, 0.01, 45.0]),
)


@settings(
    max_examples=min(15, settings.default.max_examples), deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
@given(
    extra_tx=st.lists(_later, min_size=1, max_size=25),
    extra_events=st.lists(_later, max_size=5),
    signups=st.lists(_later, max_size=3),
)
def test_rows_after_as_of_change_nothing(extra_tx, extra_events, signups) -> None:
    after = _AS_OF + pd.Timedelta(days=1)

    def when(minutes: int) -> pd.Timestamp:
        return after + pd.Timedelta(minutes=minutes)

    tx = pd.concat(
        [
            _BASE_TX,
            pd.DataFrame(
                {
                    "customer_id": pd.Series([e[0] for e in extra_tx], dtype="str"),
                    "ts": [when(e[1]) for e in extra_tx],
                    "amount": [e[2] for e in extra_tx],
                }
            ),
        ],
        ignore_index=True,
    )
    events = pd.concat(
        [
            _BASE_EVENTS,
            pd.DataFrame(
                {
                    "customer_id": pd.Series([e[0] for e in extra_events], dtype="str"),
                    "ts": pd.to_datetime([when(e[1]) for e in extra_events]),
                    "event_type": pd.Series(["login"] * len(extra_events), dtype="str"),
                }
            ),
        ],
        ignore_index=True,
    )
    customers = pd.concat(
        [
            _BASE_CUSTOMERS,
            pd.DataFrame(
                {
                    "customer_id": pd.Series([f"new-{i}" for i in range(len(signups))], dtype="str"),
                    "signup_ts": pd.to_datetime([when(e[1]) for e in signups]),
                }
            ),
        ],
        ignore_index=True,
    )
    with tempfile.TemporaryDirectory() as tmp:
        base = _write(Path(tmp) / "base", transactions=_BASE_TX, events=_BASE_EVENTS, customers=_BASE_CUSTOMERS)
        more = _write(Path(tmp) / "more", transactions=tx, events=events, customers=customers)
        before = assess(base, _AS_OF.date(), 60)
        assert assess(more, _AS_OF.date(), 60) == before
    assert before.ok and before.has_events and before.has_signup_ts


# --- the CLI


def test_cli_validate_prints_readiness_and_json(tmp_path: Path) -> None:
    raw = _write(tmp_path / "raw", transactions=_cdnow_like())
    out = tmp_path / "v"
    runner = CliRunner()
    result = runner.invoke(
        cli, ["validate", "--data", str(raw), "--out", str(out), "--as-of", "1997-06-30", "--horizon-days", "90"]
    )
    assert result.exit_code == 0, result.output
    assert "validation" in result.output  # the existing report is still there
    assert "readiness as of 1997-06-30, horizon 90 days" in result.output
    assert "not ok  backtest" in result.output and "ok      btyd" in result.output

    result = runner.invoke(cli, ["validate", "--data", str(raw), "--out", str(out), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["transactions"]["accepted"] == len(_cdnow_like())  # existing keys kept
    readiness = report["readiness"]
    last = _cdnow_like().ts.max().date().isoformat()
    assert readiness["as_of"] == last and readiness["horizon_days"] == 90  # the defaults
    assert {m["name"]: m["ok"] for m in readiness["models"]}["backtest"] is True
    assert readiness["errors"] == []


def test_cli_validate_reports_errors_and_exits_0(tmp_path: Path) -> None:
    (tmp_path / "raw").mkdir()
    (tmp_path / "raw" / "transactions.csv").write_text("customer_id,ts,amount\n001,2024-03-01,5\n002,2024-03-01,7\n")
    result = CliRunner().invoke(cli, ["validate", "--data", str(tmp_path / "raw"), "--out", str(tmp_path / "v")])
    assert result.exit_code == 0, result.output
    assert "NOTHING CAN BE FITTED" in result.output and "T is 0" in result.output
    result = CliRunner().invoke(
        cli, ["validate", "--data", str(tmp_path / "raw"), "--out", str(tmp_path / "v"), "--json"]
    )
    assert result.exit_code == 0
    assert "T is 0" in json.loads(result.stdout)["readiness"]["errors"][0]
    assert "error: every first purchase" in result.stderr


def test_an_as_of_long_after_the_data_is_an_error(tmp_path: Path) -> None:
    """A data-zoo review trained as of 2001-01-01 on data ending 1997: empty label windows, every metric
    NaN, yet a version was registered. Readiness (validate, and train before any step) now refuses it."""
    raw = _write(tmp_path / "raw", transactions=_cdnow_like())
    last = _cdnow_like().ts.max().date()
    for day, refused in ((last + dt.timedelta(days=31), False), (last + dt.timedelta(days=32), True)):
        args = ["validate", "--data", str(raw), "--out", str(tmp_path / "v"), "--as-of", day.isoformat(), "--json"]
        result = CliRunner().invoke(cli, args)
        readiness = json.loads(result.stdout)["readiness"]
        errors = readiness["errors"]
        assert any(f"after the last transaction line ({last})" in e for e in errors) == refused, errors
        # a helper read "ok backtest" next to "NOTHING CAN BE FITTED": every verdict follows the error
        assert any(m["ok"] for m in readiness["models"]) != refused


def test_a_quiet_spell_before_the_as_of_is_not_the_end_of_the_data(tmp_path: Path) -> None:
    """40 days without a sale just before the as-of, with sales after it: the label windows hold data."""
    rows = [(f"cust-{i}", str(dt.date(2024, 1, 1) + dt.timedelta(days=3 * i)), 20.0) for i in range(50)]
    rows += [(f"cust-{i}", "2024-08-01", 25.0) for i in range(50)]  # after the as-of
    r = assess(_write(tmp_path, transactions=_tx(rows)), "2024-07-10", 90)  # last sale before it: 2024-05-28
    assert not any("after the last transaction line" in e for e in r.errors), r.errors


def test_repeat_buyers_without_positive_repeat_spend_fit_btyd_with_no_spend(tmp_path: Path) -> None:
    """BG/NBD does not read spend: it is fitted, and a warning says every expected spend will be 0."""
    rows = [(f"cust-{i}", "2024-01-10", 20.0) for i in range(150)]
    rows += [(f"cust-{i}", "2024-02-10 10:00", 10.0) for i in range(30)]  # a sale and a larger return:
    rows += [(f"cust-{i}", "2024-02-10 11:00", -15.0) for i in range(30)]  # a repeat day netting -5
    r = assess(_write(tmp_path, transactions=_tx(rows)), "2024-02-29", 14)
    assert r.repeat_buyers == 30 and r.repeat_buyers_positive_spend == 0
    assert r.model("btyd").ok and not r.model("gamma_gamma").ok and not r.errors
    assert any("every expected spend and CLV is 0" in w for w in r.warnings)


def test_the_summary_counts_the_history_to_the_as_of_not_to_the_data_end(tmp_path: Path) -> None:
    # a helper read "2023-01-01 to 2024-02-04 (2,557 days)" as the span of the data itself
    rows = [("a", "2024-01-01", 20.0), ("a", "2024-02-04", 25.0)]
    r = assess(_write(tmp_path, transactions=_tx(rows)), "2024-03-04", 30)
    assert r.history_days == 63
    assert "history: 2024-01-01 to 2024-02-04 (63 days to the as-of)" in r.format()
