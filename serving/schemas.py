"""The HTTP schema of the scoring service: pydantic models for requests and answers.

Validation happens here, once, at the edge: a request that passes these models is turned into clean
frames (:mod:`churnclv.schema`) and scored without further checks. The value rules are the ingestion's,
read from :mod:`churnclv.values`: ids are non-blank text, timestamps are ISO 8601 strings (an offset is
converted to UTC, then dropped; years 1900-2200 in UTC), amounts and values are finite numbers with
``0 or 1e-9 <= |x| <= 1e9``. A value that breaks a rule is a 4xx answer naming the field, never a 500.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    WithJsonSchema,
    model_validator,
)

from churnclv.models.marketing_config import RISK_BAND_NAMES
from churnclv.values import (
    ID_PADDING,
    ISO_DATE_START,
    MAX_ABS_AMOUNT,
    MAX_ID_LENGTH,
    iso_day,
    number_problem,
    plausible_date,
    utc_naive,
)

MAX_TEXT_LENGTH = 256
MAX_ATTRIBUTES = 50
RESERVED_ATTRIBUTES = ("customer_id", "signup_ts")

_DATE_START = re.compile(ISO_DATE_START)
_TIMESTAMP_FORM = "an ISO 8601 string such as 2025-09-14 or 2025-09-14T10:31:00Z"
_DAY_FORM = "a calendar date written YYYY-MM-DD, e.g. 2025-10-02"  # an as-of: a datetime is refused


def _utc_naive(value: dt.datetime) -> dt.datetime:
    # ValueRuleError is a ValueError: pydantic reports it on the field (an OverflowError would be a 500)
    return utc_naive(value, "timestamp")


def _number_rule(column: str) -> Callable[[float], float]:
    """The number rule of ``column`` (the schema's ge/le repeat the bounds in the OpenAPI document;
    this adds 0 < |x| < 1e-9, which a JSON schema cannot say)."""

    def check(value: float) -> float:
        problem = number_problem(value, column)
        if problem:
            raise ValueError(problem)
        return value

    return check


def _iso_text(value: object) -> object:
    """Refuse numbers (unix seconds: 0 is 'epoch'), and text that does not start with its date
    (``"0"``, ``"1700000000"``: pydantic would read them as unix seconds): dates and timestamps are
    ISO 8601 strings starting with ``YYYY-MM-DD``, as in ingestion (:data:`ISO_DATE_START`)."""
    value = _not_number(value)
    if isinstance(value, str) and not _DATE_START.match(value.strip()):
        raise ValueError("must be an ISO 8601 string starting with its date, such as 2025-09-14T10:31:00Z")
    return value


def _not_number(value: object, form: str = _TIMESTAMP_FORM) -> object:
    """Refuse a number, saying the ``form`` the field takes."""
    if isinstance(value, (int, float)):
        # a ValueError: pydantic turns it into a field error (a TypeError would be a 500)
        raise ValueError(f"must be {form}, not a number")
    return value


def _json_number(value: object) -> object:
    """Refuse ``true``/``false`` and text where a number is expected: pydantic would read them as 1 and 0,
    and ``"1_0"`` as 10 (a JSON number is what the schema documents; send ``10``, not ``"10"``)."""
    if isinstance(value, bool):
        raise ValueError("must be a number, not true or false")
    if isinstance(value, str):
        raise ValueError("must be a JSON number such as 24.9, not text in quotes")
    return value


def _iso_day(value: object) -> object:
    """An as-of is a day written ``YYYY-MM-DD``: ``10/02/2025`` would be a guess at the order of day and
    month; the error says the form to use (pydantic's own names only the character it stopped at)."""
    value = _not_number(value, _DAY_FORM)
    if isinstance(value, str):
        try:
            return iso_day(value)
        except ValueError:
            raise ValueError(f"must be {_DAY_FORM}") from None
    return value


def _trim_spaces(value: object) -> object:
    """Spaces around an id are dropped, as ingestion's TRIM drops them: ``" 00051 "`` is ``00051``."""
    return value.strip(ID_PADDING) if isinstance(value, str) else value


def _trim_text(value: object) -> object:
    """Spaces around a text value are dropped and a blank one is missing, as validation's TRIM and the
    Python API's frames (which score it) drop them: the answer's warnings judge the value scored."""
    value = _trim_spaces(value)
    return None if value == "" else value


def _not_blank(value: str) -> str:
    if not value.strip():
        raise ValueError("must not be blank")
    return value


Timestamp = Annotated[
    dt.datetime,
    BeforeValidator(_iso_text),
    AfterValidator(_utc_naive),
    Field(
        description="ISO 8601 timestamp; an offset is converted to UTC, a naive one is taken as UTC",
        examples=["2025-09-14T10:31:00Z"],
    ),
]
AsOfDate = Annotated[
    dt.date,
    BeforeValidator(_iso_day),
    AfterValidator(plausible_date),
    Field(description="The as-of calendar date (UTC): rows up to the end of this day count", examples=["2025-10-02"]),
]
CustomerId = Annotated[
    str,
    # the constraints before the trimming validator: pydantic then checks them on the string it
    # returns as a string ("at most 128 characters"), not as a sequence ("at most 128 items")
    StringConstraints(min_length=1, max_length=MAX_ID_LENGTH),
    BeforeValidator(_trim_spaces),
    AfterValidator(_not_blank),
    Field(description="The customer's id, as text (leading zeros are kept)", examples=["00000042"]),
]
Text = Annotated[str, StringConstraints(max_length=MAX_TEXT_LENGTH)]
# an optional text value (order_id, channel, category, an attribute) as validation keeps it: trimmed, blank
# is missing; the duplicate-line rule and the warnings then judge the value the batch would
OptionalText = Annotated[Text | None, BeforeValidator(_trim_text)]
AttributeValue = OptionalText
Amount = Annotated[
    float,
    BeforeValidator(_json_number),
    AfterValidator(_number_rule("amount")),
    Field(
        allow_inf_nan=False,
        ge=-MAX_ABS_AMOUNT,
        le=MAX_ABS_AMOUNT,
        description="Line amount; negative for a return; 0 or 1e-9 <= |amount| <= 1e9",
        examples=[24.9],
    ),
]
AttributeName = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")]


class _Strict(BaseModel):
    # a misspelt field must not be dropped silently
    model_config = ConfigDict(extra="forbid")


class Transaction(_Strict):
    """One transaction line (a purchase, or a return when ``amount`` is negative)."""

    ts: Timestamp
    amount: Amount
    order_id: OptionalText = None
    channel: OptionalText = None
    category: OptionalText = None


class Event(_Strict):
    """One engagement event (``login``, ``session``, ``email_open``, ... open-ended)."""

    ts: Timestamp
    event_type: Annotated[str, StringConstraints(min_length=1, max_length=64), AfterValidator(_not_blank)]
    value: (
        Annotated[
            float,
            BeforeValidator(_json_number),
            AfterValidator(_number_rule("value")),
            Field(allow_inf_nan=False, ge=-MAX_ABS_AMOUNT, le=MAX_ABS_AMOUNT),
        ]
        | None
    ) = None


class CustomerHistory(_Strict):
    """A customer with the history to score them on.

    A customer with no transaction and no ``signup_ts``, or none on or before ``as_of``, gets an
    error entry in the answer (the others are scored). Rows dated after ``as_of`` are ignored
    (point in time), as the batch job ignores them; the answer counts them.
    """

    customer_id: CustomerId
    signup_ts: Timestamp | None = None
    attributes: dict[AttributeName, AttributeValue] = Field(
        default_factory=dict,
        max_length=MAX_ATTRIBUTES,
        description='Categorical attributes, e.g. {"region": "north"}; the ones the model reads are used, the '
        "answer's warnings name the others and the values it was not trained with",
    )
    # fail_fast: the first bad row of a list is its error (8 MB of bad rows made 690,000 errors, a
    # 150 MB answer, and gigabytes of memory for a few requests at once)
    transactions: list[Transaction] = Field(default_factory=list, fail_fast=True)
    events: list[Event] = Field(default_factory=list, fail_fast=True)

    @model_validator(mode="after")
    def _no_reserved_attributes(self) -> CustomerHistory:
        reserved = sorted(set(self.attributes) & set(RESERVED_ATTRIBUTES))
        if reserved:
            raise ValueError(f"attributes {reserved} are reserved names: send them as fields, not attributes")
        return self


class ScoreRequest(_Strict):
    """Body of ``POST /score``."""

    as_of: AsOfDate
    customers: list[CustomerHistory] = Field(min_length=1, fail_fast=True)


class ScoreByIdRequest(_Strict):
    """Body of ``POST /score_by_id``."""

    customer_ids: list[CustomerId] = Field(min_length=1, fail_fast=True)


class CustomerScore(BaseModel):
    """Scores of one customer as of a date, over the model's horizon: the batch job's row, and more."""

    customer_id: str
    as_of: dt.date = Field(description="The as-of date of the scores")
    p_churn: float = Field(description="Probability of no purchase within the horizon")
    p_alive: float = Field(
        description="Probability that the customer is still active, at least 1 - p_churn; for a sign-up "
        "without a purchase, and under BG/NBD a buyer without a repeat purchase, 1 - p_churn"
    )
    expected_purchases: float = Field(description="Expected purchase days within the horizon")
    expected_spend: float = Field(description="Expected net spend within the horizon")
    clv: float = Field(description="Discounted customer lifetime value")
    spend_p10: float | None = Field(
        description="Realised net spend within the horizon: 10 % chance of less (currency; a predictive interval "
        "from the BTYD model's draws, with the chance of spending nothing set to p_churn; 0 whenever p_churn >= 0.1)"
    )
    spend_p50: float | None = Field(
        description="Realised net spend within the horizon: the median (currency; 0 when p_churn >= 0.5, or when "
        "the BTYD model's draws hold no purchase)"
    )
    spend_p90: float | None = Field(
        description="Realised net spend within the horizon: 90 % chance of at most this (currency)"
    )
    clv_p10: float | None = Field(
        description="Discounted spend over the CLV months: 10 % chance of less (currency; null unless the model's "
        "clv_intervals is on)"
    )
    clv_p50: float | None = Field(
        description="Discounted spend over the CLV months: the median (currency; null as clv_p10)"
    )
    clv_p90: float | None = Field(
        description="Discounted spend over the CLV months: 90 % chance of at most this (currency; null as clv_p10)"
    )
    expected_next_purchase_days: float | None = Field(
        description="Days from as-of by which the customer has bought with 50 % probability, consistent with "
        "p_churn (beyond the horizon when p_churn > 0.5; null when not within 365 days)"
    )
    expected_next_purchase_date: dt.date | None = Field(
        None, description="as_of plus those days rounded up, at least the next day (null when not within 365 days)"
    )
    next_purchase_days_p80: float | None = Field(
        description="Days from as-of by which the customer has bought with 80 % probability (null when not "
        "within 365 days)",
    )
    next_purchase_date_p80: dt.date | None = Field(
        None, description="as_of plus those days rounded up, at least the next day (null when not within 365 days)"
    )
    historic_clv: float = Field(
        description="Net spend to date, returns subtracted (currency); negative when returns exceed purchases"
    )
    total_clv: float = Field(description="historic_clv + clv (currency)")
    avg_order_value: float | None = Field(
        description="Net spend to date per purchase day (currency; null without a purchase)"
    )
    avg_days_between_orders: float | None = Field(
        description="Mean days between purchase days (null with fewer than 2 purchase days)"
    )
    risk_band: str = Field(
        description="Churn risk band of p_churn, at the tier config's [risk_bands] cut points",
        json_schema_extra={"enum": list(RISK_BAND_NAMES)},
    )
    clv_at_risk: float = Field(description="p_churn * clv: the CLV at stake, weighted by the churn risk (currency)")
    acquisition_cost: float | None = Field(
        description="Acquisition cost from the tier config's [acquisition_cost] (currency; null when unknown)"
    )
    net_clv: float | None = Field(description="clv - acquisition_cost (currency; null when the cost is unknown)")
    growth_score: float = Field(description="Growth potential in [0, 1], the score the tiers cut")
    tier: str = Field(description="Growth-potential tier, e.g. Gold")
    tier_level: int = Field(description="0 = bottom tier; higher is better")
    stage: str = Field(description="Lifecycle stage, e.g. new, active, lapsing")
    action: str = Field(description="What to do with the customer, from the tier playbook")
    reasons: list[str] = Field(description="Why, in plain words")
    campaign: str | None = Field(
        None,
        description="The campaign whose holdout the service serves (CHURNCLV_CAMPAIGN, else the snapshot's); "
        "null when there is none",
    )
    holdout: bool | None = Field(
        None,
        description="true: the customer is a control of that campaign: do not contact them (a stable, hash-based "
        "draw; the batch partition's arm where the customer is in it); false: treat; null without a campaign",
    )
    model_version: str
    # the targeting's decision (CHURNCLV_TARGETING; churnclv.serving.targeting_decisions): the batch's columns,
    # in its order
    contact: bool | None = Field(
        None,
        description="true: contact this customer: expected_profit > 0, an action that is a contact, and not held "
        "out by the campaign; null without a targeting (CHURNCLV_TARGETING)",
    )
    expected_incremental_revenue: float | None = Field(
        None,
        description="Revenue a contact is expected to add over the campaign window, from the targeting's chosen "
        "candidate (currency; null without a targeting)",
    )
    expected_profit: float | None = Field(
        None,
        description="margin x expected_incremental_revenue - cost of the customer's action, with the costs and "
        "margin the targeting was fitted with (currency; null without a targeting)",
    )
    targeting: str | None = Field(
        None, description="The targeting's id, <candidate>-<12 hex digits> (null without a targeting)"
    )
    rows_after_as_of: int = Field(0, description="History rows dated after as_of, ignored")


class CustomerError(BaseModel):
    """A customer that could not be scored; the other customers of the request are."""

    customer_id: str
    error: str = Field(description="Why the customer could not be scored, and what to do")


class ServiceWarning(BaseModel):
    """Something about the whole answer the caller should know; the scores are still given."""

    code: Literal[
        "as_of_far_from_training", "duplicate_lines_dropped", "unknown_attributes", "unseen_attribute_values"
    ] = Field(
        description="as_of_far_from_training: as_of lies further from the model's training as-of than "
        "CHURNCLV_AS_OF_WARNING_DAYS, before or after it; duplicate_lines_dropped: transaction lines that "
        "repeat an earlier line of the same customer (same order_id, identical values) were dropped, as the "
        "batch's validation rejects them; unknown_attributes: attributes the model does not read were ignored "
        "(the message names them); unseen_attribute_values: attribute values the model was not trained with "
        "were scored as missing (the message names them)"
    )
    message: str


class ScoreResponse(BaseModel):  # noqa: D101 - a docstring would change the OpenAPI document
    as_of: dt.date
    model_version: str
    scores: list[CustomerScore | CustomerError] = Field(
        description="One entry per customer, in request order: scores, or an error for that customer"
    )
    warnings: list[ServiceWarning] = Field(default_factory=list)


class ScoreByIdResponse(BaseModel):  # noqa: D101 - a docstring would change the OpenAPI document
    as_of: dt.date = Field(description="The as-of date of the feature snapshot the scores use")
    snapshot: str = Field(description="The snapshot partition, e.g. dt=2025-10-02")
    model_version: str
    scores: list[CustomerScore | CustomerError] = Field(
        description="One entry per id, in request order: scores, or an error for that id"
    )
    warnings: list[ServiceWarning] = Field(default_factory=list)


class ProblemDetail(BaseModel):
    """One broken rule: where (``loc``: the field's path in the body), what, and its kind."""

    loc: list[str | int]
    msg: str
    type: str


class Problem(BaseModel):
    """Every error answer: what went wrong and the fix, and the fields at fault (empty when none)."""

    error: str
    detail: list[ProblemDetail] = Field(default_factory=list)


# BentoML's OpenAPI 3.0 document turns pydantic's anyOf [T, null] into T alone, so a null answer
# broke the published schema: say "nullable" explicitly
NullableText = Annotated[str | None, WithJsonSchema({"type": "string", "nullable": True})]
NullableInt = Annotated[int | None, WithJsonSchema({"type": "integer", "nullable": True})]


class ModelInfo(BaseModel):  # noqa: D101 - a docstring would change the OpenAPI document
    name: str
    version: str
    alias: NullableText
    model_uri: str
    run_id: NullableText
    trained_as_of: NullableText
    horizon_days: int
    selected: dict[str, str]
    backtest_metrics: dict[str, float] = Field(
        description="Backtest means of the selected model for each target (e.g. churn_auc of the churn model)"
    )
    backtested: bool = Field(
        description="Whether the models were compared on a backtest at the model's own horizon; false when the "
        "history was too short (then see backtest_horizon_days and backtest_note)"
    )
    backtest_horizon_days: NullableInt = Field(description="The horizon the backtest ran at (null: no backtest)")
    backtest_note: NullableText = Field(description="Why the model is not backtested at its horizon (null: it is)")
    attributes: list[str] = Field(description="Customer attributes the model reads")
    snapshot: str | None = Field(description="The feature snapshot used by score_by_id, if any")
    targeting: NullableText = Field(
        default=None,
        description="The id of the targeting whose contact decisions every score carries (CHURNCLV_TARGETING); "
        "null without one",
    )
    monitoring: Annotated[
        dict[str, Any] | None, WithJsonSchema({"type": "object", "additionalProperties": True, "nullable": True})
    ] = Field(
        default=None,
        description="This version's latest monitored quality (churnclv monitor, read from the snapshot folder's "
        "monitoring/): as_of, quality (partition, window_end, metrics), drift (partition, reference, max_feature_psi, "
        "max_feature: the feature of that PSI, null in reports written before it was recorded, tier_mix_psi, "
        "unseen_share) and breaches; null when the version was never monitored or the service has no snapshot "
        "folder",
    )


class ReloadResult(BaseModel):  # noqa: D101 - a docstring would change the OpenAPI document
    status: Literal["unchanged", "reloaded"]
    previous_version: str
    version: str
    snapshot: str | None


__all__ = [
    "CustomerError",
    "CustomerHistory",
    "CustomerScore",
    "Event",
    "ModelInfo",
    "Problem",
    "ProblemDetail",
    "ReloadResult",
    "ScoreByIdRequest",
    "ScoreByIdResponse",
    "ScoreRequest",
    "ScoreResponse",
    "ServiceWarning",
    "Transaction",
]
