"""One error shape for the JSON API (issue 22): every error is an RFC 9457 problem in ``application/problem+json``
(``type``, ``title``, ``status``, ``detail``, the domain ``code``, the item ``errors`` of a 422), whether a route, a
handler or the edge answered it, and each body validates against the OpenAPI document's ``Problem`` schema.
``/fhir`` keeps its OperationOutcomes. The OpenAPI document gives every operation an id, a summary and a
description a client generator can use."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import httpx
import jsonschema_rs  # schemathesis's validator (its dependency, pinned in constraints.txt)
import pytest
from fastapi.testclient import TestClient

from app.api.errors import PROBLEM_BASE, PROBLEM_MEDIA_TYPE
from tests.support.api import T0, assert_422, assert_problem, bearer, client_as, reading, serve


@pytest.fixture
def problem_schema(client) -> dict:
    document = client.get("/openapi.json").json()
    return {"$ref": "#/components/schemas/Problem", "components": document["components"]}


def check(response: httpx.Response, status: int, code: str, schema: dict) -> dict:
    body = assert_problem(response, status, code)
    jsonschema_rs.validate(schema, body)
    return body


def test_a_domain_error_is_a_problem_with_its_type_title_and_code(client, problem_schema):
    body = check(client.get("/v1/patients/nobody/risk"), 404, "patient_not_found", problem_schema)
    assert body["type"] == f"{PROBLEM_BASE}patient-not-found" and body["title"] == "Patient not found"
    assert body["detail"] == "no patient 'nobody'" and "errors" not in body


def test_a_validation_error_names_every_item_and_summarizes_the_first(client, problem_schema):
    response = client.get("/v1/alerts", params={"limit": 0, "state": "sleeping"})
    body = check(response, 422, "invalid_request", problem_schema)
    assert body["type"] == f"{PROBLEM_BASE}invalid-request" and body["title"] == "Invalid request"
    assert sorted(e["loc"][1] for e in assert_422(response, ["query", "limit"])) == ["limit", "state"]
    first = body["errors"][0]
    assert body["detail"] == f"{first['loc'][1]}: {first['msg']} (and 1 more)"


def test_a_partly_kept_batch_counts_what_was_stored(client, problem_schema):
    batch = [reading("bed-1", value=80, ts=T0 - timedelta(minutes=2)), reading("bed-1", value=400),
             reading("bed-1", vital="spo2", value=97, ts=T0 - timedelta(minutes=1)), reading("bed-1", vital="xx")]
    body = check(client.post("/v1/readings", json={"readings": batch}), 422, "reading_rejected", problem_schema)
    jsonschema_rs.validate({**problem_schema, "$ref": "#/components/schemas/ReadingsRejected"}, body)
    assert body["accepted"] == 2 and body["rejected"] == 2
    assert sorted({e["loc"][2] for e in body["errors"]}) == [1, 3]
    assert body["detail"].startswith("2 of 4 readings rejected, 2 stored; readings[1].value: heart rate 400")


def test_authentication_and_permission_errors_are_problems(client, problem_schema):
    anonymous = client_as(client, None)
    response = anonymous.get("/v1/patients")
    check(response, 401, "unauthenticated", problem_schema)
    assert response.headers["www-authenticate"] == "Bearer"
    # a body-carrying request without a key is refused before its body is read (app.api.auth)
    response = anonymous.post("/v1/readings", json={"readings": []})
    check(response, 401, "unauthenticated", problem_schema)
    assert response.headers["www-authenticate"] == "Bearer"
    check(client_as(client, "device").get("/v1/patients"), 403, "forbidden", problem_schema)


def test_the_edge_refusals_are_problems(tmp_path: Path, problem_schema):
    with serve(tmp_path, max_body_bytes=1000) as small:
        check(small.post("/v1/readings", content=b"[" + b" " * 2000 + b"]",
                         headers={"content-type": "application/json"}), 413, "payload_too_large", problem_schema)
        check(small.post("/v1/readings", content=b"<readings/>", headers={"content-type": "application/xml"}),
              415, "unsupported_media_type", problem_schema)


def test_too_many_requests_is_a_problem_with_retry_after(tmp_path: Path, problem_schema):
    with serve(tmp_path, rate_limit_burst=1, rate_limit_per_s=0.001) as client:
        client.get("/v1/patients")
        response = client.get("/v1/patients")
        check(response, 429, "rate_limited", problem_schema)
        assert int(response.headers["retry-after"]) > 0


def test_an_alert_conflict_is_a_problem(client, alerting, problem_schema):
    assert client.post(f"/v1/alerts/{alerting}/resolve").status_code == 200
    check(client.post(f"/v1/alerts/{alerting}/resolve"), 409, "alert_conflict", problem_schema)


def test_starlettes_own_answers_are_about_blank_problems(client, problem_schema):
    body = check(client.get("/v1/nothing-here"), 404, "not_found", problem_schema)
    assert body["type"] == "about:blank" and body["title"] == "Not Found"
    response = client.put("/v1/patients")
    body = check(response, 405, "method_not_allowed", problem_schema)
    assert body["title"] == "Method Not Allowed" and response.headers["allow"] == "GET"


def test_a_bug_is_a_problem_without_a_trace(client, problem_schema, monkeypatch, caplog):
    async def broken(*args, **kwargs):
        raise RuntimeError("secret internal path /srv/wardtwin")

    monkeypatch.setattr(client.app.state.wardtwin, "alerts", broken)  # type: ignore[attr-defined]
    quiet = TestClient(client.app, headers=bearer(client.headers["authorization"].split()[1]),
                       raise_server_exceptions=False)
    body = check(quiet.get("/v1/alerts"), 500, "internal_error", problem_schema)
    assert "secret" not in str(body) and body["detail"] == "internal error"


def test_fhir_keeps_its_operation_outcome(client):
    response = client.get("/fhir/Patient/nobody")
    assert response.status_code == 404 and response.headers["content-type"].startswith("application/fhir+json")
    assert response.json()["resourceType"] == "OperationOutcome"


def test_every_json_api_error_response_is_documented_as_a_problem(client):
    document = client.get("/openapi.json").json()
    required = set(document["components"]["schemas"]["Problem"]["required"])
    assert {"type", "title", "status", "detail", "code"} <= required
    assert "HTTPValidationError" not in document["components"]["schemas"]  # FastAPI's 422 shape is answered nowhere
    documented = 0
    for path, operations in document["paths"].items():
        for method, op in operations.items():
            for status, response in op["responses"].items():
                if not status.startswith(("4", "5")):
                    continue
                media = set(response["content"])
                if path.startswith("/fhir/"):
                    assert media == {"application/fhir+json"}, (method, path, status)
                elif path == "/v1/hl7" and status in ("400", "422", "503"):
                    assert media == {"application/hl7-v2"}, (method, path, status)  # the ACK
                else:
                    assert media == {PROBLEM_MEDIA_TYPE}, (method, path, status)
                    documented += 1
    assert documented > 100


def test_every_operation_has_an_id_a_summary_and_a_description(client):
    operations = [(method, path, op) for path, ops in client.get("/openapi.json").json()["paths"].items()
                  for method, op in ops.items()]
    ids = [op["operationId"] for _, _, op in operations]
    assert len(ids) == len(set(ids)) and all(i.isidentifier() and not i.endswith(("_get", "_post")) for i in ids)
    for method, path, op in operations:
        assert op.get("summary") and len(op.get("description", "")) >= 40, (method, path)


def test_a_body_that_is_not_utf8_is_a_422_naming_the_body(client, problem_schema):
    """FastAPI answers a body it cannot decode with a bare 400; here it is the 422 of any malformed JSON body."""
    response = client.post("/v1/webhooks", content=b'n\x16u\xff\x0bC\x0c&\xfe_', headers={"content-type":
                                                                                          "application/json"})
    body = check(response, 422, "invalid_request", problem_schema)
    assert assert_422(response, ["body"])[0]["type"] == "json_invalid" and body["detail"].startswith("body: ")
