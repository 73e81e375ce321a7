"""Access control: every route of the OpenAPI document against every role (the README's table), keys created and
revoked, the acknowledger is the key, the WebSocket's key and Origin, and the audit trail.

``ROUTE_GROUPS`` is the README's "Access control" table. A route in the OpenAPI document that no group claims
fails ``test_every_route_has_a_rule``: a new route must be given its rule here (and in the README)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

from tests.support.api import SICK, T0, bearer, client_as, create_key, post_readings, reading

ROLES = ("device", "clinician", "ehr", "admin")
PUBLIC = "public"

#: route group → (the roles allowed, the (method, path template) routes in it). The README's table.
ROUTE_GROUPS: dict[str, tuple[tuple[str, ...], tuple[tuple[str, str], ...]]] = {
    "readings (write)": (("device",), (("POST", "/v1/readings"), ("POST", "/v1/write"))),
    "observations (charted sets)": (("clinician", "device"), (("POST", "/v1/observations"),)),
    "observations (read back)": (("clinician", "ehr"), (("GET", "/v1/patients/{patient_id}/observations"),)),
    "patients (read)": (("clinician", "ehr"), (
        ("GET", "/v1/patients"), ("GET", "/v1/patients/{patient_id}/risk"),
        ("GET", "/v1/patients/{patient_id}/risk/history"), ("GET", "/v1/patients/{patient_id}/windows"))),
    "what-if": (("clinician",), (("POST", "/v1/patients/{patient_id}/what-if"),)),
    "ward board (read)": (("clinician",), (("GET", "/v1/board"),)),
    "NEWS2 calculator": (("clinician", "ehr"), (("POST", "/v1/news2"),)),
    "alerts (list, acknowledge, resolve, WebSocket)": (("clinician",), (
        ("GET", "/v1/alerts"), ("POST", "/v1/alerts/{alert_id}/acknowledge"),
        ("POST", "/v1/alerts/{alert_id}/resolve"), ("GET", "/v1/alerts/{alert_id}/transitions"))),
    "cycle": (("admin",), (("POST", "/v1/cycle"),)),
    "keys and audit": (("admin",), (
        ("GET", "/v1/keys"), ("POST", "/v1/keys"), ("POST", "/v1/keys/{key_id}/revoke"), ("GET", "/v1/audit"))),
    "webhooks": (("admin",), (
        ("GET", "/v1/webhooks"), ("POST", "/v1/webhooks"), ("GET", "/v1/webhooks/dead-letters"),
        ("POST", "/v1/webhooks/dead-letters/{delivery_id}/redeliver"), ("DELETE", "/v1/webhooks/{endpoint_id}"))),
    "research": (("admin",), (
        ("POST", "/v1/research/exports"), ("GET", "/v1/research/exports/{export_id}/export.csv"),
        ("POST", "/v1/research/aggregates"), ("GET", "/v1/research/budget"))),
    "health": ((PUBLIC,), (("GET", "/healthz"),)),
    "HL7 v2 (write)": (("device",), (("POST", "/v1/hl7"),)),
    "FHIR R4 (read)": (("clinician", "ehr"), (
        ("GET", "/fhir/metadata"), ("GET", "/fhir/Patient/{patient_fhir_id}"), ("GET", "/fhir/Observation"),
        ("GET", "/fhir/Observation/{observation_id}"), ("GET", "/fhir/RiskAssessment"),
        ("GET", "/fhir/RiskAssessment/{risk_id}"))),
    "CDS Hooks": (("clinician", "ehr"), (("GET", "/cds-services"), ("POST", "/cds-services/wardtwin-deterioration"))),
}
RULES = {route: roles for roles, routes in ROUTE_GROUPS.values() for route in routes}
#: A value for each path parameter that passes its pattern (the resource need not exist: 404 is "allowed").
PATH_VALUES = {"patient_id": "bed-1", "alert_id": "bed-1-20260302T1200Z-twin", "key_id": "0123456789ab",
               "delivery_id": "1", "endpoint_id": "wh_1", "export_id": "0123456789abcdef", "patient_fhir_id": "bed-1",
               "observation_id": "hr.1.bed-1", "risk_id": "risk.1.bed-1"}


def _openapi_routes(client: TestClient) -> list[tuple[str, str]]:
    paths = client.get("/openapi.json").json()["paths"]
    return [(method.upper(), path) for path, ops in paths.items() for method in ops]


def _error_code(response) -> str:
    """An error's code: the JSON API's ``code``, or a FHIR OperationOutcome's issue code (``login`` is 401's)."""
    body = response.json()
    if body.get("resourceType") == "OperationOutcome":
        return {"login": "unauthenticated"}.get(body["issue"][0]["code"], body["issue"][0]["code"])
    return body["code"]


def _call(client: TestClient, method: str, path: str):
    url = re.sub(r"\{(\w+)\}", lambda m: PATH_VALUES[m.group(1)], path)
    return client.request(method, url, json={} if method in ("POST", "PUT", "PATCH") else None)


def test_every_route_has_a_rule(client):
    routes = _openapi_routes(client)
    assert set(routes) == set(RULES), {"without a rule": set(routes) - set(RULES),
                                       "rule for no route": set(RULES) - set(routes)}


def test_the_openapi_document_declares_the_key_on_every_protected_route(client):
    spec = client.get("/openapi.json").json()
    assert spec["components"]["securitySchemes"]["api_key"] == {
        "type": "http", "scheme": "bearer", "description": spec["components"]["securitySchemes"]["api_key"][
            "description"]}
    for path, ops in spec["paths"].items():
        for method, op in ops.items():
            protected = RULES[(method.upper(), path)] != (PUBLIC,)
            assert (op.get("security") == [{"api_key": []}]) == protected, (method, path)


@pytest.fixture(scope="module")
def role_clients(tmp_path_factory) -> dict[str | None, TestClient]:
    from tests.support.api import serve

    with serve(tmp_path_factory.mktemp("roles")) as client:
        yield {role: client_as(client, role) for role in (*ROLES, None)}


@pytest.mark.parametrize(("method", "path"), sorted(RULES))
@pytest.mark.parametrize("role", [*ROLES, None])
def test_each_role_reaches_only_its_routes(role_clients, role, method, path):
    """Allowed: anything but 401/403 (404 for a placeholder resource, 422 for an empty body); not allowed: 403;
    no key: 401 with ``WWW-Authenticate: Bearer``."""
    allowed = RULES[(method, path)]
    response = _call(role_clients[role], method, path)
    if PUBLIC in allowed or role in allowed:
        assert response.status_code not in (401, 403, 405, 500), response.text
    elif role is None:
        assert response.status_code == 401 and response.headers["www-authenticate"] == "Bearer", response.text
        assert _error_code(response) == "unauthenticated"
    else:
        assert response.status_code == 403 and _error_code(response) == "forbidden", response.text


@pytest.mark.parametrize("token", ["", "wt_not-a-key", "Basic dXNlcjpwYXNz"])
def test_an_unknown_or_malformed_key_is_401(client, token):
    response = client.get("/v1/patients", headers={"Authorization": token if " " in token else f"Bearer {token}"})
    assert response.status_code == 401 and response.json()["code"] == "unauthenticated"
    assert not token or token not in response.text


def test_a_device_key_cannot_read_a_patient_it_wrote(client):
    device = client_as(client, "device", "monitor bed 1")
    assert device.post("/v1/readings", json={"readings": [reading("bed-1", ts=T0)]}).status_code == 200
    for path in ("/v1/patients", "/v1/patients/bed-1/risk", "/v1/patients/bed-1/windows", "/v1/alerts"):
        assert device.get(path).status_code == 403


# -- keys: created and revoked by an admin, stored as hashes ---------------------------------------------------------
def test_an_admin_creates_a_key_that_works_until_it_is_revoked(client):
    admin = client_as(client, "admin", "ops")
    created = admin.post("/v1/keys", json={"name": "ward 7 board", "role": "clinician"})
    assert created.status_code == 201, created.text
    key = created.json()
    assert key["token"].startswith("wt_") and key["role"] == "clinician" and key["revoked_at"] is None
    board = TestClient(client.app, headers=bearer(key["token"]))
    assert board.get("/v1/alerts").status_code == 200
    listed = {k["id"]: k for k in admin.get("/v1/keys").json()}
    assert listed[key["id"]]["name"] == "ward 7 board" and "token" not in listed[key["id"]]
    assert key["token"] not in admin.get("/v1/keys").text
    revoked = admin.post(f"/v1/keys/{key['id']}/revoke")
    assert revoked.status_code == 200 and revoked.json()["revoked_at"] is not None
    assert board.get("/v1/alerts").status_code == 401
    assert admin.post("/v1/keys/0123456789ab/revoke").json()["code"] == "key_not_found"


def test_keys_are_stored_only_as_hashes(client, tmp_path):
    token = create_key(client, "ehr", "records")
    raw = b"".join(p.read_bytes() for p in tmp_path.glob("access.db*"))
    assert token.encode() not in raw
    import hashlib

    assert hashlib.sha256(token.encode()).hexdigest().encode() in raw


@pytest.mark.parametrize(("body", "field"), [
    ({"name": "x", "role": "superuser"}, "role"), ({"name": "", "role": "ehr"}, "name"),
    ({"name": "x" * 65, "role": "ehr"}, "name"), ({"role": "ehr"}, "name"), ({"name": 5, "role": "ehr"}, "name"),
])
def test_a_bad_key_request_is_422_naming_the_field(client, body, field):
    response = client.post("/v1/keys", json=body)
    assert response.status_code == 422 and ["body", field] in [d["loc"][:2] for d in response.json()["errors"]]


# -- rate limit ------------------------------------------------------------------------------------------------------
def test_a_key_over_its_rate_is_429_with_retry_after_and_others_are_not(tmp_path):
    from tests.support.api import serve

    with serve(tmp_path, rate_limit_per_s=0.001, rate_limit_burst=3) as client:
        first, second = client_as(client, "clinician", "a"), client_as(client, "clinician", "b")
        assert [first.get("/v1/alerts").status_code for _ in range(3)] == [200] * 3
        limited = first.get("/v1/alerts")
        assert limited.status_code == 429 and limited.json()["code"] == "rate_limited"
        assert int(limited.headers["retry-after"]) >= 1
        assert second.get("/v1/alerts").status_code == 200


# -- WebSocket: key and Origin ---------------------------------------------------------------------------------------
def test_the_websocket_takes_the_key_in_the_first_message(client):
    nurse = create_key(client, "clinician", "nurse-7")
    anonymous = client_as(client, None)
    with anonymous.websocket_connect("/v1/ws/alerts") as ws:
        ws.send_json({"key": nurse})
        post_readings(client, [reading(SICK, ts=T0)])
        client.post("/v1/keys", json={"name": "ping", "role": "ehr"})  # any request: the socket stays open
    audit = client.get("/v1/audit", params={"key_name": "nurse-7"}).json()
    assert [(e["action"], e["status"]) for e in audit] == [("WS /v1/ws/alerts", 101)]


@pytest.mark.parametrize("role", [None, "device", "ehr", "admin"])
def test_the_websocket_refuses_a_missing_or_wrong_key(client, role):
    anonymous = client_as(client, None)
    with anonymous.websocket_connect("/v1/ws/alerts") as ws:
        ws.send_json({"key": create_key(client, role) if role else "wt_nobody"})
        with pytest.raises(WebSocketDisconnect) as closed:
            ws.receive_json()
    assert closed.value.code == 1008


def test_the_websocket_refuses_a_foreign_origin_and_accepts_its_own_and_configured_ones(tmp_path):
    from tests.support.api import serve

    with serve(tmp_path, ws_allowed_origins=["https://board.example"]) as client:
        with pytest.raises(WebSocketDisconnect) as refused, \
                client.websocket_connect("/v1/ws/alerts", headers={"Origin": "https://evil.example"}):
            pass
        assert refused.value.code == 1008
        for origin in ("http://testserver", "https://board.example"):
            with client.websocket_connect("/v1/ws/alerts", headers={"Origin": origin}) as ws:
                ws.send_text("ping")  # authenticated by the header: the socket is open


# -- audit -----------------------------------------------------------------------------------------------------------
def test_the_audit_trail_records_reads_acknowledgements_keys_and_cycles(client, sick_readings):
    started = datetime.now(UTC)
    post_readings(client, sick_readings)
    admin, nurse, ehr = (client_as(client, "admin", "ops"), client_as(client, "clinician", "nurse-7"),
                         client_as(client, "ehr", "records"))
    for end in (T0 - timedelta(minutes=10), T0 - timedelta(minutes=5), T0):  # the twin's risk, sustained: an alert
        assert admin.post("/v1/cycle", params={"window_end": end.isoformat()}).status_code == 200
    assert ehr.get(f"/v1/patients/{SICK}/risk").status_code == 200
    (alert,) = nurse.get("/v1/alerts", params={"kind": "twin"}).json()
    assert nurse.post(f"/v1/alerts/{alert['id']}/acknowledge").status_code == 200
    assert ehr.get("/v1/alerts").status_code == 403  # refused attempts are recorded too
    created = admin.post("/v1/keys", json={"name": "bed 3 monitor", "role": "device"}).json()

    trail = [(e["key_name"], e["role"], e["action"], e["target"], e["status"])
             for e in admin.get("/v1/audit").json() if e["key_name"] in ("ops", "nurse-7", "records")]
    assert trail == [
        *[("ops", "admin", "POST /v1/cycle", None, 200)] * 3,
        ("records", "ehr", "GET /v1/patients/{patient_id}/risk", f"patient:{SICK}", 200),
        ("nurse-7", "clinician", "GET /v1/alerts", None, 200),
        ("nurse-7", "clinician", "POST /v1/alerts/{alert_id}/acknowledge", f"alert:{alert['id']}", 200),
        ("records", "ehr", "GET /v1/alerts", None, 403),
        ("ops", "admin", "POST /v1/keys", f"key:{created['id']}", 201),
    ]
    entry = admin.get("/v1/audit", params={"target": f"alert:{alert['id']}"}).json()[0]
    # stamped with the wall clock, not the service's (which may be simulated: the demo runs at 60x)
    assert started <= datetime.fromisoformat(entry["at"]) <= datetime.now(UTC) and entry["remote"] == "testclient"
    # device writes: one aggregate row per request, "write:<stored> readings;<patients> patients;<ids>" (issue 21)
    writes = [e["target"] for e in admin.get("/v1/audit", params={"limit": 1000}).json()
              if e["action"] == "POST /v1/readings"]
    assert writes and all(t.startswith("write:") and t.endswith(f"1 patients;{SICK}") for t in writes), writes
    assert sum(int(t.removeprefix("write:").split(" ")[0]) for t in writes) == len(sick_readings)


def test_the_audit_trail_cannot_be_edited(client, tmp_path):
    import sqlite3

    client.get("/v1/patients")
    assert client.app.state.access.audit.query()  # its entry, written: a read of the trail waits for it
    conn = sqlite3.connect(tmp_path / "access.db")
    for statement in ("UPDATE audit SET key_name = 'nobody'", "DELETE FROM audit"):
        with pytest.raises(sqlite3.IntegrityError, match="append-only"):
            conn.execute(statement)
    conn.close()
    for method in ("PUT", "PATCH", "DELETE"):
        assert client.request(method, "/v1/audit").status_code == 405


def readme_table() -> str:
    """``ROUTE_GROUPS`` as the README's markdown table: role × route group → allowed / 403, and 401 without a key."""
    lines = ["| route group | routes | device | clinician | ehr | admin | no key |", "|---|---|---|---|---|---|---|"]
    for group, (allowed, routes) in ROUTE_GROUPS.items():
        names = "<br>".join(f"`{method} {path}`" for method, path in routes)
        if group.startswith("alerts"):
            names += "<br>`WS /v1/ws/alerts`"
        cells = ["allowed" if PUBLIC in allowed or role in allowed else "403" for role in ROLES]
        lines.append(f"| {group} | {names} | {' | '.join(cells)} | {'allowed' if PUBLIC in allowed else '401'} |")
    return "\n".join(lines)


def test_the_readme_table_is_the_tested_one():
    from tests.support.server import ROOT

    readme = (ROOT / "README.md").read_text()
    assert readme_table() in readme, "README's access table differs from ROUTE_GROUPS; paste:\n" + readme_table()


def test_a_short_demo_key_is_refused():
    from pydantic import ValidationError

    from app.settings import Settings

    with pytest.raises(ValidationError, match="demo_key"):
        Settings(demo_key="changethis")
