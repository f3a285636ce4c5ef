"""The contact log of a campaign (who was actually contacted), checked and reconciled with the plan.

A CRM's log is never exact: rows go missing, customers are logged twice, other campaigns' rows and
customers the scores do not know slip in, a control is contacted by mistake. Nothing is dropped
silently: :func:`reconcile_contacts` counts every kind of row it sets aside, and the evaluation is
by assignment (intention to treat), so a missing row changes the contact rate, never the arms.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import pandas as pd

from churnclv.campaigns.errors import CampaignError

__all__ = ["CONTACT_COLUMNS", "ContactCounts", "reconcile_contacts", "unmatched_contacts", "validate_contacts"]

#: The columns of a contact log.
CONTACT_COLUMNS = ("customer_id", "campaign", "date", "action")


@dataclass(frozen=True)
class ContactCounts:
    """How the log's rows reconcile: ``rows`` = ``other_campaign`` + ``outside_window`` +
    ``unknown_customer`` + ``repeated`` + ``contacted_treated`` + ``contacted_controls``.

    ``not_logged`` counts treated customers of the cells the campaign ran with no row (missing rows
    or customers not reached); ``action_differs`` counts logged contacts whose action is not the
    scores' action (the scores' action defines the cell).
    """

    rows: int
    other_campaign: int
    outside_window: int
    unknown_customer: int
    repeated: int
    contacted_treated: int
    contacted_controls: int
    not_logged: int
    action_differs: int

    def to_dict(self) -> dict[str, int]:
        """As plain data (the report's table)."""
        return asdict(self)


def validate_contacts(log: pd.DataFrame) -> pd.DataFrame:
    """The log with ``customer_id``, ``campaign`` and ``action`` as strings and ``date`` as timestamps;
    a missing column or an unreadable date is a :class:`CampaignError` naming it."""
    missing = [c for c in CONTACT_COLUMNS if c not in log.columns]
    if missing:
        raise CampaignError(
            f"contact log is missing columns {missing}; fix: one row per contact with columns {list(CONTACT_COLUMNS)}"
        )
    out = log[list(CONTACT_COLUMNS)].copy()
    for c in ("customer_id", "campaign", "action"):
        if out[c].isna().any():
            raise CampaignError(
                f"contact log column {c} has {int(out[c].isna().sum())} empty values; fix: fill or drop them"
            )
        out[c] = out[c].astype(str)
    # text is read as ISO 8601 only, as every other date of the product: with format="mixed" pandas read
    # 05/10/2025 month first and 13/10/2025 day first in one column; offsets are converted to UTC
    text = not pd.api.types.is_datetime64_any_dtype(out["date"])
    dates = pd.to_datetime(out["date"], errors="coerce", format="ISO8601" if text else None, utc=text)
    bad = int(dates.isna().sum())
    if bad:
        raise CampaignError(
            f"contact log column date has {bad:,} values that are not ISO 8601 dates (dd/mm/yyyy or mm/dd/yyyy "
            "would be a guess at the order of day and month); fix: write YYYY-MM-DD (or YYYY-MM-DD HH:MM:SS)"
        )
    if getattr(dates.dt, "tz", None) is not None:
        dates = dates.dt.tz_convert("UTC").dt.tz_localize(None)
    out["date"] = dates
    return out


def reconcile_contacts(
    log: pd.DataFrame,
    plan: pd.DataFrame,
    campaign: str,
    start: pd.Timestamp,
    end: pd.Timestamp,
) -> tuple[pd.Series, ContactCounts]:
    """Which planned customers the log says were contacted, and the counts of every row set aside.

    Parameters
    ----------
    log : pandas.DataFrame
        The contact log (:data:`CONTACT_COLUMNS`).
    plan : pandas.DataFrame
        ``customer_id``, ``holdout`` and ``action`` (the scores' action) of every customer scored.
    campaign : str
        Rows of other campaigns are set aside.
    start, end : pandas.Timestamp
        Contacts dated outside ``[start, end]`` are set aside.

    Returns
    -------
    (pandas.Series, ContactCounts)
        A boolean per row of ``plan`` (contacted or not), and the counts.
    """
    log = validate_contacts(log)
    ours = log[log["campaign"] == campaign]
    inside = ours[(ours["date"] >= start) & (ours["date"] <= end)]
    ids = plan["customer_id"].astype(str)
    known = inside[inside["customer_id"].isin(ids)]
    first = known.drop_duplicates("customer_id")
    contacted = ids.isin(first["customer_id"])
    holdout = plan["holdout"].astype(bool).to_numpy()
    scored_action = pd.Series(plan["action"].astype(str).to_numpy(), index=ids.to_numpy())
    differs = int((first["action"].to_numpy() != scored_action.loc[first["customer_id"]].to_numpy()).sum())
    counts = ContactCounts(
        rows=len(log),
        other_campaign=len(log) - len(ours),
        outside_window=len(ours) - len(inside),
        unknown_customer=len(inside) - len(known),
        repeated=len(known) - len(first),
        contacted_treated=int((contacted.to_numpy() & ~holdout).sum()),
        contacted_controls=int((contacted.to_numpy() & holdout).sum()),
        not_logged=0,  # set by the evaluation, which knows the cells the campaign ran
        action_differs=differs,
    )
    return pd.Series(contacted.to_numpy(), index=plan.index), counts


def unmatched_contacts(
    log: pd.DataFrame, plan: pd.DataFrame, campaign: str, start: pd.Timestamp, end: pd.Timestamp
) -> str:
    """Why no row of ``log`` is a contact of a treated customer of ``plan`` (see :func:`reconcile_contacts`):
    how many rows each check set aside, with a hint where the dates read day first, or the ids with their
    leading zeros ignored, would have matched. Counts only: never an id or a value of the log."""
    checked = validate_contacts(log)
    ours = (checked["campaign"] == campaign).to_numpy()
    before = ours & (checked["date"] < start).to_numpy()
    after = ours & (checked["date"] > end).to_numpy()
    outside = before | after
    inside = ours & ~outside
    ids = plan["customer_id"].astype(str)
    logged = checked["customer_id"]
    known = logged.isin(ids).to_numpy()
    parts = [f"{ours.sum():,} of the log's {len(checked):,} rows are of this campaign (column campaign)"]
    if outside.any():
        part = (
            f"{outside.sum():,} of them are dated outside the window ({before.sum():,} before, {after.sum():,} after)"
        )
        parts.append(part)
    unknown = inside & ~known
    if unknown.any():
        part = f"{unknown.sum():,} dated inside it name no scored customer (column customer_id)"
        near = unknown & logged.str.lstrip("0").isin(set(ids.str.lstrip("0"))).to_numpy()
        if near.any():
            part += (
                f", {near.sum():,} of which match a scored customer once leading zeros are ignored: export "
                "customer_id as text, with its leading zeros"
            )
        parts.append(part)
    controls = inside & known & logged.isin(ids[plan["holdout"].astype(bool).to_numpy()]).to_numpy()
    if controls.any():
        parts.append(f"{controls.sum():,} name held-out customers, none a treated one")
    return "; ".join(parts)
