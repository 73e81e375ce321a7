"""The alert WebSocket: per-client cursor and acks, delivery only on confirmation, replay in pages, slow clients.

Protocol (``app.alerts.hub``): events ``{"type": "event", "seq", "event", "alert"}``; after each replayed page
``{"type": "replay", "through", "more"}``; the client confirms with ``{"type": "ack", "seq": N}``. No test sleeps:
each waits for a condition (the hub's or the API's state) with a generous timeout."""

from __future__ import annotations

import json
import sqlite3
from datetime import timedelta

import pytest
from starlette.websockets import WebSocketDisconnect

from models.twin import Twin
from models.windows import WINDOW
from tests.support.api import (
    ALERTING_KINDS,
    NOW,
    SICK,
    T0,
    client_as,
    parse,
    post_readings,
    raise_alerts,
    run_cycle,
    serve,
)
from tests.support.wait import wait_until

#: How many alerts ``raise_alerts`` raises (a charted news2, then the twin's sustained one).
N = len(ALERTING_KINDS)


def ack(ws, seq: int) -> None:
    ws.send_json({"type": "ack", "seq": seq})


def until_live(ws, *, ack_every: int = 100) -> list[dict]:
    """Read the replay (acknowledging as it goes) up to the marker with ``more: false``; return its events."""
    events: list[dict] = []
    while True:
        message = ws.receive_json()
        if message["type"] == "replay":
            if events:
                ack(ws, events[-1]["seq"])
            if not message["more"]:
                assert message["through"] == (events[-1]["seq"] if events else message["through"])
                return events
            continue
        assert message["type"] == "event"
        events.append(message)
        if len(events) % ack_every == 0:
            ack(ws, message["seq"])


def take(ws, n: int, *, acknowledge: bool = True) -> list[dict]:
    """The next ``n`` events (markers skipped), each acknowledged unless told otherwise."""
    events = []
    while len(events) < n:
        message = ws.receive_json()
        if message["type"] != "event":
            continue
        events.append(message)
        if acknowledge:
            ack(ws, message["seq"])
    return events


def hub_clients(client) -> list:
    return list(client.app.state.wardtwin.hub._clients)


def states(client) -> dict[str, tuple[str, bool]]:
    return {a["kind"]: (a["state"], a["delivery_pending"]) for a in client.get("/v1/alerts").json()}


def test_an_alert_is_delivered_when_a_client_acknowledges_it_not_when_it_is_sent(client, sick_readings):
    post_readings(client, sick_readings)
    with client.websocket_connect("/v1/ws/alerts") as ws:
        assert until_live(ws) == []  # nothing pending: an empty replay, then live
        assert raise_alerts(client) == N
        raised = take(ws, N, acknowledge=False)
        # sent, not confirmed: still raised and visibly pending
        assert states(client) == {k: ("raised", True) for k in ALERTING_KINDS}
        assert client.get("/healthz").json()["alerts_pending_delivery"] == N
        ack(ws, raised[-1]["seq"])  # cumulative: confirms both
        delivered = take(ws, N)
        assert client.get("/healthz").json()["websocket_clients"] == 1
        # its acks of the 'delivered' events confirm those too (waited for before the socket closes)
        wait_until(lambda: client.get("/healthz").json()["alerts_outbox_backlog"] == 0, "the backlog to drain")
    assert [e["seq"] for e in raised + delivered] == list(range(1, 2 * N + 1))
    # the twin's alert at the cycle of T0, then the charted set's news2 alert within its request
    assert [e["alert"]["kind"] for e in raised] == list(ALERTING_KINDS)
    for event in raised:
        assert event["event"] == "raised" and event["alert"]["patient_id"] == SICK and event["alert"]["reasons"]
        assert event["alert"]["delivery_pending"] is True
    assert [e["actor"] for e in raised] == ["engine", "Nurse Ada"]  # the engine's cycle; who charted
    assert raised[1]["alert"]["news2"]["band"] == "high"
    for event in delivered:
        assert event["event"] == "delivered" and event["actor"].startswith("websocket:")
        assert parse(event["alert"]["delivered_at"]) == NOW and event["alert"]["delivery_pending"] is False
    assert states(client) == {k: ("delivered", False) for k in ALERTING_KINDS}
    assert client.get("/healthz").json()["alerts_pending_delivery"] == 0
    assert raised[0]["alert"]["risk"] >= 3 * Twin.load().alert_threshold


def test_a_never_reading_client_leaves_the_alerts_pending(client, alerting):
    """Reproduction: one connected client that never reads; the alerts were delivered by being written to it."""
    with client.websocket_connect("/v1/ws/alerts") as silent:
        wait_until(lambda: [c.sent for c in hub_clients(client)] == [N], "the hub to send the events")
        assert states(client) == {k: ("raised", True) for k in ALERTING_KINDS}
        health = client.get("/healthz").json()
        assert health["alerts_pending_delivery"] == N and health["alerts_outbox_backlog"] == N
        with client.websocket_connect("/v1/ws/alerts") as reader:  # a second client is not held up by the first
            assert [e["event"] for e in until_live(reader)] == ["raised"] * N
            take(reader, N)  # the 'delivered' events its acknowledgement caused
        assert states(client) == {k: ("delivered", False) for k in ALERTING_KINDS}
        # the silent client was sent the alerts all along (written to its socket, never confirmed)
        assert [silent.receive_json().get("event") for _ in range(N + 1)] == ["raised"] * N + [None]


def test_a_client_that_falls_behind_is_told_and_disconnected_without_delaying_the_others(tmp_path, clock,
                                                                                          sick_readings):
    with serve(tmp_path, clock, ws_max_unacked=2, ws_max_behind=5) as client:
        post_readings(client, sick_readings)
        with client.websocket_connect("/v1/ws/alerts") as slow, client.websocket_connect("/v1/ws/alerts") as good:
            assert until_live(slow) == [] and until_live(good) == []
            raise_alerts(client)
            seen = take(good, 2 * N)  # raised, then the 'delivered' its acks caused
            nurse = client_as(client, "clinician", "nurse-7")
            for alert in client.get("/v1/alerts").json():
                assert nurse.post(f"/v1/alerts/{alert['id']}/acknowledge").status_code == 200
            seen += take(good, N)
            assert [e["seq"] for e in seen] == list(range(1, 3 * N + 1))  # no gap, no duplicate
            first = [slow.receive_json(), slow.receive_json()]  # its window: two events, never acknowledged
            assert [m["seq"] for m in first] == [1, 2]
            told = slow.receive_json()
            assert told["type"] == "too_slow" and told["acked"] == 0 and told["reconnect"] == "?since=0"
            with pytest.raises(WebSocketDisconnect) as closed:
                slow.receive_json()
            assert closed.value.code == 4008 and "since=0" in closed.value.reason
        wait_until(lambda: client.get("/healthz").json()["websocket_clients"] == 0, "both clients to be gone")


def test_the_stream_replays_events_after_a_sequence_number(client, alerting):
    with client.websocket_connect("/v1/ws/alerts") as ws:
        assert [e["seq"] for e in until_live(ws)] == [1, 2]
        assert [e["seq"] for e in take(ws, 2)] == [3, 4]
    client_as(client, "clinician", "nurse-7").post(f"/v1/alerts/{alerting}/acknowledge")
    with client.websocket_connect("/v1/ws/alerts?since=3") as ws:
        replayed = until_live(ws)
    assert [(e["seq"], e["event"], e["alert"]["kind"]) for e in replayed] == [
        (4, "delivered", "news2"), (5, "acknowledged", "twin")]
    assert replayed[1]["alert"]["acknowledged_by"] == "nurse-7" and replayed[1]["actor"] == "nurse-7"


@pytest.mark.parametrize("since", ["first", "-1", "1.5", "", "9" * 30])
def test_the_stream_refuses_a_bad_since_with_a_reason(client, since):
    with pytest.raises(WebSocketDisconnect) as closed, client.websocket_connect(f"/v1/ws/alerts?since={since}") as ws:
        ws.receive_json()
    assert closed.value.code == 4400 and "since must be a non-negative integer" in closed.value.reason


def test_the_stream_refuses_a_since_after_the_newest_event(client, alerting):
    with pytest.raises(WebSocketDisconnect) as closed, client.websocket_connect("/v1/ws/alerts?since=3") as ws:
        ws.receive_json()
    assert closed.value.code == 4400 and "after the newest event, seq 2" in closed.value.reason


def test_an_ack_for_a_seq_never_sent_is_refused(client, alerting):
    with client.websocket_connect("/v1/ws/alerts") as ws:
        assert [ws.receive_json()["type"] for _ in range(N + 1)] == ["event"] * N + ["replay"]  # none acknowledged
        ack(ws, 99)
        with pytest.raises(WebSocketDisconnect) as closed:
            while True:
                ws.receive_json()
    assert closed.value.code == 4400 and "99" in closed.value.reason
    assert all(pending for _, pending in states(client).values())  # nothing confirmed


def _bulk_events(client, n: int) -> None:
    """``n`` outbox events written in one transaction beside the service (the store's own payload shape)."""
    path = client.app.state.wardtwin.settings.alerts_path
    alert = {"id": "bulk-20260302T1200Z-twin", "patient_id": "bulk", "kind": "twin", "state": "raised",
             "risk": 0.9, "reasons": ["Twin risk 90%"], "window_end": T0.isoformat(), "raised_at": NOW.isoformat()}
    with sqlite3.connect(path) as conn:
        conn.executemany(
            "INSERT INTO outbox (alert_id, event, payload, created_at) VALUES (?, ?, ?, ?)",
            [(alert["id"], "renotified", json.dumps({"event": "renotified", "actor": "bulk", "alert": alert}),
              NOW.isoformat())] * n)


def test_since_0_replays_4000_events_in_pages_then_goes_live_without_duplicate_or_gap(client, sick_readings):
    """Reproduction: ``?since=0`` returned only the oldest 500 of 4,236 events and did not say more existed."""
    _bulk_events(client, 4236)
    with client.websocket_connect("/v1/ws/alerts?since=0") as ws:
        markers, events = [], []
        while True:
            message = ws.receive_json()
            if message["type"] == "replay":
                markers.append(message)
                ack(ws, message["through"])
                if len(markers) == 1:  # live events arrive while the replay is under way
                    post_readings(client, sick_readings)
                    assert raise_alerts(client) == N
                if not message["more"]:
                    break
            else:
                events.append(message)
                if len(events) % 100 == 0:
                    ack(ws, message["seq"])
        events += take(ws, 2 * N - (len(events) - 4236))  # whatever of the alerts' events was not in the replay
    seqs = [e["seq"] for e in events]
    assert seqs == list(range(1, 4236 + 2 * N + 1)) and len(set(seqs)) == len(seqs)  # every event once, in order
    assert len(markers) >= 9 and all(m["more"] for m in markers[:-1]) and not markers[-1]["more"]
    assert [m["through"] for m in markers] == sorted(m["through"] for m in markers)
    assert markers[-1]["through"] >= 4236


def test_the_outbox_survives_a_restart_and_reaches_the_next_client(tmp_path, clock, sick_readings):
    with serve(tmp_path, clock) as client:
        post_readings(client, sick_readings)
        assert raise_alerts(client) == N
    with serve(tmp_path, clock) as client, client.websocket_connect("/v1/ws/alerts") as ws:
        assert [e["event"] for e in until_live(ws)] == ["raised"] * N
        take(ws, N)
        assert states(client) == {k: ("delivered", False) for k in ALERTING_KINDS}


def test_an_unacknowledged_alert_is_renotified_and_escalates(tmp_path, clock, sick_readings):
    with serve(tmp_path, clock, alert_renotify_after_min=5) as client:
        post_readings(client, sick_readings)
        raise_alerts(client)
        clock.advance(timedelta(minutes=5))
        client.app.state.wardtwin.engine.wake()
        wait_until(lambda: all(a["renotifications"] == 1 for a in client.get("/v1/alerts").json()),
                   "the re-notification sweep")
        clock.advance(timedelta(minutes=10))
        client.app.state.wardtwin.engine.wake()
        wait_until(lambda: {a["state"] for a in client.get("/v1/alerts").json()} == {"escalated"}, "escalation")
        with client.websocket_connect("/v1/ws/alerts?since=0") as ws:
            events = [(e["event"], e["alert"]["kind"]) for e in until_live(ws)]
    for kind in ALERTING_KINDS:
        assert [ev for ev, k in events if k == kind] == ["raised", "renotified", "escalated"]


def test_a_ward_subscriber_gets_the_cycles_alerts_then_one_ward_update_and_batches_on_request(client, sick_readings):
    post_readings(client, sick_readings)
    for end in (T0 - 2 * WINDOW, T0 - WINDOW):  # the twin's risk holds two windows: nothing raised yet
        assert run_cycle(client, end)["alerts_raised"] == 0
    with client.websocket_connect("/v1/ws/alerts?ward=1&batch=1") as ws:
        assert until_live(ws) == []
        assert run_cycle(client, T0)["alerts_raised"] == 1  # the third window: the twin's sustained alert
        raised = take_batched(ws, 1)
        assert [(e["event"], e["seq"], e["alert"]["kind"]) for e in raised] == [("raised", 1, "twin")]
        ward = ws.receive_json()  # after the cycle's alerts
        assert ward["type"] == "ward" and ward["alerts_raised"] == 1 and ward["scored"] >= 1
        assert parse(ward["window_end"]) == T0
        ack(ws, 1)  # cumulative, as for single events
        delivered = take_batched(ws, 1)
        assert [e["event"] for e in delivered] == ["delivered"] and [e["seq"] for e in delivered] == [2]
        ack(ws, 2)
        wait_until(lambda: client.get("/healthz").json()["alerts_outbox_backlog"] == 0, "the backlog to drain")


def take_batched(ws, n: int) -> list[dict]:
    """The next ``n`` events from ``event`` or ``events`` frames (other messages skipped)."""
    events: list[dict] = []
    while len(events) < n:
        message = ws.receive_json()
        events += message["events"] if message["type"] == "events" else [message] if message["type"] == "event" else []
    return events
