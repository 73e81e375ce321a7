"""CDS Hooks 2.0: discovery, and the patient-view card for a deteriorating and a stable patient."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import numpy as np
import pandas as pd
from fastapi.testclient import TestClient

from app.clock import FixedClock
from models.schema import VITALS
from simulator.devices import QUALITIES
from simulator.patient import generate_patient, to_epoch_ms
from tests.support.api import SICK, STABLE, T0, Ward, client_as, post_readings, run_cycle, serve

HOOK = "/cds-services/wardtwin-deterioration"


def call(client: TestClient, patient_id: str) -> list[dict]:
    response = client.post(HOOK, json={"hook": "patient-view", "hookInstance": "d1577c69-dfbe-44ad-ba6d-3e05e953b2ea",
                                       "context": {"userId": "Practitioner/example", "patientId": patient_id}})
    assert response.status_code == 200, response.text
    cards = response.json()["cards"]
    for card in cards:
        assert len(card["summary"]) <= 140 and card["indicator"] in ("info", "warning", "critical")
        assert card["source"]["label"] == "wardtwin"
    return cards


def test_discovery_lists_the_service(ward: Ward) -> None:
    response = ward.client.get("/cds-services")
    assert response.status_code == 200
    (service,) = response.json()["services"]
    assert service["hook"] == "patient-view" and service["id"] == "wardtwin-deterioration"


def test_deteriorating_patient_gets_an_urgent_card_with_reasons_and_link(ward: Ward) -> None:
    (card,) = call(ward.client, SICK)
    assert card["indicator"] in ("critical", "warning")
    assert card["summary"].startswith("NEWS2 ") and "6-h deterioration risk" in card["summary"]
    assert "**Why:**" in card["detail"] and "Clinical response" in card["detail"]
    (link,) = card["links"]
    assert link["type"] == "absolute" and link["url"].endswith(f"/patients/{SICK}")
    assert ward.client.get(link["url"]).status_code == 200  # the board's patient view answers


def test_stable_patient_gets_an_info_card(ward: Ward) -> None:
    (card,) = call(ward.client, STABLE)
    assert card["indicator"] == "info"


def test_unknown_patient_gets_no_card(ward: Ward) -> None:
    assert call(ward.client, "nobody-here") == []
    assert call(ward.client, "not a patient id!") == []


def test_bad_hook_and_roles(ward: Ward) -> None:
    bad = ward.client.post(HOOK, json={"hook": "order-select", "hookInstance": "x", "context": {"patientId": SICK}})
    assert bad.status_code == 422
    assert client_as(ward.client, "device").post(HOOK, json={}).status_code == 403
    assert client_as(ward.client, None).get("/cds-services").status_code == 401
    assert client_as(ward.client, "ehr").get("/cds-services").status_code == 200


def _simulated(patient_id: str, start: pd.Timestamp, hours: float) -> tuple[list[dict], pd.Timestamp]:
    """The simulator's sepsis patient (onset 3–4 h after admission): its readings, artefact flags included, and the
    onset of its deterioration."""
    stream = generate_patient(patient_id, [2026, 22], to_epoch_ms(start), hours, archetype="sepsis",
                              onset_window_h=(3.0, 4.0))
    ts = pd.to_datetime(stream.ts_ms, unit="ms", utc=True)
    vitals = np.asarray(VITALS, dtype=object)[stream.vital]
    readings = [{"patient_id": patient_id, "vital": v, "value": round(float(x), 2), "ts": t.isoformat(),
                 "quality": QUALITIES[q]} for v, x, t, q in zip(vitals, stream.value, ts, stream.quality, strict=True)]
    (event,) = stream.events
    return readings, pd.Timestamp(event["onset"])


def test_a_simulated_septic_patient_gets_a_critical_or_warning_card(tmp_path: Path) -> None:
    """One hour after the simulator's onset, scored every five minutes for the two hours before: an urgent card."""
    readings, onset = _simulated("sim-sepsis", pd.Timestamp("2026-03-02T00:00Z"), 8.0)
    end = (onset + pd.Timedelta(hours=1)).ceil("5min")
    with serve(tmp_path, FixedClock(end.to_pydatetime() + timedelta(minutes=1))) as client:
        post_readings(client, [r for r in readings if pd.Timestamp(r["ts"]) < end])
        for window_end in pd.date_range(end - pd.Timedelta(hours=2), end, freq="5min"):
            run_cycle(client, window_end.to_pydatetime())
        (card,) = call(client, "sim-sepsis")
    assert card["indicator"] in ("critical", "warning"), card


def test_a_stable_patient_without_current_data_is_not_shown_as_reassurance(client: TestClient, clock: FixedClock,
                                                                          stable_readings: list[dict]) -> None:
    post_readings(client, stable_readings)
    run_cycle(client, T0)
    (card,) = call(client, STABLE)
    assert card["indicator"] == "info" and "not current" not in card["summary"]
    clock.advance(timedelta(minutes=30))  # the monitor went quiet half an hour ago
    (card,) = call(client, STABLE)
    assert card["indicator"] == "warning" and card["summary"].endswith("data not current")
    assert "No current monitor data" in card["detail"]
