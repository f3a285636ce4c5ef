"""The data zoo: small, seeded shapes of real-world customer data, written as a user would hand them in.

Each :class:`Shape` writes raw source files (CSV or Parquet) into a folder and says which as-of and
horizon to train and score at and what should happen: ``"ok"`` (every step exits 0 with sane
scores) or a regular expression the one error line must match (the data cannot support a model).

The builders use ``numpy.random.default_rng(seed)`` only, so a shape is the same on every run. The
frames a builder returns are the raw input as written (ids as the text in the files), so a test can
compute independently which customers are known at as-of.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

OK = "ok"
EVENT_TYPES = ("login", "session", "email_open", "email_click", "support_ticket")


@dataclass
class Built:
    """What a builder wrote: the raw frames (as in the files) and the customer to send to ``/score``."""

    folder: Path
    frames: dict[str, pd.DataFrame]
    probe: str  # the customer whose history goes to /score
    notes: dict[str, list[str]] = field(default_factory=dict)  # named id groups the test checks


@dataclass(frozen=True)
class Shape:
    name: str
    build: Callable[[Path, int], Built]
    as_of: str
    horizon_days: int = 90
    expect: str = OK  # "ok", or a regex the single error line must match
    seed: int = 0
    backtested: bool = True  # False: too little history for a backtest at the horizon (trains anyway)
    about: str = ""


# --------------------------------------------------------------------------- writers


def _iso(ts: pd.Series) -> pd.Series:
    return ts.dt.strftime("%Y-%m-%dT%H:%M:%S")


def _write(folder: Path, frames: dict[str, pd.DataFrame], fmt: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name, frame in frames.items():
        if fmt == "parquet":
            frame.to_parquet(folder / f"{name}.parquet", index=False)
        else:  # ISO 8601 text, ids as text: what an export tool writes
            out = frame.copy()
            for col in ("ts", "signup_ts"):
                if col in out:
                    out[col] = _iso(out[col])
            out.to_csv(folder / f"{name}.csv", index=False)


# --------------------------------------------------------------------------- a BG/NBD-like shop


def bg_shop(
    rng: np.random.Generator,
    ids: list[str],
    start: str,
    end: str,
    *,
    acquire_days: float,
    rate_per_year: float = 6.0,
    r: float = 0.9,
    a: float = 0.7,
    b: float = 3.5,
    spend_mean: float = 35.0,
    order_ids: bool = True,
) -> pd.DataFrame:
    """Transactions of a BG/NBD world (Fader, Hardie and Lee 2005): each customer first buys at a
    uniform time in the first ``acquire_days``, then buys at a gamma-distributed Poisson rate and drops
    out after each purchase with a beta-distributed probability; line amounts are gamma around a
    gamma-distributed personal mean. No row after ``end``."""
    t0, t1 = pd.Timestamp(start), pd.Timestamp(end)
    span = (t1 - t0).days + 1
    n = len(ids)
    lam = np.minimum(rng.gamma(r, rate_per_year / 365.25 / r, n), 0.25)  # per day; capped: bounded rows
    p = rng.beta(a, b, n)
    mean = rng.gamma(4.0, spend_mean / 4.0, n)
    first = rng.uniform(0, min(acquire_days, span - 1), n)
    cust, days = [], []
    for i in range(n):
        t = first[i]
        while t < span:
            cust.append(i)
            days.append(t)
            if rng.random() < p[i]:
                break
            t += rng.exponential(1.0 / max(lam[i], 1e-6))
    cust_a = np.asarray(cust)
    seconds = np.floor(np.asarray(days) * 86_400).astype("int64")
    amount = np.round(rng.gamma(6.0, mean[cust_a] / 6.0), 2).clip(min=0.01)
    frame = pd.DataFrame(
        {
            "customer_id": np.asarray(ids, dtype=object)[cust_a],
            "ts": t0 + pd.to_timedelta(seconds, unit="s"),
            "amount": amount,
        }
    )
    if order_ids:
        frame["order_id"] = [f"o{k:07d}" for k in range(len(frame))]
    return frame.sort_values(["ts", "customer_id"], kind="stable").reset_index(drop=True)


def _ids(prefix: str, n: int) -> list[str]:
    return [f"{prefix}{i:05d}" for i in range(n)]


def _most_lines(tx: pd.DataFrame, as_of: str, among: list[str] | None = None) -> str:
    """The customer with the most lines on or before as-of (ties: the smallest id)."""
    seen = tx[tx["ts"] < pd.Timestamp(as_of) + pd.Timedelta(days=1)]
    if among is not None:
        seen = seen[seen["customer_id"].isin(among)]
    counts = seen.groupby("customer_id").size().reset_index(name="n")
    return str(counts.sort_values(["n", "customer_id"], ascending=[False, True]).iloc[0]["customer_id"])


# --------------------------------------------------------------------------- the shapes


def cdnow_sample(folder: Path, seed: int) -> Built:
    """CDNOW as shipped by lifetimes (1/10 sample): zero-amount lines, several lines on one day."""
    from churnclv.datasets import load_cdnow

    tx = load_cdnow("sample")
    _write(folder, {"transactions": tx}, "parquet")
    return Built(folder, {"transactions": tx}, probe=_most_lines(tx, "1998-06-30"))


def transactions_only(folder: Path, seed: int) -> Built:
    rng = np.random.default_rng(seed)
    tx = bg_shop(rng, _ids("c", 2_000), "2023-01-01", "2024-12-31", acquire_days=365)
    _write(folder, {"transactions": tx}, "parquet")
    return Built(folder, {"transactions": tx}, probe=_most_lines(tx, "2024-12-31"))


def customers_without_signup(folder: Path, seed: int) -> Built:
    """A customers table with categorical attributes only (no signup_ts), as CSV; a few of its
    customers never bought (without a signup date they are not known, so not scored)."""
    rng = np.random.default_rng(seed)
    ids = _ids("k", 800)
    tx = bg_shop(rng, ids, "2023-01-01", "2024-12-31", acquire_days=365)
    never = _ids("never", 25)
    everyone = ids + never
    customers = pd.DataFrame(
        {
            "customer_id": everyone,
            "region": rng.choice(["north", "south", "east", "west"], len(everyone)),
            "segment": rng.choice(["retail", "b2b"], len(everyone), p=[0.8, 0.2]),
            "store": rng.choice(["007", "012", "100"], len(everyone)),  # numeric-looking text attribute
        }
    )
    _write(folder, {"transactions": tx}, "parquet")
    _write(folder, {"customers": customers}, "csv")
    return Built(
        folder,
        {"transactions": tx, "customers": customers},
        probe=_most_lines(tx, "2024-12-31"),
        notes={"never_bought": never},
    )


def events_for_some(folder: Path, seed: int) -> Built:
    """Engagement events for 30 % of the buyers only, plus a few app users who never bought (not
    known at as-of without a transaction or signup, so not scored)."""
    rng = np.random.default_rng(seed)
    ids = _ids("e", 800)
    tx = bg_shop(rng, ids, "2023-01-01", "2024-12-31", acquire_days=365)
    start, end = pd.Timestamp("2023-01-01"), pd.Timestamp("2024-12-31 23:59:59")
    first = tx.groupby("customer_id")["ts"].min()
    engaged = sorted(rng.choice(first.index.to_numpy(), size=int(0.3 * len(first)), replace=False))
    app_only = _ids("app", 10)
    rows = []
    for cid in [*engaged, *app_only]:
        lo = first.get(cid, start)
        k = int(rng.integers(3, 40))
        secs = rng.uniform(0, (end - lo).total_seconds(), k)
        types = rng.choice(EVENT_TYPES, k, p=[0.35, 0.3, 0.2, 0.1, 0.05])
        for s, et in zip(secs, types, strict=True):
            rows.append(
                (
                    cid,
                    lo + pd.Timedelta(seconds=float(np.floor(s))),
                    et,
                    float(round(rng.uniform(1, 600), 1)) if et == "session" else np.nan,
                )
            )
    events = (
        pd.DataFrame(rows, columns=["customer_id", "ts", "event_type", "value"])
        .sort_values(["ts", "customer_id"], kind="stable")
        .reset_index(drop=True)
    )
    _write(folder, {"transactions": tx, "events": events}, "parquet")
    return Built(
        folder,
        {"transactions": tx, "events": events},
        probe=_most_lines(tx, "2024-12-31", among=list(engaged)),
        notes={"app_only": app_only},
    )


def short_history(folder: Path, seed: int) -> Built:
    """Six months of history (2024-07-01 to 2024-12-31), to be trained with a 180-day horizon."""
    rng = np.random.default_rng(seed)
    tx = bg_shop(rng, _ids("s", 800), "2024-07-01", "2024-12-31", acquire_days=120, rate_per_year=8.0)
    _write(folder, {"transactions": tx}, "parquet")
    return Built(folder, {"transactions": tx}, probe=_most_lines(tx, "2024-12-31"))


def small_cohort(folder: Path, seed: int) -> Built:
    rng = np.random.default_rng(seed)
    tx = bg_shop(rng, _ids("m", 300), "2023-01-01", "2024-12-31", acquire_days=365)
    _write(folder, {"transactions": tx}, "parquet")
    return Built(folder, {"transactions": tx}, probe=_most_lines(tx, "2024-12-31"))


def leading_zero_ids_csv(folder: Path, seed: int) -> Built:
    """Numeric-looking ids with leading zeros in CSV ("000123"; "123" and "00123" are other
    customers), with a customers table (signup_ts) that also holds sign-ups without a purchase."""
    rng = np.random.default_rng(seed)
    numbers = rng.choice(np.arange(1, 1_000_000), size=600, replace=False)
    ids = [f"{n:06d}" for n in numbers if n not in (123,)]
    ids = [*ids[:597], "000123", "00123", "123"]
    tx = bg_shop(rng, ids, "2023-01-01", "2024-12-31", acquire_days=365)
    first = tx.groupby("customer_id")["ts"].min()
    signup_only = ["000000", "0000007", "0042"]  # signed up before as-of, no purchase yet
    future = ["0099"]  # signed up after as-of: not known
    signup = [first[c] - pd.Timedelta(days=int(rng.integers(0, 30))) for c in ids if c in first.index]
    customers = pd.DataFrame(
        {
            "customer_id": [c for c in ids if c in first.index] + signup_only + future,
            "signup_ts": signup + [pd.Timestamp("2024-11-20 09:30:00")] * 3 + [pd.Timestamp("2025-01-15")],
        }
    )
    customers["tier_code"] = rng.choice(["01", "02", "10"], len(customers))
    _write(folder, {"transactions": tx, "customers": customers}, "csv")
    probe = "000123" if "000123" in first.index else _most_lines(tx, "2024-12-31")
    return Built(
        folder,
        {"transactions": tx, "customers": customers},
        probe=probe,
        notes={"lookalikes": ["000123", "00123", "123"], "signup_only": signup_only},
    )


def one_day(folder: Path, seed: int) -> Built:
    """Every purchase on the same day: no repeat behaviour, no history, nothing to learn from."""
    rng = np.random.default_rng(seed)
    ids = _ids("d", 500)
    lines = rng.integers(1, 4, len(ids))
    cust = np.repeat(np.asarray(ids, dtype=object), lines)
    secs = rng.integers(8 * 3600, 20 * 3600, len(cust))
    tx = pd.DataFrame(
        {
            "customer_id": cust,
            "ts": pd.Timestamp("2024-06-15") + pd.to_timedelta(secs, unit="s"),
            "amount": np.round(rng.gamma(4.0, 10.0, len(cust)), 2).clip(min=0.01),
        }
    )
    _write(folder, {"transactions": tx}, "parquet")
    return Built(folder, {"transactions": tx}, probe=ids[0])


def huge_spenders(folder: Path, seed: int) -> Built:
    """Five customers buying lines of 1e6 among 1,000 small spenders (about 35 a line)."""
    rng = np.random.default_rng(seed)
    tx = bg_shop(rng, _ids("h", 1_000), "2023-01-01", "2024-12-31", acquire_days=365)
    whales = _ids("whale", 5)
    rows = []
    for cid in whales:
        days = np.sort(rng.uniform(0, 720, int(rng.integers(3, 9))))
        rows += [(cid, pd.Timestamp("2023-01-01") + pd.Timedelta(days=float(d)), 1e6) for d in days]
    big = pd.DataFrame(rows, columns=["customer_id", "ts", "amount"])
    big["ts"] = big["ts"].dt.floor("s")
    big["order_id"] = [f"w{k:04d}" for k in range(len(big))]
    tx = pd.concat([tx, big], ignore_index=True).sort_values(["ts", "customer_id"], kind="stable")
    tx = tx.reset_index(drop=True)
    _write(folder, {"transactions": tx}, "parquet")
    return Built(
        folder, {"transactions": tx}, probe=_most_lines(tx, "2024-12-31", among=whales), notes={"whales": whales}
    )


def negative_net_spend(folder: Path, seed: int) -> Built:
    """One customer in ten returns more than they bought (a return line larger than their
    purchases, a few days after their last purchase): negative net spend."""
    rng = np.random.default_rng(seed)
    tx = bg_shop(rng, _ids("n", 1_000), "2023-01-01", "2024-12-31", acquire_days=365)
    totals = tx.groupby("customer_id").agg(spent=("amount", "sum"), last=("ts", "max"))
    returners = sorted(rng.choice(totals.index.to_numpy(), size=len(totals) // 10, replace=False))
    end = pd.Timestamp("2024-12-31 23:00:00")
    ret = pd.DataFrame(
        {
            "customer_id": returners,
            "ts": [min(totals.loc[c, "last"] + pd.Timedelta(days=int(rng.integers(1, 20))), end) for c in returners],
            "amount": [-round(float(totals.loc[c, "spent"]) + float(rng.uniform(20, 200)), 2) for c in returners],
        }
    )
    ret["order_id"] = [f"r{k:05d}" for k in range(len(ret))]
    tx = pd.concat([tx, ret], ignore_index=True).sort_values(["ts", "customer_id"], kind="stable")
    tx = tx.reset_index(drop=True)
    _write(folder, {"transactions": tx}, "parquet")
    return Built(
        folder,
        {"transactions": tx},
        probe=_most_lines(tx, "2024-12-31", among=returners),
        notes={"returners": returners},
    )


def ten_years(folder: Path, seed: int) -> Built:
    """Ten years of history (2015-01-01 to 2024-12-31), customers arriving over the first eight."""
    rng = np.random.default_rng(seed)
    tx = bg_shop(
        rng, _ids("y", 1_000), "2015-01-01", "2024-12-31", acquire_days=8 * 365, rate_per_year=3.0, a=0.5, b=6.0
    )
    _write(folder, {"transactions": tx}, "parquet")
    return Built(folder, {"transactions": tx}, probe=_most_lines(tx, "2024-12-31"))


def subscriptions(folder: Path, seed: int) -> Built:
    """A subscription shop: 400 customers start a monthly plan through 2023 and pay 29.99 on the same day
    of each month until they cancel (6 % a month); nobody who skipped a month comes back. The lines
    run to 2025-03-31, past the as-of, so the test can compare the totals with what followed. Notes:
    ``lapsed``, the customers whose last charge is over 45 days before 2024-12-31."""
    rng = np.random.default_rng(seed)
    ids = _ids("sub", 400)
    starts = pd.Timestamp("2023-01-01") + pd.to_timedelta(rng.integers(0, 365, len(ids)), unit="D")
    months = rng.geometric(0.06, len(ids))  # charges before the cancellation
    rows = []
    for cid, start, n in zip(ids, starts, months, strict=True):
        for k in range(int(n)):
            ts = start + pd.DateOffset(months=k)
            if ts > pd.Timestamp("2025-03-31"):
                break
            rows.append((cid, ts))
    tx = pd.DataFrame(rows, columns=["customer_id", "ts"]).assign(amount=29.99)
    _write(folder, {"transactions": tx}, "parquet")
    last = tx[tx["ts"] <= "2024-12-31"].groupby("customer_id")["ts"].max()
    lapsed = sorted(last.index[last < pd.Timestamp("2024-12-31") - pd.Timedelta(days=45)])
    return Built(folder, {"transactions": tx}, probe=_most_lines(tx, "2024-12-31"), notes={"lapsed": lapsed})


FIVE = (  # a data zoo find: the backtest runs, and BTYD fails on each of its folds
    ("C00000", "2024-03-13 14:00", 41.54),
    ("C00000", "2024-03-21 11:00", 320.7),
    ("C00001", "2024-04-23 07:00", 97.02),
    ("C00001", "2024-05-25 15:00", 50.95),
    ("C00002", "2024-05-23 16:00", 22.93),
    ("C00002", "2024-05-31 12:00", 76.01),
    ("C00002", "2024-06-01 22:00", 80.7),
    ("C00003", "2023-06-07 04:00", 21.18),
    ("C00003", "2023-06-18 18:00", 82.82),
    ("C00003", "2023-07-12 23:00", 20.29),
    ("C00003", "2023-07-26 14:00", 33.09),
    ("C00003", "2023-07-30 23:00", 140.37),
    ("C00003", "2023-09-23 01:00", 65.03),
    ("C00003", "2023-10-27 15:00", 49.17),
    ("C00003", "2023-11-06 20:00", 8.61),
    ("C00003", "2023-11-20 13:00", 85.23),
    ("C00003", "2023-12-20 23:00", 64.78),
    ("C00003", "2023-12-27 19:00", 24.97),
    ("C00003", "2024-01-09 01:00", 12.09),
    ("C00003", "2024-02-15 19:00", 59.21),
    ("C00004", "2023-12-27 23:00", 58.83),
)


def five_customers(folder: Path, seed: int) -> Built:
    """Five customers over a year: every model fails on every backtest fold, so the backtest measures
    nothing; the first version must still become the champion (nothing to compare it with)."""
    tx = pd.DataFrame(FIVE, columns=["customer_id", "ts", "amount"]).assign(ts=lambda f: pd.to_datetime(f["ts"]))
    _write(folder, {"transactions": tx}, "parquet")
    return Built(folder, {"transactions": tx}, probe="C00003")


def no_dropout(folder: Path, seed: int) -> Built:
    """600 customers whose purchase days spread from their first to the end of the data: nobody has
    visibly dropped out, so BG/NBD's dropout parameter a runs to 0 (a data zoo find: training stopped
    with "use a later as-of" while readiness said ok)."""
    rng = np.random.default_rng(seed)
    start, days, rows = pd.Timestamp("2023-01-01"), 540, []
    for i in range(600):
        first = int(rng.integers(0, days - 1))
        k = 1 + rng.poisson(rng.gamma(0.6, 0.15 / 0.6) * min(days - first, rng.exponential(300)) / 30)
        for d in sorted({first, *rng.integers(first, days, size=k - 1).tolist()}):
            ts = start + pd.Timedelta(days=int(d), hours=int(rng.integers(0, 24)))
            rows.append((f"C{i:05d}", ts, round(float(rng.gamma(2, 30)), 2)))
    tx = pd.DataFrame(rows, columns=["customer_id", "ts", "amount"])
    _write(folder, {"transactions": tx}, "parquet")
    return Built(folder, {"transactions": tx}, probe=_most_lines(tx, "2024-06-23"))


SHAPES: tuple[Shape, ...] = (
    Shape("cdnow_sample", cdnow_sample, as_of="1998-06-30", about="CDNOW 1/10 sample as shipped"),
    Shape(
        "transactions_only",
        transactions_only,
        as_of="2024-12-31",
        seed=2,
        about="BG/NBD shop, 2,000 customers, 2 years, transactions only",
    ),
    Shape(
        "customers_without_signup",
        customers_without_signup,
        as_of="2024-12-31",
        seed=3,
        about="customers.csv with attributes, no signup_ts",
    ),
    Shape("events_for_some", events_for_some, as_of="2024-12-31", seed=4, about="events for 30 % of buyers"),
    Shape(
        "six_months_h180",
        short_history,
        as_of="2024-12-31",
        horizon_days=180,
        seed=5,
        backtested=False,
        about="6 months of history, 180-day horizon",
    ),
    Shape("cohort_300", small_cohort, as_of="2024-12-31", seed=6, about="300 customers"),
    Shape("leading_zero_ids_csv", leading_zero_ids_csv, as_of="2024-12-31", seed=7, about="ids like 000123 in CSV"),
    Shape(
        "one_purchase_day",
        one_day,
        as_of="2024-09-30",
        seed=8,
        # names what is missing (purchases on different days) and the fix (a later as-of, more history)
        expect=r"(?i)(repeat (buyer|purchase)|two (different |distinct )?days|(one|single|same) (purchase )?day)"
        r".*(later as-of|(more|longer) history)",
        about="every purchase on one day: one clear error",
    ),
    Shape("huge_spenders", huge_spenders, as_of="2024-12-31", seed=9, about="5 customers with 1e6 lines"),
    Shape(
        "negative_net_spend",
        negative_net_spend,
        as_of="2024-12-31",
        seed=10,
        about="10 % of customers return more than they bought",
    ),
    Shape("ten_years", ten_years, as_of="2024-12-31", seed=11, about="10 years of history"),
    Shape("subscriptions", subscriptions, as_of="2024-12-31", seed=12, about="monthly plans: a skipped month is gone"),
    Shape("five_customers", five_customers, as_of="2024-06-23", about="5 customers: the backtest measures nothing"),
    Shape("no_dropout", no_dropout, as_of="2024-06-23", seed=1, about="nobody has dropped out yet: BG/NBD's a -> 0"),
)


def known_at(frames: dict[str, pd.DataFrame], as_of: str) -> set[str]:
    """Customers known at as-of, from the raw frames: a transaction line or a signup on or before it."""
    end = pd.Timestamp(as_of) + pd.Timedelta(days=1)
    tx = frames["transactions"]
    known = set(tx.loc[pd.to_datetime(tx["ts"]) < end, "customer_id"].astype(str))
    customers = frames.get("customers")
    if customers is not None and "signup_ts" in customers:
        signed = customers[pd.to_datetime(customers["signup_ts"]) < end]
        known |= set(signed["customer_id"].astype(str))
    return known
