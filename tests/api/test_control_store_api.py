"""The service in process and its control store (issue 24): ``/healthz`` names the engine; on a real PostgreSQL a
charted NEWS2 7 set raises its alert, which is listed, acknowledged and in the transitions, all in PostgreSQL (no
``alerts.db`` or ``access.db`` is made), and a second service on the same database sees it."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from tests.support.api import T0, client_as, iso, serve

#: A full set scoring NEWS2 7 (as in test_observations): RR 25 (3), SpO2 94 (1), SBP 105 (1), pulse 115 (2).
SEVEN = {"rr": 25, "spo2": 94, "o2": False, "sbp": 105, "hr": 115, "acvpu": "A", "temp": 37.2}


def test_healthz_names_the_embedded_control_store(client) -> None:
    health = client.get("/healthz").json()
    assert health["control_store"] == {"engine": "sqlite", "ok": True} and health["ok"]


@pytest.mark.postgres
def test_a_charted_seven_raises_lists_and_acknowledges_through_postgres(tmp_path, clock, postgres_dsn) -> None:
    with serve(tmp_path, clock, control_db=postgres_dsn) as client:
        health = client.get("/healthz").json()
        assert health["control_store"]["engine"] == "postgresql" and health["control_store"]["ok"] is True
        assert "database" not in health["control_store"] and "@" not in str(health)  # no address, no credentials
        response = client.post("/v1/observations", json={"patient_id": "bed-7", "ts": iso(T0), **SEVEN,
                                                         "by": "Nurse Ada"})
        assert response.status_code == 201, response.text
        alert = response.json()["alert"]
        assert alert["kind"] == "news2" and alert["event"] == "raised"
        (listed,) = client.get("/v1/alerts", params={"patient_id": "bed-7"}).json()
        assert listed["id"] == alert["id"] and listed["state"] in ("raised", "delivered")
        nurse = client_as(client, "clinician", "ward 7 board")  # a stored key: in PostgreSQL too
        acked = nurse.post(f"/v1/alerts/{alert['id']}/acknowledge", json={"by": "Nurse Ada"})
        assert acked.status_code == 200, acked.text
        assert acked.json()["state"] == "acknowledged"
        events = [t["event"] for t in client.get(f"/v1/alerts/{alert['id']}/transitions").json()]
        assert events[0] == "raised" and events[-1] == "acknowledged"
        assert client.get("/healthz").json()["alerts_pending_delivery"] == 0
        audited = client.get("/v1/audit", params={"key_name": "ward 7 board"}).json()
        assert [e["action"] for e in audited][-1].startswith("POST")
        key_id = audited[-1]["key_id"]
    assert not (tmp_path / "alerts.db").exists() and not (tmp_path / "access.db").exists()
    # the state is in PostgreSQL: a second service on the same database sees the acknowledged alert, and a key
    # revoked there is refused
    with serve(tmp_path / "second", clock, control_db=postgres_dsn) as client:
        (again,) = client.get("/v1/alerts", params={"patient_id": "bed-7"}).json()
        assert again["id"] == alert["id"] and again["state"] == "acknowledged"
        nurse_here = TestClient(client.app, headers={"authorization": nurse.headers["authorization"]})
        assert nurse_here.get("/v1/alerts").status_code == 200  # the key made on the first service
        assert client.post(f"/v1/keys/{key_id}/revoke").status_code == 200
        assert nurse_here.get("/v1/alerts").status_code == 401


def next_event(ws) -> dict:
    message = ws.receive_json()
    while message.get("type") != "event":
        message = ws.receive_json()
    return message


@pytest.mark.postgres
def test_a_websocket_on_one_instance_gets_the_alerts_raised_through_another(tmp_path, clock, postgres_dsn) -> None:
    """Two services on one PostgreSQL: a client of B replays (``?since=``) what A raised, then gets A's next alert
    live (B's engine is woken by A's commit, LISTEN/NOTIFY, or finds it at its next outbox poll)."""
    with serve(tmp_path / "a", clock, control_db=postgres_dsn) as a, \
            serve(tmp_path / "b", clock, control_db=postgres_dsn) as b:
        first = a.post("/v1/observations", json={"patient_id": "bed-1", "ts": iso(T0), **SEVEN}).json()["alert"]
        with b.websocket_connect("/v1/ws/alerts?since=0") as ws:
            replayed = next_event(ws)
            assert (replayed["event"], replayed["alert"]["id"]) == ("raised", first["id"])
            ws.send_json({"type": "ack", "seq": replayed["seq"]})
            second = a.post("/v1/observations", json={"patient_id": "bed-2", "ts": iso(T0), **SEVEN}).json()["alert"]
            live = next_event(ws)
            while live["alert"]["id"] != second["id"]:  # the first alert's own "delivered" event may come between
                live = next_event(ws)
            assert live["event"] == "raised" and live["seq"] > replayed["seq"]
        # B's client confirmed the first alert: delivered, seen through A
        (delivered,) = a.get("/v1/alerts", params={"patient_id": "bed-1"}).json()
        assert delivered["state"] == "delivered" and delivered["delivered_at"] is not None
