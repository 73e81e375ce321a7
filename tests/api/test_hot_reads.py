"""The hot reads answered by the edge (``Edge._hot`` with ``app.api.patients.hot_read``): ``GET /v1/patients`` and
``GET /v1/patients/{id}/risk`` succeed there without FastAPI's routing, and must be indistinguishable from the
routes' answers: the same bytes and headers, the same key check and roles, the same rate limit, the same audit
entry; anything that does not succeed goes to the routes. A revoked key is refused from its next request, also
when it is revoked from ``wardtwin keys revoke`` while its principal is cached."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from app.api import patients
from app.api.edge import Edge
from app.security.audit import AuditLog
from lab.cli import main as cli
from models.windows import WINDOW
from tests.support.api import SICK, T0, bearer, client_as, post_readings, run_cycle, serve

HOT = ("/v1/patients", f"/v1/patients/{SICK}/risk")


@pytest.fixture
def scored(tmp_path: Path, sick_readings: list[dict]) -> Iterator[TestClient]:
    """The sick patient scored at T0, the ward's body encoded (one read)."""
    with serve(tmp_path) as client:
        post_readings(client, sick_readings)
        run_cycle(client, T0)
        assert client.get("/v1/patients").status_code == 200
        yield client


@pytest.fixture
def hot_answers(monkeypatch) -> list[str]:
    """The paths the edge answered itself."""
    answered: list[str] = []
    original = Edge._hot

    async def spy(self, scope, send):
        done = await original(self, scope, send)
        if done:
            answered.append(scope["path"])
        return done

    monkeypatch.setattr(Edge, "_hot", spy)
    return answered


def _routes_only(monkeypatch) -> None:
    monkeypatch.setattr(patients, "hot_read", lambda view, path: None)


def _headers(response) -> list[tuple[str, str]]:
    return [(k, v) for k, v in response.headers.multi_items() if k != "date"]


def _audit(client: TestClient, key_name: str) -> list[tuple]:
    log = AuditLog(client.app.state.access.keys)  # type: ignore[attr-defined]
    return [(e.key_id, e.key_name, e.role, e.action, e.target, e.status, e.remote)
            for e in log.query(key_name=key_name)]


@pytest.mark.parametrize("role", ["clinician", "ehr"])
@pytest.mark.parametrize("path", HOT)
def test_the_edge_answers_as_the_routes_do(scored, hot_answers, monkeypatch, role, path):
    """Status, bytes, headers and the audit entry: the edge's answer, then the routes' answer to the same read."""
    reader = client_as(scored, role, f"reader {role}")
    hot = reader.get(path)
    assert hot_answers == [path], "the edge did not answer the read itself"
    _routes_only(monkeypatch)
    routed = reader.get(path)
    assert hot.status_code == routed.status_code == 200
    assert hot.content == routed.content
    assert _headers(hot) == _headers(routed)
    first, second = _audit(scored, f"reader {role}")
    assert first == second
    assert first[3:6] == (f"GET {patients.BOARD_ROUTE if path == HOT[0] else patients.RISK_ROUTE}",
                          None if path == HOT[0] else f"patient:{SICK}", 200)


def test_every_hot_read_is_audited(scored, hot_answers):
    reader = client_as(scored, "clinician", "board 3")
    for _ in range(3):
        for path in HOT:
            assert reader.get(path).status_code == 200
    assert len(hot_answers) == 6
    assert [(e[3], e[4]) for e in _audit(scored, "board 3")] == [
        ("GET /v1/patients", None), ("GET /v1/patients/{patient_id}/risk", f"patient:{SICK}")] * 3


@pytest.mark.parametrize("role", ["device", "admin", None])
@pytest.mark.parametrize("path", HOT)
def test_other_roles_and_no_key_are_refused_as_before(scored, hot_answers, role, path):
    response = client_as(scored, role).get(path)
    if role is None:
        assert response.status_code == 401 and response.headers["www-authenticate"] == "Bearer"
        assert response.json()["code"] == "unauthenticated"
    else:
        assert response.status_code == 403 and response.json()["code"] == "forbidden"
    assert hot_answers == []


@pytest.mark.parametrize("authorization", ["Basic dXNlcjpwYXNz", "Bearer", "Bearer wt_not-a-key", "wt_x", ""])
def test_a_bad_credential_is_401_as_before(scored, hot_answers, authorization):
    response = TestClient(scored.app, headers={"Authorization": authorization}).get(HOT[1])
    assert response.status_code == 401 and response.json()["code"] == "unauthenticated"
    assert hot_answers == []


def test_the_scheme_is_read_as_the_routes_read_it(scored, hot_answers):
    """``HTTPBearer`` takes the scheme case-insensitively and strips the key: so does the edge."""
    token = client_as(scored, "ehr").headers["authorization"].split(" ", 1)[1]
    for header in (f"bearer {token}", f"BEARER  {token} "):
        assert TestClient(scored.app, headers={"Authorization": header}).get(HOT[1]).status_code == 200
    assert len(hot_answers) == 2


def test_unknown_patients_and_other_paths_go_to_the_routes(scored, hot_answers):
    assert scored.get("/v1/patients/nobody/risk").json()["code"] == "patient_not_found"
    assert scored.get("/v1/patients/bad%20id/risk").status_code == 422
    assert scored.get(f"/v1/patients/{SICK}/risk/", follow_redirects=False).status_code in (307, 404)
    assert scored.head(HOT[1]).status_code == 405  # HEAD: the routes answer it, as before
    assert hot_answers == []


def test_a_revoked_key_is_refused_on_its_next_hot_read(scored, hot_answers, tmp_path):
    admin = client_as(scored, "admin", "ops")
    token = admin.post("/v1/keys", json={"name": "screen", "role": "clinician"}).json()
    reader = TestClient(scored.app, headers=bearer(token["token"]))
    assert reader.get(HOT[1]).status_code == 200 and reader.get(HOT[1]).status_code == 200
    assert admin.post(f"/v1/keys/{token['id']}/revoke").status_code == 200
    assert reader.get(HOT[1]).status_code == 401
    assert len(hot_answers) == 2


def test_a_key_revoked_from_the_cli_is_refused_on_its_next_hot_read(scored, hot_answers, tmp_path, capsys):
    """``wardtwin keys revoke`` opens ``access.db`` on a connection of its own, as from another process."""
    assert cli(["keys", "create", "--role", "ehr", "--name", "records", "--data-dir", str(tmp_path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    token, key_id = lines[1], lines[0].split()[2]
    reader = TestClient(scored.app, headers=bearer(token))
    for _ in range(2):
        assert reader.get(HOT[0]).status_code == 200
    assert cli(["keys", "revoke", key_id, "--data-dir", str(tmp_path)]) == 0
    assert reader.get(HOT[0]).status_code == 401
    assert len(hot_answers) == 2


def test_the_rate_limit_is_spent_once_per_read(tmp_path, sick_readings, hot_answers):
    """Three tokens: a 404 (the routes) and two hot reads spend them; the fourth read is the routes' 429."""
    with serve(tmp_path, rate_limit_per_s=0.001, rate_limit_burst=3) as client:
        post_readings(client, sick_readings)
        run_cycle(client, T0)
        reader = client_as(client, "clinician", "limited")
        assert reader.get("/v1/patients/nobody/risk").status_code == 404
        assert reader.get(HOT[1]).status_code == 200 and reader.get(HOT[1]).status_code == 200
        limited = reader.get(HOT[1])
        assert limited.status_code == 429 and limited.json()["code"] == "rate_limited"
        assert int(limited.headers["retry-after"]) >= 1
        assert len(hot_answers) == 2
        assert [e[5] for e in _audit(client, "limited")] == [404, 200, 200, 429]


def test_a_new_score_is_served_at_once(tmp_path, sick_readings, hot_answers):
    """The edge serves the view's current bytes: after the next cycle, its window end."""
    with serve(tmp_path) as client:
        post_readings(client, sick_readings)
        run_cycle(client, T0 - WINDOW)
        assert client.get(HOT[1]).json()["window_end"] == iso_z(T0 - WINDOW)
        run_cycle(client, T0)
        assert client.get(HOT[1]).json()["window_end"] == iso_z(T0)
        assert client.get(HOT[0]).json()[0]["window_end"] == iso_z(T0)  # the routes encode the ward again
        assert client.get(HOT[0]).json()[0]["window_end"] == iso_z(T0)  # and the edge serves it
        assert hot_answers == [HOT[1], HOT[1], HOT[0]]


def iso_z(ts) -> str:
    return ts.isoformat().replace("+00:00", "Z")
