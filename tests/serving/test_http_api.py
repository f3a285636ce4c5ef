"""The HTTP contract, in-process (ASGI): answers, every error class, auth, logs.

Uses the trained store (a real model), so it is marked ``integration`` like the training tests.
"""

from __future__ import annotations

import copy
import logging
import threading
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

import churnclv
from churnclv.ingest import validate_frames
from churnclv.models.intervals import INTERVAL_COLUMNS
from churnclv.models.marketing import MARKETING_COLUMNS
from churnclv.serving.snapshots import partition_name, read_scores
from churnclv.serving.targeting_decisions import TARGETING_COLUMNS

pytestmark = pytest.mark.integration

AS_OF = "2025-10-02"  # the as-of of the conftest's batch output (kit.AS_OF)

SCORE_FIELDS = {
    "customer_id",
    "as_of",
    "p_churn",
    "p_alive",
    "expected_purchases",
    "expected_spend",
    "clv",
    *INTERVAL_COLUMNS,
    "expected_next_purchase_days",
    "expected_next_purchase_date",
    "next_purchase_days_p80",
    "next_purchase_date_p80",
    *MARKETING_COLUMNS,
    "growth_score",
    "tier",
    "tier_level",
    "stage",
    "action",
    "reasons",
    "campaign",
    "holdout",
    "model_version",
    *TARGETING_COLUMNS,  # null without CHURNCLV_TARGETING (tests/serving/test_http_targeting.py)
    "rows_after_as_of",
}


@pytest.fixture(scope="module")
def some_ids(small_frames: dict[str, pd.DataFrame]) -> list[str]:
    counts = small_frames["transactions"]["customer_id"].value_counts()
    return sorted(counts[counts.between(5, 40)].index)[:3]


def test_score_answers_every_field_for_each_customer(
    client: Any, kit: Any, small_frames: dict, some_ids: list[str]
) -> None:
    r = client.post("/score", json=kit.history_body(small_frames, some_ids), headers=kit.HEADERS)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["as_of"] == AS_OF and body["model_version"] == "1"
    assert body["warnings"] == []  # as of the training as-of
    assert [s["customer_id"] for s in body["scores"]] == some_ids
    for s in body["scores"]:
        assert set(s) == SCORE_FIELDS and s["as_of"] == AS_OF
        assert 0 <= s["p_churn"] <= 1 and 0 <= s["p_alive"] <= 1 and s["clv"] >= 0
        assert s["tier"] in {"Diamond", "Platinum", "Gold", "Silver", "Bronze"}
        assert s["reasons"] and all(isinstance(x, str) and x for x in s["reasons"])
        assert s["action"] and s["model_version"] == "1"


def test_rows_after_as_of_are_ignored_and_counted(
    client: Any, kit: Any, small_frames: dict, some_ids: list[str]
) -> None:
    body = kit.history_body(small_frames, some_ids[:1])
    # the small world runs to 2025-12-31: drop the rows after as-of, then add a big purchase after it
    cust = body["customers"][0]
    cust["transactions"] = [t for t in cust["transactions"] if t["ts"] < "2025-10-03"]
    cust["events"] = [e for e in cust.get("events", []) if e["ts"] < "2025-10-03"]
    before = client.post("/score", json=body, headers=kit.HEADERS).json()["scores"][0]
    later = copy.deepcopy(body)
    later["customers"][0]["transactions"].append({"ts": "2025-10-03T00:00:00", "amount": 5000.0})
    later["customers"][0]["events"].append({"ts": "2025-11-01T00:00:00", "event_type": "complaint"})
    after = client.post("/score", json=later, headers=kit.HEADERS).json()["scores"][0]
    assert after.pop("rows_after_as_of") == 2 and before.pop("rows_after_as_of") == 0
    assert after == before


def test_a_duplicate_line_is_dropped_as_the_batch_rejects_it(client: Any, kit: Any) -> None:
    # helper: the same line twice doubled historic_clv over HTTP where the batch's validation rejects
    # the second ("duplicate line: same order_id and identical values")
    line = {"ts": "2025-09-14T10:31:00Z", "amount": 24.9, "order_id": "A-18", "channel": "app"}
    other = {"ts": "2025-08-01T09:00:00Z", "amount": 10.0}  # no order_id: never a duplicate, as in the batch

    def customer(*lines: dict[str, Any]) -> dict[str, Any]:
        return {"customer_id": "dup", "transactions": list(lines)}

    once = client.post(
        "/score", json={"as_of": kit.AS_OF, "customers": [customer(line, other, other)]}, headers=kit.HEADERS
    ).json()
    twice = client.post(
        "/score",
        json={
            "as_of": kit.AS_OF,
            "customers": [customer(line, {**line, "ts": "2025-09-14T10:31:00+00:00"}, other, other)],
        },
        headers=kit.HEADERS,
    ).json()
    assert twice["scores"] == once["scores"] and once["warnings"] == []
    assert twice["warnings"] == [
        {
            "code": "duplicate_lines_dropped",
            "message": "1 transaction line(s) repeat an earlier line of the same customer (same order_id, identical "
            "values) and were dropped, as the batch's validation rejects them",
        }
    ]
    assert once["scores"][0]["historic_clv"] == pytest.approx(44.9)


@pytest.mark.parametrize(
    "second",
    [
        {"order_id": "D-9 ", "channel": " app"},  # the same line once trimmed: the batch rejects it
        {"order_id": "D-9", "channel": ""},  # blank is missing, as null: the batch rejects it
    ],
    ids=["padded", "blank"],
)
def test_duplicate_lines_are_judged_on_the_values_validation_keeps(
    client: Any, kit: Any, second: dict[str, Any]
) -> None:
    # helper: /score compared the raw text, so a line padded with spaces was kept (spend doubled) where the
    # batch's validation, which trims, rejects it as a duplicate
    first = {
        "ts": "2025-09-14T10:31:00",
        "amount": 24.9,
        "order_id": "D-9",
        "channel": "app" if second["channel"] else None,
    }
    lines = [first, {**first, **second}]
    batch = validate_frames(pd.DataFrame([{"customer_id": "pad", **line} for line in lines]))
    kept = batch.clean["transactions"]
    assert len(batch.rejects["transactions"]) == 1  # the batch's rule, the reference
    body = {"as_of": kit.AS_OF, "customers": [{"customer_id": "pad", "transactions": lines}]}
    answer = client.post("/score", json=body, headers=kit.HEADERS).json()
    assert answer["scores"][0]["historic_clv"] == pytest.approx(kept["amount"].sum())
    assert [w["code"] for w in answer["warnings"]] == ["duplicate_lines_dropped"]


def test_lines_with_a_blank_order_id_are_never_duplicates(client: Any, kit: Any) -> None:
    # a blank order_id is missing (validation's TRIM): the batch keeps both lines, so must /score
    line = {"ts": "2025-09-14T10:31:00", "amount": 24.9, "order_id": "  ", "channel": "app"}
    batch = validate_frames(pd.DataFrame([{"customer_id": "blank", **line}] * 2))
    assert len(batch.clean["transactions"]) == 2
    body = {"as_of": kit.AS_OF, "customers": [{"customer_id": "blank", "transactions": [line, line]}]}
    answer = client.post("/score", json=body, headers=kit.HEADERS).json()
    assert answer["scores"][0]["historic_clv"] == pytest.approx(2 * 24.9) and answer["warnings"] == []


def test_attributes_the_model_cannot_use_are_named_in_the_warnings(client: Any, kit: Any) -> None:
    # helper: "colour" and a channel the model never saw (the README's "search") were scored silently
    assert sorted(client.post("/model_info", headers=kit.HEADERS).json()["attributes"]) == [
        "acquisition_channel",
        "region",
    ]

    def answer(*attributes: dict[str, Any]) -> dict[str, Any]:
        customers = [
            {"customer_id": f"a{i}", "attributes": a, "transactions": [{"ts": "2025-09-14T10:31:00Z", "amount": 24.9}]}
            for i, a in enumerate(attributes)
        ]
        r = client.post("/score", json={"as_of": kit.AS_OF, "customers": customers}, headers=kit.HEADERS)
        assert r.status_code == 200, r.text[:500]
        return dict(r.json())

    known = answer({"region": "north", "acquisition_channel": "paid_search"})
    assert known["warnings"] == []
    sent = answer(
        {"region": "north", "acquisition_channel": "search", "colour": "red"},
        {"region": "nort", "acquisition_channel": "search", "colour": None, "size": "L"},
        {"region": None, "acquisition_channel": "x" * 100},
    )
    assert sent["warnings"] == [
        {
            "code": "unknown_attributes",
            "message": "attributes the model does not read were ignored: colour (2 customers), size (1 customer) "
            "(it reads: acquisition_channel, region)",
        },
        {
            "code": "unseen_attribute_values",
            "message": "attribute values the model was not trained with are scored as missing: acquisition_channel: "
            f"'search' (2 customers), '{'x' * 40}...' (1 customer); region: 'nort' (1 customer)",
        },
    ]
    # what the warnings say: the unknown name is ignored, the unseen value scores as a null
    same = answer({"region": "north", "acquisition_channel": None})
    assert sent["scores"][0] == same["scores"][0] | {"customer_id": "a0"}


def test_signup_only_customer_is_scored(client: Any, kit: Any) -> None:
    body = {
        "as_of": AS_OF,
        "customers": [{"customer_id": "new-1", "signup_ts": "2025-09-20T08:00:00Z", "attributes": {"region": "north"}}],
    }
    r = client.post("/score", json=body, headers=kit.HEADERS)
    assert r.status_code == 200, r.text
    (new,) = r.json()["scores"]
    assert new["customer_id"] == "new-1" and new["stage"] == "new" and 0 <= new["p_churn"] <= 1
    assert new["reasons"][0].startswith("signed up 12 days ago, no purchase yet — ")


@pytest.mark.parametrize("amount", [0.0, -12.5])  # a zero-amount line; a return alone
def test_a_customer_with_lines_but_no_purchase_is_first_seen_not_signed_up(
    client: Any, kit: Any, amount: float
) -> None:
    tx = [{"ts": "2025-03-02T00:00:00", "amount": amount, "order_id": "o19"}]
    body = {"as_of": AS_OF, "customers": [{"customer_id": "022", "transactions": tx}]}
    r = client.post("/score", json=body, headers=kit.HEADERS)
    assert r.status_code == 200, r.text
    (s,) = r.json()["scores"]
    assert s["customer_id"] == "022"
    assert s["reasons"][0].startswith("first seen 214 days ago, no paid purchase yet — ")
    assert not any("signed up" in reason for reason in s["reasons"])


def test_customers_that_cannot_be_scored_get_an_error_entry_and_the_others_are_scored(
    client: Any, kit: Any, small_frames: dict, some_ids: list[str]
) -> None:
    good = kit.history_body(small_frames, some_ids[:2])["customers"]
    body = {
        "as_of": AS_OF,
        "customers": [
            good[0],
            {"customer_id": "no-history"},  # was a 400 for the whole request
            {"customer_id": "events-only", "events": [{"ts": "2025-09-30T08:00:00Z", "event_type": "login"}]},
            {"customer_id": "future-1", "signup_ts": "2025-12-01T00:00:00"},  # signed up after as-of
            {"customer_id": "later-buyer", "transactions": [{"ts": "2025-11-02T00:00:00", "amount": 5.0}]},
            good[1],
        ],
    }
    r = client.post("/score", json=body, headers=kit.HEADERS)
    assert r.status_code == 200, r.text
    scores = r.json()["scores"]
    assert [s["customer_id"] for s in scores] == [c["customer_id"] for c in body["customers"]]
    first, no_history, events_only, future, later, last = scores
    assert set(first) == set(last) == SCORE_FIELDS
    # the good customers get what they get alone
    alone = client.post("/score", json={"as_of": AS_OF, "customers": good}, headers=kit.HEADERS).json()["scores"]
    assert [first, last] == alone
    no_signup = "no transaction and no signup_ts: nothing to score the customer on; send their transactions"
    assert no_history["error"].startswith(no_signup) and events_only == {**no_history, "customer_id": "events-only"}
    unknown_then = "no transaction or signup on or before as_of: nothing to score the customer on"
    assert future == {"customer_id": "future-1", "error": unknown_then}
    assert later == {"customer_id": "later-buyer", "error": unknown_then}


AFTER = "2026-06-01"  # 8 months after the model's training as-of (the conftest's AS_OF)


@pytest.mark.parametrize(("as_of", "words"), [(AFTER, "242 days after"), ("2025-01-01", "274 days before")])
def test_an_as_of_far_from_training_is_scored_with_a_warning(client: Any, kit: Any, as_of: str, words: str) -> None:
    tx = [{"ts": f"2024-0{m}-10T10:00:00", "amount": 25.0} for m in (2, 5, 8)]
    body = {"as_of": as_of, "customers": [{"customer_id": "c1", "transactions": tx}]}
    r = client.post("/score", json=body, headers=kit.HEADERS)
    assert r.status_code == 200, r.text
    answer = r.json()
    assert set(answer["scores"][0]) == SCORE_FIELDS and answer["scores"][0]["as_of"] == as_of
    (warning,) = answer["warnings"]
    assert warning["code"] == "as_of_far_from_training"
    assert f"{words} the model's training as-of {AS_OF}" in warning["message"]
    assert "CHURNCLV_AS_OF_WARNING_DAYS" in warning["message"]


def test_score_by_id_matches_the_batch_and_reports_unknown_ids(client: Any, kit: Any, batch_out: Path) -> None:
    batch = read_scores(batch_out, AS_OF).set_index("customer_id")
    ids = [batch.index[0], "no-such-customer", batch.index[-1], batch.index[0]]
    r = client.post("/score_by_id", json={"customer_ids": ids}, headers=kit.HEADERS)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["snapshot"] == partition_name(AS_OF) and body["as_of"] == AS_OF and body["warnings"] == []
    first, unknown, last, again = body["scores"]
    assert unknown == {"customer_id": "no-such-customer", "error": "unknown customer_id"}
    assert first == again
    # spaces around an id are dropped, as ingestion's TRIM drops them
    r = client.post("/score_by_id", json={"customer_ids": [f"  {batch.index[0]} "]}, headers=kit.HEADERS)
    assert r.status_code == 200 and r.json()["scores"][0] == first
    for s in (first, last):
        ref = batch.loc[s["customer_id"]]
        assert s["p_churn"] == pytest.approx(ref["p_churn"], rel=1e-12)
        assert s["clv"] == pytest.approx(ref["clv"], rel=1e-12)
        assert (s["tier"], s["stage"], s["reasons"]) == (ref["tier"], ref["stage"], list(ref["reasons"]))


def test_model_info(client: Any, kit: Any) -> None:
    r = client.post("/model_info", headers=kit.HEADERS)
    assert r.status_code == 200, r.text
    info = r.json()
    assert (info["name"], info["version"], info["alias"]) == ("churnclv", "1", "champion")
    assert info["trained_as_of"] == "2025-10-02" and info["horizon_days"] == 90
    assert info["backtest_metrics"]["churn_auc"] > 0.8 and "spend_gini" in info["backtest_metrics"]
    assert set(info["selected"]) == {"churn", "purchases", "spend"}
    assert info["snapshot"] == partition_name(AS_OF) and "region" in info["attributes"]
    # two years of history: backtested at its own horizon
    assert (info["backtested"], info["backtest_horizon_days"], info["backtest_note"]) == (True, 90, None)


@pytest.mark.parametrize("path", ["/model_info", "/reload"])
def test_routes_without_arguments_refuse_a_field(client: Any, kit: Any, path: str) -> None:
    # {"version": "3"} to /reload was answered 200 "unchanged", as if it had chosen a version
    r = client.post(path, json={"version": "3"}, headers=kit.HEADERS)
    assert r.status_code == 400, r.text
    assert [d["loc"] for d in r.json()["detail"]] == [["version"]]
    for body in ({"json": {}}, {}):  # an empty object, or no body at all (curl -X POST)
        assert client.post(path, headers=kit.HEADERS, **body).status_code == 200, (path, body)


@pytest.mark.parametrize("path", ["/score", "/score_by_id", "/model_info", "/reload"])
def test_every_api_route_needs_the_key(client: Any, kit: Any, path: str) -> None:
    assert client.post(path, json={}).status_code == 401
    r = client.post(path, json={}, headers={"X-API-Key": kit.API_KEY[::-1]})
    assert r.status_code == 401 and r.json()["error"].startswith("wrong API key")


def test_health_metrics_and_openapi_are_open(client: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))  # set by BentoML's server, not in-process
    for path in ("/livez", "/readyz", "/metrics", "/docs.json"):
        assert client.get(path).status_code == 200, path
    # BentoML's docs page (it loads Google Tag Manager) and its files need the key, as the README says
    for path in ("/", "/static_content/index.css"):
        assert client.get(path).status_code == 401, path
    doc = client.get("/docs.json").json()
    assert {"/score", "/score_by_id", "/model_info", "/reload"} <= set(doc["paths"])
    # the served document: churnclv's version, the key the middleware enforces, every error answer
    assert doc["info"]["version"] == churnclv.__version__
    assert doc["components"]["securitySchemes"]["ApiKeyAuth"]["name"] == "X-API-Key"
    assert {"400", "401", "413", "415", "503"} <= set(doc["paths"]["/score_by_id"]["post"]["responses"])


def _locs(response: Any) -> list[tuple[Any, ...]]:
    return [tuple(d["loc"]) for d in response.json()["detail"]]


@pytest.mark.parametrize(
    ("body", "loc"),
    [
        ({"as_of": "2025-02-30", "customers": [{"customer_id": "a", "signup_ts": "2025-01-01"}]}, ("as_of",)),
        ({"as_of": "2025-10-02T10:00:00", "customers": [{"customer_id": "a", "signup_ts": "2025-01-01"}]}, ("as_of",)),
        ({"as_of": AS_OF, "customers": []}, ("customers",)),
        (
            {"as_of": AS_OF, "customers": [{"customer_id": "", "signup_ts": "2025-01-01"}]},
            ("customers", 0, "customer_id"),
        ),
        (
            {"as_of": AS_OF, "customers": [{"customer_id": "a", "transactions": [{"ts": "yesterday", "amount": 1}]}]},
            ("customers", 0, "transactions", 0, "ts"),
        ),
        # 1e400 is infinite once parsed
        (
            '{"as_of": "' + AS_OF + '", "customers": [{"customer_id": "a", '
            '"transactions": [{"ts": "2025-01-01", "amount": 1e400}]}]}',
            ("customers", 0, "transactions", 0, "amount"),
        ),
        (
            {
                "as_of": AS_OF,
                "customers": [
                    {"customer_id": "a", "signup_ts": "2025-01-01", "events": [{"ts": "2025-01-02", "event_type": " "}]}
                ],
            },
            ("customers", 0, "events", 0, "event_type"),
        ),
        (
            {
                "as_of": AS_OF,
                "customers": [{"customer_id": "a", "signup_ts": "2025-01-01", "attributes": {"signup_ts": "x"}}],
            },
            ("customers", 0),
        ),
        ({"as_of": AS_OF, "customers": [{"customer_id": "a", "signup_ts": "2025-01-01"}], "extra": 1}, ("extra",)),
    ],
)
def test_bad_input_answers_400_with_the_field(
    client: Any, kit: Any, body: dict[str, Any] | str, loc: tuple[Any, ...]
) -> None:
    if isinstance(body, str):
        r = client.post("/score", content=body.encode(), headers={**kit.HEADERS, "Content-Type": "application/json"})
    else:
        r = client.post("/score", json=body, headers=kit.HEADERS)
    assert r.status_code == 400, r.text
    assert loc in _locs(r)
    assert all(d["msg"] for d in r.json()["detail"])


@pytest.mark.parametrize("as_of", ["10/02/2025", "02/10/2025", "20251002", "2025-02-30", "today"])
def test_an_as_of_not_written_yyyy_mm_dd_is_refused_with_the_form_to_use(client: Any, kit: Any, as_of: str) -> None:
    body = {"as_of": as_of, "customers": [{"customer_id": "a", "signup_ts": "2025-01-01"}]}
    r = client.post("/score", json=body, headers=kit.HEADERS)
    assert r.status_code == 400, r.text
    (detail,) = [d for d in r.json()["detail"] if tuple(d["loc"]) == ("as_of",)]
    assert "YYYY-MM-DD" in detail["msg"], detail


def test_malformed_json_and_bad_ids_answer_400(client: Any, kit: Any) -> None:
    r = client.post("/score", content=b'{"as_of": ', headers={**kit.HEADERS, "Content-Type": "application/json"})
    assert r.status_code == 400 and r.json()["detail"][0]["type"] == "json_invalid"
    assert r.json()["error"] == "the body of the request to /score is not valid JSON: detail says where"
    # the summary names the route and the count, not BentoML's internal class (ScoreRequestIODescriptor)
    r = client.post("/score", json={"customer_ids": ["a"]}, headers=kit.HEADERS)
    assert r.status_code == 400 and r.json()["error"].startswith("the request to /score has 3 invalid fields: ")
    assert "Descriptor" not in r.text
    r = client.post("/score_by_id", json={"customer_ids": ["ok", ""]}, headers=kit.HEADERS)
    assert r.status_code == 400 and ("customer_ids", 1) in _locs(r)


def test_limits_answer_413_and_duplicates_400(client: Any, kit: Any) -> None:
    one = {"customer_id": "a", "signup_ts": "2025-01-01"}
    many = {"as_of": AS_OF, "customers": [{**one, "customer_id": f"c{i}"} for i in range(kit.MAX_CUSTOMERS + 1)]}
    r = client.post("/score", json=many, headers=kit.HEADERS)
    assert r.status_code == 413 and _locs(r) == [("customers",)]
    rows = [{"ts": "2025-01-01T00:00:00", "amount": 1.0}] * (kit.MAX_HISTORY_ROWS + 1)
    r = client.post(
        "/score",
        json={"as_of": AS_OF, "customers": [one, {"customer_id": "b", "transactions": rows}]},
        headers=kit.HEADERS,
    )
    assert r.status_code == 413 and _locs(r) == [("customers", 1)] and "CHURNCLV_MAX_HISTORY_ROWS" in r.text
    r = client.post("/score", json={"as_of": AS_OF, "customers": [one, one]}, headers=kit.HEADERS)
    assert r.status_code == 400 and _locs(r) == [("customers", 1, "customer_id")]
    ids = [f"c{i}" for i in range(kit.MAX_CUSTOMERS + 1)]
    assert client.post("/score_by_id", json={"customer_ids": ids}, headers=kit.HEADERS).status_code == 413


def test_logs_carry_no_request_content(
    client: Any, kit: Any, small_frames: dict, some_ids: list[str], caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.DEBUG):
        client.post("/score", json=kit.history_body(small_frames, some_ids[:1]), headers=kit.HEADERS)
        client.post("/score", json={"as_of": AS_OF, "customers": [{"customer_id": "LEAK-ME-123"}]}, headers=kit.HEADERS)
        client.post("/score_by_id", json={"customer_ids": ["LEAK-ME-456"]}, headers=kit.HEADERS)
    text = "\n".join(f"{r.getMessage()} {r.exc_text or ''}" for r in caplog.records)
    assert "LEAK-ME" not in text and some_ids[0] not in text and kit.API_KEY not in text


def test_concurrent_requests_with_the_same_id_get_their_own_answers(client: Any, kit: Any) -> None:
    # two CRMs may send the same customer id with different histories at the same moment: requests that
    # share a scoring call (churnclv.serving.batcher) must not mix
    def body(amount: float, days: int) -> dict[str, Any]:
        tx = [{"ts": f"2025-0{m}-1{days}T10:00:00", "amount": amount} for m in range(1, 10)]
        return {"as_of": AS_OF, "customers": [{"customer_id": "same", "transactions": tx}]}

    bodies = [body(20.0, 1), body(900.0, 5), body(3.5, 2)]
    alone = [client.post("/score", json=b, headers=kit.HEADERS).json() for b in bodies]
    assert len({a["scores"][0]["clv"] for a in alone}) == 3
    results: dict[int, list[Any]] = {i: [] for i in range(len(bodies))}

    def hammer(i: int) -> None:
        for _ in range(6):
            results[i].append(client.post("/score", json=bodies[i], headers=kit.HEADERS).json())

    threads = [threading.Thread(target=hammer, args=(i,)) for i in range(len(bodies)) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    for i, answers in results.items():
        assert len(answers) == 18 and all(a == alone[i] for a in answers)
