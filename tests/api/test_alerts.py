"""Alerts: list and filters, acknowledge, resolve (404 and 409 paths), and the WebSocket stream."""

from __future__ import annotations

from datetime import timedelta

import pytest
from starlette.websockets import WebSocketDisconnect

from tests.support.api import NOW, SICK, T0, assert_422, assert_domain_error, parse, post_readings, reading, run_cycle


# -- list ------------------------------------------------------------------------------------------------------------
def test_a_raised_alert_is_listed_with_its_reasons(client, alerting):
    response = client.get("/v1/alerts")
    assert response.status_code == 200
    (alert,) = response.json()
    assert alert["id"] == alerting == f"{SICK}-20260302T1200Z"
    assert alert["patient_id"] == SICK and alert["state"] == "raised"  # nobody listening: not delivered
    assert parse(alert["window_end"]) == T0 and parse(alert["raised_at"]) == NOW  # the service clock
    assert alert["risk"] >= 0.7 and alert["reasons"]
    assert alert["risk"] == client.get(f"/v1/patients/{SICK}/risk").json()["risk"]


def test_alerts_filter_by_state_and_patient(client, alerting):
    post_readings(client, [reading("bed-2", ts=T0 - timedelta(minutes=1))])
    run_cycle(client, T0)  # bed-2 is scored low: no alert
    assert [a["id"] for a in client.get("/v1/alerts", params={"state": "raised"}).json()] == [alerting]
    assert client.get("/v1/alerts", params={"state": "acknowledged"}).json() == []
    assert [a["id"] for a in client.get("/v1/alerts", params={"patient_id": SICK}).json()] == [alerting]
    assert client.get("/v1/alerts", params={"patient_id": "bed-2"}).json() == []
    assert len(client.get("/v1/alerts", params={"limit": 1}).json()) == 1


def test_no_alerts_on_an_empty_ward(client):
    assert client.get("/v1/alerts").json() == []


@pytest.mark.parametrize(("params", "loc"), [
    ({"state": "open"}, ["query", "state"]),
    ({"patient_id": "bed 1"}, ["query", "patient_id"]),
    ({"limit": 0}, ["query", "limit"]),
    ({"limit": 1001}, ["query", "limit"]),
    ({"limit": "all"}, ["query", "limit"]),
])
def test_alert_list_refuses_bad_filters(client, params, loc):
    assert_422(client.get("/v1/alerts", params=params), loc)


# -- acknowledge and resolve -----------------------------------------------------------------------------------------
def test_acknowledge_then_resolve(client, alerting, clock):
    clock.advance(timedelta(minutes=2))
    response = client.post(f"/v1/alerts/{alerting}/acknowledge", json={"by": "nurse-7"})
    assert response.status_code == 200, response.text
    acked = response.json()
    assert acked["state"] == "acknowledged" and acked["acknowledged_by"] == "nurse-7"
    assert parse(acked["acknowledged_at"]) == parse(acked["updated_at"]) == NOW + timedelta(minutes=2)
    assert client.get("/v1/patients").json()[0]["alert_state"] == "acknowledged"

    clock.advance(timedelta(minutes=5))
    response = client.post(f"/v1/alerts/{alerting}/resolve", json={"by": "dr-2"})
    assert response.status_code == 200, response.text
    resolved = response.json()
    assert resolved["state"] == "resolved" and parse(resolved["resolved_at"]) == NOW + timedelta(minutes=7)
    assert "dr-2" in resolved["resolved_reason"] and resolved["acknowledged_by"] == "nurse-7"
    assert client.get("/v1/patients").json()[0]["alert_id"] is None  # no open alert any more
    assert [a["state"] for a in client.get("/v1/alerts").json()] == ["resolved"]


def test_an_alert_may_be_resolved_without_acknowledgement(client, alerting):
    response = client.post(f"/v1/alerts/{alerting}/resolve", json={"by": "dr-2"})
    assert response.status_code == 200 and response.json()["state"] == "resolved"


def test_acknowledging_twice_is_a_conflict(client, alerting):
    assert client.post(f"/v1/alerts/{alerting}/acknowledge", json={"by": "nurse-7"}).status_code == 200
    assert_domain_error(client.post(f"/v1/alerts/{alerting}/acknowledge", json={"by": "nurse-8"}),
                        409, "alert_conflict")
    assert client.get("/v1/alerts").json()[0]["acknowledged_by"] == "nurse-7"  # unchanged


def test_a_resolved_alert_can_be_neither_acknowledged_nor_resolved(client, alerting):
    assert client.post(f"/v1/alerts/{alerting}/resolve", json={"by": "dr-2"}).status_code == 200
    for action in ("acknowledge", "resolve"):
        assert_domain_error(client.post(f"/v1/alerts/{alerting}/{action}", json={"by": "x"}), 409, "alert_conflict")


@pytest.mark.parametrize("action", ["acknowledge", "resolve"])
def test_an_unknown_alert_is_404(client, action):
    assert_domain_error(client.post(f"/v1/alerts/nobody-20260302T1200Z/{action}", json={"by": "x"}),
                        404, "alert_not_found")


@pytest.mark.parametrize("action", ["acknowledge", "resolve"])
@pytest.mark.parametrize(("body", "loc"), [
    ({}, ["body", "by"]), ({"by": ""}, ["body", "by"]), ({"by": "x" * 65}, ["body", "by"]), ([], ["body"])])
def test_acknowledge_and_resolve_need_a_name(client, action, body, loc):
    assert_422(client.post(f"/v1/alerts/sick-1-20260302T1200Z/{action}", json=body), loc)


# -- the WebSocket stream --------------------------------------------------------------------------------------------
def test_the_stream_delivers_an_alert_raised_by_a_cycle(client, sick_readings):
    post_readings(client, sick_readings)
    with client.websocket_connect("/v1/ws/alerts") as ws:
        assert run_cycle(client, T0)["alerts_raised"] == 1
        raised, delivered = ws.receive_json(), ws.receive_json()  # blocks until the outbox worker sends
        assert client.get("/healthz").json()["websocket_clients"] == 1
    assert (raised["seq"], raised["event"], delivered["seq"], delivered["event"]) == (1, "raised", 2, "delivered")
    assert raised["alert"]["patient_id"] == SICK and raised["alert"]["state"] == "raised"
    assert raised["alert"]["risk"] >= 0.7 and raised["alert"]["reasons"]
    assert delivered["alert"]["state"] == "delivered" and parse(delivered["alert"]["delivered_at"]) == NOW
    assert client.get("/v1/alerts").json()[0]["state"] == "delivered"
    assert client.get("/healthz").json()["alerts_outbox_backlog"] == 0


def test_a_client_connecting_later_receives_the_pending_alert(client, alerting):
    assert client.get("/healthz").json()["alerts_outbox_backlog"] == 1  # raised, nobody listening
    with client.websocket_connect("/v1/ws/alerts") as ws:
        assert ws.receive_json()["event"] == "raised"
        assert ws.receive_json()["event"] == "delivered"


def test_the_stream_replays_events_after_a_sequence_number(client, alerting):
    with client.websocket_connect("/v1/ws/alerts") as ws:
        assert [ws.receive_json()["seq"] for _ in range(2)] == [1, 2]
    client.post(f"/v1/alerts/{alerting}/acknowledge", json={"by": "nurse-7"})
    with client.websocket_connect("/v1/ws/alerts?since=1") as ws:
        replayed = [ws.receive_json() for _ in range(2)]
    assert [(e["seq"], e["event"]) for e in replayed] == [(2, "delivered"), (3, "acknowledged")]
    assert replayed[1]["alert"]["acknowledged_by"] == "nurse-7"


def test_the_stream_refuses_a_bad_since(client):
    with pytest.raises(WebSocketDisconnect), client.websocket_connect("/v1/ws/alerts?since=first") as ws:
        ws.receive_json()
