"""The service through a real uvicorn process: ingest, cycle, scores, WebSocket alert, restart."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from websockets.sync.client import connect

from models.windows import WINDOW, align
from tests.support.ids import unique
from tests.support.server import uvicorn_service
from tests.support.synthetic_readings import HOURS, post_all, trajectory


@pytest.fixture(scope="module")
def ward():
    end = align(datetime.now(UTC) - timedelta(minutes=10)).to_pydatetime()
    readings = trajectory("stable-1", end, False, 1) + trajectory("sick-1", end, True, 2)
    return end, readings


@pytest.fixture(params=["sqlite", pytest.param("influx", marks=pytest.mark.influx)])
def store_env(request) -> dict[str, str]:
    """The service's environment for each store: the embedded default, or a real influxd."""
    if request.param == "sqlite":
        return {}
    server = request.getfixturevalue("influxd")
    return {"WARDTWIN_INFLUX_URL": server.url, "WARDTWIN_INFLUX_DATABASE": unique("service")}


def test_ingest_cycle_scores_and_websocket_alert(ward, store_env, tmp_path):
    end, readings = ward
    data_dir = tmp_path
    store_name = "influx" if store_env else "sqlite"
    with uvicorn_service(data_dir, store_env) as base, httpx.Client(base_url=base, timeout=60) as client:
        ws_url = base.replace("http", "ws") + "/v1/ws/alerts"
        with connect(ws_url, open_timeout=10) as ws:
            assert post_all(client, readings) == len(readings)
            assert post_all(client, readings[:5000]) == 5000  # re-sent: idempotent
            window_end = end - timedelta(hours=HOURS) + WINDOW
            while window_end <= end:
                response = client.post("/v1/cycle", params={"window_end": window_end.isoformat()})
                assert response.status_code == 200, response.text
                window_end += WINDOW
            event = json.loads(ws.recv(timeout=20))
        assert event["event"] == "raised" and event["alert"]["patient_id"] == "sick-1"
        assert event["alert"]["risk"] >= 0.7 and event["alert"]["reasons"]

        board = client.get("/v1/patients").json()
        assert [p["patient_id"] for p in board] == ["sick-1", "stable-1"]
        assert board[0]["risk"] > 0.7 > board[1]["risk"]
        risk = client.get("/v1/patients/sick-1/risk").json()
        assert risk["window_end"] == end.isoformat().replace("+00:00", "Z") or datetime.fromisoformat(
            risk["window_end"]) == end
        assert abs(risk["intercept"] + sum(c["points"] for c in risk["contributions"]) - risk["logit"]) < 1e-9
        assert risk["explanation"] and risk["news2"]["total"] >= 5
        assert 0 <= risk["challenger_risk"] <= 1  # the challenger runs in shadow
        assert ("challenger_disagrees" in risk["flags"]) == (abs(risk["challenger_risk"] - risk["risk"]) >= 0.3)
        history = client.get("/v1/patients/sick-1/risk/history",
                             params={"since": (end - timedelta(hours=HOURS)).isoformat()}).json()
        assert len(history) == HOURS * 12 and history[-1]["risk"] == risk["risk"]
        windows = client.get("/v1/patients/sick-1/windows", params={"since": (end - timedelta(hours=1)).isoformat(),
                                                                     "until": end.isoformat()}).json()
        assert len(windows) == 12 and windows[-1]["hr_mean"] > 120
        what_if = client.post("/v1/patients/sick-1/what-if", json={"changes": {"spo2": 97, "hr": 80}})
        assert what_if.status_code == 200, what_if.text
        assert what_if.json()["after"]["risk"] < what_if.json()["before"]["risk"] == risk["risk"]
        assert client.post("/v1/patients/sick-1/what-if", json={"changes": {"bp": 1}}).status_code == 422
        news2 = client.post("/v1/news2", json={"rr": 25, "spo2": 91, "on_oxygen": True, "hr": 131, "acvpu": "V"})
        assert news2.status_code == 200 and news2.json()["band"] == "high" and news2.json()["partial"] is True
        assert client.post("/v1/news2", json={"hr": 400}).status_code == 422
        stored = client.get("/v1/alerts").json()
        assert [a["patient_id"] for a in stored] == ["sick-1"] and stored[0]["state"] == "delivered"
        acked = client.post(f"/v1/alerts/{stored[0]['id']}/acknowledge", json={"by": "nurse-7"})
        assert acked.status_code == 200 and acked.json()["state"] == "acknowledged"
        again = client.post(f"/v1/alerts/{stored[0]['id']}/acknowledge", json={"by": "nurse-7"})
        assert again.status_code == 409
        health = client.get("/healthz").json()
        assert health["ok"] and health["store"]["store"] == store_name and health["store"]["backlog"] == 0

    # A restart on the same data dir (and database) resumes with its history.
    with uvicorn_service(data_dir, store_env) as base, httpx.Client(base_url=base, timeout=30) as client:
        board = client.get("/v1/patients").json()
        assert [p["patient_id"] for p in board] == ["sick-1", "stable-1"]
        assert client.get("/v1/alerts").json()[0]["state"] == "acknowledged"
        history = client.get("/v1/patients/sick-1/risk/history",
                             params={"since": (end - timedelta(hours=HOURS)).isoformat()}).json()
        assert len(history) == HOURS * 12


def test_bad_batch_names_each_bad_item_and_keeps_the_good(ward, tmp_path):
    end, _ = ward
    data_dir = tmp_path
    good = {"patient_id": "bed-x", "vital": "hr", "value": 80, "ts": end.isoformat()}
    batch = [good, {**good, "value": 400}, {**good, "ts": "24/11/2026 10:00"}, {**good, "vital": "spo2", "value": 97}]
    with uvicorn_service(data_dir) as base, httpx.Client(base_url=base, timeout=30) as client:
        response = client.post("/v1/readings", json={"readings": batch})
        assert response.status_code == 422
        body = response.json()
        assert body["accepted"] == 2 and body["rejected"] == 2
        by_index = {d["loc"][2]: d for d in body["detail"]}
        assert by_index[1]["loc"] == ["body", "readings", 1, "value"] and "400" in by_index[1]["msg"]
        assert by_index[2]["loc"] == ["body", "readings", 2, "ts"]
        stored = client.get("/v1/patients/bed-x/windows", params={"since": (end - WINDOW).isoformat(),
                                                                   "until": (end + WINDOW).isoformat()})
        assert stored.status_code == 200
        assert client.get("/v1/patients/nobody/risk").status_code == 404
        assert client.get("/v1/patients/bed-x/risk/history", params={"since": "yesterday"}).status_code == 422
        assert client.get("/v1/patients/bed-x/windows", params={"since": "2026-01-01T00:00:00"}).status_code == 422
        assert client.post("/v1/readings", content=b"{not json").status_code == 422
        too_many = client.post("/v1/readings", json={"readings": [good] * 10_001})
        assert too_many.status_code == 422 and "10000" in too_many.text
        assert client.get("/docs").status_code == 200
        assert "/v1/readings" in client.get("/openapi.json").json()["paths"]
