"""Generated requests against the service, in-process.

- Schemathesis from the service's own OpenAPI document, schema-valid and schema-invalid bodies:
  never a 5xx, and every 200 answer conforms to the documented schema. The document cannot express
  every rule (years 1900-2200; attribute names; each customer once), so many schema-valid ``/score``
  bodies are refused with a 400, and
- a Hypothesis strategy of semantically valid histories (returns only, zero amounts, rows on the
  as-of boundary and after it, unknown event types, signups without purchases) checks that every
  valid request is scored: 200, one answer per customer, probabilities in [0, 1], finite values.
"""

from __future__ import annotations

import datetime as dt
import math
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.specs.openapi.checks import response_schema_conformance

from churnclv.values import MIN_ABS_AMOUNT

pytestmark = pytest.mark.integration

# bounded: the service computes features and scores for every accepted /score example
EXAMPLES = {"/score": 40, "/score_by_id": 25, "/model_info": 5, "/reload": 5}


@pytest.fixture(scope="module")
def openapi(client: Any) -> Any:
    return schemathesis.openapi.from_dict(client.get("/docs.json").json())


def _send(client: Any, case: Any, headers: dict[str, str]) -> Any:
    kw = case.as_transport_kwargs(base_url="http://testserver", headers=headers)
    body: dict[str, Any] = {}
    if "json" in kw:
        body["json"] = kw["json"]
    elif kw.get("data") is not None:
        data = kw["data"]
        body["content"] = data if isinstance(data, bytes) else str(data).encode()
    return client.request(kw["method"], kw["url"], headers=kw["headers"], params=kw.get("params") or None, **body)


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE], ids=["valid", "invalid"])
@pytest.mark.parametrize("path", sorted(EXAMPLES))
def test_generated_requests_get_no_server_error(
    client: Any, kit: Any, openapi: Any, path: str, mode: GenerationMode
) -> None:
    operation = openapi[path]["POST"]
    statuses: list[int] = []

    @settings(
        max_examples=EXAMPLES[path],
        deadline=None,
        database=None,
        derandomize=True,
        suppress_health_check=list(HealthCheck),
    )
    @given(operation.as_strategy(generation_mode=mode))
    def check(case: Any) -> None:
        response = _send(client, case, kit.HEADERS)
        statuses.append(response.status_code)
        assert response.status_code < 500, f"{response.status_code}: {response.text[:500]}"
        if response.status_code == 200:
            case.validate_response(response, checks=[response_schema_conformance])

    check()
    assert statuses
    if mode is GenerationMode.NEGATIVE and path in ("/score", "/score_by_id"):
        assert any(400 <= s < 500 for s in statuses)  # invalid input was generated and refused


def test_health_routes_in_the_document_answer(client: Any, openapi: Any) -> None:
    for result in openapi.get_all_operations():
        op = result.ok()
        if op.method.upper() == "GET" and op.path != "/metrics":
            assert client.get(op.path).status_code == 200, op.path


# --------------------------------------------------------------------------- valid histories

_DAY0 = dt.datetime(2023, 1, 1)


def _ts(days: int, seconds: int, offset_h: int | None) -> str:
    t = _DAY0 + dt.timedelta(days=days, seconds=seconds)
    if offset_h is None:
        return t.isoformat()
    return t.replace(tzinfo=dt.timezone(dt.timedelta(hours=offset_h))).isoformat()


timestamps = st.builds(_ts, st.integers(0, 1400), st.integers(0, 86_399), st.none() | st.integers(-12, 14))


def _plausible(x: float) -> float:  # 0 < |x| < 1e-9 breaks the value rules (churnclv.values): a 400
    return x if x == 0 or abs(x) >= MIN_ABS_AMOUNT else 0.0


amounts = st.sampled_from([0.0, -15.5, 1e-6, 1e-9, 9.99, 1e6, 1e9, -1e9]) | st.floats(
    -5_000, 5_000, allow_nan=False
).map(_plausible)
labels = st.none() | st.sampled_from(["web", "app", "store", "x" * 256, "é中文", "  "])
transactions = st.fixed_dictionaries(
    {"ts": timestamps, "amount": amounts}, optional={"order_id": labels, "channel": labels, "category": labels}
)
events = st.fixed_dictionaries(
    {
        "ts": timestamps,
        "event_type": st.sampled_from(
            ["login", "session", "email_open", "email_click", "support_ticket", "complaint", "push_open", "Login!", "ü"]
        ),
    },
    optional={"value": st.none() | st.floats(-1e3, 1e3, allow_nan=False).map(_plausible)},
)
attributes = st.dictionaries(st.sampled_from(["region", "acquisition_channel", "segment"]), labels, max_size=3)


@st.composite
def customers(draw: Any, cid: str) -> dict[str, Any]:
    c: dict[str, Any] = {
        "customer_id": cid,
        "attributes": draw(attributes),
        "transactions": draw(st.lists(transactions, max_size=25)),
        "events": draw(st.lists(events, max_size=15)),
    }
    if not c["transactions"] or draw(st.booleans()):
        c["signup_ts"] = draw(timestamps)
    return c


@st.composite
def score_requests(draw: Any) -> dict[str, Any]:
    ids = draw(
        st.lists(
            st.text("0123456789abcXYZ-_ ", min_size=1, max_size=12).filter(str.strip),
            min_size=1,
            max_size=4,
            unique_by=lambda cid: cid.strip(" "),  # spaces around an id are dropped, as in ingestion
        )
    )
    as_of = (_DAY0 + dt.timedelta(days=draw(st.integers(0, 1500)))).date().isoformat()
    return {"as_of": as_of, "customers": [draw(customers(cid)) for cid in ids]}


def test_every_valid_history_is_scored(client: Any, kit: Any) -> None:
    @settings(max_examples=40, deadline=None, database=None, derandomize=True, suppress_health_check=list(HealthCheck))
    @given(score_requests())
    def check(body: dict[str, Any]) -> None:
        r = client.post("/score", json=body, headers=kit.HEADERS)
        assert r.status_code == 200, r.text[:1000]
        scores = r.json()["scores"]
        assert [s["customer_id"] for s in scores] == [c["customer_id"].strip(" ") for c in body["customers"]]
        for s in scores:
            if "error" in s:
                continue
            assert 0 <= s["p_churn"] <= 1 and 0 <= s["p_alive"] <= 1
            assert all(math.isfinite(s[k]) for k in ("expected_purchases", "expected_spend", "clv", "growth_score"))

    check()


# --------------------------------------------------------------------------- values that broke the service

OVERFLOWING = ["0001-01-01T00:00:00+01:00", "9999-12-31T23:00:00-05:00"]


@pytest.mark.parametrize("ts", OVERFLOWING)
@pytest.mark.parametrize("field", ["ts", "signup_ts", "events"])
def test_timestamps_whose_utc_conversion_overflows_answer_400_on_the_field(
    client: Any, kit: Any, field: str, ts: str
) -> None:
    """Year 1 with a positive offset and 9999 with a negative one overflowed Python's datetime when
    converted to UTC (OverflowError, answered 500); the six variants are field errors now."""
    customer: dict[str, Any] = {"customer_id": "c1", "transactions": [{"ts": "2025-01-01T00:00:00Z", "amount": 5.0}]}
    loc: list[Any] = ["customers", 0, "transactions", 0, "ts"]
    if field == "ts":
        customer["transactions"][0]["ts"] = ts
    elif field == "signup_ts":
        customer["signup_ts"], loc = ts, ["customers", 0, "signup_ts"]
    else:
        customer["events"], loc = [{"ts": ts, "event_type": "login"}], ["customers", 0, "events", 0, "ts"]
    r = client.post("/score", json={"as_of": kit.AS_OF, "customers": [customer]}, headers=kit.HEADERS)
    assert r.status_code == 400, r.text[:500]
    (detail,) = r.json()["detail"]
    assert detail["loc"][-len(loc) :] == loc and "year outside 1900-2200" in detail["msg"]


@pytest.mark.parametrize(
    ("line", "field"),
    [
        ({"ts": "2025-01-01", "amount": 1e308}, "amount"),
        ({"ts": "2025-01-01", "amount": 5e-324}, "amount"),
        ({"ts": 0, "amount": 1.0}, "ts"),
        # text pydantic would read as unix seconds (1970-01-01 for "0"): ISO 8601 starts with its date
        ({"ts": "0", "amount": 1.0}, "ts"),
        ({"ts": "1700000000", "amount": 1.0}, "ts"),
        ({"ts": "-1", "amount": 1.0}, "ts"),
        ({"ts": "0.5", "amount": 1.0}, "ts"),
        ({"ts": "2025-01-01", "amount": True}, "amount"),  # not 1.0
    ],
)
def test_values_outside_the_shared_rules_answer_400(client: Any, kit: Any, line: dict[str, Any], field: str) -> None:
    body = {"as_of": kit.AS_OF, "customers": [{"customer_id": "c1", "transactions": [line]}]}
    r = client.post("/score", json=body, headers=kit.HEADERS)
    assert r.status_code == 400, r.text[:500]
    assert r.json()["detail"][0]["loc"][-1] == field


@pytest.mark.parametrize(
    ("rows", "number"),
    [
        ("transactions", "10"),
        ("transactions", "1_0"),  # pydantic read this text as 10
        ("events", True),  # read as 1.0
        ("events", "1"),
    ],
)
def test_numbers_sent_as_text_or_booleans_answer_400(client: Any, kit: Any, rows: str, number: Any) -> None:
    field, row = ("amount", {"ts": "2025-01-01"}) if rows == "transactions" else ("value", {"ts": "2025-01-01"})
    if rows == "events":
        row["event_type"] = "login"
    customer = {"customer_id": "c1", "signup_ts": "2024-01-01", rows: [{**row, field: number}]}
    r = client.post("/score", json={"as_of": kit.AS_OF, "customers": [customer]}, headers=kit.HEADERS)
    assert r.status_code == 400, r.text[:500]
    (detail,) = r.json()["detail"]
    assert detail["loc"] == ["customers", 0, rows, 0, field]
    assert "must be a" in detail["msg"] and "number" in detail["msg"]


def test_error_answers_stay_small_however_many_rows_are_bad(client: Any, kit: Any) -> None:
    """8 MB of bad rows were answered with 690,000 field errors (150 MB, gigabytes of server memory
    for a few at once); a 2 MB unknown key came back whole. Now the first bad row of each list is
    the error, at most 50 field errors are listed, long texts are cut and what was sent is not echoed."""
    rows = [{"ts": "x", "amount": "y"}] * 20_000
    customers = [{"customer_id": f"c{i}", "transactions": rows[:200]} for i in range(100)]
    r = client.post("/score", json={"as_of": kit.AS_OF, "customers": customers}, headers=kit.HEADERS)
    assert r.status_code == 400 and len(r.content) < 20_000, len(r.content)
    detail = r.json()["detail"]
    assert len(detail) <= 51 and detail[0]["loc"][-3:-1] == ["transactions", 0]
    assert all("input" not in d for d in detail)
    key = "jane.doe@example.com " + "x" * 2_000_000
    body = {"as_of": kit.AS_OF, "customers": [{"customer_id": "c1", key: 1}]}
    r = client.post("/score", json=body, headers=kit.HEADERS)
    assert r.status_code == 400 and len(r.content) < 5_000, len(r.content)
    assert "characters)" in r.text  # the key, cut
