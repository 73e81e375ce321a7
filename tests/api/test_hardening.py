"""The hardened edge: every reproduction of issue 12 answers a 4xx naming the item and field (never 500), the good
items of a mixed batch are stored exactly once, and the edge refuses what it must (415, 413, 405), echoes nothing
oversized, sends its security headers, keeps CORS closed unless configured and shows no path in ``/healthz``."""

from __future__ import annotations

from datetime import timedelta

import pytest

from tests.support.api import NOW, T0, assert_422, assert_problem, iso, reading, run_cycle, serve

GOOD_AT = T0 - timedelta(minutes=2)


def hr_count(client, patient_id: str) -> int:
    """How many heart-rate readings the service holds for ``patient_id`` in the last hour (its windows, aggregated by
    the cycle at T0)."""
    run_cycle(client, T0)
    windows = client.get(f"/v1/patients/{patient_id}/windows",
                         params={"since": iso(T0 - timedelta(hours=1)), "until": iso(T0)})
    assert windows.status_code == 200, windows.text
    return sum(w["hr_count"] for w in windows.json())


BAD_ITEMS = [
    pytest.param({"patient_id": ["bed-1"]}, "patient_id", id="patient_id-list"),
    pytest.param({"patient_id": {"id": "bed-1"}}, "patient_id", id="patient_id-object"),
    pytest.param({"vital": ["hr"]}, "vital", id="vital-list"),
    pytest.param({"vital": {"hr": 1}}, "vital", id="vital-object"),
    pytest.param({"ts": "0001-01-01Z"}, "ts", id="ts-0001"),
    pytest.param({"ts": "1000-01-01Z"}, "ts", id="ts-1000"),
    pytest.param({"ts": "1677-09-21T00:12:43Z"}, "ts", id="ts-1677-pandas-min"),
    pytest.param({"ts": "0001-01-01T00:00:00+01:00"}, "ts", id="ts-underflows-utc"),
    pytest.param({"ts": "9999-12-31T23:59:59-01:00"}, "ts", id="ts-overflows-utc"),
    pytest.param({"ts": "1900-01-01T00:00:00Z"}, "ts", id="ts-1900"),
    pytest.param({"ts": "1970-01-01T00:00:00Z"}, "ts", id="ts-1970"),
    pytest.param({"ts": iso(NOW - timedelta(days=366))}, "ts", id="ts-beyond-the-one-year-horizon"),
    pytest.param({"ts": iso(NOW + timedelta(hours=1))}, "ts", id="ts-future"),
    pytest.param({"value": "80"}, "value", id="value-string"),
    pytest.param({"value": True}, "value", id="value-boolean"),
]


@pytest.mark.parametrize(("bad", "field"), BAD_ITEMS)
def test_a_bad_item_is_named_and_the_good_ones_are_stored_exactly_once(client, bad, field):
    batch = [reading("bed-good", ts=GOOD_AT), {**reading("bed-bad", ts=GOOD_AT), **bad},
             reading("bed-good", vital="spo2", value=97, ts=GOOD_AT)]
    for _ in range(2):  # re-sending the whole batch is safe: still one of each
        response = client.post("/v1/readings", json={"readings": batch})
        detail = assert_422(response, ["body", "readings", 1, field])
        assert all(item["loc"][2] == 1 for item in detail)
        assert response.json()["accepted"] == 2 and response.json()["rejected"] == 1
    assert hr_count(client, "bed-good") == 1


def test_a_reading_inside_the_horizon_is_accepted(client):
    ok = client.post("/v1/readings", json={"readings": [reading("bed-1", ts=NOW - timedelta(days=364))]})
    assert ok.status_code == 200, ok.text


@pytest.mark.parametrize("year", ["1000", "3000", "9999"])
@pytest.mark.parametrize("route", ["risk/history", "windows"])
@pytest.mark.parametrize("name", ["since", "until"])
def test_range_reads_refuse_implausible_years(client, year, route, name):
    client.post("/v1/readings", json={"readings": [reading("bed-1", ts=GOOD_AT)]})
    response = client.get(f"/v1/patients/bed-1/{route}", params={name: f"{year}-01-01T00:00:00Z"})
    assert_422(response, ["query", name])


@pytest.mark.parametrize("window_end", ["0001-01-01T00:00:00Z", "1000-01-01T00:00:00Z", "1677-09-21T00:12:43Z",
                                        "3000-01-01T00:00:00Z", "9999-12-31T23:59:59Z", "0.5", "1700000000",
                                        "9999-12-31T23:59:59-01:00"])
def test_the_cycle_refuses_implausible_window_ends(client, window_end):
    assert_422(client.post("/v1/cycle", params={"window_end": window_end}), ["query", "window_end"])


@pytest.mark.parametrize("value", ["0.5", "1e9", "-3"])
def test_a_number_is_not_read_as_unix_time(client, value):
    assert_422(client.get("/v1/patients/bed-1/windows", params={"until": value}), ["query", "until"])


@pytest.mark.parametrize(("body", "field"), [
    ({"on_oxygen": "yes"}, "on_oxygen"), ({"on_oxygen": 1}, "on_oxygen"), ({"rr": "20"}, "rr"),
    ({"hr": True}, "hr"), ({"spo2_scale": "2"}, "spo2_scale")])
def test_news2_takes_booleans_and_numbers_only(client, body, field):
    assert_422(client.post("/v1/news2", json=body), ["body", field])


@pytest.fixture
def scored(client, sick_readings):
    from tests.support.api import post_readings

    post_readings(client, sick_readings)
    run_cycle(client, T0)
    return client


@pytest.mark.parametrize(("changes", "vital"), [
    ({"acvpu": 2.5}, "acvpu"), ({"hr": 400}, "hr"), ({"spo2": 101}, "spo2"), ({"acvpu": "X"}, "acvpu"),
    ({"temp": "37"}, "temp")])
def test_what_if_refuses_what_ingest_refuses(scored, changes, vital):
    (key, value), = changes.items()
    ingest = scored.post("/v1/readings", json={"readings": [reading("sick-1", vital=key, value=value, ts=GOOD_AT)]})
    assert ingest.status_code == 422
    response = scored.post("/v1/patients/sick-1/what-if", json={"changes": changes})
    assert response.status_code == 422, response.text
    assert response.json()["errors"][0]["loc"][:2] == ["body", "changes"]


@pytest.mark.parametrize("changes", [{"acvpu": "V"}, {"acvpu": 1}, {"hr": 130}, {"spo2": 88.5}])
def test_what_if_accepts_what_ingest_accepts(scored, changes):
    response = scored.post("/v1/patients/sick-1/what-if", json={"changes": changes})
    assert response.status_code == 200, response.text


# -- the edge --------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data",
                                          None])
def test_a_body_that_is_not_json_is_415_and_nothing_is_stored(client, content_type):
    body = b'{"readings": [{"patient_id": "bed-1", "vital": "hr", "value": 80, "ts": "%s"}]}' % iso(GOOD_AT).encode()
    headers = {"Content-Type": content_type} if content_type else {}
    response = client.post("/v1/readings", content=body, headers=headers)
    assert response.status_code == 415 and response.json()["code"] == "unsupported_media_type"
    assert client.get("/v1/patients").json() == []


def test_json_with_a_charset_or_a_json_suffix_is_accepted(client):
    for content_type in ("application/json; charset=utf-8", "application/vnd.api+json"):
        response = client.post("/v1/readings", content=b'{"readings": []}', headers={"Content-Type": content_type})
        assert response.status_code == 200, response.text


def test_an_oversized_body_is_413_unread_and_not_echoed(tmp_path):
    with serve(tmp_path, max_body_bytes=10_000) as client:
        huge = "x" * 20_000
        response = client.post("/v1/readings", json={"readings": [reading(huge)]})
        assert response.status_code == 413 and response.json()["code"] == "payload_too_large"
        assert len(response.content) < 200

        def chunks():  # no Content-Length: counted as it streams
            yield b'{"readings": ["'
            for _ in range(30):
                yield b"y" * 1000
            yield b'"]}'
        streamed = client.post("/v1/readings", content=chunks(), headers={"Content-Type": "application/json"})
        assert streamed.status_code == 413


@pytest.mark.parametrize(("path", "body"), [
    ("/v1/readings", {"readings": [reading("p" * 100_000)]}),
    ("/v1/news2", {"rr": "r" * 100_000}),
    ("/v1/keys", {"name": "n" * 100_000, "role": "ehr"}),
    ("/v1/news2", {"rr": list(range(20_000))}),
])
def test_a_422_never_echoes_a_large_value(client, path, body):
    response = client.post(path, json=body)
    assert response.status_code == 422 and len(response.content) < 1_000, response.text[:300]


@pytest.mark.parametrize(("method", "path", "allow"), [
    ("GET", "/v1/cycle", "POST"), ("GET", "/v1/readings", "POST"), ("GET", "/v1/news2", "POST"),
    ("DELETE", "/v1/patients", "GET"), ("PUT", "/v1/audit", "GET"), ("GET", "/v1/alerts/a-1/acknowledge", "POST"),
])
def test_a_wrong_method_is_405_with_allow(client, method, path, allow):
    response = client.request(method, path)
    assert response.status_code == 405 and response.headers["allow"] == allow
    assert_problem(response, 405, "method_not_allowed")


def test_an_unknown_api_path_is_a_json_404_and_the_board_is_served(client):
    response = client.get("/v1/nothing-here")
    assert assert_problem(response, 404, "not_found")["type"] == "about:blank"
    assert client.get("/").status_code == 200


@pytest.mark.parametrize("path", ["/", "/v1/patients", "/healthz", "/docs", "/v1/nothing-here"])
def test_security_headers_on_the_board_and_the_api(client, path):
    headers = client.get(path).headers
    assert headers["x-frame-options"] == "DENY" and headers["x-content-type-options"] == "nosniff"
    assert headers["referrer-policy"] == "no-referrer"
    csp = headers["content-security-policy"]
    assert "frame-ancestors 'none'" in csp and "default-src 'self'" in csp
    if path != "/docs":
        assert "'unsafe-inline'" not in csp.split("script-src")[1].split(";")[0]  # the board's script by hash


def test_cors_is_closed_by_default_and_opens_only_to_configured_origins(client, tmp_path):
    preflight = {"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"}
    assert "access-control-allow-origin" not in client.options("/v1/readings", headers=preflight).headers
    assert "access-control-allow-origin" not in client.get("/v1/patients", headers={"Origin": "https://x"}).headers
    with serve(tmp_path / "cors", cors_origins=["https://ehr.example"]) as open_client:
        allowed = open_client.get("/v1/patients", headers={"Origin": "https://ehr.example"})
        assert allowed.headers["access-control-allow-origin"] == "https://ehr.example"
        refused = open_client.get("/v1/patients", headers={"Origin": "https://evil.example"})
        assert "access-control-allow-origin" not in refused.headers


def test_healthz_is_public_and_shows_no_path(tmp_path):
    with serve(tmp_path) as client:
        response = client.get("/healthz", headers={"Authorization": ""})
        assert response.status_code == 200 and response.json()["ok"]
        assert str(tmp_path) not in response.text and ".db" not in response.text


def test_a_key_in_the_board_url_never_reaches_the_access_log(client):
    import logging

    from app.api.edge import RedactKeys

    record = logging.LogRecord("uvicorn.access", logging.INFO, "", 0, '%s - "%s %s HTTP/%s" %d', (
        "127.0.0.1:5000", "GET", "/?key=wt_secret-token&x=1", "1.1", 200), None)
    assert any(isinstance(f, RedactKeys) for f in logging.getLogger("uvicorn.access").filters)  # create_app added it
    for log_filter in logging.getLogger("uvicorn.access").filters:
        log_filter.filter(record)
    assert "wt_secret-token" not in record.getMessage() and "key=[redacted]&x=1" in record.getMessage()
