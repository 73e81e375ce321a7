"""Issue 21, finding 4: "any device key can rewrite any patient's history, unaudited" (a second device key replaced
SpO2 84 with 99 at the same timestamp). Device keys carry a scope of patient-id patterns set at creation; a reading
outside it is refused item by item (the good items beside it stored); a second, different value for a stored
reading's identity is refused, the first kept; each device write leaves one aggregate audit row."""

from __future__ import annotations

from datetime import timedelta

from fastapi.testclient import TestClient

from tests.support.api import NOW, T0, bearer, client_as, iso, reading

SCOPE = ["bed-0*"]


def scoped(client: TestClient, name: str = "ward 0 gateway", scope: list[str] | None = None) -> TestClient:
    """A client holding a device key created through ``POST /v1/keys`` with ``scope``."""
    response = client.post("/v1/keys", json={"name": name, "role": "device", "scope": scope or SCOPE})
    assert response.status_code == 201, response.text
    assert response.json()["scope"] == (scope or SCOPE)
    return TestClient(client.app, headers=bearer(response.json()["token"]))


def stored(client: TestClient, patient_id: str, vital: str) -> list[float]:
    """The raw values stored for ``patient_id``'s ``vital`` around T0 (from the store itself)."""
    wt = client.app.state.wardtwin  # type: ignore[attr-defined]
    frame = client.portal.call(wt.store.readings, [patient_id], T0 - timedelta(hours=1), NOW)  # type: ignore[union-attr]
    return list(frame[frame["vital"] == vital]["value"])


def refused(response, type_: str) -> list[dict]:
    assert response.status_code == 422, response.text
    return [e for e in response.json()["errors"] if e["type"] == type_]


def test_scope_is_checked_at_creation(client: TestClient) -> None:
    for body, where in (({"name": "x", "role": "clinician", "scope": ["bed-0*"]}, "scope"),
                        ({"name": "x", "role": "device", "scope": ["bed 0"]}, "scope"),
                        ({"name": "x", "role": "device", "scope": []}, "scope")):
        response = client.post("/v1/keys", json=body)
        assert response.status_code == 422, response.text
        assert any(where in e["loc"] for e in response.json()["errors"]), response.text
    unscoped = client.post("/v1/keys", json={"name": "any bed", "role": "device"})
    assert unscoped.status_code == 201 and unscoped.json()["scope"] is None


def test_json_readings_outside_scope_refused_good_items_kept(client: TestClient) -> None:
    device = scoped(client)
    response = device.post("/v1/readings", json={"readings": [
        reading("bed-01", "hr", 81), reading("bed-11", "hr", 120), reading("bed-02", "hr", 82),
        reading("bed-11", "rr", 30)]})
    (error,) = refused(response, "out_of_scope")
    assert error["loc"] == ["body", "patient_id"] and "'bed-11'" in error["msg"] and "2 reading(s)" in error["msg"]
    assert response.json()["accepted"] == 2
    assert stored(client, "bed-01", "hr") == [81] and stored(client, "bed-02", "hr") == [82]
    assert stored(client, "bed-11", "hr") == []


def test_in_scope_write_accepted(client: TestClient) -> None:
    device = scoped(client)
    response = device.post("/v1/readings", json={"readings": [reading("bed-03", "spo2", 96)]})
    assert response.status_code == 200 and response.json() == {"accepted": 1}, response.text
    assert stored(client, "bed-03", "spo2") == [96]


def test_line_protocol_outside_scope_refused_good_lines_kept(client: TestClient) -> None:
    device = scoped(client)
    ns = int(T0.timestamp()) * 10**9
    body = f"vitals,patient_id=bed-04,vital=hr value=90 {ns}\nvitals,patient_id=bed-12,vital=hr value=91 {ns}\n"
    response = device.post("/v1/write", content=body, headers={"Content-Type": "text/plain"})
    (error,) = refused(response, "out_of_scope")
    assert "'bed-12'" in error["msg"] and response.json()["accepted"] == 1
    assert stored(client, "bed-04", "hr") == [90] and stored(client, "bed-12", "hr") == []


def test_observation_outside_scope_refused_inside_accepted(client: TestClient) -> None:
    device = scoped(client)
    chart = {"ts": iso(T0), "rr": 18, "spo2": 97, "hr": 80, "by": "Nurse Ada"}
    outside = device.post("/v1/observations", json={"patient_id": "bed-13", **chart})
    (error,) = refused(outside, "out_of_scope")
    assert "'bed-13'" in error["msg"]
    assert stored(client, "bed-13", "hr") == []
    inside = device.post("/v1/observations", json={"patient_id": "bed-05", **chart})
    assert inside.status_code == 201, inside.text
    assert stored(client, "bed-05", "hr") == [80]


def hl7_message(patient: str, control_id: str) -> bytes:
    stamp = T0.strftime("%Y%m%d%H%M%S") + "+0000"
    return "\r".join([
        f"MSH|^~\\&|GW^ACDE48234567ABCD^EUI-64||||{stamp}||ORU^R01^ORU_R01|{control_id}|P|2.6",
        f"PID|||{patient}^^^Ward^PI",
        f"OBR|1|||182777000^monitoring of patient^SNOMED-CT|||{stamp}",
        "OBX|1|NM|147842^MDC_ECG_HEART_RATE^MDC|1.1.1.1|99|264864^MDC_DIM_BEAT_PER_MIN^MDC|||||R",
    ]).encode()


def test_hl7_outside_scope_refused_inside_accepted(client: TestClient) -> None:
    device = scoped(client)
    hl7_type = {"Content-Type": "application/hl7-v2"}
    outside = device.post("/v1/hl7", content=hl7_message("bed-14", "M1"), headers=hl7_type)
    assert outside.status_code == 422, outside.text
    assert "MSA|AE|M1" in outside.text and "out_of_scope" in outside.text and "bed-14" in outside.text
    assert stored(client, "bed-14", "hr") == []
    inside = device.post("/v1/hl7", content=hl7_message("bed-07", "M2"), headers=hl7_type)
    assert inside.status_code == 200 and "MSA|AA|M2" in inside.text, inside.text
    assert stored(client, "bed-07", "hr") == [99]


def test_second_key_cannot_replace_a_stored_value(client: TestClient) -> None:
    """The probe's case: a second device key sent SpO2 99 over the stored 84 at the same time and source."""
    first, second = client_as(client, "device", "monitor a"), client_as(client, "device", "monitor b")
    assert first.post("/v1/readings", json={"readings": [reading("bed-06", "spo2", 84)]}).status_code == 200
    response = second.post("/v1/readings", json={"readings": [
        reading("bed-06", "spo2", 99), reading("bed-06", "hr", 70)]})
    (error,) = refused(response, "conflict")
    assert "'bed-06'" in error["msg"] and "84" in error["msg"] and "99" in error["msg"]
    assert response.json()["accepted"] == 1
    assert stored(client, "bed-06", "spo2") == [84]
    # the same value again is an idempotent retry, accepted
    again = second.post("/v1/readings", json={"readings": [reading("bed-06", "spo2", 84)]})
    assert again.status_code == 200, again.text
    # another source is another reading (issue 20a): a nurse's charted 99 is kept beside the monitor's 84
    charted = second.post("/v1/readings", json={"readings": [reading("bed-06", "spo2", 99, source="charted")]})
    assert charted.status_code == 200, charted.text
    assert sorted(stored(client, "bed-06", "spo2")) == [84, 99]


def test_one_aggregate_audit_row_per_device_request(client: TestClient) -> None:
    device = scoped(client, "audited gateway", ["bed-*"])
    patients = [f"bed-{i:02d}" for i in range(7)]
    ok = device.post("/v1/readings", json={"readings": [reading(p, v, 80) for p in patients for v in ("hr", "rr")]})
    assert ok.status_code == 200, ok.text
    ns = int(T0.timestamp()) * 10**9
    lines = device.post("/v1/write", content=f"vitals,patient_id=bed-20,vital=hr value=77 {ns}\n",
                        headers={"Content-Type": "text/plain"})
    assert lines.status_code == 204, lines.text
    rows = [r for r in client.get("/v1/audit", params={"key_name": "audited gateway"}).json()]
    assert [(r["action"], r["status"]) for r in rows] == [("POST /v1/readings", 200), ("POST /v1/write", 204)]
    assert rows[0]["target"] == "write:14 readings;7 patients;bed-00,bed-01,bed-02,bed-03,bed-04,…"
    assert rows[1]["target"] == "write:1 readings;1 patients;bed-20"
    assert rows[0]["role"] == "device" and rows[0]["key_id"]


def test_cli_creates_a_scoped_key_the_service_enforces(client: TestClient, capsys) -> None:
    """``wardtwin keys create --scope`` writes the same ``access.db`` the running service reads."""
    from lab import keys_cmd

    data_dir = client.app.state.wardtwin.settings.data_dir  # type: ignore[attr-defined]
    assert keys_cmd.create(role="clinician", name="n", data_dir=data_dir, scope="bed-0*") == 2
    assert keys_cmd.create(role="device", name="cli gateway", data_dir=data_dir, scope="bed-0*, bed-1?") == 0
    token = capsys.readouterr().out.splitlines()[-2]
    device = TestClient(client.app, headers=bearer(token))
    response = device.post("/v1/readings", json={"readings": [
        reading("bed-15", "hr", 70), reading("bed-150", "hr", 71), reading("bed-08", "hr", 72)]})
    (error,) = refused(response, "out_of_scope")
    assert "'bed-150'" in error["msg"] and response.json()["accepted"] == 2
    keys_cmd.list_keys(data_dir=data_dir)
    assert "(scope bed-0*,bed-1?)" in capsys.readouterr().out
