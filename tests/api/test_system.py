"""Health, NEWS2, the dashboard and the API documents; a restart on the same data; every route has a test here."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from fastapi.routing import APIRoute, APIWebSocketRoute
from starlette.routing import Mount

from models.twin import Twin
from tests.support.api import NOW, SICK, T0, assert_422, parse, post_readings, run_cycle, serve

#: Every route the app serves, and the module that tests it. A new route fails ``test_every_route_is_covered``
#: until its success and error paths are tested and it is named here.
COVERED = {
    ("POST", "/v1/readings"): "test_readings",
    ("POST", "/v1/write"): "test_write",
    ("POST", "/v1/observations"): "test_observations",
    ("GET", "/v1/patients/{patient_id}/observations"): "test_observations",
    ("POST", "/v1/cycle"): "test_cycle",
    ("GET", "/v1/patients"): "test_patients",
    ("GET", "/v1/patients/{patient_id}/risk"): "test_patients",
    ("GET", "/v1/patients/{patient_id}/risk/history"): "test_patients",
    ("GET", "/v1/patients/{patient_id}/windows"): "test_patients",
    ("POST", "/v1/patients/{patient_id}/what-if"): "test_patients",
    ("GET", "/v1/alerts"): "test_alerts",
    ("POST", "/v1/alerts/{alert_id}/acknowledge"): "test_alerts",
    ("POST", "/v1/alerts/{alert_id}/resolve"): "test_alerts",
    ("WS", "/v1/ws/alerts"): "test_alert_stream",
    ("GET", "/v1/alerts/{alert_id}/transitions"): "test_alert_lifecycle",
    ("POST", "/v1/research/exports"): "test_research_api",
    ("GET", "/v1/research/exports/{export_id}/export.csv"): "test_research_api",
    ("POST", "/v1/research/aggregates"): "test_research_api",
    ("GET", "/v1/research/budget"): "test_research_api",
    ("POST", "/v1/webhooks"): "test_webhooks",
    ("GET", "/v1/webhooks"): "test_webhooks",
    ("DELETE", "/v1/webhooks/{endpoint_id}"): "test_webhooks",
    ("GET", "/v1/webhooks/dead-letters"): "test_webhooks",
    ("POST", "/v1/webhooks/dead-letters/{delivery_id}/redeliver"): "test_webhooks",
    ("POST", "/v1/keys"): "test_access",
    ("GET", "/v1/keys"): "test_access",
    ("POST", "/v1/keys/{key_id}/revoke"): "test_access",
    ("GET", "/v1/audit"): "test_access",
    ("GET", "/healthz"): "test_system",
    ("POST", "/v1/news2"): "test_system",
    ("GET", "/"): "test_system",  # the dashboard (static files)
    ("GET", "/openapi.json"): "test_system",
    ("GET", "/docs"): "test_system",
    ("GET", "/v1/board"): "test_board_api",
    ("GET", "/patients/{patient_id}"): "test_board_api",  # the board's page, routed to the patient view
    ("GET", "/redoc"): "test_system",
    ("POST", "/v1/hl7"): "test_hl7",
    ("GET", "/fhir/metadata"): "test_fhir",
    ("GET", "/fhir/Patient/{patient_fhir_id}"): "test_fhir",
    ("GET", "/fhir/Observation"): "test_fhir",
    ("GET", "/fhir/Observation/{observation_id}"): "test_fhir",
    ("GET", "/fhir/RiskAssessment"): "test_fhir",
    ("GET", "/fhir/RiskAssessment/{risk_id}"): "test_fhir",
    ("GET", "/fhir/{unsupported:path}"): "test_fhir",  # any other FHIR path: a 404 OperationOutcome
    ("GET", "/cds-services"): "test_cds_hooks",
    ("POST", "/cds-services/wardtwin-deterioration"): "test_cds_hooks",
}


def flatten(routes: list) -> list:
    """The app's routes, routers included by ``include_router`` opened (FastAPI ≥ 0.16x wraps them)."""
    out = []
    for route in routes:
        inner = getattr(route, "original_router", None)
        out.extend(flatten(inner.routes) if inner is not None else [route])
    return out


def test_every_route_is_covered(client):
    served = set()
    for route in flatten(client.app.routes):
        if isinstance(route, APIWebSocketRoute):
            served.add(("WS", route.path))
        elif isinstance(route, Mount):
            served.add(("GET", route.path or "/"))
        elif isinstance(route, APIRoute) or getattr(route, "methods", None):
            served |= {(m, route.path) for m in route.methods - {"HEAD"}}
    assert served == set(COVERED)
    documented = {(m.upper(), p) for p, ops in client.get("/openapi.json").json()["paths"].items() for m in ops}
    assert documented <= set(COVERED)


# -- health ---------------------------------------------------------------------------------------------------------
def test_healthz_reports_the_store_the_clock_and_the_backlogs(client, clock):
    response = client.get("/healthz")
    assert response.status_code == 200
    health = response.json()
    assert health["ok"] is True and health["store"]["store"] == "sqlite" and health["store"]["ok"] is True
    assert health["alerts_outbox_backlog"] == 0 and health["websocket_clients"] == 0
    assert health["model_version"] and health["last_window_end"] is None  # no scheduler in these tests
    assert parse(health["now"]) == NOW
    clock.advance(timedelta(minutes=5))
    assert parse(client.get("/healthz").json()["now"]) == NOW + timedelta(minutes=5)


def test_healthz_reports_the_twin_alert_threshold_from_the_artifact_unless_overridden(client, tmp_path):
    assert client.get("/healthz").json()["twin_alert_threshold"] == Twin.load().alert_threshold
    with serve(tmp_path / "site", alert_threshold=0.4, alert_clear_threshold=0.3) as site:
        assert site.get("/healthz").json()["twin_alert_threshold"] == 0.4


# -- NEWS2 ----------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("body", "total", "band", "partial"), [
    ({"rr": 16, "spo2": 97, "on_oxygen": False, "sbp": 120, "hr": 70, "acvpu": "A", "temp": 37.0}, 0, "low", False),
    ({"rr": 25, "spo2": 91, "on_oxygen": True, "hr": 131, "acvpu": "V"}, 14, "high", True),
    ({"rr": 21, "spo2": 95, "on_oxygen": False, "sbp": 120, "hr": 70, "acvpu": "A", "temp": 37.0}, 3, "low",
     False),  # 2 + 1: no single 3
    ({"acvpu": "C"}, 3, "low-medium", True),  # a single 3 in any parameter
    ({"spo2": 88, "spo2_scale": 2, "on_oxygen": False}, 0, "low", True),  # scale 2: 88–92 % on air scores 0
    ({}, 0, "low", True),
])
def test_news2_of_a_charted_observation_set(client, body, total, band, partial):
    response = client.post("/v1/news2", json=body)
    assert response.status_code == 200, response.text
    result = response.json()
    assert (result["total"], result["band"], result["partial"]) == (total, band, partial)
    assert result["total"] == sum(result["points"].values())
    assert result["single_parameter_3"] == any(p == 3 for p in result["points"].values())


@pytest.mark.parametrize(("body", "urgency", "monitoring", "within", "response"), [
    ({"hr": 70}, "routine", "every 12 h", 720, "routine"),
    ({"hr": 95, "rr": 22, "temp": 38.5}, "ward-based", "every 4–6 h", 360,
     "registered nurse assesses, decides on escalation"),  # 4
    ({"rr": 7}, "urgent ward-based", "every hour", 60, "registered nurse informs the medical team"),  # a single 3
    ({"hr": 115, "rr": 22, "temp": 38.5}, "urgent", "every hour", 60,
     "urgent review by a clinician competent in acute illness"),  # 5
    ({"hr": 115, "rr": 25, "temp": 38.5}, "urgent", "every hour", 60,
     "urgent review by a clinician competent in acute illness"),  # 6
    ({"hr": 115, "rr": 25, "on_oxygen": True}, "emergency", "continuous monitoring", 0,
     "emergency assessment by a critical-care-competent team, consider transfer to level 2/3 care"),  # 7
])
def test_news2_answers_the_rcp_clinical_response_and_monitoring(client, body, urgency, monitoring, within, response):
    result = client.post("/v1/news2", json=body).json()
    assert (result["urgency"], result["monitoring"], result["observe_within_min"], result["response"]) == (
        urgency, monitoring, within, response)


def test_the_news2_response_fields_are_in_the_openapi_schema(client):
    schema = client.get("/openapi.json").json()["components"]["schemas"]["News2Out"]
    assert {"response", "monitoring", "urgency", "observe_within_min", "single_parameter_3"} <= set(
        schema["properties"])


@pytest.mark.parametrize(("body", "loc"), [
    ({"hr": 400}, ["body", "hr"]),  # implausible: models.news2 names the field
    ({"spo2": 101}, ["body", "spo2"]),
    ({"rr": -1}, ["body", "rr"]),
    ({"hr": "fast"}, ["body", "hr"]),
    ({"acvpu": "X"}, ["body", "acvpu"]),
    ({"spo2_scale": 3}, ["body", "spo2_scale"]),
    ({"bp": 120}, ["body", "bp"]),  # unknown field
    ([], ["body"]),
])
def test_news2_refuses_bad_observations(client, body, loc):
    assert_422(client.post("/v1/news2", json=body), loc)


def test_news2_refuses_a_body_that_is_not_json(client):
    assert_422(client.post("/v1/news2", content=b"{rr: 20", headers={"content-type": "application/json"}),
               ["body", 1])


@pytest.mark.parametrize(("body", "field"), [({"hr": 400}, "hr"), ({"rr": 1}, "rr"), ({"spo2": 40}, "spo2"),
                                             ({"sbp": 500}, "sbp"), ({"temp": 50}, "temp")])
def test_news2_names_the_implausible_field(client, body, field):
    detail = assert_422(client.post("/v1/news2", json=body), ["body", field])
    # the plausible range is in the schema now (OpenAPI states it), so the message is the schema's bound
    assert detail[0]["type"] in ("less_than_equal", "greater_than_equal") and "equal to" in detail[0]["msg"]


# -- the dashboard and the documents ---------------------------------------------------------------------------------
def test_the_board_is_served_at_the_root(client):
    response = client.get("/")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/html")
    assert "<title>wardtwin" in response.text and "/board.js" in response.text
    assert "/v1/ws/alerts" in client.get("/board.js").text
    assert client.get("/index.html").text == response.text
    assert client.get("/no-such-page.html").status_code == 404


def test_the_api_is_documented(client):
    spec = client.get("/openapi.json").json()
    assert spec["info"]["title"] == "wardtwin"
    body = spec["paths"]["/v1/readings"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert body["properties"]["readings"]["maxItems"] == 10_000 and "$ref" not in str(body)
    for page in ("/docs", "/redoc"):
        response = client.get(page)
        assert response.status_code == 200 and "text/html" in response.headers["content-type"]


# -- a restart on the same data --------------------------------------------------------------------------------------
def test_a_restart_on_the_same_data_dir_resumes_with_its_history(tmp_path: Path, sick_readings):
    with serve(tmp_path) as client:
        post_readings(client, sick_readings)
        run_cycle(client, T0 - timedelta(minutes=10))
        run_cycle(client, T0 - timedelta(minutes=5))
        run_cycle(client, T0)  # the twin's risk, three windows: its alert
        (alert,) = client.get("/v1/alerts", params={"kind": "twin"}).json()
        client.post(f"/v1/alerts/{alert['id']}/acknowledge")
        alerts = [(a["id"], a["state"]) for a in client.get("/v1/alerts").json()]
        assert alerts == [(alert["id"], "acknowledged")]
        before = client.get(f"/v1/patients/{SICK}/risk/history").json()
        board = client.get("/v1/patients").json()
    with serve(tmp_path) as client:
        assert client.get("/v1/patients").json() == board
        assert client.get(f"/v1/patients/{SICK}/risk/history").json() == before and len(before) == 3
        assert [(a["id"], a["state"]) for a in client.get("/v1/alerts").json()] == alerts
