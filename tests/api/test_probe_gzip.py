"""Issue 21, finding 3: a gzip body is decoded completely or refused with a 4xx saying why, never stored in part.

On today's main a two-member body stored only its first member, a truncated stream stored ``hr 250`` as ``25`` (or
the whole text, its checksum never read), trailing garbage was ignored, each answered 204; gzip on
``/v1/readings`` was not decoded at all."""

from __future__ import annotations

import gzip
import json
import struct
import zlib
from datetime import timedelta
from pathlib import Path

import pytest

from tests.support.api import NOW, T0, assert_422, assert_problem, reading, serve

TEXT_GZ = {"content-type": "text/plain; charset=utf-8", "content-encoding": "gzip"}
T0_NS = int(T0.timestamp()) * 1_000_000_000


def line(patient_id: str, value: int, minutes: int = 0) -> bytes:
    return f"vitals,patient_id={patient_id},vital=hr value={value} {T0_NS - minutes * 60_000_000_000}\n".encode()


def hr_values(client, patient_id: str) -> list[float]:
    wt = client.app.state.wardtwin
    frame = client.portal.call(wt.store.readings, [patient_id], T0 - timedelta(days=1), NOW + timedelta(days=1))
    return sorted(frame["value"].tolist())


def test_every_member_of_a_multi_member_body_is_stored(client):
    body = gzip.compress(line("gz-1", 80, 2)) + gzip.compress(line("gz-1", 90, 1))
    assert client.post("/v1/write", content=body, headers=TEXT_GZ).status_code == 204
    assert hr_values(client, "gz-1") == [80.0, 90.0]  # today's main: [80.0]


def _without_trailer(data: bytes) -> bytes:
    return gzip.compress(data)[:-8]


@pytest.mark.parametrize(("body", "kind"), [
    pytest.param(gzip.compress(line("gz-2", 250))[:-12], "gzip_truncated", id="cut-inside-the-deflate-stream"),
    pytest.param(_without_trailer(line("gz-2", 250)), "gzip_truncated", id="cut-before-crc-and-length"),
    pytest.param(gzip.compress(line("gz-2", 250)) + b"garbage", "gzip_trailing_data", id="trailing-garbage"),
    pytest.param(gzip.compress(line("gz-2", 250)) + b"\x1f\x8b\x08", "gzip_truncated", id="truncated-second-member"),
    pytest.param(gzip.compress(line("gz-2", 250))[:-8] + struct.pack("<I", zlib.crc32(line("gz-2", 250)) ^ 1)
                 + struct.pack("<I", len(line("gz-2", 250))), "gzip", id="bad-crc"),
    pytest.param(b"", "gzip", id="empty"),
])
def test_a_body_that_is_not_complete_gzip_is_a_422_saying_why_and_nothing_is_stored(client, body, kind):
    response = client.post("/v1/write", content=body, headers=TEXT_GZ)
    (error,) = assert_422(response, ["body"])
    assert error["type"] == kind and "gzip" in error["msg"], error
    assert hr_values(client, "gz-2") == []  # today's main: [25.0] or [250.0] and a 204


def test_an_inflated_body_over_the_limit_is_413_across_members(tmp_path: Path):
    with serve(tmp_path, max_body_bytes=4096) as client:
        member = gzip.compress(b"#" * 3000 + b"\n")
        response = client.post("/v1/write", content=member + member, headers=TEXT_GZ)
        assert response.status_code == 413, response.text


def test_gzip_json_on_readings_is_decoded_and_other_codings_are_415(client):
    batch = json.dumps({"readings": [reading("gz-3", "hr", 77, T0)]}).encode()
    response = client.post("/v1/readings", content=gzip.compress(batch),
                           headers={"content-type": "application/json", "content-encoding": "gzip"})
    assert response.status_code == 200, response.text
    assert response.json()["accepted"] == 1 and hr_values(client, "gz-3") == [77.0]
    response = client.post("/v1/readings", content=gzip.compress(batch)[:-4],
                           headers={"content-type": "application/json", "content-encoding": "gzip"})
    assert_422(response, ["body"])
    for coding in ("br", "deflate", "gzip, gzip"):
        response = client.post("/v1/write", content=line("gz-3", 60),
                               headers={**TEXT_GZ, "content-encoding": coding})
        assert "Content-Encoding" in assert_problem(response, 415, "unsupported_media_type")["detail"]
    assert hr_values(client, "gz-3") == [77.0]
