"""One smoke test through a real uvicorn process, on each store: the served path end to end.

Every route's success and error paths are tested in process (``tests/api``). This checks only what needs a real
server: ``uvicorn app.main:app_from_env --factory`` building the service from ``WARDTWIN_*`` variables, the store
adapter chosen from them (the embedded SQLite store; InfluxDB against a real influxd), real HTTP and WebSocket
framing, and an alert travelling from a cycle to a connected client.

Time: the service runs on the system clock, so nothing here reads it. Readings are stamped relative to the
service's own ``now`` (from ``/healthz``): the newest falls just before the start of the window ``now`` is in, so
none is in the future for the service, and the cycle is asked for that window end explicitly. Nothing sleeps and
no request has a deadline of its own (pytest-timeout bounds a hang): the WebSocket receive blocks until the
outbox delivers.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta

import httpx
import pytest
from websockets.sync.client import connect

from models.twin import Twin
from models.windows import align
from tests.support.ids import unique
from tests.support.server import AUTH, SERVICE_KEY, uvicorn_service
from tests.support.synthetic_readings import post_all, trajectory


@pytest.fixture(params=["sqlite", pytest.param("influx", marks=pytest.mark.influx)])
def store_env(request: pytest.FixtureRequest) -> tuple[str, dict[str, str]]:
    """The store's name in ``/healthz`` and the service's environment for it."""
    if request.param == "sqlite":
        return "sqlite", {}
    server = request.getfixturevalue("influxd")
    return "influx", {"WARDTWIN_INFLUX_URL": server.url, "WARDTWIN_INFLUX_DATABASE": unique("service")}


def test_a_cycle_scores_the_ward_and_streams_its_alert(store_env, tmp_path):
    store_name, env = store_env
    with uvicorn_service(tmp_path, env) as base, httpx.Client(base_url=base, timeout=None, headers=AUTH) as client:
        health = client.get("/healthz").json()
        assert health["ok"] and health["store"]["store"] == store_name and health["last_window_end"] is None
        end = align(datetime.fromisoformat(health["now"])).to_pydatetime()
        readings = trajectory("stable-1", end, False, 1) + trajectory("sick-1", end, True, 2)

        with connect(base.replace("http", "ws", 1) + "/v1/ws/alerts", open_timeout=None) as ws:
            ws.send(json.dumps({"key": SERVICE_KEY}))  # the key in the first message, as the board sends it
            assert post_all(client, readings) == len(readings)
            raised_by_cycles = 0
            for window_end in (end - timedelta(minutes=10), end - timedelta(minutes=5), end):  # the twin: sustained
                cycle = client.post("/v1/cycle", params={"window_end": window_end.isoformat()})
                assert cycle.status_code == 200, cycle.text
                assert cycle.json()["scored"] == 2
                raised_by_cycles += cycle.json()["alerts_raised"]
            assert raised_by_cycles == 1  # the twin's
            # then a nurse charts NEWS2 10: its news2 alert is raised within the request (issue 20), whatever is open
            # (charted first, the twin's rule would be recorded on it instead: the shipped fold, tests/api)
            charted = client.post("/v1/observations", json={
                "patient_id": "sick-1", "ts": end.isoformat(), "rr": 26, "spo2": 92, "o2": False, "sbp": 95,
                "hr": 125, "acvpu": "A", "temp": 38.5, "by": "Nurse Ada"})
            assert charted.status_code == 201 and charted.json()["alert"]["event"] == "raised", charted.text
            events = []
            while len(events) < 4:  # 2 raised, then the 2 'delivered' our acknowledgements cause
                message = json.loads(ws.recv())
                if message["type"] == "event":
                    events.append(message)
                    ws.send(json.dumps({"type": "ack", "seq": message["seq"]}))
        assert sorted(e["event"] for e in events) == ["delivered"] * 2 + ["raised"] * 2
        alerts = {e["alert"]["kind"]: e["alert"] for e in events if e["event"] == "raised"}
        assert set(alerts) == {"news2", "twin"}
        raised = {"alert": alerts["twin"]}
        assert raised["alert"]["patient_id"] == "sick-1" and raised["alert"]["risk"] >= 3 * Twin.load().alert_threshold

        board = client.get("/v1/patients").json()
        assert [p["patient_id"] for p in board] == ["sick-1", "stable-1"]
        assert board[0]["alert_state"] == "delivered" and board[0]["news2_band"] == "high"
        risk = client.get("/v1/patients/sick-1/risk").json()
        assert datetime.fromisoformat(risk["window_end"]) == end and risk["risk"] == board[0]["risk"]
        acked = client.post(f"/v1/alerts/{raised['alert']['id']}/acknowledge")
        assert acked.status_code == 200 and acked.json()["state"] == "acknowledged"
        assert acked.json()["acknowledged_by"] == "demo"  # the key's name
        assert client.post("/v1/readings", content=b"{not json",
                           headers={"Content-Type": "application/json"}).status_code == 422  # errors mapped
        assert httpx.get(f"{base}/v1/patients").status_code == 401  # no key, no patients
        board_page = client.get("/")
        assert board_page.status_code == 200  # the dashboard is packaged, with its security headers
        assert board_page.headers["x-frame-options"] == "DENY" and "script-src" in board_page.headers[
            "content-security-policy"]
        assert client.get("/healthz").json()["ok"]
