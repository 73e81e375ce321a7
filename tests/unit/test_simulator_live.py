"""Simulator live mode: ward delivery semantics, sinks (HTTP, line protocol), the live loop."""

from __future__ import annotations

import json

import httpx
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.domain import Reading
from app.storage.codec import from_ms
from models.line_protocol import ReadingEncoder, parse_line
from simulator.archetypes import EVENT_ARCHETYPES
from simulator.live import run_live
from simulator.sinks import (
    MAX_BACKOFF_S,
    HttpSink,
    InfluxLineSink,
    SinkError,
    readings_to_lines,
    split_observations,
)
from simulator.ward import Ward

START = pd.Timestamp("2026-01-05T00:00Z")


def _key(r: dict) -> tuple:
    return (r["patient_id"], r["vital"], r["ts"], r["value"], r["quality"])


@pytest.fixture(scope="module")
def ward_history() -> tuple[Ward, list[dict]]:
    ward = Ward(24, 7, START)
    return ward, ward.advance(START + pd.Timedelta(hours=1))


def test_default_ward_has_a_mix_with_early_deterioration(ward_history):
    ward, _ = ward_history
    assert [p["patient_id"] for p in ward.patients] == [f"bed-{i:02d}" for i in range(1, 25)]
    archetypes = [p["archetype"] for p in ward.patients]
    assert archetypes.count("stable") >= 20
    planned = [e for e in ward.events if e["kind"] in EVENT_ARCHETYPES]
    assert len(planned) == 3  # the enriched demo mix: three deteriorations, each planned 2–8 h in
    assert all(START + pd.Timedelta(hours=1) <= e["onset"] <= START + pd.Timedelta(hours=9) for e in planned)
    # stable patients are not redrawn: a rare one crosses a threshold for half an hour, and the label calls it an event
    assert all(e["kind"] in {"stable", "fever"} for e in ward.events if e not in planned)


def test_advance_is_deterministic_whatever_the_steps():
    a, b = Ward(3, 4, START), Ward(3, 4, START)
    end = START + pd.Timedelta(minutes=30)
    one = a.advance(end)
    many: list[dict] = []
    t = START
    while t < end:
        t = min(end, t + pd.Timedelta(seconds=37))
        many.extend(b.advance(t))
    assert [_key(r) for r in one] == [_key(r) for r in many]
    assert a.events == b.events


def test_advance_delivers_late_out_of_order_and_duplicates(ward_history):
    ward, history = ward_history
    until = ward.until
    assert all(pd.Timestamp(r["ts"]) <= until for r in history)
    assert all(r["ts"].endswith("Z") for r in history[:100])
    nxt = ward.advance(until + pd.Timedelta(minutes=10))
    assert any(pd.Timestamp(r["ts"]) <= until for r in nxt)  # measured before the previous call, delivered after
    per_patient_vital: dict[tuple, str] = {}
    out_of_order = False
    for r in nxt:
        k = (r["patient_id"], r["vital"])
        out_of_order |= k in per_patient_vital and r["ts"] < per_patient_vital[k]
        per_patient_vital[k] = max(per_patient_vital.get(k, r["ts"]), r["ts"])
    assert out_of_order
    keys = [_key(r) for r in history]
    assert len(keys) > len(set(keys))  # retransmitted duplicates
    assert {r["quality"] for r in history} >= {"ok", "motion"}
    with pytest.raises(ValueError):
        ward.advance(until)


def test_ward_admits_new_patients_after_a_block():
    ward = Ward(2, 1, START, block_hours=1.0)
    ward.advance(START + pd.Timedelta(hours=2, minutes=30))
    assert all(p["admitted_at"] > START for p in ward.patients)


def test_ward_advance_over_hours_is_fast(ward_history):
    import time

    ward = Ward(24, 8, START)
    t0 = time.perf_counter()
    rows = ward.advance_frame(START + pd.Timedelta(hours=2))
    assert len(rows) > 24 * 2 * 3600 * 0.8
    assert time.perf_counter() - t0 < 5.0


#: What line protocol 1.x can carry in a tag value: no line break, not empty, no trailing backslash.
tag_text = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\n\r"), min_size=1,
                   max_size=20).filter(lambda s: not s.endswith("\\"))
field_text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=20)


@given(pid=tag_text, vital=tag_text, quality=field_text, value=st.floats(allow_nan=False, allow_infinity=False),
       ms=st.integers(0, 2**42))
def test_sink_lines_round_trip_through_the_shared_parser(pid, vital, quality, value, ms):
    """The simulator's sink output parses back to the reading, and is byte for byte what the service writes."""
    ts = from_ms(ms)
    (line,) = readings_to_lines([{"patient_id": pid, "vital": vital, "ts": ts.isoformat(timespec="milliseconds"),
                                  "value": value, "quality": quality}])
    assert "\n" not in line.split(" value=")[0]  # a string field may hold a newline, the key never does
    assert parse_line(line) == ("vitals", {"patient_id": pid, "vital": vital}, {"value": value, "quality": quality},
                                ms)
    assert [line] == ReadingEncoder().encode_lines([Reading(pid, vital, ts, value, quality)])


def test_sink_lines_escape_as_the_service_does():
    line = readings_to_lines([{"patient_id": "bed-01", "vital": "hr", "ts": "2026-01-05T00:00:01.250Z",
                               "value": 72, "quality": "ok"}])[0]
    assert line == 'vitals,patient_id=bed-01,vital=hr value=72.0,quality="ok" 1767571201250'
    # a backslash inside a tag value is carried (the simulator's own encoder used to refuse it)
    (line,) = readings_to_lines([{"patient_id": "a\\,b c", "vital": "hr", "ts": "2026-01-05T00:00:00Z",
                                  "value": 1.5, "quality": 'say "hi"'}])
    assert line == r'vitals,patient_id=a\\,b\ c,vital=hr value=1.5,quality="say \"hi\"" 1767571200000'
    assert parse_line(line)[1]["patient_id"] == "a\\,b c"
    for bad in ("trailing\\", "new\nline", ""):
        with pytest.raises(ValueError):
            readings_to_lines([{"patient_id": bad, "vital": "hr", "ts": "2026-01-05T00:00:00Z", "value": 1.0}])


def _readings(n: int) -> list[dict]:
    return [{"patient_id": "bed-01", "vital": "hr", "ts": "2026-01-05T00:00:00.000Z", "value": 70.0, "quality": "ok"}
            ] * n


def test_http_sink_batches_retries_5xx_and_does_not_retry_422():
    calls: list[int] = []
    status = iter([503, 200, 200, 422])

    def handler(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        calls.append(len(body["readings"]))
        code = next(status)
        return httpx.Response(code, json={"detail": [{"loc": ["body", "readings", 0], "msg": "bad"}]} if code == 422
                              else {})

    sleeps: list[float] = []
    sink = HttpSink("http://svc", client=httpx.Client(transport=httpx.MockTransport(handler)), sleep=sleeps.append)
    assert sink.send(_readings(25_000)) == 20_000
    assert calls == [10_000, 10_000, 10_000, 5_000]
    assert sleeps == [0.5]
    assert sink.rejected == 5_000


def test_http_sink_gives_up_after_retries():
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    sleeps: list[float] = []
    sink = HttpSink("http://svc", client=httpx.Client(transport=httpx.MockTransport(handler)), max_retries=3,
                    sleep=sleeps.append)
    with pytest.raises(SinkError):
        sink.send(_readings(1))
    assert sleeps == [0.5, 1.0, 2.0]


def test_http_sink_backoff_is_capped_and_4xx_is_not_retried():
    status = iter([500, 502, 503, 504, 400])
    sleeps: list[float] = []
    client = httpx.Client(transport=httpx.MockTransport(lambda request: httpx.Response(next(status))))
    sink = HttpSink("http://svc", client=client, backoff_s=10.0, sleep=sleeps.append)
    with pytest.raises(SinkError, match="HTTP 400"):
        sink.send(_readings(1))
    assert sleeps == [10.0, 20.0, MAX_BACKOFF_S, MAX_BACKOFF_S]


def test_influx_sink_gives_up_on_5xx():
    sleeps: list[float] = []
    client = httpx.Client(transport=httpx.MockTransport(lambda request: httpx.Response(503)))
    sink = InfluxLineSink("http://influx:8086", "wardtwin", client=client, max_retries=2, sleep=sleeps.append)
    with pytest.raises(SinkError, match="HTTP 503 after 2 retries"):
        sink.send(_readings(1))
    assert sleeps == [0.5, 1.0]


def test_influx_sink_writes_line_protocol():
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(204)

    client = httpx.Client(transport=httpx.MockTransport(handler))
    sink = InfluxLineSink("http://influx:8086/", "wardtwin", client=client)
    assert sink.send(_readings(3)) == 3
    (request,) = seen
    assert request.url.path == "/write"
    assert dict(request.url.params) == {"db": "wardtwin", "precision": "ms"}
    lines = request.content.decode().split("\n")
    assert len(lines) == 3 and all(parse_line(x)[0] == "vitals" for x in lines)


class _Collect:
    def __init__(self) -> None:
        self.batches: list[list[dict]] = []

    def send(self, readings):
        self.batches.append(list(readings))
        return len(readings)

    def close(self) -> None:
        pass


def test_run_live_accelerates_time_without_sleeping():
    clock = {"t": 0.0}
    ward = Ward(2, 3, START)
    sink = _Collect()

    def sleep(s: float) -> None:
        clock["t"] += s

    sent = run_live(ward, sink, speed=60.0, tick_s=1.0, duration_s=10.0, monotonic=lambda: clock["t"], sleep=sleep)
    assert ward.until == START + pd.Timedelta(minutes=10)
    assert sent == sum(len(b) for b in sink.batches) > 0
    assert len(sink.batches) == 11


def test_split_observations_rebuilds_each_set_and_keeps_monitor_readings_apart():
    ward = Ward(4, 2, START)
    readings = ward.advance(START + pd.Timedelta(hours=6))
    charted = [r for r in readings if r["source"] == "charted"]
    monitor, sets = split_observations(readings)
    assert len(monitor) + len(charted) == len(readings) and all(r["source"] == "monitor" for r in monitor)
    assert len(sets) == len({(r["patient_id"], r["ts"]) for r in charted}) >= 4  # admission sets at least
    for body in sets:
        assert set(body) == {"patient_id", "ts", "rr", "spo2", "spo2_scale", "o2", "sbp", "hr", "acvpu", "temp", "by"}
        assert body["acvpu"] in ("A", "C", "V", "P", "U") and body["by"] == "sim-nurse" and body["spo2_scale"] == 1
    scaled = split_observations(readings, lambda pid: 2 if pid == "bed-02" else 1)[1]
    assert {b["patient_id"] for b in scaled if b["spo2_scale"] == 2} == {"bed-02"}
    lines = readings_to_lines(charted[:7])
    assert all(",source=charted," in line for line in lines)
    assert ",source=" not in readings_to_lines(monitor[:1])[0]


def test_http_sink_sends_sets_through_observations_and_never_as_readings():
    seen: dict[str, list] = {"/v1/readings": [], "/v1/observations": []}

    def handler(request: httpx.Request) -> httpx.Response:
        seen[request.url.path].append(json.loads(request.content))
        return httpx.Response(201 if request.url.path == "/v1/observations" else 200, json={})

    ward = Ward(3, 5, START)
    readings = ward.advance(START + pd.Timedelta(hours=3))
    sink = HttpSink("http://svc", client=httpx.Client(transport=httpx.MockTransport(handler)))
    assert sink.send(readings) == len(readings)
    posted = [r for body in seen["/v1/readings"] for r in body["readings"]]
    assert posted and all(r["source"] == "monitor" for r in posted)
    assert sink.sets_sent == len(seen["/v1/observations"]) == len(split_observations(readings)[1]) >= 3


def test_the_services_observation_route_takes_every_simulated_set(tmp_path):
    """Through the real route in process: every set a simulated ward charts over six hours is accepted (201)."""
    from tests.support.api import NOW, client_as, serve

    with serve(tmp_path) as client:
        start = pd.Timestamp(NOW).floor("5min") - pd.Timedelta(hours=6)
        ward = Ward(3, 9, start)
        readings = ward.advance(pd.Timestamp(NOW))
        device = client_as(client, "device")
        sink = HttpSink(str(device.base_url), client=device, spo2_scale=ward.spo2_scale)
        assert sink.send(readings) == len(readings)
        assert sink.rejected == 0 and sink.sets_rejected == 0 and sink.sets_sent >= 3


def test_demo_posts_the_ward_s_sets_through_observations_and_keeps_its_mix(tmp_path):
    import asyncio

    from lab.demo import DemoOptions, DemoState, _state, post_readings

    seen: dict[str, int] = {"/v1/readings": 0, "/v1/observations": 0}

    def handler(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        seen[request.url.path] += 1
        if request.url.path == "/v1/readings":
            assert all(r["source"] == "monitor" for r in body["readings"])
        return httpx.Response(201, json={})

    readings = Ward(3, 1, START).advance(START + pd.Timedelta(hours=2))

    async def post() -> None:
        async with httpx.AsyncClient(base_url="http://svc", transport=httpx.MockTransport(handler)) as client:
            await post_readings(client, readings)

    asyncio.run(post())
    assert seen["/v1/readings"] >= 1 and seen["/v1/observations"] == len(split_observations(readings)[1]) >= 3
    path = tmp_path / "demo.json"
    state = DemoState(7, 24, START.to_pydatetime(), START.to_pydatetime(), "ward")
    state.save(path)
    assert DemoState.load(path) == state
    assert _state(DemoOptions(mix="ward"), path) == (state, True)  # the same ward resumes
    assert _state(DemoOptions(mix="enriched"), path)[1] is False  # another mix is another ward
