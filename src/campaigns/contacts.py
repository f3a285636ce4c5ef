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

__all__ = ["CONTACT_COLUMNS", "ContactCounts", "reconcile_contacts", "validate_contacts"]

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
    dates = pd.to_datetime(out["date"], errors="coerce", format="mixed")
    bad = int(dates.isna().sum())
    if bad:
        raise CampaignError(f"contact log column date has {bad} values that are not dates; fix: write YYYY-MM-DD")
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
