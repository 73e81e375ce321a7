"""Issue 21, finding 1 (H17 residual 1): scores made while the host clock ran ahead are not the patient's latest.

The service runs with its clock a day ahead and scores the sick patient then (readings timestamped by that clock);
the clock is corrected. The board and ``/risk`` must show the patient's latest *real* score (the store's newest up to
one window past the clock), not the day-ahead one; ``/healthz`` says a score ahead of the clock was dropped; a
restarted service reads the same; and the next real cycle's score is the latest at once. A ``FixedClock``; no sleeps.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from app.clock import FixedClock
from app.storage.sqlite import SqliteStore
from tests.integration.test_store_contract import make_score
from tests.support.api import NOW, SICK, T0, WINDOW_ENDS, post_readings, run_cycle, serve
from tests.support.synthetic_readings import trajectory

DAY = timedelta(days=1)
WINDOW = timedelta(minutes=5)


def risk_end(client: TestClient) -> datetime:
    response = client.get(f"/v1/patients/{SICK}/risk")
    assert response.status_code == 200, response.text
    return datetime.fromisoformat(response.json()["window_end"])


def board_end(client: TestClient) -> datetime | None:
    (row,) = [r for r in client.get("/v1/patients").json() if r["patient_id"] == SICK]
    return None if row["window_end"] is None else datetime.fromisoformat(row["window_end"])


def run_a_day_ahead(client: TestClient, clock: FixedClock, sick_readings: list[dict]) -> None:
    """Score the sick patient to T0 at the right time, then to T0 + 1 day with the clock a day ahead."""
    post_readings(client, sick_readings)
    for end in WINDOW_ENDS[-3:]:
        run_cycle(client, end)
    assert risk_end(client) == T0
    clock.advance(DAY)
    post_readings(client, trajectory(SICK, T0 + DAY, True, 2))  # accepted: within the skew of the clock then
    for end in (T0 + DAY - WINDOW, T0 + DAY):
        assert run_cycle(client, end)["scored"] >= 1
    assert risk_end(client) == board_end(client) == T0 + DAY  # the clock says it is then: a legitimate latest


def test_scores_made_ahead_of_the_clock_are_not_the_latest_once_it_is_corrected(tmp_path: Path,
                                                                                sick_readings: list[dict]) -> None:
    clock = FixedClock(NOW)
    with serve(tmp_path, clock) as client:
        run_a_day_ahead(client, clock, sick_readings)
        clock.set(NOW)
        assert risk_end(client) == T0  # today's main: T0 + 1 day, until real time passes it
        assert board_end(client) == T0
        health = client.get("/healthz").json()
        assert not health["ok"]
        assert datetime.fromisoformat(health["window_ends_ahead_of_clock"]["latest_scores_dropped"]) == T0 + DAY
        history = client.get(f"/v1/patients/{SICK}/risk/history",  # the store keeps what was scored
                             params={"since": (T0 - WINDOW).isoformat(), "until": (T0 + DAY).isoformat()})
        assert history.status_code == 200, history.text
        assert {datetime.fromisoformat(s["window_end"]) for s in history.json()} >= {T0, T0 + DAY}
        clock.advance(WINDOW)
        run_cycle(client, T0 + WINDOW)
        assert risk_end(client) == board_end(client) == T0 + WINDOW  # the next real window is the latest at once


def test_a_restarted_service_does_not_load_a_latest_score_ahead_of_the_clock(tmp_path: Path,
                                                                            sick_readings: list[dict]) -> None:
    clock = FixedClock(NOW)
    with serve(tmp_path, clock) as client:
        run_a_day_ahead(client, clock, sick_readings)
    with serve(tmp_path, FixedClock(NOW)) as client:
        assert risk_end(client) == board_end(client) == T0  # today's main: T0 + 1 day


def test_a_score_saved_ahead_of_the_clock_is_not_taken_as_the_latest(tmp_path: Path,
                                                                     sick_readings: list[dict]) -> None:
    """A score for a window end more than one window past the clock (a replay or another instance writing into
    the future) does not become the latest; one window past it (a manual cycle's limit) does."""
    with serve(tmp_path, FixedClock(NOW)) as client:
        post_readings(client, sick_readings)
        run_cycle(client, T0)
        wt = client.app.state.wardtwin  # type: ignore[attr-defined]
        client.portal.call(wt.store.save_scores, [make_score(SICK, T0 + 3 * WINDOW, 0.5)])
        assert risk_end(client) == T0
        client.portal.call(wt.store.save_scores, [make_score(SICK, T0 + WINDOW, 0.5)])
        assert risk_end(client) == T0 + WINDOW


@pytest.mark.parametrize("not_after, expected", [(None, T0 + DAY), (T0 + WINDOW, T0), (T0 - WINDOW, None)])
def test_the_sqlite_store_s_latest_scores_up_to_a_bound(tmp_path: Path, not_after: datetime | None,
                                                        expected: datetime | None) -> None:
    async def latest() -> list:
        store = SqliteStore(tmp_path / "vitals.db")
        await store.open()
        try:
            await store.save_scores([make_score("a", T0 - 2 * WINDOW, 0.2), make_score("a", T0, 0.3),
                                     make_score("a", T0 + DAY, 0.9), make_score("b", T0 + DAY, 0.4)])
            return await store.latest_scores(not_after)
        finally:
            await store.close()

    found = {s.patient_id: s.window_end for s in asyncio.run(latest())}
    if expected is None:
        assert found == {"a": T0 - 2 * WINDOW}
    else:
        assert found["a"] == expected
        assert ("b" in found) == (not_after is None)


def test_after_the_correction_the_cycle_moves_its_grid_on_again(tmp_path: Path, sick_readings: list[dict]) -> None:
    """H17 residual 3: the ward grid kept from a cycle run while the clock was ahead made every later cycle read its
    whole span from the store until real time passed it. Now the first cycle after the correction reads it whole
    once and the next one only what changed."""
    clock = FixedClock(NOW)
    with serve(tmp_path, clock) as client:
        run_a_day_ahead(client, clock, sick_readings)
        wt = client.app.state.wardtwin  # type: ignore[attr-defined]
        reads: list[datetime] = []
        original = wt.store.windows

        async def spy(patient_ids, start, end):
            reads.append(start)
            return await original(patient_ids, start, end)

        wt.cycle.store.windows = spy  # the cycle's reads of stored windows: where each starts
        clock.set(NOW + WINDOW)
        run_cycle(client, T0 + WINDOW)
        clock.advance(WINDOW)
        post_readings(client, [{"patient_id": SICK, "vital": "hr", "value": 120, "ts": (T0 + WINDOW).isoformat()}])
        run_cycle(client, T0 + 2 * WINDOW)
        assert len(reads) == 2, reads
        assert reads[1] >= T0, reads  # today's main: the whole span again (24 h and more back)
