"""Issue 21, finding 5: inputs that answered 500 (and lost the whole batch on every retry) are now a 4xx naming
where: invalid UTF-8 inside a JSON string, a line-protocol integer of 309+ digits, and NaN / Infinity / 1e999 in
the bodies the 422 handler echoes (it could not encode them)."""

from __future__ import annotations

import pytest

from tests.support.api import T0, assert_422

JSON = {"content-type": "application/json"}
T0_NS = int(T0.timestamp()) * 1_000_000_000


def test_invalid_utf8_inside_a_json_string_is_a_422_naming_the_byte(client):
    body = (b'{"readings": [{"patient_id": "bed\xff", "vital": "hr", "value": 80, "ts": "'
            + T0.isoformat().encode() + b'"}]}')
    (error,) = assert_422(client.post("/v1/readings", content=body, headers=JSON), ["body"])
    at = body.index(b"\xff")
    assert "UTF-8" in error["msg"] and f"byte {at}" in error["msg"], error


def test_a_309_digit_integer_in_line_protocol_is_a_422_for_its_line_and_the_good_line_is_kept(client):
    body = (f"vitals,patient_id=big-1,vital=hr value={'9' * 320}i {T0_NS}\n"
            f"vitals,patient_id=big-1,vital=hr value=80 {T0_NS}\n")
    response = client.post("/v1/write", content=body.encode(), headers={"content-type": "text/plain"})
    assert_422(response, ["body", "lines", 0])
    assert response.json()["accepted"] == 1


NON_FINITE = [
    pytest.param("/v1/news2", b'{"rr": NaN}', ["body", "rr"], id="news2-nan"),
    pytest.param("/v1/news2", b'{"hr": Infinity}', ["body", "hr"], id="news2-infinity"),
    pytest.param("/v1/news2", b'{"temp": 1e999}', ["body", "temp"], id="news2-1e999"),
    pytest.param("/v1/patients/bed-1/what-if", b'{"changes": {"hr": NaN}}', ["body", "changes", "hr"],
                 id="what-if-nan"),
    pytest.param("/v1/patients/bed-1/what-if", b'{"changes": {"spo2": -Infinity}}', ["body", "changes", "spo2"],
                 id="what-if-minus-infinity"),
    pytest.param("/v1/keys", b'{"name": NaN, "role": "device"}', ["body", "name"], id="keys-nan"),
    pytest.param("/v1/keys", b'{"name": "gateway", "role": 1e999}', ["body", "role"], id="keys-1e999"),
    pytest.param("/v1/webhooks", b'{"url": NaN, "secret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", '
                 b'"events": ["alert.raised"]}', ["body", "url"], id="webhooks-nan"),
    pytest.param("/v1/webhooks", b'{"url": "https://a.example/", "secret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", '
                 b'"events": [Infinity]}', ["body", "events", 0], id="webhooks-infinity"),
]


@pytest.mark.parametrize(("path", "body", "loc"), NON_FINITE)
def test_non_finite_numbers_are_a_422_naming_the_field(client, path, body, loc):
    detail = assert_422(client.post(path, content=body, headers=JSON), loc)
    echoed = [d["input"] for d in detail if d["loc"] == loc and "input" in d]
    assert all(isinstance(value, str | dict) for value in echoed), echoed  # spelled out, not a bare NaN token
