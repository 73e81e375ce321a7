"""Alerts: list and filters (state, patient, kind), acknowledge, resolve (404 and 409 paths), and the WebSocket
stream. The sick patient charted and scored to T0 (``raise_alerts``) has a news2 alert (its charted set scores
NEWS2 10) and a twin alert (risk at or above the artifact's threshold for three windows); criteria alerts are
tested in the unit suite (the sick trajectory meets no criterion of the issue-20 label)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from models.twin import Twin
from tests.support.api import (
    ALERTING_KINDS,
    NOW,
    SICK,
    T0,
    assert_422,
    assert_domain_error,
    client_as,
    parse,
    post_readings,
    reading,
    run_cycle,
)


# -- list ------------------------------------------------------------------------------------------------------------
def test_raised_alerts_are_listed_with_their_kind_and_reasons(client, alerting):
    response = client.get("/v1/alerts")
    assert response.status_code == 200
    alerts = {a["kind"]: a for a in response.json()}
    assert set(alerts) == set(ALERTING_KINDS)
    assert alerting == alerts["twin"]["id"] == f"{SICK}-20260302T1200Z-twin"
    risk = client.get(f"/v1/patients/{SICK}/risk").json()
    for alert in alerts.values():
        assert alert["patient_id"] == SICK and alert["state"] == "raised"  # nobody listening: not delivered
        assert parse(alert["raised_at"]) == NOW and alert["reasons"]  # the service clock
    twin, news2 = alerts["twin"], alerts["news2"]
    assert parse(twin["window_end"]) == T0 and twin["risk"] == risk["risk"]
    assert twin["reasons"][0].startswith("Twin risk") and "sustained over 3 windows" in twin["reasons"][0]
    # the charted set's alert: named by the set's time, in the window holding it, with the set's NEWS2
    assert news2["id"] == f"{SICK}-20260302T120000Z-news2" and parse(news2["window_end"]) == T0 + timedelta(minutes=5)
    assert news2["reasons"][0] == "Charted by Nurse Ada: emergency response"
    assert news2["reasons"][1].startswith("NEWS2 10, high clinical risk: emergency assessment")
    assert news2["news2"]["total"] == 10 and news2["news2"]["monitoring"] == "continuous monitoring"
    assert news2["risk"] == risk["risk"]  # charted after the cycle of T0: the patient's latest twin risk
    assert twin["risk"] >= 3 * Twin.load().alert_threshold


def test_alerts_filter_by_state_patient_and_kind(client, alerting):
    post_readings(client, [reading("bed-2", ts=T0 - timedelta(minutes=1))])
    run_cycle(client, T0)  # bed-2 is scored low: no alert
    client.post(f"/v1/alerts/{alerting}/acknowledge")
    ids = {a["kind"]: a["id"] for a in client.get("/v1/alerts").json()}
    assert [a["id"] for a in client.get("/v1/alerts", params={"state": "acknowledged"}).json()] == [alerting]
    assert [a["id"] for a in client.get("/v1/alerts", params={"state": "raised"}).json()] == [ids["news2"]]
    assert len(client.get("/v1/alerts", params={"patient_id": SICK}).json()) == len(ALERTING_KINDS)
    assert client.get("/v1/alerts", params={"patient_id": "bed-2"}).json() == []
    for kind in ALERTING_KINDS:
        assert [a["id"] for a in client.get("/v1/alerts", params={"kind": kind}).json()] == [ids[kind]]
    assert client.get("/v1/alerts", params={"kind": "news2", "state": "acknowledged"}).json() == []
    assert len(client.get("/v1/alerts", params={"limit": 1}).json()) == 1


def test_no_alerts_on_an_empty_ward(client):
    assert client.get("/v1/alerts").json() == []


@pytest.mark.parametrize(("params", "loc"), [
    ({"state": "open"}, ["query", "state"]),
    ({"kind": "nurse"}, ["query", "kind"]),
    ({"patient_id": "bed 1"}, ["query", "patient_id"]),
    ({"limit": 0}, ["query", "limit"]),
    ({"limit": 1001}, ["query", "limit"]),
    ({"limit": "all"}, ["query", "limit"]),
])
def test_alert_list_refuses_bad_filters(client, params, loc):
    assert_422(client.get("/v1/alerts", params=params), loc)


# -- acknowledge and resolve -----------------------------------------------------------------------------------------
def test_acknowledge_then_resolve(client, alerting, clock):
    """The acknowledger and resolver are the keys' names; a nurse named in the body is recorded beside the key's
    name (``<by> via <key>``, issue 23), never instead of it."""
    nurse, doctor = client_as(client, "clinician", "nurse-7"), client_as(client, "clinician", "dr-2")
    clock.advance(timedelta(minutes=2))
    response = nurse.post(f"/v1/alerts/{alerting}/acknowledge", json={"by": "somebody else"})
    assert response.status_code == 200, response.text
    acked = response.json()
    assert acked["state"] == "acknowledged" and acked["acknowledged_by"] == "somebody else via nurse-7"
    assert acked["kind"] == "twin"
    assert parse(acked["acknowledged_at"]) == parse(acked["updated_at"]) == NOW + timedelta(minutes=2)
    board = client.get("/v1/patients").json()[0]  # the board shows the open alert most in need of attention
    assert (board["alert_id"], board["alert_state"]) == (f"{SICK}-20260302T120000Z-news2", "raised")
    others = [a["id"] for a in client.get("/v1/alerts", params={"state": "raised"}).json()]
    for alert_id in others:
        assert client.post(f"/v1/alerts/{alert_id}/acknowledge").status_code == 200
    assert client.get("/v1/patients").json()[0]["alert_state"] == "acknowledged"

    clock.advance(timedelta(minutes=5))
    response = doctor.post(f"/v1/alerts/{alerting}/resolve")
    assert response.status_code == 200, response.text
    resolved = response.json()
    assert resolved["state"] == "resolved" and parse(resolved["resolved_at"]) == NOW + timedelta(minutes=7)
    assert "dr-2" in resolved["resolved_reason"] and resolved["acknowledged_by"] == "somebody else via nurse-7"
    for alert_id in others:
        client.post(f"/v1/alerts/{alert_id}/resolve")
    assert client.get("/v1/patients").json()[0]["alert_id"] is None  # no open alert any more
    assert [a["state"] for a in client.get("/v1/alerts").json()] == ["resolved"] * len(ALERTING_KINDS)


def test_an_alert_may_be_resolved_without_acknowledgement(client, alerting):
    response = client.post(f"/v1/alerts/{alerting}/resolve")
    assert response.status_code == 200 and response.json()["state"] == "resolved"


def test_acknowledging_twice_is_a_conflict(client, alerting):
    assert client_as(client, "clinician", "nurse-7").post(f"/v1/alerts/{alerting}/acknowledge").status_code == 200
    assert_domain_error(client_as(client, "clinician", "nurse-8").post(f"/v1/alerts/{alerting}/acknowledge"),
                        409, "alert_conflict")
    assert client.get("/v1/alerts", params={"kind": "twin"}).json()[0]["acknowledged_by"] == "nurse-7"  # unchanged


def test_a_resolved_alert_can_be_neither_acknowledged_nor_resolved(client, alerting):
    assert client.post(f"/v1/alerts/{alerting}/resolve").status_code == 200
    for action in ("acknowledge", "resolve"):
        assert_domain_error(client.post(f"/v1/alerts/{alerting}/{action}"), 409, "alert_conflict")


@pytest.mark.parametrize("action", ["acknowledge", "resolve"])
def test_an_unknown_alert_is_404(client, action):
    assert_domain_error(client.post(f"/v1/alerts/nobody-20260302T1200Z/{action}"),
                        404, "alert_not_found")
