"""Which rung of the playbook each customer gets: value cut points fitted on the training population.

A cell (tier, stage) with a ladder of rungs ranks its customers by **value**
(:func:`action_value`); rung ``j`` takes the customers whose value is at least ``cuts[j]``, the
first such rung wins and the last rung takes the rest. The cut points are fitted once, on the
training population, from the rungs' shares, then raised where an action would cover more than
``max_action_share`` of the training base: the action keeps its most valuable customers up to the
cap, the rest fall to the next rung of their cell. The cut points are stored with the policy, so a
customer scored alone gets the action the batch gives them, whoever else is scored.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import TypeAlias

import numpy as np
import pandas as pd

from churnclv.models.playbook import Playbook
from churnclv.models.stages import customer_value

__all__ = ["ActionCuts", "action_value", "assign_actions", "cuts_from_json", "cuts_to_json", "fit_action_cuts"]

logger = logging.getLogger(__name__)

#: Per (tier, stage) with more than one rung, the value cut point of every rung but the last.
ActionCuts = dict[tuple[str, str], np.ndarray]

# ties in value (e.g. no spend in the past year: one mid-rank) are broken by CLV; the weight is
# far below the percentile grid's resolution, so it changes no other order
_TIE_BREAK = 1e-6
# each round moves customers down a rung for good, so a few rounds per action suffice
_MAX_ROUNDS = 200


def action_value(clv_pct: np.ndarray, past_spend_pct: np.ndarray, no_purchase: np.ndarray) -> np.ndarray:
    """The value the rungs rank by: the customer value of the stages (the larger of the CLV and
    past-spend percentiles on the training population), ties broken by CLV; a customer with no
    purchase yet has a forecast but no spend behind it, and ranks below every buyer (by CLV)."""
    value = np.where(no_purchase, 0.0, customer_value(clv_pct, past_spend_pct))
    return value + _TIE_BREAK * clv_pct


#: Names per customer: an array of strings or a categorical of them (the fit's: a byte a customer).
Names: TypeAlias = np.ndarray | pd.Categorical


def _rungs(
    book: Playbook, cuts: Mapping[tuple[str, str], np.ndarray], tiers: Names, stages: Names, value: np.ndarray
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Per customer: the action (an index into the returned action ids) and whether the rung is the
    last of its cell. The cells are found once by integer codes: comparing and sorting object arrays
    of names cost ~75 s of a training at 10M customers."""
    t_codes, t_names = pd.factorize(tiers, use_na_sentinel=False)
    s_codes, s_names = pd.factorize(stages, use_na_sentinel=False)
    cell = t_codes.astype(np.int64) * max(len(s_names), 1) + s_codes
    order = np.argsort(cell, kind="stable")
    bounds = np.flatnonzero(np.diff(cell[order])) + 1
    action_ids: dict[str, int] = {}
    codes = np.empty(len(value), dtype=np.int64)
    last = np.ones(len(value), dtype=bool)
    for rows in np.split(order, bounds) if len(order) else []:
        tier, stage = str(t_names[t_codes[rows[0]]]), str(s_names[s_codes[rows[0]]])
        ladder = book.rungs(tier, stage)
        values = value[rows]
        rung = np.full(len(rows), len(ladder) - 1)
        for j in range(len(ladder) - 2, -1, -1):  # the first rung whose cut the value reaches wins
            rung[values >= cuts[(tier, stage)][j]] = j
        ladder_codes = np.array([action_ids.setdefault(r.action, len(action_ids)) for r in ladder], dtype=np.int64)
        codes[rows] = ladder_codes[rung]
        last[rows] = rung == len(ladder) - 1
    return codes, last, list(action_ids)


def assign_actions(
    book: Playbook, cuts: Mapping[tuple[str, str], np.ndarray], tiers: Names, stages: Names, value: np.ndarray
) -> np.ndarray:
    """The action text per customer (aligned arrays of tier names, stages and :func:`action_value`)."""
    codes, _, names = _rungs(book, cuts, tiers, stages, value)
    texts = {a.id: a.text for a in book.actions.values()}
    by_code = np.array([texts[a] for a in names], dtype=object) if names else np.empty(0, dtype=object)
    return np.asarray(by_code[codes], dtype=object)


def fit_action_cuts(
    book: Playbook, tiers: Names, stages: Names | None, value: np.ndarray
) -> tuple[ActionCuts, dict[str, float]]:
    """Cut points from the rungs' shares on the training population, raised to keep every action
    within ``max_action_share``; and the realized share of each action id on that population.

    ``stages`` None (a training frame without the stages' columns): every cell's cut points come
    from the whole population's values, and neither the cap nor the shares can be checked.
    """
    n = len(value)
    cuts: ActionCuts = {}
    for (tier, stage), ladder in book.cells.items():
        if len(ladder) == 1:
            cuts[(tier, stage)] = np.empty(0)
            continue
        pool = value if stages is None else value[(tiers == tier) & (stages == stage)]
        pool = pool if len(pool) else value  # a cell the training population leaves empty
        above = np.cumsum([r.share or 0.0 for r in ladder[:-1]])
        cuts[(tier, stage)] = np.quantile(pool, 1.0 - above) if len(pool) else np.zeros(len(above))
    if stages is None:
        return cuts, {}
    cap = book.max_action_share
    for _ in range(_MAX_ROUNDS):
        codes, last, names = _rungs(book, cuts, tiers, stages, value)
        counts = np.bincount(codes, minlength=len(names))
        over = [
            (int(c), a)
            for i, (a, c) in enumerate(zip(names, counts, strict=True))
            if c > cap * n and (~last & (codes == i)).any()
        ]
        if not over:
            break
        _, aid = max(over)
        mine = codes == names.index(aid)
        movable = value[~last & mine]
        keep = max(int(np.floor(cap * n)) - int((last & mine).sum()), 0)
        threshold = np.nextafter(np.sort(movable)[::-1][keep], np.inf) if keep < len(movable) else -np.inf
        for cell, ladder in book.cells.items():
            for j, rung in enumerate(ladder[:-1]):
                if rung.action == aid:
                    cuts[cell][j] = max(cuts[cell][j], threshold)
    else:  # pragma: no cover - each round moves customers down for good
        logger.warning("playbook cut points did not settle in %d rounds", _MAX_ROUNDS)
    codes, _, names = _rungs(book, cuts, tiers, stages, value)
    counts = np.bincount(codes, minlength=len(names))
    shares = {a: float(c / max(n, 1)) for a, c in sorted(zip(names, counts, strict=True)) if c > 0}
    for aid, share in shares.items():
        if share > cap:
            logger.warning(
                "action %r covers %.1f%% of the training base, above [playbook] max_action_share %.0f%%: it is "
                "the last rung of its cells (or their only action), so no cut point can shrink it; split those "
                "cells into rungs, or raise max_action_share",
                aid,
                100 * share,
                100 * cap,
            )
    return cuts, shares


def cuts_to_json(cuts: Mapping[tuple[str, str], np.ndarray]) -> dict[str, dict[str, list[float]]]:
    """Cut points as JSON: ``{tier: {stage: [...]}}`` for the cells with rungs."""
    out: dict[str, dict[str, list[float]]] = {}
    for (tier, stage), c in cuts.items():
        if len(c):
            out.setdefault(tier, {})[stage] = [float(v) for v in c]
    return out


def cuts_from_json(book: Playbook, saved: Mapping[str, Mapping[str, list[float]]]) -> ActionCuts:
    """The cut points :func:`cuts_to_json` wrote, checked against the playbook's ladders."""
    cuts: ActionCuts = {}
    for (tier, stage), ladder in book.cells.items():
        cuts[(tier, stage)] = np.asarray(saved.get(tier, {}).get(stage, []), dtype=np.float64)
        if len(cuts[(tier, stage)]) != len(ladder) - 1:
            raise ValueError(
                f"the saved policy has no cut points for the playbook's rungs of tier {tier!r} and stage "
                f"{stage!r}: the file is damaged or edited by hand; refit the policy"
            )
    return cuts
