"""Issue 21, finding 6: a revoked key's open WebSocket kept receiving alerts, and its acks still marked alerts
delivered. Revoking a key now closes its sockets at once (4403) and an ack that still arrives counts for nothing;
a key revoked by another process (the CLI) is seen at the socket's next send or ack."""

from __future__ import annotations

from datetime import UTC, datetime

from starlette.websockets import WebSocketDisconnect

from app.alerts.hub import CLOSE_REVOKED
from app.security.keys import KeyStore
from tests.support.api import WINDOW_ENDS, bearer, create_key, post_readings, run_cycle
from tests.support.wait import wait_until


def hub_clients(client) -> list:
    return list(client.app.state.wardtwin.hub._clients)


def key_id_of(client, name: str) -> str:
    (key,) = [k for k in client.get("/v1/keys").json() if k["name"] == name]
    return key["id"]


def test_revoking_a_key_closes_its_websocket_at_once_and_leaves_the_others(client):
    token, other = create_key(client, "clinician", "board-3"), create_key(client, "clinician", "board-4")
    with client.websocket_connect("/v1/ws/alerts", headers=bearer(token)) as ws, \
            client.websocket_connect("/v1/ws/alerts", headers=bearer(other)):
        assert ws.receive_json()["type"] == "replay"
        wait_until(lambda: len(hub_clients(client)) == 2, "both boards connected")
        assert client.post(f"/v1/keys/{key_id_of(client, 'board-3')}/revoke").status_code == 200
        wait_until(lambda: len(hub_clients(client)) == 1, "the revoked board's socket closed")  # main: times out
        try:
            message = ws.receive()
        except WebSocketDisconnect as closed:
            code = closed.code
        else:
            code = message.get("code")
        assert code == CLOSE_REVOKED
        (left,) = hub_clients(client)
        assert left.key_id == key_id_of(client, "board-4")


def test_an_ack_from_a_revoked_key_marks_nothing_delivered(client, sick_readings):
    post_readings(client, sick_readings)
    assert sum(run_cycle(client, end)["alerts_raised"] for end in WINDOW_ENDS) >= 1
    token = create_key(client, "clinician", "board-5")
    hub = client.app.state.wardtwin.hub
    with client.websocket_connect("/v1/ws/alerts", headers=bearer(token)) as ws:
        events = []
        while (message := ws.receive_json())["type"] != "replay":
            events.append(message)
        assert events  # the pending alerts' events, sent and not yet acknowledged
        (board,) = hub_clients(client)
        assert client.post(f"/v1/keys/{key_id_of(client, 'board-5')}/revoke").status_code == 200
        client.portal.call(hub.ack, board, events[-1]["seq"])  # an ack that raced the revocation
    assert all(a["delivery_pending"] for a in client.get("/v1/alerts").json())  # main: the ack delivered them


def test_a_key_revoked_by_another_process_closes_the_socket_at_its_next_ack(client, sick_readings):
    """As ``wardtwin keys revoke`` does: the row changed in ``access.db`` through another connection, the hub
    not told. The socket's next ack re-checks the key, confirms nothing and closes it (4403)."""
    post_readings(client, sick_readings)
    assert sum(run_cycle(client, end)["alerts_raised"] for end in WINDOW_ENDS) >= 1
    token = create_key(client, "clinician", "board-6")
    with client.websocket_connect("/v1/ws/alerts", headers=bearer(token)) as ws:
        events = []
        while (message := ws.receive_json())["type"] != "replay":
            events.append(message)
        assert events
        other = KeyStore(client.app.state.access.keys.db.path)  # another process's view of access.db
        other.open()
        try:
            other.revoke(key_id_of(client, "board-6"), datetime.now(UTC))
        finally:
            other.close()
        ws.send_json({"type": "ack", "seq": events[-1]["seq"]})
        try:
            message = ws.receive()
        except WebSocketDisconnect as closed:
            code = closed.code
        else:
            code = message.get("code")
        assert code == CLOSE_REVOKED  # today's main: the ack delivered the alerts and the socket stayed open
    assert all(a["delivery_pending"] for a in client.get("/v1/alerts").json())
