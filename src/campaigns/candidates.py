"""What a targeting may turn into an expected incremental revenue: the uplift model, or a value column of the scores.

A value candidate must be a column the batch writes with every score, as a number
(:data:`VALUE_COLUMNS`): ``churnclv score-batch --targeting`` reads it from the scores it writes, and
nothing else is known before the campaign. The other columns of a past campaign's evaluation are not:
its outcomes (``revenue``, ``retention``, ``purchases``) are measured after the as-of (a candidate
scaling them would learn from the result it is meant to predict) and its texts (``tier``, ``action``)
are no value.
"""

from __future__ import annotations

from collections.abc import Sequence

from churnclv.campaigns.errors import CampaignError
from churnclv.names import SCORE_NUMBERS

__all__ = ["CANDIDATES", "UPLIFT_MODEL", "VALUE_COLUMNS", "check_candidates"]

#: The candidate that is the uplift model; every other candidate names a value column of the scores.
UPLIFT_MODEL = "uplift_model"
#: The default candidates, simplest first (a tie in held-out profit goes to the earlier one).
CANDIDATES: tuple[str, ...] = ("expected_spend", "clv_at_risk", UPLIFT_MODEL)
#: The number columns every score carries (:data:`churnclv.names.SCORE_NUMBERS`): the value columns a
#: candidate may scale.
VALUE_COLUMNS: tuple[str, ...] = SCORE_NUMBERS


def check_candidates(names: Sequence[str]) -> list[str]:
    """``names`` as a list; a :class:`CampaignError` for one that is neither :data:`UPLIFT_MODEL` nor in
    :data:`VALUE_COLUMNS`, naming it and the allowed ones."""
    out = [str(n) for n in names]
    if not out:
        raise CampaignError("no candidate given; fix: e.g. candidates=('expected_spend', 'uplift_model')")
    bad = [n for n in out if n != UPLIFT_MODEL and n not in VALUE_COLUMNS]
    if bad:
        raise CampaignError(
            f"candidate {bad[0][:60]!r} is neither {UPLIFT_MODEL!r} nor a value column the batch writes with every "
            f"score {list(VALUE_COLUMNS)} (an outcome such as revenue is measured after the campaign and would leak "
            "its result into the decision; a text such as tier is no value); fix: choose among those"
        )
    return out
