"""The service's OpenAPI document (``/docs.json``): BentoML's, completed with what it cannot say.

BentoML 1.4 builds the document from the typed API methods but gives it the version ``"None"`` (outside
a Bento), a generic description, no security scheme (its classes have no field for one) and the same
three error answers on every route (400, 404, 500, the 400 with a body shape we never send). Here:
churnclv's version and a description of the API; the ``X-API-Key`` scheme the middleware enforces
(:mod:`churnclv.serving.auth`), required on the API routes and not on the open ones; and, per route,
every error status it can answer, each with the one body shape of :mod:`churnclv.serving.problems`.
:class:`DocumentedService` serves it at ``/docs.json`` and writes it into a Bento (``apis/openapi.yaml``),
the one hook BentoML offers for this (overriding ``openapi_spec``; bentoml/BentoML#2975).
"""

from __future__ import annotations

import copy
import inspect
import json
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import yaml  # type: ignore[import-untyped]  # PyYAML (BentoML's): no stubs installed

from churnclv import __version__
from churnclv.serving.metric_labels import BoundedMetricsService
from churnclv.serving.schemas import Problem
from churnclv.serving.settings import ServiceSettings

__all__ = [
    "API_KEY_SCHEME",
    "DESCRIPTION",
    "DocumentedService",
    "OpenAPIDocument",
    "oas30_schema",
    "route_errors",
    "service_document",
]

API_KEY_SCHEME = "ApiKeyAuth"
_REF = "#/components/schemas/{model}"
# BentoML's error schemas, replaced by Problem (dropped when nothing refers to them any more)
_BENTOML_SCHEMAS = ("InvalidArgument", "NotFound", "InternalServerError", "TaskStatusResponse")
# keywords of pydantic's JSON Schema that an OpenAPI 3.0 schema object spells otherwise, or lacks
# (then kept as an extension: OpenAPI 3.0 allows no other keys)
_OAS30_RENAMED = {"ge": "minimum", "le": "maximum"}
_OAS30_EXTENSIONS = ("propertyNames", "root_input")
# keywords whose value is a map of names to schemas, a schema, or a list of schemas
_SCHEMA_MAPS = ("properties", "patternProperties")
_SCHEMA_VALUES = ("items", "additionalProperties", "not")
_SCHEMA_LISTS = ("anyOf", "allOf", "oneOf")

DESCRIPTION = """\
Churn, customer lifetime value and growth-potential tiers, as of a date, for a CRM.

- `POST /score`: customers with their history (transactions, events, signup, attributes) and an
  `as_of`; the features are computed with the weekly batch job's own code, so a customer gets the
  batch job's numbers for the same history and as-of.
- `POST /score_by_id`: customer ids, scored from the batch job's latest feature snapshot.
- `POST /model_info`: the served model (version, training as-of, horizon, backtest metrics).
- `POST /reload`: pick up the version the model alias points at now, and the latest snapshot.

Every score answers, for one customer over the model's horizon: the probability of no purchase
(`p_churn`), expected purchases and spend, discounted CLV, the next purchase's expected date, and a
growth tier with its stage, action and reasons in plain words, and the customer's arm of the
campaign served (`campaign`, `holdout`: true = a control, do not contact; null without a campaign;
the batch partition's arm where the customer is in it, else a stable draw); the fields are the
batch job's output columns. Answers hold one entry per customer, in request order: a customer that cannot be
scored (no history, not known at `as_of`, a history the scorer refuses, an unknown id) gets
`{"customer_id", "error"}` and the others are scored (200). `warnings` flags an `as_of` far from
the model's training as-of (`CHURNCLV_AS_OF_WARNING_DAYS`).

Errors: a request that breaks a rule is answered 4xx as `{"error", "detail": [{"loc", "msg", "type"}]}`,
`loc` naming the field; never 500 on bad input. Authentication: the `X-API-Key` header on every
route but the health, metrics and document routes.
"""

# what every API route answers before (or besides) its own code: the middleware and BentoML
_COMMON = {
    400: "The body is not valid JSON or breaks a rule of the schema (`detail` names each field: `loc`, `msg`, "
    "`type`), or its framing is ambiguous (both Content-Length and Transfer-Encoding, several lengths, "
    "a length that is not a number)",
    411: "A chunked body: send a Content-Length header",
    413: "The body is larger than CHURNCLV_MAX_BODY_BYTES (counted as it arrives)",
    415: "The Content-Type is not application/json",
    500: "An unexpected failure of the service (a bug, never bad input): the server log has it",
}
_UNAUTHORIZED = "The X-API-Key header is missing or wrong"
_OWN = {
    "/score": {
        400: "a customer_id given twice: send each customer once, with all their rows",
        413: "more customers than CHURNCLV_MAX_CUSTOMERS, or a customer with more history rows (transactions + "
        "events) than CHURNCLV_MAX_HISTORY_ROWS",
    },
    "/score_by_id": {
        413: "more customer_ids than CHURNCLV_MAX_CUSTOMERS",
        503: "no feature snapshot: the service was started without one (--snapshot, CHURNCLV_SNAPSHOT), it "
        "cannot be read, or it lacks a column the model reads; the error says which and how to fix it",
    },
    "/reload": {503: "the new model version could not be loaded: the service keeps serving the current one"},
}


def _nested(key: str, value: Any) -> Any:
    """The schemas a keyword holds (a map of them, one, or a list), each made an OpenAPI 3.0 schema."""
    if key in _SCHEMA_MAPS:
        return {name: oas30_schema(sub) for name, sub in value.items()}
    if key in _SCHEMA_VALUES:
        return oas30_schema(value)
    if key in _SCHEMA_LISTS:
        return [oas30_schema(sub) for sub in value]
    return value


def oas30_schema(schema: Any) -> Any:
    """``schema`` (pydantic's JSON Schema) as an OpenAPI 3.0 schema object, which BentoML's 3.0 document
    claims to hold: a ``{"type": "null"}`` choice becomes ``nullable`` (3.0 has no null type: a 3.0
    validator or client generator failed on it), ``ge``/``le`` become ``minimum``/``maximum``,
    ``examples`` becomes ``example``, and ``patternProperties`` becomes ``additionalProperties``
    (its name rule kept as ``x-patternProperties``)."""
    if not isinstance(schema, dict):
        return schema
    out: dict[str, Any] = {}
    for key, raw in schema.items():
        value = _nested(key, raw)
        if key == "examples" and isinstance(value, list):
            if value:
                out["example"] = value[0]
        elif key == "patternProperties":
            out["x-patternProperties"] = value
            if len(value) == 1 and "additionalProperties" not in schema:
                out["additionalProperties"] = next(iter(value.values()))
        elif key in _OAS30_EXTENSIONS:
            out[f"x-{key}"] = value
        else:
            out[_OAS30_RENAMED.get(key) or key] = value
    choices = out.get("anyOf")
    if choices and {"type": "null"} in choices:
        rest = [c for c in choices if c != {"type": "null"}]
        del out["anyOf"]
        if len(rest) == 1 and "$ref" not in rest[0]:
            out = {**rest[0], **out}
        else:  # a $ref takes no sibling keys in OpenAPI 3.0
            out["allOf" if len(rest) == 1 else "anyOf"] = rest
        out["nullable"] = True
    return out


def _media(doc: dict[str, Any], *, answers: bool) -> Iterator[dict[str, Any]]:
    """Every media object of ``doc``'s request bodies (and, with ``answers``, of its responses)."""
    for item in doc.get("paths", {}).values():
        for operation in item.values():
            bodies = [operation.get("requestBody") or {}]
            if answers:
                bodies += (operation.get("responses") or {}).values()
            for body in bodies:
                yield from (body.get("content") or {}).values()


def _oas30_document(doc: dict[str, Any]) -> None:
    """Every schema of ``doc`` (components, request bodies, answers) made an OpenAPI 3.0 schema, in place."""
    schemas = doc.get("components", {}).get("schemas", {})
    for name, schema in schemas.items():
        schemas[name] = oas30_schema(schema)
    for media in _media(doc, answers=True):
        if "schema" in media:
            media["schema"] = oas30_schema(media["schema"])


def _stated(limits: ServiceSettings) -> str:
    return (
        f"this service: CHURNCLV_MAX_BODY_BYTES = {limits.max_body_bytes}, CHURNCLV_MAX_CUSTOMERS = "
        f"{limits.max_customers}, CHURNCLV_MAX_HISTORY_ROWS = {limits.max_history_rows}"
    )


def _state_limits(doc: dict[str, Any], limits: ServiceSettings) -> None:
    """The request limits as ``maxItems`` of the lists they bound, in the components and the request bodies
    (a client generated from the document, or a reader, then knows them; past them the answer is a 413)."""
    bounded = {"customers": limits.max_customers, "customer_ids": limits.max_customers}
    rows = {"transactions": limits.max_history_rows, "events": limits.max_history_rows}  # each, and together
    schemas = list(doc.get("components", {}).get("schemas", {}).values())
    schemas += [media.get("schema") or {} for media in _media(doc, answers=False)]
    for schema in schemas:
        limit = rows if schema.get("title") == "CustomerHistory" else bounded
        for name, prop in (schema.get("properties") or {}).items():
            if name in limit and prop.get("type") == "array":
                prop["maxItems"] = limit[name]


def route_errors(route: str, *, requires_key: bool, traffic: Mapping[str, Any]) -> dict[int, str]:
    """Every error status ``route`` can answer, with when (its own causes after the common ones)."""
    errors = dict(_COMMON)
    if requires_key:
        errors[401] = _UNAUTHORIZED
    if traffic.get("timeout"):
        errors[504] = f"Not answered within the service's traffic timeout ({traffic['timeout']} s)"
    if traffic.get("max_concurrency"):
        errors[429] = f"More than {traffic['max_concurrency']} requests in progress (traffic.max_concurrency)"
    for status, why in _OWN.get(route, {}).items():  # written to follow the common cause
        errors[status] = f"{errors[status]}; or {why}" if status in errors else why[:1].upper() + why[1:]
    return dict(sorted(errors.items()))


def _problem_schemas() -> dict[str, Any]:
    schema = Problem.model_json_schema(ref_template=_REF)
    defs = schema.pop("$defs", {})
    return {**defs, "Problem": schema}


def _referenced(doc: Mapping[str, Any], name: str) -> bool:
    return f'"{_REF.format(model=name)}"' in json.dumps(doc)


def service_document(
    spec: Mapping[str, Any],
    api_routes: Iterable[str],
    *,
    requires_key: bool,
    traffic: Mapping[str, Any],
    limits: ServiceSettings | None = None,
) -> dict[str, Any]:
    """BentoML's document ``spec`` (a dict) with churnclv's version, description, security and errors.

    Parameters
    ----------
    spec
        ``Service.openapi_spec.asdict()`` of BentoML.
    api_routes
        The routes of the service's API methods (the others, BentoML's health and metrics, are open).
    requires_key
        Whether the service enforces ``X-API-Key`` (:attr:`ServiceSettings.requires_key`).
    traffic
        The service's ``traffic`` configuration (timeout, max_concurrency): their error answers.
    limits
        The settings whose request limits the document states (``maxItems`` and the 413 answers);
        None: the limits are named, not stated.
    """
    doc = copy.deepcopy(dict(spec))
    doc["info"] = {
        "title": doc.get("info", {}).get("title", "churnclv"),
        "version": __version__,
        "description": DESCRIPTION,
    }
    components = doc.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    schemas.update(_problem_schemas())
    problem = {"application/json": {"schema": {"$ref": _REF.format(model="Problem")}}}
    api_routes = set(api_routes)
    for route, item in doc.get("paths", {}).items():
        for operation in item.values():
            if route not in api_routes:
                operation["security"] = []  # open: health, readiness, metrics
                continue
            # the method's docstring, as written: its indentation would render as code in Markdown
            operation["description"] = inspect.cleandoc(operation.get("description") or "")
            responses = operation["responses"]
            ok = responses.get("200", responses.get(200))  # BentoML's keys are numbers until JSON
            errors = route_errors(route, requires_key=requires_key, traffic=traffic)
            if limits is not None and 413 in errors:
                errors[413] = f"{errors[413]} ({_stated(limits)})"
            operation["responses"] = {
                "200": ok,
                **{str(status): {"description": why, "content": problem} for status, why in errors.items()},
            }
    if requires_key:
        components["securitySchemes"] = {
            API_KEY_SCHEME: {
                "type": "apiKey",
                "in": "header",
                "name": "X-API-Key",
                "description": "The key the service was started with (CHURNCLV_API_KEY)",
            }
        }
        doc["security"] = [{API_KEY_SCHEME: []}]
    for name in _BENTOML_SCHEMAS:
        if name in schemas and not _referenced({k: v for k, v in doc.items() if k != "components"}, name):
            del schemas[name]
    _oas30_document(doc)
    if limits is not None:
        _state_limits(doc, limits)
    return doc


class OpenAPIDocument:
    """The document where BentoML expects its ``OpenAPISpecification``: ``asdict()`` for ``/docs.json``,
    and YAML for a Bento's ``apis/openapi.yaml``."""

    def __init__(self, document: dict[str, Any]) -> None:
        self._document = document

    def asdict(self) -> dict[str, Any]:
        """The document as a JSON-ready dict (a copy)."""
        return copy.deepcopy(self._document)


def _represent(dumper: yaml.Dumper, document: OpenAPIDocument) -> yaml.Node:
    return dumper.represent_dict(document.asdict())


class DocumentedService(BoundedMetricsService):
    """:class:`BoundedMetricsService` whose OpenAPI document is :func:`service_document`'s."""

    @property
    def openapi_spec(self) -> Any:  # BentoML's type has no room for a security scheme: see OpenAPIDocument
        """BentoML's document, completed (read from the environment the server runs with: the key)."""
        # registered here, not at import: a Bento's build dumps this object with PyYAML (idempotent)
        yaml.add_representer(OpenAPIDocument, _represent)
        # the settings of this process's server (an in-process test app reads them once, at start; the
        # document then follows the environment of the test process)
        settings = ServiceSettings.from_env()
        document = service_document(
            super().openapi_spec.asdict(),
            [api.route for api in self.apis.values()],
            requires_key=settings.requires_key,
            traffic=self.config.get("traffic") or {},
            limits=settings,
        )
        return OpenAPIDocument(document)
