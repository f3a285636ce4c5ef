"""The phrase book: every feature family in plain words, with its topic and its risk direction.

One :class:`Family` per feature family of :mod:`churnclv.features.catalogue` and the BTYD columns the
hybrid models read: its phrase (templates of :mod:`churnclv.models.reason_text`, with an
alternative for a missing value), its topic (features of one topic say the same thing in words, so a
customer gets at most one reason per topic), whether a high value raises or lowers the churn risk
(for the RFM facts, which have no contribution to take a sign from) and whether it describes
purchases (then, for a customer with no purchase yet, it says only that).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from churnclv.models.reason_text import Phrase, PhraseText

__all__ = [
    "BOOK",
    "FIRST_SEEN",
    "NO_PURCHASE",
    "NO_PURCHASE_TOPIC",
    "TROUBLE_EVENTS",
    "Family",
    "family_of",
    "topic_of",
]

#: Event types a customer has with the shop when something is wrong: more of them raises the risk.
TROUBLE_EVENTS: frozenset[str] = frozenset(
    {"support_ticket", "complaint", "unsubscribe", "chargeback", "cancellation", "refund_request"}
)
#: The topic of every purchase feature of a customer with no purchase yet.
NO_PURCHASE_TOPIC = "no purchase"


@dataclass(frozen=True)
class Family:
    """A feature family of the phrase book.

    ``topic`` is a template over the pattern's named groups (``"{event}"``); ``risk`` is +1 when a
    high value raises the churn risk, -1 when it lowers it, 0 when it depends; ``trouble_flips``
    reverses ``risk`` for the event types in :data:`TROUBLE_EVENTS`; ``purchases``: the feature
    describes purchases (for a customer with none it says only "no purchase yet").
    """

    phrase: Phrase
    topic: str
    risk: int
    purchases: bool = False
    trouble_flips: bool = False

    def risk_of(self, groups: Mapping[str, str | None]) -> int:
        """The risk direction of a high value of one feature of the family."""
        flip = self.trouble_flips and groups.get("event") in TROUBLE_EVENTS
        return -self.risk if flip else self.risk


def _t(text: str, low: float | None = None, high: float | None = None, missing: bool | None = None) -> PhraseText:
    return PhraseText(text, low, high, missing)


def _family(
    pattern: str, topic: str, risk: int, *texts: PhraseText | str, purchases: bool = True, trouble: bool = False
) -> Family:
    alts = tuple(t if isinstance(t, PhraseText) else PhraseText(t) for t in texts)
    # the last resort of every family, so that no value is ever shown raw
    alts += (_t(f"{topic} not recorded", missing=True),)
    return Family(Phrase(pattern, alts), topic, risk, purchases, trouble)


_ZERO = (-0.005, 0.005)  # bounds of "no change" for an amount, and for a ratio
_STEADY = (0.995, 1.005)
_NONE_YET = _t("no purchase yet", missing=True)


def _once(**condition: Any) -> PhraseText:
    # one wording for every feature that says "a single purchase day" (a reason never repeats a text)
    return _t("bought only once so far", **condition)


_OUTLOOK = "the purchase outlook"

#: "No purchase yet", the lead reason of a customer with no purchase (the first that formats).
NO_PURCHASE: tuple[PhraseText, ...] = (_t("signed up {tenure_days:ago}, no purchase yet"), _t("no purchase yet"))
#: The lead reason of a customer with transaction lines but no purchase (zero amounts, returns only):
#: their tenure counts from their first line, so "signed up" would invent a sign-up.
FIRST_SEEN: tuple[PhraseText, ...] = (
    _t("first seen {tenure_days:ago}, no paid purchase yet"),
    _t("no paid purchase yet"),
)

#: The phrase book: first full match of the feature name wins (specific patterns before generic ones).
BOOK: tuple[Family, ...] = (
    _family(
        "days_since_last_purchase_rel_gap",
        "last purchase",
        +1,
        # missing: a single purchase day (no usual gap); the other features say "only once"
        _t("last purchase {days_since_last_purchase:ago}", missing=True),
        _NONE_YET,
        "no purchase for {days_since_last_purchase:days}, {value:gap}",
        "{value:gap} since the last purchase",
    ),
    _family(
        "days_since_last_purchase",
        "last purchase",
        +1,
        _NONE_YET,
        _t("last purchase {value:ago}, {days_since_last_purchase_rel_gap:gap}", high=29),
        _t("last purchase {value:ago}", high=29),
        "no purchase for {value:days}, {days_since_last_purchase_rel_gap:gap}",
        "no purchase for {value:days}",
    ),
    _family(
        "recency",
        "purchase history",
        -1,
        _NONE_YET,
        _once(high=0),
        "bought over a span of {value:days}",
    ),
    _family("T", "tenure", 0, _NONE_YET, "first purchase {value:ago}"),
    _family(
        "frequency",
        "purchase history",
        -1,
        _NONE_YET,
        _once(high=0),
        _t("1 repeat purchase so far", high=1),
        "{value:num} repeat purchases so far",
    ),
    _family(
        "monetary_value",
        "basket",
        0,
        _NONE_YET,
        _t("no spend on repeat purchases yet", high=0),
        "spends about {value:money} per repeat purchase",
    ),
    _family(
        "n_lines",
        "purchase history",
        -1,
        _t("no purchase yet", high=0),
        _t("a single order line so far", high=1),
        "{value:num} order lines so far, returns included",
    ),
    _family(
        "n_orders",
        "purchase history",
        -1,
        _t("order count not recorded", missing=True),
        _t("no order yet", high=0),
        _t("a single order so far", high=1),
        "{value:num} orders so far",
    ),
    _family(
        "n_purchase_days",
        "purchase history",
        -1,
        _t("no purchase yet", high=0),
        _once(high=1),
        "bought on {value:num} different days so far",
    ),
    _family("gross_spend", "spend so far", -1, _t("no spend so far", high=0), "spent {value:money} in total"),
    _family(
        "net_spend",
        "spend so far",
        -1,
        _t("returned as much as they bought", high=0),
        "spent {value:money} in total",
    ),
    _family(
        r"purchase_days_trend_(?P<tw>\d+)d",
        "purchase trend",
        -1,
        _t("no change in how often they buy over the last {tw} days", *_STEADY),
        _t("bought less often in the last {tw} days than in the {tw} before", high=1),
        "bought more often in the last {tw} days than in the {tw} before",
    ),
    _family(
        r"net_spend_trend_(?P<tw>\d+)d",
        "spend trend",
        -1,
        _t("no change in spend over the last {tw} days", *_STEADY),
        _t("spending almost stopped in the last {tw} days", high=0.05),
        _t("spend down {pct:.0f}% in the last {tw} days on the {tw} before", high=1),
        _t("spend up {pct:.0f}% in the last {tw} days on the {tw} before", high=3),
        "spent far more in the last {tw} days than in the {tw} before",
    ),
    _family(
        r"purchase_days_(?P<w>\d+)d",
        "recent purchases",
        -1,
        _t("no purchase in the last {w} days", high=0),
        _t("bought on 1 day in the last {w} days", high=1),
        "bought on {value:num} days in the last {w} days",
    ),
    _family(
        r"net_spend_(?P<w>\d+)d",
        "recent spend",
        -1,
        _t("returned more than they bought in the last {w} days", high=-0.005),
        _t("no spend in the last {w} days", *_ZERO),
        "spent {value:money} in the last {w} days",
    ),
    _family(
        "gap_mean_days",
        "buying rhythm",
        +1,
        _once(missing=True),  # with no purchase at all, every purchase feature says only that
        "usually buys every {value:days}",
    ),
    _family(
        "gap_std_days",
        "buying rhythm",
        0,
        _t("too few purchases yet to show a buying rhythm", missing=True),
        "time between purchases varies by about {value:days}",
    ),
    _family(
        "n_returns",
        "returns",
        +1,
        _t("no returns so far", high=0),
        _t("returned 1 item", high=1),
        "returned {value:num} items",
    ),
    _family("returned_spend", "returns", +1, _t("no returns so far", high=0), "returned goods worth {value:money}"),
    _family(
        "return_share",
        "returns",
        +1,
        _t("nothing bought to return yet", missing=True),
        _t("no returns so far", high=0),
        "returned {value:.0%} of what they bought",
    ),
    _family("tenure_days", "tenure", 0, _t("joined today", high=0), "customer for {value:days}", purchases=False),
    _family(
        "n_channels",
        "channels",
        -1,
        _t("sales channels not recorded", missing=True),
        _t("no purchase yet", high=0),
        _t("buys through a single channel", high=1),
        "buys through {value:num} channels",
    ),
    _family(
        "n_categories",
        "categories",
        -1,
        _t("product categories not recorded", missing=True),
        _t("no purchase yet", high=0),
        _t("buys in a single category", high=1),
        "buys in {value:num} categories",
    ),
    _family(
        "btyd_p_alive",
        _OUTLOOK,
        -1,
        _t("their buying pattern says almost surely still an active customer", low=0.995),
        _t("their buying pattern says almost surely no longer buying", high=0.005),
        "their buying pattern says {value:.0%} likely still an active customer",
    ),
    _family(
        "btyd_p_churn",
        _OUTLOOK,
        +1,
        _t("their buying pattern makes a purchase in the coming period very unlikely", low=0.995),
        _t("their buying pattern makes a purchase in the coming period near certain", high=0.005),
        "their buying pattern gives a {complement:.0%} chance of a purchase in the coming period",
    ),
    _family(
        "btyd_expected_purchases",
        _OUTLOOK,
        -1,
        _t("their buying pattern expects hardly any purchase in the coming period", high=0.05),
        _t("their buying pattern expects less than one purchase in the coming period", high=0.75),
        _t("their buying pattern expects about one purchase in the coming period", high=1.5),
        "their buying pattern expects about {value:num} purchases in the coming period",
    ),
    _family(
        "btyd_expected_spend",
        _OUTLOOK,
        -1,
        _t("their buying pattern expects hardly any spend in the coming period", high=0.5),
        "their buying pattern expects spend of about {value:money} in the coming period",
    ),
    _family(
        r"(?P<event>.+)_trend_(?P<tw>\d+)d",
        "{event}",
        -1,
        _t("{event_many} not tracked", missing=True),
        _t("no change in {event_many} over the last {tw} days", *_STEADY),
        _t("fewer {event_many} in the last {tw} days than in the {tw} before", high=1),
        "more {event_many} in the last {tw} days than in the {tw} before",
        purchases=False,
        trouble=True,
    ),
    _family(
        r"(?P<event>.+)_count_(?P<ew>\d+)d",
        "{event}",
        -1,
        _t("{event_many} not tracked", missing=True),
        _t("no {event_many} in the last {ew} days", high=0),
        _t("1 {event_one} in the last {ew} days", high=1),
        "{value:num} {event_many} in the last {ew} days",
        purchases=False,
        trouble=True,
    ),
    _family(
        r"(?P<event>.+)_days_since_last",
        "{event}",
        +1,
        _t("no {event_one} so far", missing=True),
        "last {event_one} {value:ago}",
        purchases=False,
        trouble=True,
    ),
    _family(
        "attr_(?P<attr>.+)",
        "{attr}",
        0,
        _t("{attr} not recorded", missing=True),
        "{attr} is {value}",
        purchases=False,
    ),
)

_COMPILED = tuple((re.compile(f.phrase.feature), f) for f in BOOK)


def family_of(feature: str) -> tuple[Family, dict[str, str | None]] | None:
    """The book's family of a feature and the pattern's groups, or None for a feature it does not know."""
    for pattern, family in _COMPILED:
        m = pattern.fullmatch(feature)
        if m is not None:
            return family, m.groupdict()
    return None


def topic_of(feature: str) -> str:
    """The feature's topic (features of one topic say the same thing in words); a feature the book
    does not know is a topic of its own."""
    found = family_of(feature)
    return found[0].topic.format_map(found[1]) if found is not None else feature
