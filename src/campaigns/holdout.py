r"""Stable control groups: a deterministic, hash-based holdout per campaign, balanced over strata.

Design (and the trade-off it settles). A customer's *draw* is a uniform number in [0, 1) from
SHA-256 of ``campaign + "\\x1f" + customer_id`` (UTF-8; the first 53 bits of the digest over 2**53).
It depends on nothing else, so it is the same in every run, every version, every process and on
every path (batch, HTTP, a notebook), and a new campaign id gives a fresh, independent draw.

1. **Draw**: a customer is held out when ``draw < holdout_share``. Nothing about other customers
   enters, so a customer stays in or out for the life of the campaign whoever joins later and
   whatever tier they move to; one customer can be assigned alone (:func:`is_held_out`, the HTTP
   path). Within every stratum the controls are a Bernoulli(share) sample, because the draw is
   independent of tier and action: the share holds per stratum within binomial noise.
2. **Top-up**: a Bernoulli sample can leave a small stratum (tier x action) without controls. A
   stratum of ``n >= 2`` customers with fewer than ``min(min_controls, n // 2)`` controls holds out
   its *new* customers with the lowest draws until it has them; one with no treated customer
   releases its new customer with the highest draw. These are the only assignments that depend on
   other customers.

Exact stratification (rank by draw inside each stratum and hold out ``round(share * n)``) would
give exact shares but makes every customer's arm depend on the whole stratum: a newcomer with a low
draw pushes a controlled customer into treatment, a tier change moves a customer into another
stratum's ranking, and one customer cannot be assigned without the base. We keep stability instead
and stratify in distribution, topping up only where a stratum would have no controls. The plan's
top-ups are made stable by carrying the previous plan forward (``previous=``): customers it holds
keep their arm and only newcomers are drawn or topped up. Without it, a recomputed plan can differ
from the first only in the top-ups of small strata (the ``assigned`` column says which).
"""

from __future__ import annotations

import hashlib
import itertools
import re
from collections.abc import Iterable, Sequence

import numpy as np
import pandas as pd

from churnclv.campaigns.errors import CampaignError

__all__ = [
    "MAX_CAMPAIGN_LENGTH",
    "NO_STRATUM",
    "PLAN_COLUMNS",
    "assign_holdout",
    "assigned_by",
    "check_campaign",
    "holdout_draws",
    "holdout_summary",
    "is_held_out",
]

_SEPARATOR = b"\x1f"  # cannot occur in a campaign id or a customer id that ingestion accepts
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
#: The longest campaign id (it is written into every row of a batch partition and every HTTP answer).
MAX_CAMPAIGN_LENGTH = 128
_BITS = 53  # a double holds 53 bits exactly
#: The stratum label of a customer whose stratum column is null.
NO_STRATUM = "(none)"
#: The columns of a plan, besides the strata.
PLAN_COLUMNS = ("customer_id", "campaign", "draw", "holdout", "assigned")


def check_campaign(campaign: str) -> str:
    """``campaign`` when it is a usable campaign id: non-blank text of at most
    :data:`MAX_CAMPAIGN_LENGTH` characters without control characters; else a :class:`CampaignError`."""
    if (
        not isinstance(campaign, str)
        or not campaign.strip()
        or len(campaign) > MAX_CAMPAIGN_LENGTH
        or _CONTROL.search(campaign)
    ):
        raise CampaignError(
            f"campaign id {campaign!r:.40}: must be a non-empty string of at most {MAX_CAMPAIGN_LENGTH} characters "
            "without control characters; fix: name the campaign, e.g. 'winback-2026-05'"
        )
    return campaign


def _check_campaign(campaign: str) -> bytes:
    return check_campaign(campaign).encode("utf-8")


def holdout_draws(campaign: str, customer_ids: Iterable[str]) -> np.ndarray:
    """Each customer's uniform draw in [0, 1) for ``campaign`` (see the module docstring)."""
    prefix = hashlib.sha256(_check_campaign(campaign) + _SEPARATOR)
    words = []
    for cid in customer_ids:
        h = prefix.copy()
        h.update(str(cid).encode("utf-8"))
        words.append(int.from_bytes(h.digest()[:8], "big") >> (64 - _BITS))
    return np.asarray(words, dtype=np.float64) / float(2**_BITS)


def is_held_out(campaign: str, customer_id: str, share: float) -> bool:
    """Whether one customer is a control of ``campaign`` by the draw alone (no top-up: the HTTP path)."""
    return bool(holdout_draws(campaign, [customer_id])[0] < share)


def assigned_by(campaign: str, customer_ids: Iterable[str], holdout: np.ndarray, share: float) -> np.ndarray:
    """How each arm of a published plan was set (the ``assigned`` column, which batch partitions do not
    store): ``draw`` where the arm is the draw's at ``share``, else ``top_up`` (held out) or ``release``."""
    by_draw = holdout_draws(campaign, customer_ids) < share
    held = np.asarray(holdout, dtype=bool)
    return np.where(held == by_draw, "draw", np.where(held, "top_up", "release")).astype(object)


def _strata_labels(scores: pd.DataFrame, strata: Sequence[str]) -> pd.Series:
    if not strata:
        return pd.Series(NO_STRATUM, index=scores.index)
    parts = [scores[c].astype("string").fillna(NO_STRATUM) for c in strata]
    label = parts[0]
    for p in parts[1:]:
        label = label + " | " + p
    return label.astype(object)


def _check_scores(scores: pd.DataFrame, strata: Sequence[str]) -> pd.Series:
    missing = [c for c in ("customer_id", *strata) if c not in scores.columns]
    if missing:
        raise CampaignError(
            f"scores are missing columns {missing} needed for the holdout; fix: pass a scores frame with "
            "customer_id and the [campaigns] strata columns (or change strata)"
        )
    ids = scores["customer_id"]
    if ids.isna().any():
        raise CampaignError("scores.customer_id has null ids; fix: drop or fill the rows without a customer_id")
    ids = ids.astype(str)
    if ids.duplicated().any():
        raise CampaignError(
            f"scores.customer_id has {int(ids.duplicated().sum())} repeated ids; fix: one row per customer "
            "(the scores of one as-of)"
        )
    return ids


def _previous_arms(previous: pd.DataFrame, campaign: str) -> pd.DataFrame:
    missing = [c for c in ("customer_id", "holdout") if c not in previous.columns]
    if missing:
        raise CampaignError(f"previous plan is missing columns {missing}; fix: pass a plan from assign_holdout")
    if "campaign" in previous.columns and (previous["campaign"].astype(str) != campaign).any():
        raise CampaignError(
            "previous plan belongs to another campaign; fix: pass the plan of the same campaign (a new campaign "
            "draws a fresh holdout)"
        )
    prev = previous.assign(customer_id=previous["customer_id"].astype(str)).drop_duplicates("customer_id")
    if "assigned" not in prev.columns:
        prev = prev.assign(assigned="draw")
    return prev.set_index("customer_id")[["holdout", "assigned"]]


def assign_holdout(
    scores: pd.DataFrame,
    campaign: str,
    *,
    share: float = 0.1,
    strata: Sequence[str] = ("tier", "action"),
    min_controls: int = 1,
    previous: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """The holdout plan of ``campaign`` for the customers of ``scores``.

    Parameters
    ----------
    scores : pandas.DataFrame
        One row per customer: ``customer_id`` and the ``strata`` columns.
    campaign : str
        The campaign id; every campaign draws its own holdout.
    share : float
        The share held out, in (0, 0.5].
    strata : sequence of str
        Columns the holdout is balanced over (null values form their own stratum).
    min_controls : int
        Controls every stratum of two or more customers gets at least (capped at half the stratum).
    previous : pandas.DataFrame, optional
        An earlier plan of the same campaign: its customers keep their arm.

    Returns
    -------
    pandas.DataFrame
        In the order of ``scores``: ``customer_id``, ``campaign``, the strata, ``draw``, ``holdout``
        (bool) and ``assigned`` (``draw``, ``top_up`` or ``release``, kept from ``previous``).
    """
    if not 0 < share <= 0.5:
        raise CampaignError(f"holdout share {share!r}: must be in (0, 0.5]; fix: e.g. 0.1 for 10 %")
    if min_controls < 0:
        raise CampaignError(f"min_controls {min_controls!r}: must be >= 0; fix: e.g. 1")
    strata = list(strata)
    ids = _check_scores(scores, strata)
    draw = holdout_draws(campaign, ids)
    holdout = draw < share
    assigned = np.full(len(ids), "draw", dtype=object)
    new = np.ones(len(ids), dtype=bool)
    if previous is not None:
        prev = _previous_arms(previous, campaign)
        known = ids.isin(prev.index).to_numpy()
        rows = prev.loc[ids[known]]
        holdout[known] = rows["holdout"].astype(bool).to_numpy()
        assigned[known] = rows["assigned"].astype(str).to_numpy()
        new = ~known
    label = _strata_labels(scores, strata).to_numpy()
    _balance(label, draw, holdout, assigned, new, min_controls)
    plan = pd.DataFrame({"customer_id": ids.to_numpy(), "campaign": campaign})
    for c in strata:
        plan[c] = scores[c].to_numpy()
    plan["draw"] = draw
    plan["holdout"] = holdout
    plan["assigned"] = assigned
    return plan


def _balance(
    label: np.ndarray, draw: np.ndarray, holdout: np.ndarray, assigned: np.ndarray, new: np.ndarray, min_controls: int
) -> None:
    """Top up strata short of controls and release strata without treated customers, from newcomers only."""
    codes, _ = pd.factorize(label)
    order = np.lexsort((draw, codes))  # by stratum, then by draw
    bounds = np.flatnonzero(np.r_[True, codes[order][1:] != codes[order][:-1], True])
    for lo, hi in itertools.pairwise(bounds):
        rows = order[lo:hi]
        n = rows.size
        if n < 2:
            continue
        want = min(min_controls, n // 2) - int(holdout[rows].sum())
        if want > 0:
            pick = rows[new[rows] & ~holdout[rows]][:want]  # lowest draws first
            holdout[pick] = True
            assigned[pick] = "top_up"
        if holdout[rows].all():
            free = rows[new[rows]]
            if free.size:
                holdout[free[-1]] = False
                assigned[free[-1]] = "release"


def holdout_summary(plan: pd.DataFrame, strata: Sequence[str] = ("tier", "action")) -> pd.DataFrame:
    """Customers, controls and the control share per stratum of a plan (null strata as :data:`NO_STRATUM`)."""
    label = {c: plan[c].astype("string").fillna(NO_STRATUM) for c in strata}
    frame = pd.DataFrame({**label, "holdout": plan["holdout"].astype(bool)})
    if not strata:
        frame["stratum"] = NO_STRATUM
        strata = ["stratum"]
    out = frame.groupby(list(strata), sort=True)["holdout"].agg(customers="size", controls="sum").reset_index()
    out["share"] = out["controls"] / out["customers"]
    return out
