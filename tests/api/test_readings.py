"""POST /v1/readings: good batches, partial batches (422 naming each bad item), malformed bodies, limits."""

from __future__ import annotations

from datetime import timedelta, timezone
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from tests.support.api import NOW, T0, assert_422, iso, reading, run_cycle, serve

CET = timezone(timedelta(hours=1))


def hr_counts(client: TestClient, patient_id: str) -> dict[str, int]:
    """Heart-rate readings per window start, as the twin sees them after a cycle at T0."""
    run_cycle(client, T0)
    response = client.get(f"/v1/patients/{patient_id}/windows",
                          params={"since": iso(T0 - timedelta(minutes=10)), "until": iso(T0)})
    assert response.status_code == 200, response.text
    return {w["start"]: w["hr_count"] for w in response.json() if w["hr_count"]}


def test_a_good_batch_is_accepted_and_stored(client):
    batch = [reading(value=80 + i, ts=T0 - timedelta(minutes=4, seconds=-i)) for i in range(3)]
    batch += [reading(vital="spo2", value=97, ts=T0 - timedelta(minutes=4)),
              reading(vital="acvpu", value="a", ts=T0 - timedelta(minutes=4)),  # a letter, any case
              reading(vital="temp", value=37.2, ts=iso(T0 - timedelta(minutes=4)).replace("+00:00", "Z")),
              reading(vital="o2", value=0, ts=(T0 - timedelta(minutes=4)).astimezone(CET), quality="ok"),
              reading(vital="rr", value=18, ts=T0 - timedelta(minutes=3), quality="motion")]
    response = client.post("/v1/readings", json={"readings": batch})
    assert response.status_code == 200, response.text
    assert response.json() == {"accepted": len(batch)}
    assert [p["patient_id"] for p in client.get("/v1/patients").json()] == ["bed-1"]
    assert hr_counts(client, "bed-1") == {"2026-03-02T11:55:00Z": 3}


def test_resending_a_batch_is_idempotent(client):
    batch = [reading(value=70 + i, ts=T0 - timedelta(minutes=3, seconds=i)) for i in range(5)]
    for _ in range(2):
        assert client.post("/v1/readings", json={"readings": batch}).json() == {"accepted": 5}
    assert hr_counts(client, "bed-1") == {"2026-03-02T11:55:00Z": 5}


def test_an_empty_batch_accepts_nothing(client):
    response = client.post("/v1/readings", json={"readings": []})
    assert response.status_code == 200 and response.json() == {"accepted": 0}
    assert client.get("/v1/patients").json() == []


def test_a_partial_batch_names_each_bad_item_and_stores_the_good(client):
    good = reading(ts=T0 - timedelta(minutes=2))
    batch = [good, {**good, "value": 400}, {**good, "ts": "24/11/2026 10:00"},
             {**good, "ts": iso(T0 - timedelta(minutes=1))}, {**good, "vital": "bp", "patient_id": "bad id"}]
    response = client.post("/v1/readings", json={"readings": batch})
    detail = assert_422(response, ["body", "readings", 1, "value"])
    body = response.json()
    assert body["accepted"] == 2 and body["rejected"] == 3
    by_loc = {tuple(d["loc"]): d for d in detail}
    assert set(by_loc) == {("body", "readings", 1, "value"), ("body", "readings", 2, "ts"),
                           ("body", "readings", 4, "vital"), ("body", "readings", 4, "patient_id")}
    assert "400" in by_loc["body", "readings", 1, "value"]["msg"]
    assert by_loc["body", "readings", 1, "value"]["type"] == "implausible"
    assert by_loc["body", "readings", 2, "ts"]["type"] == "datetime"
    assert hr_counts(client, "bed-1") == {"2026-03-02T11:55:00Z": 2}  # the good items were stored anyway


@pytest.mark.parametrize(("item", "field", "type_"), [
    (reading(value=400), "value", "implausible"),
    (reading(value=19.9), "value", "implausible"),
    (reading(vital="spo2", value=100.5), "value", "implausible"),
    (reading(vital="temp", value=50), "value", "implausible"),
    (reading(vital="acvpu", value="X"), "value", "implausible"),
    (reading(vital="acvpu", value=2.5), "value", "implausible"),
    (reading(value="eighty"), "value", "type_error"),
    (reading(value=True), "value", "type_error"),
    (reading(value=None), "value", "type_error"),
    (reading(vital="bp"), "vital", "enum"),
    (reading(patient_id="bed 1"), "patient_id", "pattern"),
    (reading(patient_id="x" * 65), "patient_id", "pattern"),
    (reading(ts="2026-03-02T11:00:00"), "ts", "datetime"),  # no offset
    (reading(ts="yesterday"), "ts", "datetime"),
    (reading(ts=1772452800), "ts", "datetime"),
    (reading(quality="Probe Off"), "quality", "pattern"),
    ({"patient_id": "bed-1", "vital": "hr", "value": 80}, "ts", "datetime"),  # missing
], ids=lambda v: v if isinstance(v, str) else None)
def test_an_implausible_or_malformed_item_is_named(client, item, field, type_):
    response = client.post("/v1/readings", json={"readings": [reading(ts=T0), item]})
    detail = assert_422(response, ["body", "readings", 1, field])
    assert next(d for d in detail if d["loc"][-1] == field)["type"] == type_
    assert response.json()["accepted"] == 1 and response.json()["rejected"] == 1


@pytest.mark.parametrize("item", [42, "hr=80", [], None, {**reading(), "unit": "bpm"}])
def test_an_item_that_is_not_a_reading_object_is_named_by_index(client, item):
    response = client.post("/v1/readings", json={"readings": [item]})
    detail = assert_422(response, ["body", "readings", 0])
    assert response.json()["accepted"] == 0
    assert detail[0]["type"] in ("type_error", "extra_forbidden")


def test_the_future_is_judged_by_the_service_clock(client, clock):
    skew = timedelta(seconds=300)  # Settings.max_future_skew_s
    ok, late = reading(ts=NOW + skew), reading(ts=NOW + skew + timedelta(milliseconds=1))
    response = client.post("/v1/readings", json={"readings": [ok, late]})
    detail = assert_422(response, ["body", "readings", 1, "ts"])
    assert detail[0]["type"] == "future" and response.json()["accepted"] == 1
    clock.advance(timedelta(seconds=1))  # a second later the same reading is no longer in the future
    assert client.post("/v1/readings", json={"readings": [late]}).json() == {"accepted": 1}


def test_the_future_skew_is_a_setting(tmp_path: Path):
    with serve(tmp_path, max_future_skew_s=0) as client:
        assert client.post("/v1/readings", json={"readings": [reading(ts=NOW)]}).json() == {"accepted": 1}
        response = client.post("/v1/readings", json={"readings": [reading(ts=NOW + timedelta(milliseconds=1))]})
        assert assert_422(response, ["body", "readings", 0, "ts"])[0]["type"] == "future"


@pytest.mark.parametrize("body", [b"{not json", b"", b'{"readings": [1,]}', b"\xff\xfe"])
def test_a_body_that_is_not_json_is_refused(client, body):
    response = client.post("/v1/readings", content=body, headers={"content-type": "application/json"})
    assert assert_422(response, ["body"])[0]["type"] == "json_invalid"


@pytest.mark.parametrize("body", [b"[]", b'"readings"', b"null", b"{}", b'{"readings": {"0": {}}}',
                                  b'{"reading": []}'])
def test_a_body_that_is_not_an_object_with_a_readings_list_is_refused(client, body):
    response = client.post("/v1/readings", content=body, headers={"content-type": "application/json"})
    assert assert_422(response, ["body", "readings"])[0]["type"] == "missing"


def test_a_batch_over_the_limit_is_refused_whole(tmp_path: Path):
    with serve(tmp_path, max_batch_readings=3) as client:
        response = client.post("/v1/readings", json={"readings": [reading(value=80 + i) for i in range(4)]})
        detail = assert_422(response, ["body", "readings"])
        assert detail[0]["type"] == "too_long" and "at most 3" in detail[0]["msg"]
        assert client.get("/v1/patients").json() == []  # nothing stored
        assert client.post("/v1/readings", json={"readings": [reading()] * 3}).json() == {"accepted": 3}


def test_the_default_limit_is_ten_thousand(client):
    response = client.post("/v1/readings", json={"readings": [reading()] * 10_001})
    assert "10000" in assert_422(response, ["body", "readings"])[0]["msg"]


# Once 500s: OverflowError in the UTC conversion of app/ingest.py.
@pytest.mark.parametrize("ts", ["9999-12-31T23:59:59-05:00", "0001-01-01T00:00:00+05:00"])
def test_a_timestamp_out_of_datetime_range_is_named(tmp_path: Path, ts):
    with serve(tmp_path) as client:
        response = client.post("/v1/readings", json={"readings": [reading(ts=ts)]})
        detail = assert_422(response, ["body", "readings", 0, "ts"])
        assert detail[0]["type"] == "datetime" and "out of range" in detail[0]["msg"]


@pytest.mark.parametrize("ts", ["1677-09-22T00:00:00Z", "1900-01-01T00:00:00Z", "1970-01-01T00:00:00Z",
                                "1999-12-31T23:59:59.999Z", "2000-01-01T04:59:59+05:00"])
def test_a_timestamp_before_the_floor_is_named_and_the_good_items_kept(tmp_path: Path, ts):
    with serve(tmp_path) as client:
        response = client.post("/v1/readings", json={"readings": [reading(), reading(ts=ts), reading(value=81)]})
        detail = assert_422(response, ["body", "readings", 1, "ts"])
        assert [d["type"] for d in detail] == ["too_early"] and "earliest reading accepted" in detail[0]["msg"]
        assert (response.json()["accepted"], response.json()["rejected"]) == (2, 1)
        assert [p["patient_id"] for p in client.get("/v1/patients").json()] == ["bed-1"]
