"""The two hot reads (``GET /v1/patients``, ``GET /v1/patients/{id}/risk``) are ordinary routes of the one router
(``app.api.patients.ViewRoute``): in the OpenAPI document like any route, behind the same authentication step
(``app.api.auth.Authenticate``) and the same ``requires`` check, rate-limited and audited like any route, and
their bodies are the read model's bytes. Each behaviour is compared with a route FastAPI solves in full
(``/risk/history``), so the two kinds of route cannot drift apart."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from app.api import patients
from app.security.audit import AuditLog
from lab.cli import main as cli
from models.windows import WINDOW
from tests.support.api import SICK, T0, bearer, client_as, post_readings, run_cycle, serve

HOT = ("/v1/patients", f"/v1/patients/{SICK}/risk")
SOLVED = f"/v1/patients/{SICK}/risk/history"  # a route of the same group that FastAPI solves in full


@pytest.fixture
def scored(tmp_path: Path, sick_readings: list[dict]) -> Iterator[TestClient]:
    """The sick patient scored at T0."""
    with serve(tmp_path) as client:
        post_readings(client, sick_readings)
        run_cycle(client, T0)
        yield client


def _audit(client: TestClient, key_name: str) -> list[tuple]:
    log = AuditLog(client.app.state.access.keys)  # type: ignore[attr-defined]
    return [(e.key_id, e.key_name, e.role, e.action, e.target, e.status, e.remote)
            for e in log.query(key_name=key_name)]


def test_the_hot_reads_are_routes_of_the_router_with_their_openapi_entries(client):
    hot = {r.path for r in patients.router.routes if isinstance(r, patients.ViewRoute)}
    assert hot == {patients.BOARD_ROUTE, patients.RISK_ROUTE}
    spec = client.get("/openapi.json").json()
    board, risk = spec["paths"][patients.BOARD_ROUTE]["get"], spec["paths"][patients.RISK_ROUTE]["get"]
    history = spec["paths"][patients.RISK_ROUTE + "/history"]["get"]
    for op in (board, risk):
        assert op["security"] == [{"api_key": []}] and op["tags"] == ["patients"]
        assert {"200", "401", "403", "429", "503"} <= set(op["responses"])
    board_schema = board["responses"]["200"]["content"]["application/json"]["schema"]
    assert board_schema["type"] == "array" and board_schema["items"] == {"$ref": "#/components/schemas/PatientSummary"}
    assert risk["responses"]["200"]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/RiskOut"}
    (param,) = risk["parameters"]
    assert param == next(p for p in history["parameters"] if p["name"] == "patient_id")
    assert {"404", "422"} <= set(risk["responses"])


@pytest.mark.parametrize("role", ["clinician", "ehr"])
@pytest.mark.parametrize("path", HOT)
def test_a_hot_read_is_audited_as_any_read(scored, role, path):
    reader = client_as(scored, role, f"reader {role}")
    assert reader.get(path).status_code == 200 and reader.get(SOLVED).status_code == 200
    hot, solved = _audit(scored, f"reader {role}")
    assert hot[:3] == solved[:3] and hot[5:] == solved[5:]  # the same key, name, role, status, client
    assert hot[3:5] == (f"GET {patients.BOARD_ROUTE if path == HOT[0] else patients.RISK_ROUTE}",
                        None if path == HOT[0] else f"patient:{SICK}")


@pytest.mark.parametrize("role", ["device", "admin", None])
@pytest.mark.parametrize("path", HOT)
def test_other_roles_and_no_key_are_refused_as_on_any_route(scored, role, path):
    caller = client_as(scored, role, "other")
    hot, solved = caller.get(path), caller.get(SOLVED)
    assert (hot.status_code, hot.content) == (solved.status_code, solved.content)
    assert hot.headers.get("www-authenticate") == solved.headers.get("www-authenticate")
    if role is None:
        assert hot.status_code == 401 and hot.headers["www-authenticate"] == "Bearer"
        assert hot.json()["code"] == "unauthenticated"
    else:
        assert hot.status_code == 403 and hot.json()["code"] == "forbidden"
        assert [e[3:6] for e in _audit(scored, "other")] == [
            (f"GET {patients.BOARD_ROUTE if path == HOT[0] else patients.RISK_ROUTE}",
             None if path == HOT[0] else f"patient:{SICK}", 403),
            ("GET /v1/patients/{patient_id}/risk/history", f"patient:{SICK}", 403)]


@pytest.mark.parametrize("authorization", ["Basic dXNlcjpwYXNz", "Bearer", "Bearer wt_not-a-key", "wt_x", ""])
def test_a_bad_credential_is_401(scored, authorization):
    caller = TestClient(scored.app, headers={"Authorization": authorization})
    for path in (*HOT, SOLVED, "/v1/alerts"):
        response = caller.get(path)
        assert response.status_code == 401 and response.json()["code"] == "unauthenticated"


def test_the_scheme_is_read_in_any_case_and_the_key_stripped(scored):
    token = client_as(scored, "ehr").headers["authorization"].split(" ", 1)[1]
    for header in (f"bearer {token}", f"BEARER  {token} "):
        caller = TestClient(scored.app, headers={"Authorization": header})
        assert [caller.get(path).status_code for path in (*HOT, SOLVED)] == [200, 200, 200]


def test_unknown_patients_bad_ids_and_other_methods_are_answered_as_before(scored):
    assert scored.get("/v1/patients/nobody/risk").json()["code"] == "patient_not_found"
    bad = scored.get("/v1/patients/bad%20id/risk")
    assert bad.status_code == 422
    assert bad.json() == scored.get("/v1/patients/bad%20id/risk/history").json()  # FastAPI's own 422
    assert scored.get(f"/v1/patients/{SICK}/risk/", follow_redirects=False).status_code in (307, 404)
    assert scored.head(HOT[1]).status_code == 405


def test_a_bad_id_without_a_key_is_401_first(scored):
    assert client_as(scored, None).get("/v1/patients/bad%20id/risk").status_code == 401


def test_a_revoked_key_is_refused_on_its_next_read(scored):
    admin = client_as(scored, "admin", "ops")
    token = admin.post("/v1/keys", json={"name": "screen", "role": "clinician"}).json()
    reader = TestClient(scored.app, headers=bearer(token["token"]))
    assert reader.get(HOT[1]).status_code == 200 and reader.get(HOT[1]).status_code == 200
    assert admin.post(f"/v1/keys/{token['id']}/revoke").status_code == 200
    assert reader.get(HOT[1]).status_code == 401


def test_a_key_revoked_from_the_cli_is_refused_on_its_next_read(scored, tmp_path, capsys):
    """``wardtwin keys revoke`` opens ``access.db`` on a connection of its own, as from another process."""
    assert cli(["keys", "create", "--role", "ehr", "--name", "records", "--data-dir", str(tmp_path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    token, key_id = lines[1], lines[0].split()[2]
    reader = TestClient(scored.app, headers=bearer(token))
    for _ in range(2):
        assert reader.get(HOT[0]).status_code == 200
    assert cli(["keys", "revoke", key_id, "--data-dir", str(tmp_path)]) == 0
    assert reader.get(HOT[0]).status_code == 401


def test_the_rate_limit_is_spent_once_per_request_whichever_route(tmp_path, sick_readings):
    """Four tokens: a 404, a hot read, a solved read, a hot read; the fifth request is a 429 (audited)."""
    with serve(tmp_path, rate_limit_per_s=0.001, rate_limit_burst=4) as client:
        post_readings(client, sick_readings)
        run_cycle(client, T0)
        reader = client_as(client, "clinician", "limited")
        statuses = [reader.get(path).status_code for path in ("/v1/patients/nobody/risk", HOT[1], SOLVED, HOT[0])]
        assert statuses == [404, 200, 200, 200]
        limited = reader.get(HOT[1])
        assert limited.status_code == 429 and limited.json()["code"] == "rate_limited"
        assert int(limited.headers["retry-after"]) >= 1
        assert [e[5] for e in _audit(client, "limited")] == [404, 200, 200, 200, 429]


def test_the_bodies_are_the_read_models_bytes_and_a_new_score_is_served_at_once(tmp_path, sick_readings):
    with serve(tmp_path) as client:
        view = client.app.state.wardtwin.read_model  # type: ignore[attr-defined]
        post_readings(client, sick_readings)
        run_cycle(client, T0 - WINDOW)
        first = client.get(HOT[1])
        assert first.content == view.risk_body(SICK) and first.headers["content-type"] == "application/json"
        assert first.json()["window_end"] == iso_z(T0 - WINDOW)
        run_cycle(client, T0)
        assert client.get(HOT[1]).json()["window_end"] == iso_z(T0)
        assert client.get(HOT[0]).json()[0]["window_end"] == iso_z(T0)


def iso_z(ts) -> str:
    return ts.isoformat().replace("+00:00", "Z")
