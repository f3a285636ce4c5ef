"""The HTTP contract without a trained model (unit tests): per-customer errors, the as-of warning, the
OpenAPI document, and the answer's fields against the batch job's columns."""

from __future__ import annotations

import datetime as dt
import json
from types import SimpleNamespace
from typing import Any

import jsonschema
import pandas as pd
import pytest
import yaml
from schemathesis.specs.openapi.definitions import OPENAPI_30

from churnclv import __version__
from churnclv.features import FeatureConfig
from churnclv.models.intervals import INTERVAL_COLUMNS
from churnclv.models.marketing import with_marketing
from churnclv.serving.auth import API_KEY_HEADER
from churnclv.serving.openapi import API_KEY_SCHEME, service_document
from churnclv.serving.problems import problem
from churnclv.serving.schemas import CustomerHistory, CustomerScore, Problem, ScoreRequest
from churnclv.serving.scoring import (
    NO_HISTORY,
    NOT_KNOWN_AT_AS_OF,
    isolate_failures,
    score_histories,
    score_histories_together,
)
from churnclv.serving.settings import ServiceSettings, SettingsError
from churnclv.serving.snapshots import OUTPUT_COLUMNS
from churnclv.serving.staleness import AS_OF_FAR, as_of_warnings, trained_as_of
from churnclv.serving.targeting_decisions import TARGETING_COLUMNS

AS_OF = dt.date(2025, 10, 2)
API_ROUTES = ("/score", "/score_by_id", "/model_info", "/reload")


# --------------------------------------------------------------------------- per-customer errors


class RefusingScorer:
    """Scores every customer alike, and refuses (raises) any call holding a customer of ``refuse``."""

    def __init__(self, refuse: set[str]) -> None:
        self.refuse = refuse
        self.calls = 0

    def feature_config(self) -> FeatureConfig:
        return FeatureConfig()

    def score(self, features: pd.DataFrame, as_of: object = None) -> pd.DataFrame:
        self.calls += 1
        assert as_of == AS_OF  # the request's as-of reaches the scorer
        ids = features["customer_id"].astype(str).tolist()
        if self.refuse & set(ids):
            raise ValueError("frequency is known but T is missing")
        n = len(ids)
        base = pd.DataFrame(
            {
                "customer_id": ids,
                **{k: [0.5] * n for k in ("p_churn", "p_alive", "expected_purchases", "expected_spend", "clv")},
                "expected_next_purchase_days": [10.0] * n,
                "next_purchase_days_p80": [float("nan")] * n,  # not within a year: a null date
                **{k: [1.0] * n for k in INTERVAL_COLUMNS},
                "growth_score": features["frequency"].astype(float).tolist(),
                "tier": ["Gold"] * n,
                "tier_level": [2] * n,
                "stage": ["active"] * n,
                "action": ["keep"] * n,
                "reasons": [["a reason"]] * n,
            }
        )
        return with_marketing(base, features, None)  # the real marketing fields of these features


def _model(refuse: set[str]) -> Any:
    return SimpleNamespace(scorer=RefusingScorer(refuse), attributes=(), version="7", metadata={})


def _buyer(cid: str, purchases: int = 2) -> CustomerHistory:
    tx = [{"ts": f"2025-0{m + 1}-15T10:00:00", "amount": 20.0} for m in range(purchases)]
    return CustomerHistory.model_validate({"customer_id": cid, "transactions": tx})


def test_customers_that_cannot_be_scored_get_an_error_and_the_others_their_scores() -> None:
    customers = [
        _buyer("good-1", 3),
        _buyer("bad-1"),
        CustomerHistory.model_validate(  # engagement but neither a purchase nor a signup
            {"customer_id": "events-only", "events": [{"ts": "2025-09-01", "event_type": "login"}]}
        ),
        CustomerHistory.model_validate({"customer_id": "nothing"}),
        CustomerHistory.model_validate({"customer_id": "later", "signup_ts": "2025-12-01"}),
        _buyer("good-2", 1),
        _buyer("bad-2"),
    ]
    model = _model({"bad-1", "bad-2"})
    answers = score_histories(model, customers, AS_OF)
    assert [a.customer_id for a in answers] == [c.customer_id for c in customers]  # request order
    good1, bad1, events_only, nothing, later, good2, bad2 = answers
    assert isinstance(good1, CustomerScore) and isinstance(good2, CustomerScore)
    # the good ones are scored on their own features (frequency: repeat purchases), as of the request
    assert (good1.growth_score, good2.growth_score) == (2.0, 0.0)
    assert good1.as_of == AS_OF and good1.expected_next_purchase_date == dt.date(2025, 10, 12)
    assert good1.next_purchase_days_p80 is None and good1.next_purchase_date_p80 is None  # NaN: null
    for refused in (bad1, bad2):
        assert set(refused.model_dump()) == {"customer_id", "error"}
        assert "cannot be scored (ValueError)" in refused.error  # type: ignore[union-attr]
        assert "T is missing" not in refused.error  # type: ignore[union-attr]  # the scorer's text may quote data
    assert events_only.error == nothing.error == NO_HISTORY  # type: ignore[union-attr]
    assert later.error == NOT_KNOWN_AT_AS_OF  # type: ignore[union-attr]
    # the search is bounded: 4 customers reach the scorer, 2 refused: at most 1 + 2 k log2(n) calls
    assert model.scorer.calls <= 1 + 2 * 2 * 2


def test_a_refused_customer_costs_no_other_request_its_answers() -> None:
    # requests batched into one scoring call: the refused customer of one leaves the other request whole
    model = _model({"0\x1fshared"})  # the first request's customer "shared", as renamed in the shared call
    first = [_buyer("shared"), _buyer("a")]
    second = [_buyer("shared", 3)]
    one, two = score_histories_together([(model, first, AS_OF), (model, second, AS_OF)])
    assert [a.customer_id for a in one] == ["shared", "a"] and [a.customer_id for a in two] == ["shared"]
    assert hasattr(one[0], "error") and isinstance(one[1], CustomerScore)
    assert isinstance(two[0], CustomerScore) and two[0].growth_score == 2.0


def test_the_features_handed_out_are_each_requests_scored_customers_under_their_own_ids() -> None:
    # what /score's targeting decides on: the frames the scoring call computed, split back per request
    model = _model({"0\x1fshared"})
    frames: list[pd.DataFrame] = []
    score_histories_together(
        [(model, [_buyer("shared"), _buyer("a")], AS_OF), (model, [_buyer("shared", 3)], AS_OF)], features_out=frames
    )
    assert [sorted(f["customer_id"]) for f in frames] == [["a"], ["shared"]]  # the refused one is left out
    assert frames[1]["n_purchase_days"].tolist() == [3]
    alone: list[pd.DataFrame] = []
    score_histories_together([(model, [_buyer("b", 2)], AS_OF)], features_out=alone)
    assert alone[0]["customer_id"].tolist() == ["b"] and alone[0]["n_purchase_days"].tolist() == [2]


def test_isolate_failures_finds_each_refused_row_of_a_frame() -> None:
    frame = pd.DataFrame({"customer_id": [f"c{i}" for i in range(9)]}, index=[10, 3, 7, 1, 0, 2, 8, 5, 4])
    bad = {"c1", "c8"}

    def score(part: pd.DataFrame) -> dict[str, Any]:
        if bad & set(part["customer_id"]):
            raise RuntimeError("refused")
        return dict.fromkeys(part["customer_id"], "ok")

    failed: dict[str, str] = {}
    scored = isolate_failures(frame, score, lambda one: str(one["customer_id"].iloc[0]), lambda e: "why", failed)
    assert failed == {"c1": "why", "c8": "why"}
    assert set(scored) == {f"c{i}" for i in range(9)} - bad


def test_a_customer_without_history_is_no_longer_a_malformed_request() -> None:
    # it used to fail the whole request with a 400; now it is that customer's error entry
    request = ScoreRequest.model_validate(
        {"as_of": "2025-10-02", "customers": [{"customer_id": "a"}, {"customer_id": "b"}]}
    )
    assert [c.customer_id for c in request.customers] == ["a", "b"]


# --------------------------------------------------------------------------- as-of far from training


def test_as_of_warning_before_and_after_the_training_as_of() -> None:
    trained = dt.date(2025, 10, 2)
    (after,) = as_of_warnings(dt.date(2026, 6, 1), trained, 90)
    assert after.code == AS_OF_FAR
    assert "242 days after the model's training as-of 2025-10-02" in after.message and "retrain" in after.message
    (before,) = as_of_warnings(trained - dt.timedelta(days=91), trained, 90)
    assert "91 days before" in before.message and "CHURNCLV_AS_OF_WARNING_DAYS" in before.message
    assert as_of_warnings(trained + dt.timedelta(days=90), trained, 90) == []  # the limit itself is fine
    assert as_of_warnings(trained - dt.timedelta(days=90), trained, 90) == []
    assert as_of_warnings(dt.date(2030, 1, 1), trained, 0) == []  # 0 = off
    assert as_of_warnings(dt.date(2030, 1, 1), None, 90) == []  # a model that records no as-of


def test_trained_as_of_reads_the_scorers_metadata() -> None:
    assert trained_as_of({"as_of": "2025-10-02"}) == dt.date(2025, 10, 2)
    assert trained_as_of({}) is None and trained_as_of({"as_of": "not a date"}) is None


def test_as_of_warning_days_setting() -> None:
    assert ServiceSettings.from_env({}).as_of_warning_days == 90
    assert ServiceSettings.from_env({"CHURNCLV_AS_OF_WARNING_DAYS": "30"}).as_of_warning_days == 30
    with pytest.raises(SettingsError, match="CHURNCLV_AS_OF_WARNING_DAYS"):
        ServiceSettings.from_env({"CHURNCLV_AS_OF_WARNING_DAYS": "-1"})


def test_requires_key_follows_what_the_middleware_enforces() -> None:
    assert ServiceSettings(api_key="k" * 16).requires_key
    assert ServiceSettings().requires_key  # no key, no opt-out: the service does not start without one
    assert not ServiceSettings(allow_no_auth=True).requires_key
    assert ServiceSettings(api_key="k" * 16, allow_no_auth=True).requires_key  # a key given is enforced


# --------------------------------------------------------------------------- the OpenAPI document


def _document(monkeypatch: pytest.MonkeyPatch, **env: str) -> dict[str, Any]:
    from churnclv.serving.service import ChurnCLVService

    for name in ("CHURNCLV_API_KEY", "CHURNCLV_ALLOW_NO_AUTH"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return dict(json.loads(json.dumps(ChurnCLVService.openapi_spec.asdict())))  # as /docs.json sends it


def _refs(node: Any) -> set[str]:
    if isinstance(node, dict):
        return {node["$ref"]} if "$ref" in node else set().union(*(_refs(v) for v in node.values()))
    if isinstance(node, list):
        return set().union(*(_refs(v) for v in node))
    return set()


def test_document_has_the_version_a_description_and_the_key_scheme(monkeypatch: pytest.MonkeyPatch) -> None:
    doc = _document(monkeypatch, CHURNCLV_API_KEY="k" * 20)
    assert doc["info"]["version"] == __version__
    assert "/score_by_id" in doc["info"]["description"] and "BentoML" not in doc["info"]["description"]
    scheme = doc["components"]["securitySchemes"][API_KEY_SCHEME]
    assert (scheme["type"], scheme["in"], scheme["name"].lower()) == ("apiKey", "header", API_KEY_HEADER)
    assert doc["security"] == [{API_KEY_SCHEME: []}]
    for path in ("/livez", "/readyz", "/metrics", "/healthz"):
        assert doc["paths"][path]["get"]["security"] == [], path  # open routes
    for route in API_ROUTES:
        assert "security" not in doc["paths"][route]["post"]  # the document's default: the key
    schemas = doc["components"]["schemas"]
    assert {r.rsplit("/", 1)[1] for r in _refs(doc)} <= set(schemas)  # no reference left dangling


def _schemas(node: Any) -> list[dict[str, Any]]:
    """Every schema object under ``node`` that has a type or a choice (to look inside)."""
    if isinstance(node, list):
        return [s for v in node for s in _schemas(v)]
    if not isinstance(node, dict):
        return []
    own = [node] if {"type", "anyOf", "allOf"} & set(node) else []
    return own + [s for v in node.values() for s in _schemas(v)]


def test_document_is_valid_openapi_3_0(monkeypatch: pytest.MonkeyPatch) -> None:
    doc = _document(monkeypatch, CHURNCLV_API_KEY="k" * 20)
    assert doc["openapi"].startswith("3.0")
    # the official OpenAPI 3.0 schema: no type "null", no JSON Schema keyword 3.0 lacks (ge, examples, ...)
    validator = jsonschema.Draft4Validator(OPENAPI_30)
    errors = [f"{list(e.absolute_path)[:5]}: {e.message[:80]}" for e in validator.iter_errors(doc)]
    assert errors == []
    assert not [s for s in _schemas(doc) if s.get("type") == "null"]
    score = doc["components"]["schemas"]["CustomerScore"]["properties"]
    assert score["spend_p10"] == {**score["spend_p10"], "type": "number", "nullable": True}
    assert score["expected_next_purchase_date"]["format"] == "date" and score["expected_next_purchase_date"]["nullable"]
    assert "nullable" not in score["p_churn"]
    amount = doc["components"]["schemas"]["Transaction"]["properties"]["amount"]
    assert (amount["minimum"], amount["maximum"], amount["example"]) == (-1e9, 1e9, 24.9)
    attributes = doc["components"]["schemas"]["CustomerHistory"]["properties"]["attributes"]
    assert attributes["additionalProperties"] == {"type": "string", "maxLength": 256, "nullable": True}


def test_document_states_the_request_limits_of_the_service(monkeypatch: pytest.MonkeyPatch) -> None:
    # the limits were only named (CHURNCLV_MAX_CUSTOMERS): a client could not know them before a 413
    doc = _document(monkeypatch, CHURNCLV_API_KEY="k" * 20, CHURNCLV_MAX_CUSTOMERS="7", CHURNCLV_MAX_HISTORY_ROWS="30")
    schemas = doc["components"]["schemas"]
    bodies = {r: doc["paths"][r]["post"]["requestBody"]["content"]["application/json"]["schema"] for r in API_ROUTES}
    for request in (schemas["ScoreRequestIODescriptor"], bodies["/score"]):
        assert request["properties"]["customers"]["maxItems"] == 7
    for request in (schemas["ScoreByIdRequestIODescriptor"], bodies["/score_by_id"]):
        assert request["properties"]["customer_ids"]["maxItems"] == 7
    history = schemas["CustomerHistory"]["properties"]
    assert history["transactions"]["maxItems"] == history["events"]["maxItems"] == 30
    too_large = doc["paths"]["/score"]["post"]["responses"]["413"]["description"]
    assert "CHURNCLV_MAX_CUSTOMERS = 7" in too_large and "CHURNCLV_MAX_HISTORY_ROWS = 30" in too_large


def test_document_lists_every_error_answer_of_each_route(monkeypatch: pytest.MonkeyPatch) -> None:
    doc = _document(monkeypatch, CHURNCLV_API_KEY="k" * 20)
    common = {"200", "400", "401", "411", "413", "415", "500", "504"}
    own = {"/score": set(), "/score_by_id": {"503"}, "/model_info": set(), "/reload": {"503"}}
    for route in API_ROUTES:
        responses = doc["paths"][route]["post"]["responses"]
        assert set(responses) == common | own[route], route
        for status, answer in responses.items():
            assert answer["description"], (route, status)
            if status != "200":
                assert answer["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/Problem"}
    assert "CHURNCLV_MAX_HISTORY_ROWS" in doc["paths"]["/score"]["post"]["responses"]["413"]["description"]
    assert "\n    " not in doc["paths"]["/score"]["post"]["description"]  # no code block in Markdown
    assert "twice" in doc["paths"]["/score"]["post"]["responses"]["400"]["description"]


def test_every_error_body_fits_the_documented_schema() -> None:
    ours = problem(413, "too many", [{"loc": ["customers", 3], "msg": "at most 2", "type": "too_long"}])
    Problem.model_validate_json(ours.body)
    # BentoML's own answers: a validation error (with its extra keys) and an unexpected failure
    Problem.model_validate(
        {
            "error": "1 validation error",
            "detail": [{"type": "missing", "loc": ["as_of"], "msg": "Field required", "url": "u"}],
        }
    )
    Problem.model_validate({"error": "An unexpected error has occurred, please check the server log."})


def test_document_without_authentication_declares_no_key(monkeypatch: pytest.MonkeyPatch) -> None:
    doc = _document(monkeypatch, CHURNCLV_ALLOW_NO_AUTH="1")
    assert "securitySchemes" not in doc["components"] and "security" not in doc
    assert "401" not in doc["paths"]["/score"]["post"]["responses"]


def test_the_bentos_yaml_document_is_the_served_one(monkeypatch: pytest.MonkeyPatch) -> None:
    from churnclv.serving.service import ChurnCLVService

    served = _document(monkeypatch, CHURNCLV_API_KEY="k" * 20)
    # `bentoml build` writes apis/openapi.yaml with yaml.dump(svc.openapi_spec)
    assert yaml.safe_load(yaml.dump(ChurnCLVService.openapi_spec)) == served


def test_service_document_leaves_bentomls_input_alone() -> None:
    spec = {"info": {"title": "t", "version": "None"}, "paths": {"/x": {"post": {"responses": {200: {"d": 1}}}}}}
    before = json.dumps(spec, sort_keys=True, default=str)
    doc = service_document(spec, ["/x"], requires_key=True, traffic={"timeout": 5, "max_concurrency": 3})
    assert json.dumps(spec, sort_keys=True, default=str) == before
    responses = doc["paths"]["/x"]["post"]["responses"]
    assert responses["200"] == {"d": 1} and "5 s" in responses["504"]["description"] and "429" in responses


# --------------------------------------------------------------------------- the batch job's columns


def test_an_http_answer_has_every_column_of_the_batch_output() -> None:
    # the batch's columns with a targeting: the scores', then the targeting's (serving.batch_targeting)
    batch = [*OUTPUT_COLUMNS, *TARGETING_COLUMNS]
    assert set(batch) <= set(CustomerScore.model_fields), set(batch) - set(CustomerScore.model_fields)
    # in the same order, then what only a request has
    assert [f for f in CustomerScore.model_fields if f in batch] == batch
    assert list(CustomerScore.model_fields)[-1] == "rows_after_as_of"
    # null without a targeting, as campaign and holdout without a campaign
    assert all(CustomerScore.model_fields[f].default is None for f in TARGETING_COLUMNS)
