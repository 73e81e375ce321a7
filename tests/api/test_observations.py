"""POST /v1/observations and the two kinds of observation (issue 20): a charted set is stored, scored and escalated
within its request; one monitor window never raises a NEWS2 alert; a persistent monitor trigger asks for a set."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pandas as pd

from tests.support.api import NOW, T0, assert_422, client_as, iso, parse, post_readings, reading, run_cycle, serve
from tests.support.synthetic_readings import trajectory

#: A full set scoring NEWS2 7: RR 25 (3), SpO2 94 (1), air (0), SBP 105 (1), pulse 115 (2), alert (0), 37.2 °C (0).
SEVEN = {"rr": 25, "spo2": 94, "o2": False, "sbp": 105, "hr": 115, "acvpu": "A", "temp": 37.2}
TEXT = {"content-type": "text/plain; charset=utf-8"}
NORMAL = {"rr": 16, "spo2": 97, "o2": False, "sbp": 125, "hr": 76, "acvpu": "A", "temp": 36.8}


def chart(client, patient_id: str, vitals: dict, **extra):
    return client.post("/v1/observations", json={"patient_id": patient_id, "ts": iso(T0), **vitals, **extra})


def stored(client, patient_id: str) -> pd.DataFrame:
    wt = client.app.state.wardtwin
    return asyncio.run(wt.store.readings([patient_id], T0 - timedelta(days=1), NOW + timedelta(days=1)))


def alerts_of(client, patient_id: str, kind: str | None = None) -> list[dict]:
    params = {"patient_id": patient_id, **({"kind": kind} if kind else {})}
    return client.get("/v1/alerts", params=params).json()


def test_a_charted_set_scoring_7_gets_its_alert_in_the_same_request_and_on_the_websocket(client):
    with client.websocket_connect("/v1/ws/alerts") as ws:
        assert ws.receive_json() == {"type": "replay", "through": 0, "more": False}  # nothing yet
        response = chart(client, "bed-7", SEVEN, by="Nurse Ada")
        assert response.status_code == 201, response.text
        body = response.json()
        assert body["news2"]["total"] == 7 and body["news2"]["band"] == "high" and body["news2"]["partial"] is False
        assert body["news2"]["points"] == {"rr": 3, "spo2": 1, "o2": 0, "sbp": 1, "hr": 2, "acvpu": 0, "temp": 0}
        assert body["news2"]["monitoring"] == "continuous monitoring" and body["news2"]["missing"] == []
        alert = body["alert"]
        assert alert["kind"] == "news2" and alert["event"] == "raised" and alert["grade"] == 3
        assert alert["escalation"] == "emergency response" and alert["response"].startswith("emergency assessment")
        assert body["by"] == "Nurse Ada" and body["stored"] == 7
        # already in the outbox before the answer: the WebSocket client gets it as any alert
        message = ws.receive_json()
        while message.get("type") != "event":
            message = ws.receive_json()
        assert message["event"] == "raised" and message["alert"]["id"] == alert["id"]
        assert message["actor"] == "Nurse Ada" and message["alert"]["news2"]["source"] == "charted"
    (listed,) = alerts_of(client, "bed-7", "news2")
    assert listed["id"] == alert["id"]
    transitions = client.get(f"/v1/alerts/{alert['id']}/transitions").json()
    assert (transitions[0]["event"], transitions[0]["actor"]) == ("raised", "Nurse Ada")
    # stored as charted readings, the acvpu letter as its code
    readings = stored(client, "bed-7")
    assert set(readings["source"]) == {"charted"} and len(readings) == 7
    assert readings.set_index("vital").loc["acvpu", "value"] == 0.0


def test_a_higher_grade_escalates_the_open_alert_and_a_set_below_the_triggers_resolves_it(client):
    first = chart(client, "bed-8", {**NORMAL, "rr": 26}).json()["alert"]  # a single 3: urgent ward-based
    assert first["grade"] == 1 and first["event"] == "raised"
    later = {"ts": iso(T0 + timedelta(seconds=30))}
    worse = client.post("/v1/observations", json={"patient_id": "bed-8", **SEVEN, **later}).json()["alert"]
    assert (worse["id"], worse["event"], worse["state"], worse["grade"]) == (first["id"], "escalated", "escalated", 3)
    calm = client.post("/v1/observations", json={"patient_id": "bed-8", **NORMAL,
                                                 "ts": iso(T0 + timedelta(seconds=50))}).json()
    assert calm["alert"] is None and calm["resolved"] == [first["id"]] and calm["news2"]["total"] == 0
    (resolved,) = alerts_of(client, "bed-8", "news2")
    assert (resolved["id"], resolved["state"]) == (first["id"], "resolved")


def test_a_partial_set_is_scored_and_marked(client):
    response = chart(client, "bed-9", {"rr": 22, "hr": 95})
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["news2"]["partial"] is True and body["news2"]["total"] == 3  # RR 22: 2, pulse 95: 1
    assert body["news2"]["missing"] == ["spo2", "o2", "sbp", "acvpu", "temp"]
    assert body["alert"] is None and body["stored"] == 2
    assert body["by"].startswith("demo")  # no `by`: the key's name charted it


def test_a_bad_field_is_a_422_naming_it_and_the_set_is_not_half_stored(client):
    """A set is atomic: NEWS2 is defined on the parameters together, so its good members are not stored alone."""
    response = chart(client, "bed-10", {**SEVEN, "rr": 400, "acvpu": "Q", "spo2_scale": 3})
    detail = assert_422(response, ["body", "rr"])
    locs = [d["loc"] for d in detail]
    assert ["body", "acvpu"] in locs and ["body", "spo2_scale"] in locs and ["body", "hr"] not in locs
    assert "respiratory rate 400" in next(d["msg"] for d in detail if d["loc"] == ["body", "rr"])
    assert stored(client, "bed-10").empty and alerts_of(client, "bed-10") == []
    assert_422(chart(client, "bed-10", {}), ["body"])  # at least one vital
    assert_422(chart(client, "bed-10", SEVEN, ts="2026-03-02T12:00:00"), ["body", "ts"])  # no offset
    assert_422(chart(client, "bed-10", SEVEN, ts=iso(NOW + timedelta(hours=1))), ["body", "ts"])  # the future
    assert_422(chart(client, "bed 10", SEVEN), ["body", "patient_id"])
    assert_422(chart(client, "bed-10", SEVEN, on_oxygen=True), ["body"])  # unknown field
    assert stored(client, "bed-10").empty


def test_clinician_and_device_keys_may_chart_others_may_not(client):
    assert chart(client_as(client, "device", "e-obs gateway"), "bed-11", NORMAL).json()["by"] == "e-obs gateway"
    assert chart(client_as(client, "clinician"), "bed-11", NORMAL, by="Nurse Bo").status_code == 201
    assert chart(client_as(client, "ehr"), "bed-11", NORMAL).status_code == 403
    assert chart(client_as(client, None), "bed-11", NORMAL).status_code == 401


def _with_rr(readings: list[dict], start, end, value: float) -> list[dict]:
    return [{**r, "value": value} if r["vital"] == "rr" and start <= pd.Timestamp(r["ts"]) < end else r
            for r in readings]


def test_one_monitor_window_of_rr_26_raises_no_alert_at_the_next_cycles(client):
    """A normal patient whose monitor counts RR 26 (NEWS2 3 in a single parameter) for one 5-minute window: the old
    rule raised a news2 alert at once; now nothing is raised, at that cycle or the ones after it."""
    spike = T0 - timedelta(minutes=30)
    post_readings(client, _with_rr(trajectory("calm-1", T0, False, 5), spike, spike + timedelta(minutes=5), 26.0))
    for k in range(12, -1, -1):
        run_cycle(client, T0 - timedelta(minutes=5 * k))
    history = client.get("/v1/patients/calm-1/risk/history",
                         params={"since": iso(T0 - timedelta(hours=1)), "until": iso(T0)}).json()
    at_spike = next(h for h in history if h["window_end"] == iso(spike + timedelta(minutes=5)).replace("+00:00", "Z"))
    assert at_spike["news2"]["points"]["rr"] == 3  # the monitor window did score 3
    assert alerts_of(client, "calm-1") == []


def test_a_persistent_monitor_trigger_asks_for_observations_and_a_charted_set_answers_it(tmp_path, clock):
    # A site that turns the single-parameter trigger on (the shipped default is off: see Settings.obs_due_aggregate)
    with serve(tmp_path, clock, obs_due_aggregate=5, obs_due_single_parameter=3) as client:
        _persistent_trigger_then_charted_set(client)


def test_the_shipped_obs_due_default_ignores_a_single_parameter_held_for_an_hour(client):
    start = T0 - timedelta(minutes=70)
    post_readings(client, _with_rr(trajectory("tachypnoea-2", T0, False, 6), start, T0, 26.0))
    for k in range(13, -1, -1):
        run_cycle(client, T0 - timedelta(minutes=5 * k))
    assert alerts_of(client, "tachypnoea-2", "obs_due") == []


def _persistent_trigger_then_charted_set(client) -> None:
    start = T0 - timedelta(minutes=70)
    post_readings(client, _with_rr(trajectory("tachypnoea-1", T0, False, 6), start, T0, 26.0))
    raised_at = []
    for k in range(13, -1, -1):
        end = T0 - timedelta(minutes=5 * k)
        if run_cycle(client, end)["alerts_raised"] and alerts_of(client, "tachypnoea-1", "obs_due"):
            raised_at.append(end)
    (due,) = alerts_of(client, "tachypnoea-1", "obs_due")
    # every window of the last 60 minutes at the trigger: the 12th window with RR 26, ending at T0 - 10 min
    assert raised_at[0] == T0 - timedelta(minutes=10) and due["window_end"].startswith("2026-03-02T11:50")
    assert due["reasons"][0].startswith("Observations due now: monitor suggests NEWS2")
    assert alerts_of(client, "tachypnoea-1", "news2") == []  # the monitor alone never raises news2
    answer = chart(client, "tachypnoea-1", NORMAL, by="Nurse Cy").json()
    assert answer["resolved"] == [due["id"]] and answer["alert"] is None
    (resolved,) = alerts_of(client, "tachypnoea-1", "obs_due")
    assert resolved["state"] == "resolved" and resolved["resolved_reason"] == "observations charted by Nurse Cy"


def test_json_and_line_protocol_carry_the_source_and_both_are_kept(client):
    monitor, charted = reading("bed-12", "rr", 26, T0), reading("bed-12", "rr", 18, T0, source="charted")
    assert client.post("/v1/readings", json={"readings": [monitor, charted]}).status_code == 200
    line = "vitals,patient_id=bed-12,source=charted,vital=temp value=38.2 1772452800000"
    assert client.post("/v1/write", params={"precision": "ms"}, content=line, headers=TEXT).status_code == 204
    rows = sorted(stored(client, "bed-12")[["vital", "value", "source"]].itertuples(index=False, name=None))
    assert rows == [("rr", 18.0, "charted"), ("rr", 26.0, "monitor"), ("temp", 38.2, "charted")]
    bad = client.post("/v1/readings", json={"readings": [monitor, reading("bed-12", source="nurse")]})
    assert_422(bad, ["body", "readings", 1, "source"])
    assert_422(client.post("/v1/write", content="vitals,patient_id=bed-12,source=nurse,vital=hr value=80 "
                                                "1772452800000000000", headers=TEXT), ["body", "lines", 0, "source"])


def test_charted_sets_are_read_back_grouped_by_time_without_the_monitor_readings(client):
    later = T0 + timedelta(seconds=30)
    assert chart(client, "bed-13", SEVEN, by="Nurse Ada").status_code == 201
    second = client.post("/v1/observations", json={"patient_id": "bed-13", "ts": iso(later), "rr": 18, "o2": 2})
    assert second.status_code == 201, second.text
    assert post_readings(client, [reading("bed-13", "hr", 140, T0)]) == 1  # a monitor reading, not answered
    response = client.get("/v1/patients/bed-13/observations",
                          params={"since": iso(T0 - timedelta(hours=1)), "until": iso(NOW)})
    assert response.status_code == 200, response.text
    sets = response.json()["sets"]
    assert [parse(s["ts"]) for s in sets] == [T0, later]
    assert sets[0]["values"] == {"rr": 25, "spo2": 94, "o2": 0, "sbp": 105, "hr": 115, "acvpu": "A", "temp": 37.2}
    assert sets[1]["values"] == {"rr": 18, "o2": 2}
    # the range bounds what is answered
    only_later = client.get("/v1/patients/bed-13/observations", params={"since": iso(later), "until": iso(NOW)})
    assert [parse(s["ts"]) for s in only_later.json()["sets"]] == [later]


def test_reading_charted_sets_needs_a_known_patient_a_good_range_and_a_reading_role(client):
    assert chart(client, "bed-14", NORMAL).status_code == 201
    assert client.get("/v1/patients/nobody/observations").status_code == 404
    assert_422(client.get("/v1/patients/bed-14/observations", params={"since": "2026-03-02T12:00:00"}),
               ["query", "since"])
    assert_422(client.get("/v1/patients/bed-14/observations",
                          params={"since": iso(NOW), "until": iso(T0)}), ["query", "since"])
    assert client_as(client, "ehr").get("/v1/patients/bed-14/observations").json()["sets"][0]["values"]["hr"] == 76
    assert client_as(client, "device").get("/v1/patients/bed-14/observations").status_code == 403
    assert client_as(client, None).get("/v1/patients/bed-14/observations").status_code == 401
