"""The monitor's quality figures against a hand computation on a small hand-made world."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from churnclv.monitoring.quality import calibration_deciles, partition_quality, realised_labels
from churnclv.monitoring.thresholds import MonitorConfig, find_breaches

DAY = dt.date(2024, 3, 31)
H = 30
N = 300


def _world(seed: int = 3) -> tuple[dict[str, pd.DataFrame], pd.DataFrame]:
    """300 customers, each with a purchase before DAY; about half buy again in (DAY, DAY + H] (some
    twice, one line a return), a few only after the window; and a scores partition made up by hand."""
    rng = np.random.default_rng(seed)
    ids = [f"{i:05d}" for i in range(N)]  # leading zeros kept
    rows = [(c, pd.Timestamp("2024-01-10") + pd.Timedelta(days=int(rng.integers(0, 60))), 20.0) for c in ids]
    for i, c in enumerate(ids):
        if rng.random() < 0.5:
            k = int(rng.integers(1, 4))
            days = rng.choice(np.arange(1, H + 1), size=k, replace=False)
            rows += [
                (c, pd.Timestamp(DAY) + pd.Timedelta(days=int(d), hours=10), float(rng.integers(5, 90))) for d in days
            ]
            if i % 17 == 0:
                rows.append((c, pd.Timestamp(DAY) + pd.Timedelta(days=int(days[0]), hours=12), -3.0))
        elif i % 11 == 0:  # after the window: not in the labels
            rows.append((c, pd.Timestamp(DAY) + pd.Timedelta(days=H + 2), 50.0))
    tx = pd.DataFrame(rows, columns=["customer_id", "ts", "amount"])
    tiers = np.array(["low", "mid", "high"])
    level = rng.integers(0, 3, size=N)
    scores = pd.DataFrame(
        {
            "customer_id": ids,
            "p_churn": rng.uniform(0.05, 0.95, size=N).round(3),
            "expected_purchases": rng.uniform(0, 2, size=N),
            "expected_spend": rng.uniform(0, 100, size=N),
            "tier": tiers[level],
            "tier_level": level,
            "action": np.where(level == 2, "care", "win-back"),
        }
    )
    return {"transactions": tx}, scores


def _hand_labels(tx: pd.DataFrame) -> pd.DataFrame:
    lo, hi = pd.Timestamp(DAY) + pd.Timedelta(days=1), pd.Timestamp(DAY) + pd.Timedelta(days=H + 1)
    w = tx[(tx.ts >= lo) & (tx.ts < hi)]
    buys = w[w.amount > 0].groupby("customer_id").ts.apply(lambda s: s.dt.date.nunique())
    spend = w.groupby("customer_id").amount.sum()
    ids = sorted(tx.customer_id.unique())
    purchases = buys.reindex(ids, fill_value=0)
    return pd.DataFrame(
        {"customer_id": ids, "purchases": purchases.to_numpy(), "spend": spend.reindex(ids, fill_value=0.0).to_numpy()}
    ).assign(churned=lambda f: f.purchases == 0)


def _hand_auc(y: np.ndarray, p: np.ndarray) -> float:
    pos, neg = p[y == 1], p[y == 0]
    wins = (pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum()
    return float(wins / (len(pos) * len(neg)))


def test_labels_are_the_window_outcomes_point_in_time() -> None:
    frames, _ = _world()
    got = realised_labels(frames, DAY, H, as_of=DAY + dt.timedelta(days=H))
    want = _hand_labels(frames["transactions"])
    assert got["customer_id"].tolist() == want["customer_id"].tolist()
    assert got["churned"].tolist() == want["churned"].tolist()
    assert got["purchases"].tolist() == want["purchases"].tolist()
    np.testing.assert_allclose(got["spend"], want["spend"])
    with pytest.raises(ValueError, match="not closed"):  # the window must have closed by the as-of
        realised_labels(frames, DAY, H, as_of=DAY + dt.timedelta(days=H - 1))


def test_quality_equals_the_hand_computation() -> None:
    frames, scores = _world()
    labels = realised_labels(frames, DAY, H, as_of=DAY + dt.timedelta(days=H))
    later = (
        scores[["customer_id", "tier_level"]].assign(tier_level=lambda f: np.minimum(f.tier_level + 1, 2)).iloc[:-10]
    )
    q = partition_quality(scores, labels, later)
    hand = scores.merge(_hand_labels(frames["transactions"]), on="customer_id")
    y, p = hand.churned.to_numpy(dtype=float), hand.p_churn.to_numpy()
    m = q["metrics"]
    assert q["customers"] == q["customers_labelled"] == N
    assert 0.3 < y.mean() < 0.7  # both classes: the AUC means something
    assert m["churn_auc"] == pytest.approx(_hand_auc(y, p), abs=1e-12)
    assert m["churn_brier"] == pytest.approx(np.mean((p - y) ** 2), abs=1e-12)
    agg = 100 * (hand.expected_spend.sum() - hand.spend.sum()) / hand.spend.sum()
    assert m["spend_agg_pct_error"] == pytest.approx(agg, rel=1e-12)
    agg_p = 100 * (hand.expected_purchases.sum() - hand.purchases.sum()) / hand.purchases.sum()
    assert m["purchases_agg_pct_error"] == pytest.approx(agg_p, rel=1e-12)
    assert m["realized_churn_rate"] == pytest.approx(y.mean())
    total = hand.spend.sum()
    tiers = {t["tier"]: t for t in q["tiers"]}
    assert [t["tier"] for t in q["tiers"]] == ["low", "mid", "high"]  # bottom tier first
    for name, part in hand.groupby("tier"):
        t = tiers[name]
        assert t["customers"] == len(part)
        assert t["revenue"] == pytest.approx(part.spend.sum())
        assert t["revenue_share"] == pytest.approx(part.spend.sum() / total)
        assert t["realized_churn"] == pytest.approx(part.churned.mean())
        # moved: every tier but the top moved up, the last 10 customers are gone
        gone = part.customer_id.isin(scores.customer_id.iloc[-10:])
        assert t["gone"] == gone.sum()
        assert t["moved_up"] == (0 if name == "high" else (~gone).sum())
        assert t["stayed"] == ((~gone).sum() if name == "high" else 0)
    assert sum(a["revenue_share"] for a in q["actions"]) == pytest.approx(1.0)


def test_calibration_deciles_split_the_base_evenly() -> None:
    p = np.linspace(0.01, 0.99, 95)
    y = (p > 0.5).astype(float)
    rows = calibration_deciles(y, p)
    assert len(rows) == 10 and sum(r["customers"] for r in rows) == 95
    assert {r["customers"] for r in rows} <= {9, 10}  # equal groups, give or take one
    assert rows[0]["mean_p_churn"] < rows[-1]["mean_p_churn"]
    assert rows[0]["realized_churn"] == 0 and rows[-1]["realized_churn"] == 1


def test_a_bad_partition_breaches_and_a_good_one_does_not() -> None:
    frames, scores = _world()
    labels = realised_labels(frames, DAY, H, as_of=DAY + dt.timedelta(days=H))
    good = scores.merge(labels, on="customer_id")
    good = good.assign(
        p_churn=np.where(good.churned, 0.9, 0.1), expected_spend=good.spend, expected_purchases=good.purchases
    )
    q = partition_quality(good[scores.columns], labels) | {"partition": "dt=2024-03-31"}
    assert find_breaches(q, None, MonitorConfig(), backtest_auc=0.9) == []
    bad = partition_quality(scores.assign(expected_spend=scores.expected_spend * 3), labels) | {
        "partition": "dt=2024-03-31"
    }
    checks = {b.check for b in find_breaches(bad, None, MonitorConfig(), backtest_auc=0.9)}
    # random p_churn: AUC near 0.5, 0.4 below the backtest's; spend tripled
    assert {"churn_auc", "churn_auc_drop", "spend_agg_pct_error"} <= checks
