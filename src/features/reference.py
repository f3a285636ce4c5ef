"""A plain pandas implementation of the feature catalogue: the test oracle and the benchmark baseline.

Production paths never call this module (they run :mod:`churnclv.features.definitions` through
Ibis). It exists so that tests can check the Ibis definitions against an independent, readable
implementation on random data, and so that ``bench/features.py`` has a straightforward groupby
baseline. Semantics are those of :mod:`churnclv.features.definitions`.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from churnclv.features.catalogue import FEATURES, Feature, expand
from churnclv.features.config import FeatureConfig
from churnclv.features.dates import AsOf, as_of_date

__all__ = ["coerce", "reference_features"]


def coerce(frame: pd.DataFrame, spec: list[Feature]) -> pd.DataFrame:
    """``frame`` with the catalogue's column order and pandas dtypes (as the Ibis path gives)."""
    out = {}
    for f in spec:
        s = frame[f.name]
        if f.dtype == "string":
            out[f.name] = s.astype("str")
        elif f.dtype == "int64":
            out[f.name] = s.astype("Int64") if f.nullable else s.astype("int64")
        elif f.dtype == "float64":
            out[f.name] = pd.to_numeric(s, errors="raise").astype("float64")
        elif f.dtype == "bool":
            out[f.name] = s.astype("bool")
        else:
            out[f.name] = pd.to_datetime(s).astype("datetime64[ns]")
    return pd.DataFrame(out, columns=[f.name for f in spec]).reset_index(drop=True)


def reference_features(
    transactions: pd.DataFrame,
    events: pd.DataFrame | None = None,
    customers: pd.DataFrame | None = None,
    *,
    as_of: AsOf,
    config: FeatureConfig = FeatureConfig(),
) -> pd.DataFrame:
    """The features of :func:`churnclv.features.build_features`, computed with pandas groupby.

    Same inputs and output (columns, dtypes, rows sorted by ``customer_id``) as
    :func:`churnclv.features.compute_features_frames`.
    """
    day = as_of_date(as_of)
    as_of_ts = pd.Timestamp(day)
    end = as_of_ts + pd.Timedelta(days=1)

    tx = transactions.loc[transactions["ts"] < end]
    amount = tx["amount"]
    purchase_line = amount >= 0 if config.zero_amount_is_purchase else amount > 0
    lines = pd.DataFrame(
        {
            "customer_id": tx["customer_id"],
            "day": tx["ts"].dt.floor("D"),
            "amount": amount,
            "gross": amount.where(amount > 0, 0.0),
            "purchase": purchase_line,
            "ret": amount < 0,
            "returned": (-amount).where(amount < 0, 0.0),
        }
    )
    daily = (
        lines.groupby(["customer_id", "day"], sort=False, observed=True)
        .agg(
            lines=("amount", "size"),
            net=("amount", "sum"),
            gross=("gross", "sum"),
            purchase=("purchase", "any"),
            returns=("ret", "sum"),
            returned=("returned", "sum"),
        )
        .reset_index()
    )
    age = (as_of_ts - daily["day"]).dt.days
    daily["age"] = age

    def since(w: int) -> pd.Series:
        return age < w

    def before(w: int) -> pd.Series:
        return (age >= w) & (age < 2 * w)

    p = daily["purchase"]
    tw = config.trend_days
    cols = {
        "first_day": daily["day"],
        "n_lines": daily["lines"],
        "n_purchase_days": p,
        "gross_spend": daily["gross"],
        "net_spend": daily["net"],
        "n_returns": daily["returns"],
        "returned_spend": daily["returned"],
        "_p_now": p & since(tw),
        "_p_before": p & before(tw),
        "_s_now": daily["net"].where(since(tw), 0.0),
        "_s_before": daily["net"].where(before(tw), 0.0),
    }
    for w in config.windows:
        cols[f"purchase_days_{w}d"] = p & since(w)
        cols[f"net_spend_{w}d"] = daily["net"].where(since(w), 0.0)
    work = pd.DataFrame(cols)
    work["customer_id"] = daily["customer_id"]
    agg = dict.fromkeys(cols, "sum")
    agg["first_day"] = "min"
    per = work.groupby("customer_id", sort=False, observed=True).agg(agg)

    pdays = daily.loc[daily["purchase"], ["customer_id", "day", "net"]].sort_values(["customer_id", "day"])
    pdays["gap"] = pdays.groupby("customer_id", sort=False, observed=True)["day"].diff().dt.days
    pdays["repeat_net"] = pdays["net"].where(pdays["gap"].notna())
    btyd = pdays.groupby("customer_id", sort=False, observed=True).agg(
        first_p=("day", "min"),
        last_p=("day", "max"),
        repeats=("gap", "count"),
        gap_mean=("gap", "mean"),
        gap_std=("gap", "std"),
        mv=("repeat_net", "mean"),
    )

    known = pd.Index(per.index.astype(str))
    if customers is not None and "signup_ts" in customers.columns:
        signed = customers.loc[customers["signup_ts"].notna() & (customers["signup_ts"] < end), "customer_id"]
        known = known.union(pd.Index(signed.astype(str)))
    known = known.unique().sort_values()
    per.index = per.index.astype(str)
    btyd.index = btyd.index.astype(str)
    out = pd.DataFrame(index=known)
    out.index.name = "customer_id"
    per = per.reindex(known)
    btyd = btyd.reindex(known)

    has_p = btyd["first_p"].notna()
    out["frequency"] = btyd["repeats"].astype("float64")
    out["recency"] = (btyd["last_p"] - btyd["first_p"]).dt.days.astype("float64")
    out["T"] = (as_of_ts - btyd["first_p"]).dt.days.astype("float64")
    out["monetary_value"] = btyd["mv"].fillna(0.0).where(has_p)
    out["n_lines"] = per["n_lines"].fillna(0)
    out["n_purchase_days"] = per["n_purchase_days"].fillna(0)
    out["gross_spend"] = per["gross_spend"].fillna(0.0)
    out["net_spend"] = per["net_spend"].fillna(0.0)
    for w in config.windows:
        out[f"purchase_days_{w}d"] = per[f"purchase_days_{w}d"].fillna(0)
        out[f"net_spend_{w}d"] = per[f"net_spend_{w}d"].fillna(0.0)
    out[f"purchase_days_trend_{tw}d"] = (per["_p_now"].fillna(0) + 1) / (per["_p_before"].fillna(0) + 1)
    out[f"net_spend_trend_{tw}d"] = (per["_s_now"].fillna(0.0).clip(lower=0) + 1) / (
        per["_s_before"].fillna(0.0).clip(lower=0) + 1
    )
    out["gap_mean_days"] = btyd["gap_mean"]
    out["gap_std_days"] = btyd["gap_std"]
    since_last = (as_of_ts - btyd["last_p"]).dt.days
    out["days_since_last_purchase"] = since_last
    out["days_since_last_purchase_rel_gap"] = since_last / btyd["gap_mean"]
    out["n_returns"] = per["n_returns"].fillna(0)
    out["returned_spend"] = per["returned_spend"].fillna(0.0)
    gross = out["gross_spend"]
    out["return_share"] = (out["returned_spend"] / gross).where(gross > 0)

    start = per["first_day"]
    attributes: list[str] = []
    if customers is not None:
        cust = customers.assign(customer_id=customers["customer_id"].astype(str)).set_index("customer_id")
        cust = cust.reindex(known)
        if "signup_ts" in cust.columns:
            signup = cust["signup_ts"].where(cust["signup_ts"] < end).dt.floor("D")
            start = pd.concat([start, signup], axis=1).min(axis=1)
        attributes = [c for c in customers.columns if c not in ("customer_id", "signup_ts")]
        for a in attributes:
            out[f"attr_{a}"] = cust[a]
    out["tenure_days"] = (as_of_ts - start).dt.days

    bought = tx.loc[purchase_line]
    for col, name in {"order_id": "n_orders", "channel": "n_channels", "category": "n_categories"}.items():
        if col in transactions.columns:
            counts = bought.groupby("customer_id", sort=False, observed=True)[col].nunique()
            counts.index = counts.index.astype(str)
            out[name] = counts.reindex(known).fillna(0)
        else:
            out[name] = pd.NA

    ew, etw = config.event_windows, config.event_trend_days
    if events is not None:
        ev = events.loc[(events["ts"] < end) & events["event_type"].isin(config.event_types)]
        ev_age = (as_of_ts - ev["ts"].dt.floor("D")).dt.days
        e_cols = {"last": ev["ts"], "_now": ev_age < etw, "_before": (ev_age >= etw) & (ev_age < 2 * etw)}
        for w in ew:
            e_cols[f"_c{w}"] = ev_age < w
        e = pd.DataFrame(e_cols)
        e["customer_id"] = ev["customer_id"]
        e["event_type"] = ev["event_type"]
        by = e.groupby(["customer_id", "event_type"], sort=False, observed=True).agg(
            {c: ("max" if c == "last" else "sum") for c in e_cols}
        )
    for name in config.event_types:
        if events is None:
            for w in ew:
                out[f"{name}_count_{w}d"] = pd.NA
            out[f"{name}_days_since_last"] = pd.NA
            out[f"{name}_trend_{etw}d"] = np.nan
            continue
        types = by.index.get_level_values("event_type")
        sub = by[types == name].droplevel("event_type")
        sub.index = sub.index.astype(str)
        sub = sub.reindex(known)
        for w in ew:
            out[f"{name}_count_{w}d"] = sub[f"_c{w}"].fillna(0)
        out[f"{name}_days_since_last"] = (as_of_ts - pd.to_datetime(sub["last"]).dt.floor("D")).dt.days
        out[f"{name}_trend_{etw}d"] = (sub["_now"].fillna(0) + 1) / (sub["_before"].fillna(0) + 1)

    out = out.reset_index()
    return coerce(out, expand(config, attributes, FEATURES))
