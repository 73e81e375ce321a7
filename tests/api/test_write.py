"""``POST /v1/write``: InfluxDB line protocol as a second ingest format, with the rules and 422s of
``POST /v1/readings`` located by line."""

from __future__ import annotations

import asyncio
import gzip
from datetime import timedelta

from app.domain import Reading
from models.line_protocol import ReadingEncoder
from tests.support.api import NOW, T0, assert_422, client_as

TEXT = {"content-type": "text/plain; charset=utf-8"}
NS = 1_000_000_000
T0_NS = int(T0.timestamp()) * NS


def stored(client, patient_ids: list[str]) -> list[tuple]:
    wt = client.app.state.wardtwin
    frame = asyncio.run(wt.store.readings(patient_ids, T0 - timedelta(days=1), NOW + timedelta(days=1)))
    return sorted(zip(frame["patient_id"], frame["vital"], frame["ts"].dt.to_pydatetime(), frame["value"],
                      frame["quality"], strict=True))


def write(client, body: str | bytes, **params):
    data = body.encode() if isinstance(body, str) else body
    return client.post("/v1/write", content=data, params=params, headers=TEXT)


def test_lines_the_service_itself_writes_are_stored_as_the_readings_they_encode(client):
    readings = [Reading("bed-1", "hr", T0, 88.5), Reading("bed-1", "spo2", T0, 95.0, "probe_off"),
                Reading("bed-2", "acvpu", T0 - timedelta(minutes=1), 1.0)]
    body = ReadingEncoder().encode(readings).decode()  # models.line_protocol: the one definition
    response = write(client, body, precision="ms")
    assert response.status_code == 204 and response.content == b""
    assert stored(client, ["bed-1", "bed-2"]) == sorted(
        (r.patient_id, r.vital, r.ts, r.value, r.quality) for r in readings)


def test_precision_defaults_to_nanoseconds_and_a_missing_timestamp_is_the_service_clock(client):
    body = "\n".join([
        f"vitals,patient_id=bed-1,vital=hr value=80 {T0_NS + 123_456_789}",
        "# a comment, and a blank line",
        "",
        "vitals,patient_id=bed-1,vital=rr value=18i",
        'vitals,patient_id=bed-1,vital=acvpu value="v"',
    ])
    assert write(client, body).status_code == 204
    rows = stored(client, ["bed-1"])
    assert [(r[1], r[2], r[3]) for r in rows] == [
        ("acvpu", NOW, 2.0), ("hr", T0 + timedelta(milliseconds=123), 80.0), ("rr", NOW, 18.0)]
    assert write(client, f"vitals,patient_id=bed-1,vital=hr value=81 {int(T0.timestamp())}",
                 precision="s").status_code == 204


def test_bad_lines_are_named_by_line_and_field_and_the_good_ones_stored_once(client):
    lines = [
        f"vitals,patient_id=bed-1,vital=hr value=80 {T0_NS}",                  # 0 good
        f"vitals,patient_id=bed-1,vital=hr value=400 {T0_NS + NS}",            # 1 implausible value
        "this is not line protocol",                                           # 2
        f"weather,patient_id=bed-1,vital=hr value=80 {T0_NS}",                 # 3 wrong measurement
        f"vitals,patient_id=bed 1,vital=hr value=80 {T0_NS}",                  # 4 unparseable (unescaped space)
        f"vitals,patient_id=bed-1,vital=bp value=80 {T0_NS}",                  # 5 unknown vital
        f"vitals,patient_id=bed-1,vital=hr value=80 {T0_NS + 3600 * NS}",      # 6 in the future
        f"vitals,patient_id=bed-1,vital=hr,ward=7 value=80 {T0_NS}",           # 7 unknown tag
        f"vitals,patient_id=bed-1,vital=spo2 value=97 {T0_NS}",                # 8 good
        f'vitals,patient_id=bed-1,vital=hr value=80,quality="Bad" {T0_NS}',    # 9 bad quality
        f"vitals,patient_id=bed-1,vital=hr value=80 {10**30}",                 # 10 out of range
    ]
    for _ in range(2):  # re-sending is idempotent: stored once
        response = write(client, "\n".join(lines))
        assert response.status_code == 422
        body = response.json()
        assert body["accepted"] == 2 and body["rejected"] == 9
        locs = [e["loc"] for e in body["errors"]]
        assert locs == [["body", "lines", 1, "value"], ["body", "lines", 2], ["body", "lines", 3],
                        ["body", "lines", 4], ["body", "lines", 5, "vital"], ["body", "lines", 6, "ts"],
                        ["body", "lines", 7], ["body", "lines", 9, "quality"], ["body", "lines", 10, "ts"]]
        types = {e["loc"][2]: e["type"] for e in body["errors"]}
        assert (types[1], types[3], types[6], types[7]) == ("implausible", "measurement", "future", "extra_forbidden")
    assert [(r[1], r[3]) for r in stored(client, ["bed-1"])] == [("hr", 80.0), ("spo2", 97.0)]


def test_the_time_horizon_applies(client):
    old = int((NOW - timedelta(days=400)).timestamp())
    response = write(client, f"vitals,patient_id=bed-1,vital=hr value=80 {old}", precision="s")
    assert assert_422(response, ["body", "lines", 0, "ts"])[0]["type"] == "too_early"


def test_gzip_bodies_are_inflated_and_other_media_types_refused(client):
    body = gzip.compress(f"vitals,patient_id=bed-1,vital=hr value=80 {T0_NS}".encode())
    response = client.post("/v1/write", content=body, headers={**TEXT, "content-encoding": "gzip"})
    assert response.status_code == 204
    response = client.post("/v1/write", content=b"junk", headers={**TEXT, "content-encoding": "gzip"})
    assert_422(response, ["body"])
    response = client.post("/v1/write", content=b"vitals,patient_id=bed-1,vital=hr value=80",
                           headers={"content-type": "application/x-www-form-urlencoded"})
    assert response.status_code == 415
    assert client.post("/v1/readings", content=b"{}", headers=TEXT).status_code == 415  # JSON-only elsewhere


def test_too_many_lines_and_a_bad_precision_are_422(tmp_path):
    from tests.support.api import serve

    with serve(tmp_path, max_batch_readings=2) as client:
        line = f"vitals,patient_id=bed-1,vital=hr value=80 {T0_NS}"
        assert_422(write(client, "\n".join([line] * 3)), ["body", "lines"])
        assert_422(write(client, line, precision="h"), ["query", "precision"])


def test_only_a_device_key_may_write(client):
    line = f"vitals,patient_id=bed-1,vital=hr value=80 {T0_NS}"
    assert client_as(client, "device").post("/v1/write", content=line, headers=TEXT).status_code == 204
    assert client_as(client, "clinician").post("/v1/write", content=line, headers=TEXT).status_code == 403
