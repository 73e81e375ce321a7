"""The OpenAPI document a client generator can use: every status a route can answer documented with its body, an
operation id (the handler's name) and a summary and description on every operation.

FastAPI documents the success and the validation 422; the edge adds the rest once, by rule, so a new route gets
them too: 401/403/429/503 where a key is required, 413/415 where a body is read, 404 where a path names a resource,
409 where an alert or a delivery changes state, 422 where parameters or a body are read. Every error body of the
JSON API is an RFC 9457 problem (``application/problem+json``, ``Problem``; ``app.api.errors``); ingest's 422 adds
``accepted`` and ``rejected`` (``ReadingsRejected``). ``/fhir`` documents its own OperationOutcomes and
``/v1/hl7`` its ACKs (their routes state them); only the edge's 401/403/429/413/415 are problems there."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute

from app.api.errors import PROBLEM_BASE, PROBLEM_MEDIA_TYPE, TITLES

PROBLEM = {"$ref": "#/components/schemas/Problem"}
_VALIDATION = {"$ref": "#/components/schemas/ValidationProblem"}
_ITEM_SCHEMA = {
    "title": "ProblemItem", "type": "object", "required": ["loc", "msg", "type"],
    "description": "One bad item of the request: where (`loc`), what (`msg`) and its kind (`type`)",
    "properties": {"loc": {"type": "array", "items": {"anyOf": [{"type": "string"}, {"type": "integer"}]},
                           "description": "where: `body`/`query`/`path`, then field names and list indexes",
                           "examples": [["body", "readings", 17, "value"]]},
                   "msg": {"type": "string", "description": "what is wrong, for a person"},
                   "type": {"type": "string", "description": "the kind of error, for a program",
                            "examples": ["implausible", "missing", "too_early"]},
                   "input": {"description": "the value refused (long values cut short)"},
                   "ctx": {"type": "object", "description": "the rule's parameters (e.g. a bound)"}},
}
_PROBLEM_SCHEMA = {
    "title": "Problem", "type": "object", "required": ["type", "title", "status", "detail", "code"],
    "description": "RFC 9457 problem details (`application/problem+json`): every error of the JSON API",
    "properties": {
        "type": {"type": "string", "format": "uri-reference",
                 "description": f"the problem type: `{PROBLEM_BASE}<code with dashes>`, or `about:blank` for a "
                                "status with nothing more to say (an unknown path, a wrong method)",
                 "examples": [f"{PROBLEM_BASE}reading-rejected", "about:blank"]},
        "title": {"type": "string", "description": "the problem type's summary (the same every time)",
                  "examples": ["Readings rejected"]},
        "status": {"type": "integer", "minimum": 400, "maximum": 599, "description": "the HTTP status"},
        "detail": {"type": "string", "description": "what went wrong this time, for a person"},
        "code": {"type": "string", "description": "a stable code, for a program, such as " + ", ".join(
                 f"`{c}`" for c in TITLES) + " (and `not_found`, `method_not_allowed` with `about:blank`)",
                 "examples": ["unauthenticated", "forbidden", "patient_not_found"]},
        "errors": {"type": "array", "items": {"$ref": "#/components/schemas/ProblemItem"},
                   "description": "the bad items (422): each with its location"},
    },
}
_VALIDATION_SCHEMA = {"title": "ValidationProblem", "allOf": [PROBLEM, {"type": "object", "required": ["errors"]}]}
_REJECTED_SCHEMA = {
    "title": "ReadingsRejected", "description": "Some readings refused (named in `errors` by index and field); "
                                                "the good ones of the batch were stored",
    "allOf": [_VALIDATION, {"type": "object", "required": ["accepted", "rejected"], "properties": {
        "accepted": {"type": "integer", "minimum": 0, "description": "good items stored anyway"},
        "rejected": {"type": "integer", "minimum": 0, "description": "items refused"}}}],
}
_LINK = {"Link": {"schema": {"type": "string"}, "description": 'the next page, `<url>; rel="next"`, while there '
                                                                "is one"}}
API_DESCRIPTION = (
    "Patient-deterioration digital twin. Every request but `GET /healthz` needs an API key "
    "(`Authorization: Bearer wt_…`) whose role allows the operation.\n\n"
    "**Errors** are RFC 9457 problem details (`application/problem+json`): `type`, `title`, `status`, `detail`, "
    "the domain `code`, and for a 422 the bad items in `errors` (`loc`, `msg`, `type`). `/fhir` answers FHIR "
    "OperationOutcomes and `/v1/hl7` HL7 ACKs instead.\n\n"
    "**Paging**: list reads take `limit`; when more remain, the answer carries `Link: <…>; rel=\"next\"`, the URL "
    "of the next page (follow it as is until there is none).")


def _response(description: str, schema: dict[str, Any], headers: dict[str, Any] | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"description": description, "content": {PROBLEM_MEDIA_TYPE: {"schema": schema}}}
    if headers:
        out["headers"] = headers
    return out


#: The ingest routes: their 422 names the bad items and counts the good ones stored.
INGEST_PATHS = ("/v1/readings", "/v1/write")
#: Routes answering errors in their own format (they document them): FHIR's OperationOutcome, HL7 v2's ACK.
OWN_FORMAT_PREFIXES = ("/fhir/", "/v1/hl7")


def _errors_for(method: str, path: str, op: dict[str, Any]) -> dict[str, dict[str, Any]]:
    errors: dict[str, dict[str, Any]] = {}
    if op.get("security"):
        errors["401"] = _response("No valid API key (missing, unknown or revoked)", PROBLEM,
                                  {"WWW-Authenticate": {"schema": {"type": "string"}}})
        errors["403"] = _response("The key's role may not do this", PROBLEM)
        errors["429"] = _response("Too many requests for this key", PROBLEM,
                                  {"Retry-After": {"schema": {"type": "integer"}, "description": "seconds"}})
        errors["503"] = _response("The store is unavailable", PROBLEM,
                                  {"Retry-After": {"schema": {"type": "integer"}, "description": "seconds"}})
    if method in ("post", "put", "patch", "delete"):
        errors["413"] = _response("The body is larger than the service accepts", PROBLEM)
        errors["415"] = _response("The body is not JSON (nor, on /v1/write, text/plain line protocol)"
                                  if path == "/v1/write" else "The body is not JSON", PROBLEM)
    if "{" in path:
        errors["404"] = _response("No such resource", PROBLEM)
    if method != "get" and path.startswith(("/v1/alerts/", "/v1/webhooks/", "/v1/keys/")):
        errors["409"] = _response("The resource's state does not allow this", PROBLEM)
    if op.get("parameters") or "requestBody" in op:
        errors["422"] = _response("Invalid request: every bad item in `errors`, with its location", _VALIDATION)
    if path in INGEST_PATHS:
        errors["422"] = _response("Some items are invalid (named by index and field); the good ones were stored",
                                  {"anyOf": [{"$ref": "#/components/schemas/ReadingsRejected"}, _VALIDATION]})
    return errors


def _fastapi_422(response: dict[str, Any]) -> bool:
    """FastAPI's own validation 422 (``HTTPValidationError``), which this service never answers as such."""
    schema = response.get("content", {}).get("application/json", {}).get("schema", {})
    return schema.get("$ref") == "#/components/schemas/HTTPValidationError"


def _document(path: str, method: str, op: dict[str, Any]) -> None:
    responses = op["responses"]
    if path.startswith(OWN_FORMAT_PREFIXES):
        if "422" in responses and _fastapi_422(responses["422"]):
            del responses["422"]  # FHIR answers a bad parameter 400 OperationOutcome (app.api.fhir.FhirRoute)
        for status, response in _errors_for(method, path, op).items():
            if status in ("401", "403", "413", "415", "429") and status not in responses:
                responses[status] = response
        return
    for status, response in _errors_for(method, path, op).items():
        if path in INGEST_PATHS or status not in responses or (status == "422" and _fastapi_422(responses[status])):
            responses[status] = response


#: Descriptions of the operations whose route states none (its ``description`` or handler docstring wins), by
#: operation id; ``tests/api/test_problem_json.py`` checks that every operation has a summary and a description.
DESCRIPTIONS: dict[str, str] = {
    "get_risk_history": (
        "The patient's stored scores of `[since, until]`, oldest first, each as `GET …/risk` answers it (risk, "
        "model version, NEWS2, contributions and the nurse sentences). Paged: at most `limit` scores per answer; a "
        "`Link: <…>; rel=\"next\"` header names the next page while more remain. Role clinician or ehr."),
    "get_windows": (
        "The patient's 5-minute windows covering `[since, until]` as the twin sees them: each vital's aggregate, "
        "the last reading carried forward within its limit, null where nothing is known. Oldest first, paged like "
        "the history (`limit`, `Link: rel=\"next\"`). Role clinician or ehr."),
    "post_what_if": (
        "Rescores the patient's latest window with the stated vitals changed (each checked like a reading) and "
        "answers the risk before and after, which changes applied, and the difference. Nothing is stored. Role "
        "clinician."),
    "list_alerts": (
        "Alerts newest first, filtered by `state`, `kind` (twin, news2, criteria, obs_due) and `patient_id`, at "
        "most `limit`. Role clinician."),
    "acknowledge": (
        "Moves an alert to acknowledged, recording who took it (`by`, beside the key's name) and an optional note; "
        "409 when the alert's state does not allow it. Role clinician; audited."),
    "resolve": (
        "Closes an alert, recording who closed it and an optional note; 409 when the alert's state does not allow "
        "it (already resolved). Role clinician; audited."),
    "transitions": "Every state change of one alert, oldest first, with its time and actor. Role clinician.",
    "get_board": (
        "The ward board in one answer: every bed with its latest risk, NEWS2, open alert and the last `hours` of "
        "vitals, most urgent first, plus the thresholds the board draws. Role clinician."),
    "healthz": (
        "Liveness and readiness without a key: the store's state, the control store's engine (`sqlite` or "
        "`postgresql`) and whether it answers, the alert outbox and delivery backlogs, the model version and the "
        "last window scored. `ok` is false while either store is down or a window end is ahead of the clock."),
    "post_news2": (
        "NEWS2 (Royal College of Physicians, 2017) of one charted observation set: each parameter's points, the "
        "total, the band, the urgency and the clinical response (chart 4). Nothing is stored (chart with "
        "`POST /v1/observations`). Role clinician or ehr."),
    "list_webhooks": "The registered webhook endpoints, their events and delivery state; secrets never shown. Role "
                     "admin.",
    "dead_letters": "Webhook deliveries that ran out of retries (redeliver each with its id), at most `limit`. Role "
                    "admin.",
    "redeliver": (
        "Queues a dead-lettered delivery again with the same `webhook-id` (receivers deduplicate on it) and a fresh "
        "retry budget; 409 when the delivery is not dead-lettered. Role admin."),
    "delete_webhook": "Stops delivering to an endpoint; its pending deliveries are cancelled. Role admin.",
    "list_keys": "Every API key with its id, name and role, and whether it is revoked; never the tokens. Role admin.",
    "create_key": (
        "Creates an API key of one role (device, clinician, ehr, admin); the token is in this answer only and "
        "never shown again. Role admin; audited."),
    "get_audit": (
        "The audit trail (who read or changed what, when, with which status), oldest first, filtered by key name "
        "and target, from the sequence number `after`, at most `limit`. Role admin."),
    "fhir_capabilities": (
        "The FHIR R4 CapabilityStatement: the resources and search parameters supported, and the RiskAssessment "
        "probability convention (`prediction.probabilityDecimal`, 0–1, within 6 h)."),
    "fhir_read_patient": "A minimal FHIR R4 Patient (id and identifier) for a patient the service knows.",
    "fhir_search_observation": (
        "FHIR R4 vital-signs Observations (LOINC codes, UCUM units, the blood-pressure panel with components) from "
        "the 5-minute windows, and NEWS2 totals with sub-scores, as a searchset Bundle paged by `_count` with "
        "`next` links. Errors are OperationOutcomes."),
    "fhir_search_risk_assessment": (
        "The twin's 6-hour risk as FHIR R4 RiskAssessments (method = model version, basis = the Observations used, "
        "rationale = the nurse sentences), newest first with `_sort=-date`, as a searchset Bundle with `next` "
        "links."),
    "fhir_read_observation": "One FHIR R4 Observation by the id a search returned.",
    "fhir_read_risk_assessment": "One FHIR R4 RiskAssessment by the id a search returned.",
    "cds_hooks_discovery": "CDS Hooks 2.0 discovery: the services offered (`wardtwin-deterioration` on "
                           "`patient-view`). Role clinician or ehr.",
    "cds_hooks_patient_view": (
        "CDS Hooks 2.0 `patient-view`: a card for the patient in `context.patientId`, its indicator from the "
        "NEWS2 clinical-response band (critical, warning, info), the summary (≤ 140 characters), the top reasons "
        "and a link to the board's patient view."),
}


def name_operations(app: FastAPI) -> None:
    """Operation ids a client generator can use: each route's handler name (``post_readings``, not FastAPI's
    ``post_readings_v1_readings_post``) where the route sets none; names are unique in the app, else the default."""
    routes = [r for r in app.routes if isinstance(r, APIRoute) and r.include_in_schema]
    names = [r.name for r in routes if r.operation_id is None]
    if len(names) == len(set(names)):
        for route in routes:
            route.operation_id = route.operation_id or route.name


def document_errors(app: FastAPI) -> None:
    """Replace ``app.openapi`` with one that adds the error responses and descriptions (built once, then cached)."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            name_operations(app)
            schema = get_openapi(title=app.title, version=app.version, summary=app.summary,
                                 description=app.description or API_DESCRIPTION, routes=app.routes)
            components = schema.setdefault("components", {}).setdefault("schemas", {})
            components.update(Problem=_PROBLEM_SCHEMA, ProblemItem=_ITEM_SCHEMA, ValidationProblem=_VALIDATION_SCHEMA,
                              ReadingsRejected=_REJECTED_SCHEMA)
            for path, operations in schema.get("paths", {}).items():
                for method, op in operations.items():
                    _document(path, method, op)
                    if not op.get("description") and op.get("operationId") in DESCRIPTIONS:
                        op["description"] = DESCRIPTIONS[op["operationId"]]
            if "/HTTPValidationError'" not in str(schema["paths"]):  # FastAPI's 422 schemas, now unused
                components.pop("HTTPValidationError", None)
                components.pop("ValidationError", None)
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
