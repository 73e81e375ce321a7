"""The latest-score view behind ``GET /v1/patients`` and ``GET /v1/patients/{id}/risk`` (``app.readmodel``).

Its bodies must be byte for byte what the routes answered when they read the store on every request and let
FastAPI serialise the ``response_model``; they are encoded once per change, never per request; the cycle, a
backfill, ingest, an alert transition and a restart each leave the view equal to the store.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

from fastapi import FastAPI
from fastapi.testclient import TestClient

from app.api.patients import risk_out, summary
from app.api.schemas import PatientSummary, RiskOut
from app.clock import FixedClock
from app.errors import StoreUnavailableError
from app.main import create_app
from app.settings import Settings
from app.storage.sqlite import SqliteStore
from tests.support.api import (
    EVERY_ROLE_KEY,
    NOW,
    SICK,
    STABLE,
    T0,
    WINDOW_ENDS,
    bearer,
    client_as,
    post_readings,
    raise_alerts,
    reading,
    run_cycle,
    serve,
)


def reference_bodies(client: TestClient) -> tuple[dict[str, bytes], bytes]:
    """What the routes answered before the view: every score read from the store, serialised by FastAPI."""
    wt = client.app.state.wardtwin  # type: ignore[attr-defined]
    scores = {s.patient_id: s for s in asyncio.run(wt.store.latest_scores())}
    ids = asyncio.run(wt.store.patient_ids())
    alerts = asyncio.run(wt.alert_store.open_alerts())
    reference = FastAPI()

    @reference.get("/risk/{patient_id}", response_model=RiskOut)
    async def risk(patient_id: str) -> RiskOut:
        return risk_out(scores[patient_id])

    @reference.get("/board", response_model=list[PatientSummary])
    async def board() -> list[PatientSummary]:
        rows = [summary(pid, scores.get(pid), alerts.get(pid)) for pid in ids]
        return sorted(rows, key=lambda r: (r.risk is None, -(r.risk or 0.0), r.patient_id))

    with TestClient(reference) as ref:
        return {pid: ref.get(f"/risk/{pid}").content for pid in scores}, ref.get("/board").content


def assert_same_as_store(client: TestClient) -> None:
    risks, board = reference_bodies(client)
    assert risks  # something was scored
    for patient_id, body in risks.items():
        response = client.get(f"/v1/patients/{patient_id}/risk")
        assert response.status_code == 200 and response.content == body
        assert response.headers["content-type"] == "application/json"
    response = client.get("/v1/patients")
    assert response.status_code == 200 and response.content == board


def test_bodies_are_byte_identical_to_the_store_read(ward):
    assert_same_as_store(ward.client)


def test_bodies_are_encoded_once_not_per_request(ward):
    view = ward.client.app.state.wardtwin.read_model
    for _ in range(2):
        ward.client.get("/v1/patients")
        ward.client.get(f"/v1/patients/{SICK}/risk")
    before = view.encodings
    for _ in range(5):
        assert ward.client.get("/v1/patients").status_code == 200
        assert ward.client.get(f"/v1/patients/{SICK}/risk").status_code == 200
        assert ward.client.get(f"/v1/patients/{STABLE}/risk").status_code == 200
    assert view.encodings == before


def test_every_read_is_still_audited(ward):
    admin = client_as(ward.client, "admin")
    before = admin.get("/v1/audit", params={"target": f"patient:{SICK}"}).json()
    for _ in range(3):
        ward.client.get(f"/v1/patients/{SICK}/risk")
    after = admin.get("/v1/audit", params={"target": f"patient:{SICK}"}).json()
    assert len(after) == len(before) + 3
    assert all(e["action"] == "GET /v1/patients/{patient_id}/risk" and e["status"] == 200 for e in after[-3:])


def test_a_cycle_refreshes_the_view_and_a_past_window_does_not_move_it_back(client, sick_readings):
    post_readings(client, sick_readings)
    run_cycle(client, T0 - timedelta(minutes=10))
    assert client.get(f"/v1/patients/{SICK}/risk").json()["window_end"] == "2026-03-02T11:50:00Z"
    run_cycle(client, T0)
    assert client.get(f"/v1/patients/{SICK}/risk").json()["window_end"] == "2026-03-02T12:00:00Z"
    run_cycle(client, T0 - timedelta(minutes=5))  # a past window end: its score is stored, the latest stays
    assert client.get(f"/v1/patients/{SICK}/risk").json()["window_end"] == "2026-03-02T12:00:00Z"
    assert_same_as_store(client)


def test_an_alert_transition_shows_on_the_board_at_once(client, sick_readings):
    post_readings(client, sick_readings)
    raise_alerts(client)  # a charted news2 alert and the twin's
    (row,) = client.get("/v1/patients").json()
    assert row["alert_state"] == "raised"
    assert client.post(f"/v1/alerts/{row['alert_id']}/acknowledge").status_code == 200
    (after,) = client.get("/v1/patients").json()
    assert after["alert_id"] != row["alert_id"]  # the next most urgent open alert (unacknowledged first)
    assert_same_as_store(client)


def test_a_new_patient_shows_at_once_and_a_restart_rebuilds_the_view(tmp_path, sick_readings):
    with serve(tmp_path) as client:
        post_readings(client, sick_readings)
        run_cycle(client, T0)
        post_readings(client, [reading("bed-9", ts=NOW - timedelta(minutes=1))])
        assert [r["patient_id"] for r in client.get("/v1/patients").json()] == [SICK, "bed-9"]
        before = {path: client.get(path).content for path in ("/v1/patients", f"/v1/patients/{SICK}/risk")}
    with serve(tmp_path) as client:  # a new service on the same store
        assert {path: client.get(path).content for path in before} == before
        assert_same_as_store(client)


def test_the_ward_fixture_history_agrees_with_the_view(ward):
    history = ward.client.get(f"/v1/patients/{SICK}/risk/history").json()
    assert len(history) == len(WINDOW_ENDS)
    assert history[-1] == ward.client.get(f"/v1/patients/{SICK}/risk").json()


def test_a_store_unreachable_at_start_up_is_loaded_at_the_first_read_it_answers(tmp_path, sick_readings):
    with serve(tmp_path) as client:  # a scored ward in the store
        post_readings(client, sick_readings)
        run_cycle(client, T0)
        expected = client.get(f"/v1/patients/{SICK}/risk").content

    class Unreachable(SqliteStore):  # as InfluxDB down: the adapter opens (and spools), its reads fail
        down = True

        async def patient_ids(self) -> list[str]:
            if self.down:
                raise StoreUnavailableError("store down")
            return await super().patient_ids()

    settings = Settings(data_dir=tmp_path, demo_key=EVERY_ROLE_KEY)
    store = Unreachable(settings.sqlite_path)
    app = create_app(settings, clock=FixedClock(NOW), cycle_interval_s=None, store=store)
    with TestClient(app, headers=bearer(EVERY_ROLE_KEY)) as client:  # the service starts
        assert client.get(f"/v1/patients/{SICK}/risk").status_code == 503
        store.down = False
        assert client.get(f"/v1/patients/{SICK}/risk").content == expected
        assert_same_as_store(client)
