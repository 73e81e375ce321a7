"""Webhooks: registration (admin), delivery to a real receiver process that verifies every signature with the
``standardwebhooks`` package, retries while it is down, dead letters past the retry budget, and redelivery.

Retry timings are shortened by settings (backoff 50–200 ms); every test waits for a condition, never a duration."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from app.storage.influxd_local import free_port
from tests.support.api import (
    ALERTING_KINDS,
    SICK,
    assert_422,
    assert_domain_error,
    client_as,
    post_readings,
    raise_alerts,
    serve,
)
from tests.support.wait import wait_until
from tests.support.webhooks import new_secret, received, receiver

#: How many alerts ``raise_alerts`` raises (a charted news2, then the twin's sustained one).
N = len(ALERTING_KINDS)

#: Short retry timings, and the local receiver (loopback) allow-listed explicitly: the outbound guard refuses
#: loopback targets otherwise (issue 21).
FAST = {"webhook_backoff_base_s": 0.05, "webhook_backoff_max_s": 0.2, "webhook_poll_s": 0.1,
        "webhook_allow_hosts": ["127.0.0.1"]}
ALL_EVENTS = ["alert.raised", "alert.escalated", "alert.renotified", "alert.acknowledged", "alert.resolved"]


def register(client, url: str, secret: str, events: list[str] | None = None) -> dict:
    response = client.post("/v1/webhooks", json={"url": url, "secret": secret, "events": events or ALL_EVENTS})
    assert response.status_code == 201, response.text
    return response.json()


def deliveries(client) -> list:
    """Every delivery row (any status), through the service's store."""
    store = client.app.state.wardtwin.webhooks
    return [d for status in ("pending", "delivered", "dead") for d in client.portal.call(store.list, status)]


# -- management -----------------------------------------------------------------------------------------------------
def test_register_list_and_delete_a_webhook(client):
    created = register(client, "https://nursecall.example/hook", new_secret(), ["alert.raised", "alert.escalated"])
    assert created["id"].startswith("ep_") and created["events"] == ["alert.escalated", "alert.raised"]
    listed = client.get("/v1/webhooks").json()
    assert listed == [{**created, "pending": 0, "delivered": 0, "dead": 0}]
    assert "secret" not in listed[0]
    assert client.delete(f"/v1/webhooks/{created['id']}").status_code == 204
    assert client.get("/v1/webhooks").json() == []
    assert_domain_error(client.delete(f"/v1/webhooks/{created['id']}"), 404, "webhook_not_found")


@pytest.mark.parametrize(("body", "loc"), [
    ({"url": "https://x.example/h", "secret": "not-a-whsec-secret-at-all-0123456789", "events": ["alert.raised"]},
     ["body", "secret"]),
    ({"url": "https://x.example/h", "secret": "whsec_c2hvcnQgc2hvcnQgc2hvcnQgc2hvcnQ=", "events": ["alert.raised"]},
     ["body", "secret"]),  # decodes to 23 bytes
    ({"url": "ftp://x.example/h", "secret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "events": ["alert.raised"]},
     ["body", "url"]),
    ({"url": "https://x.example/h", "secret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "events": ["alert.paged"]},
     ["body", "events", 0]),
    ({"url": "https://x.example/h", "secret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "events": []},
     ["body", "events"]),
    ({"secret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "events": ["alert.raised"]}, ["body", "url"]),
])
def test_a_bad_registration_is_a_422_naming_the_field(client, body, loc):
    assert_422(client.post("/v1/webhooks", json=body), loc)


def test_webhooks_are_for_admins_only(client):
    nurse = client_as(client, "clinician", "nurse-7")
    assert nurse.get("/v1/webhooks").status_code == 403
    assert nurse.post("/v1/webhooks", json={"url": "https://x.example/h", "secret": new_secret(),
                                            "events": ["alert.raised"]}).status_code == 403
    assert client_as(client, None).get("/v1/webhooks/dead-letters").status_code == 401


def test_redeliver_refuses_unknown_and_live_deliveries(client):
    assert client.get("/v1/webhooks/dead-letters").json() == []
    assert_domain_error(client.post("/v1/webhooks/dead-letters/msg_nope_1/redeliver"), 404, "webhook_not_found")
    assert client.post("/v1/webhooks/dead-letters/bad id!/redeliver").status_code in (404, 422)


# -- delivery to a real receiver ------------------------------------------------------------------------------------
def test_a_receiver_down_for_a_while_gets_every_delivery_once_when_it_returns(tmp_path: Path, clock, sick_readings):
    port, secret, log = free_port(), new_secret(), tmp_path / "received.jsonl"
    with serve(tmp_path / "svc", clock, webhook_max_attempts=100, **FAST) as client:
        endpoint = register(client, f"http://127.0.0.1:{port}/hook", secret)
        post_readings(client, sick_readings)
        assert raise_alerts(client) == N
        twin = client.get("/v1/alerts", params={"kind": "twin"}).json()[0]
        assert client_as(client, "clinician", "nurse-7").post(f"/v1/alerts/{twin['id']}/acknowledge").status_code == 200
        # the receiver is down: every delivery fails and is retried, none is lost or dead-lettered
        wait_until(lambda: len(rows := deliveries(client)) == N + 1 and all(d.attempts >= 3 for d in rows),
                   "every delivery failed at least three times")
        assert all(d.status == "pending" and "ConnectError" in d.last_error for d in deliveries(client))
        assert {a["kind"]: a["delivery_pending"] for a in client.get("/v1/alerts").json()} == {
            "news2": True, "twin": False}  # the twin alert: acknowledged, so not pending
        assert client.get("/healthz").json()["alerts_pending_delivery"] == N - 1
        with receiver(port, secret, log):
            wait_until(lambda: client.get("/v1/webhooks").json()[0]["delivered"] == N + 1, "all delivered")
            got = received(log)
        sent_ids = {d.id for d in deliveries(client)}
        states = {a["kind"]: a for a in client.get("/v1/alerts").json()}
    assert all(entry["valid"] for entry in got), [e["error"] for e in got if not e["valid"]]
    ids = Counter(entry["webhook_id"] for entry in got)
    assert len(ids) == N + 1 and set(ids.values()) == {1}  # exactly once each, by webhook-id
    assert ids.keys() == sent_ids
    by_type = Counter(entry["body"]["type"] for entry in got)
    assert by_type == {"alert.raised": N, "alert.acknowledged": 1}
    raised = {e["body"]["data"]["kind"]: e["body"]["data"] for e in got if e["body"]["type"] == "alert.raised"}
    news2 = raised["news2"]
    assert news2["patient_id"] == news2["bed"] == SICK and news2["patient_url"] == f"/v1/patients/{SICK}"
    assert news2["news2"]["total"] == 10 and news2["news2"]["band"] == "high" and news2["news2"]["response"]
    assert news2["reasons"][0] == "Charted by Nurse Ada: emergency response" and news2["state"] == "raised"
    assert news2["reasons"][1].startswith("NEWS2 10, high clinical risk")
    assert 0 < raised["twin"]["risk"] <= 1
    assert all(i.startswith("msg_" + endpoint["id"][3:] + "_") for i in ids)  # msg_<endpoint>_<seq>
    assert states["news2"]["state"] == "delivered"  # confirmed by a 2xx
    assert not states["news2"]["delivery_pending"]


def test_past_the_retry_budget_a_delivery_is_dead_lettered_and_redelivers_on_request(tmp_path: Path, clock,
                                                                                     sick_readings):
    port, secret, log = free_port(), new_secret(), tmp_path / "received.jsonl"
    with serve(tmp_path / "svc", clock, webhook_max_attempts=3, **FAST) as client:
        register(client, f"http://127.0.0.1:{port}/hook", secret, ["alert.raised"])
        post_readings(client, sick_readings)
        assert raise_alerts(client) == N
        dead = wait_until(lambda: len(d := client.get("/v1/webhooks/dead-letters").json()) == N and d,
                          "a dead letter per alert")
        assert all(d["attempts"] == 3 and d["status"] == "dead" and d["event_type"] == "alert.raised" for d in dead)
        assert all(a["delivery_pending"] for a in client.get("/v1/alerts").json())  # nobody was reached: visible
        assert client.get("/healthz").json()["alerts_pending_delivery"] == N
        with receiver(port, secret, log):
            for letter in dead:
                response = client.post(f"/v1/webhooks/dead-letters/{letter['id']}/redeliver")
                assert response.status_code == 202 and response.json()["status"] in ("pending", "delivered")
            wait_until(lambda: client.get("/v1/webhooks").json()[0]["delivered"] == N, "the redeliveries")
            got = received(log)
        assert_domain_error(client.post(f"/v1/webhooks/dead-letters/{dead[0]['id']}/redeliver"), 409,
                            "delivery_conflict")  # delivered now: nothing to redeliver
        assert client.get("/v1/webhooks/dead-letters").json() == []
        assert not any(a["delivery_pending"] for a in client.get("/v1/alerts").json())
    assert all(entry["valid"] for entry in got)
    assert sorted(entry["webhook_id"] for entry in got) == sorted(d["id"] for d in dead)  # same ids, once each


def test_a_deleted_webhook_receives_nothing_more(tmp_path: Path, clock, sick_readings):
    with serve(tmp_path / "svc", clock, webhook_max_attempts=100, **FAST) as client:
        endpoint = register(client, f"http://127.0.0.1:{free_port()}/hook", new_secret())
        post_readings(client, sick_readings)
        raise_alerts(client)
        wait_until(lambda: len(deliveries(client)) == N, "a delivery per alert queued")
        assert client.delete(f"/v1/webhooks/{endpoint['id']}").status_code == 204
        store = client.app.state.wardtwin.webhooks
        assert len(client.portal.call(store.list, "cancelled")) == N
        assert client.portal.call(store.due, 1e12) == []
