"""POST /v1/cycle: an explicit window end, idempotent reruns, and its refusals."""

from __future__ import annotations

from datetime import timedelta

import pytest

from models.schema import EARLIEST_READING_AT
from tests.support.api import SICK, T0, assert_422, iso, post_readings, reading, run_cycle


def test_a_cycle_scores_every_fresh_patient_at_its_window_end(client, sick_readings):
    post_readings(client, [*sick_readings, reading("bed-9", ts=T0 - timedelta(minutes=1))])
    assert client.get(f"/v1/patients/{SICK}/risk").status_code == 404  # not scored before a cycle
    result = run_cycle(client, T0)
    assert result["window_end"] == "2026-03-02T12:00:00Z"
    # one window raises nothing: the twin alerts on risk sustained over three windows, NEWS2 alerts follow charted sets
    assert result["patients"] == 2 and result["scored"] == 2 and result["alerts_raised"] == 0
    assert result["took_ms"] >= 0
    for patient_id in (SICK, "bed-9"):
        risk = client.get(f"/v1/patients/{patient_id}/risk").json()
        assert risk["window_end"] == "2026-03-02T12:00:00Z" and 0 <= risk["risk"] <= 1
        assert risk["scored_at"] == "2026-03-02T12:01:00Z"  # the service clock, not the wall clock


def test_an_unaligned_window_end_is_floored_to_its_window(client):
    post_readings(client, [reading(ts=T0 - timedelta(minutes=1))])
    assert run_cycle(client, T0 + timedelta(minutes=4, seconds=59))["window_end"] == "2026-03-02T12:00:00Z"


def test_rerunning_a_cycle_keeps_one_score_per_patient_per_window_end(client, sick_readings):
    post_readings(client, sick_readings)
    for end in (T0 - timedelta(minutes=10), T0 - timedelta(minutes=5)):
        run_cycle(client, end)
    first = run_cycle(client, T0)
    again = run_cycle(client, T0)
    assert again["scored"] == first["scored"] == 1
    assert first["alerts_raised"] == 1 and again["alerts_raised"] == 0  # this window end already raised the twin's
    history = client.get(f"/v1/patients/{SICK}/risk/history").json()
    assert [h["window_end"] for h in history] == ["2026-03-02T11:50:00Z", "2026-03-02T11:55:00Z",
                                                  "2026-03-02T12:00:00Z"]
    assert [a["kind"] for a in client.get("/v1/alerts").json()] == ["twin"]


def test_a_cycle_on_an_empty_ward_scores_nobody(client):
    result = run_cycle(client, T0)
    assert (result["patients"], result["scored"], result["alerts_raised"]) == (0, 0, 0)


def test_a_patient_silent_for_longer_than_stale_after_is_not_scored(client):
    post_readings(client, [reading(ts=T0 - timedelta(minutes=61))])  # Settings.stale_after_min = 60
    result = run_cycle(client, T0)
    assert result["patients"] == 1 and result["scored"] == 0


@pytest.mark.parametrize(("params", "type_"), [
    ({}, "missing"),
    ({"window_end": "2026-03-02T12:00:00"}, "datetime"),  # no offset
    ({"window_end": "noon"}, None),
])
def test_a_cycle_needs_a_timezone_aware_window_end(client, params, type_):
    detail = assert_422(client.post("/v1/cycle", params=params), ["query", "window_end"])
    if type_:
        assert detail[0]["type"] == type_


@pytest.mark.parametrize(("window_end", "type_"), [
    ("0001-01-01T00:00:00Z", "too_early"),  # once overflowed in Cycle.run's look-back (500)
    ("0001-01-01T00:00:00+05:00", "too_early"),  # not even representable in UTC
    ("1000-06-01T00:00:00Z", "too_early"),
    ("1677-09-22T00:00:00Z", "too_early"),  # datetime64[ns]'s first day
    ("1999-12-31T23:55:00Z", "too_early"),  # just before EARLIEST_READING_AT
    ("3000-01-01T00:00:00Z", "future"),
    ("9999-12-31T23:59:59.999999Z", "future"),
    ("9999-12-31T23:59:59-05:00", "future"),
    (iso(T0 + timedelta(minutes=6, seconds=1)), "future"),  # NOW + one window + 1 s: a window not yet begun
])
def test_a_window_end_out_of_range_is_refused(client, window_end, type_):
    detail = assert_422(client.post("/v1/cycle", params={"window_end": window_end}), ["query", "window_end"])
    assert detail[0]["type"] == type_ and window_end[:4] in detail[0]["msg"]


def test_a_window_end_up_to_one_window_ahead_of_the_clock_is_run(client):
    post_readings(client, [reading(ts=T0 - timedelta(minutes=1))])
    assert run_cycle(client, T0 + timedelta(minutes=6))["window_end"] == "2026-03-02T12:05:00Z"  # NOW + 5 min
    assert run_cycle(client, EARLIEST_READING_AT)["patients"] == 1  # the floor itself
