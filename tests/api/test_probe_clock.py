"""Issue 21, finding 1: a forward jump of the host clock must not silence scoring and alerts once it is corrected.

The service runs with its clock a day ahead (a cycle then drives the alert rules at a window end a day ahead), then
the clock comes back: the scheduler's next tick scores the window now due, its alert rules run (the sick patient's
NEWS2 alert is raised), a manual cycle for the real window drives the alerts, and ``/healthz`` says what is ahead of
the clock until it no longer is. A ``FixedClock`` stepped forward and back; no sleeps."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import pytest

from app.clock import FixedClock
from app.pipeline.scheduler import CycleScheduler
from tests.support.api import NOW, SICK, T0, WINDOW_ENDS, post_readings, run_cycle, serve

DAY = timedelta(days=1)
GRACE_S = 30.0


def ahead(client) -> tuple[bool, dict]:
    health = client.get("/healthz").json()
    return health["ok"], health["window_ends_ahead_of_clock"]


def sick_alert_kinds(client) -> list[str]:
    return sorted(a["kind"] for a in client.get("/v1/alerts", params={"patient_id": SICK}).json())


@pytest.fixture
def undisturbed(tmp_path: Path, sick_readings: list[dict]) -> list[str]:
    """The alert kinds a service whose clock never jumped raises for the sick patient at T0 (at least one)."""
    with serve(tmp_path / "undisturbed", FixedClock(NOW)) as client:
        post_readings(client, sick_readings)
        for end in WINDOW_ENDS:
            run_cycle(client, end)
        kinds = sick_alert_kinds(client)
    assert kinds
    return kinds


def test_a_manual_cycle_drives_the_alerts_again_once_the_clock_comes_back(tmp_path: Path, sick_readings: list[dict],
                                                                          undisturbed: list[str]) -> None:
    clock = FixedClock(NOW)
    with serve(tmp_path, clock) as client:
        post_readings(client, sick_readings)
        for end in WINDOW_ENDS[:-1]:
            run_cycle(client, end)
        clock.advance(DAY)
        assert run_cycle(client, T0 + DAY)["alerts_evaluated"]  # the clock ran ahead: this drove the rules
        clock.set(NOW)
        ok, found = ahead(client)
        assert not ok and set(found) == {"alerts"}, found
        assert datetime.fromisoformat(found["alerts"]) == T0 + DAY
        result = run_cycle(client, T0)
        assert result["alerts_evaluated"], result  # today's main: False, and the NEWS2 16 patient got no alert
        assert sick_alert_kinds(client) == undisturbed
        assert ahead(client) == (True, {})


def test_the_scheduler_scores_the_due_window_at_once_after_the_clock_comes_back(tmp_path: Path,
                                                                                sick_readings: list[dict],
                                                                                undisturbed: list[str]) -> None:
    clock = FixedClock(T0 + timedelta(seconds=GRACE_S))
    with serve(tmp_path, clock) as client:
        wt = client.app.state.wardtwin  # type: ignore[attr-defined]
        scheduler = wt.scheduler = CycleScheduler(wt.cycle, clock, grace_s=GRACE_S, interval_s=300)  # never started
        post_readings(client, sick_readings)
        for end in WINDOW_ENDS[:-1]:
            run_cycle(client, end)
        clock.advance(DAY)
        assert client.portal.call(scheduler.tick) >= 1  # caught up to T0 + 1 day (nobody fresh then: no score)
        assert scheduler.last_window_end == T0 + DAY
        clock.set(T0 + timedelta(seconds=GRACE_S))
        ok, found = ahead(client)
        assert not ok and set(found) == {"alerts", "scheduler"}, found
        assert client.portal.call(scheduler.tick) == 1  # today's main: 0 until real time reaches T0 + 1 day
        assert scheduler.last_window_end == T0
        assert sick_alert_kinds(client) == undisturbed
        ok, found = ahead(client)  # alerting recovered; the discarded resume point stays flagged until passed
        assert not ok and set(found) == {"discarded_resume_point"}, found
        clock.set(T0 + DAY + timedelta(minutes=6))
        assert ahead(client) == (True, {})


class _StoreAhead:
    """A cycle whose store's newest score is a day ahead of the clock (written while it ran ahead)."""

    def __init__(self, newest: datetime) -> None:
        self.newest = newest
        self.ran: list[datetime] = []

    async def last_window_end(self) -> datetime:
        return self.newest

    async def run(self, window_end: datetime, scored_at: datetime | None = None) -> None:
        self.ran.append(window_end)


async def test_a_restarted_scheduler_does_not_resume_from_a_window_end_ahead_of_the_clock() -> None:
    cycle = _StoreAhead(T0 + DAY)
    scheduler = CycleScheduler(cycle, FixedClock(T0 + timedelta(seconds=GRACE_S)),  # type: ignore[arg-type]
                               grace_s=GRACE_S, interval_s=300)
    assert await scheduler.tick() == 1  # today's main: 0 (it resumes after T0 + 1 day)
    assert cycle.ran == [T0] and scheduler.ahead_of_clock == T0 + DAY


async def test_a_resume_point_within_one_window_of_the_clock_is_kept() -> None:
    """A manual cycle may run one window past the clock; its window end is a legitimate resume point."""
    cycle = _StoreAhead(T0 + timedelta(minutes=5))
    scheduler = CycleScheduler(cycle, FixedClock(T0 + timedelta(seconds=GRACE_S)),  # type: ignore[arg-type]
                               grace_s=GRACE_S, interval_s=300)
    assert await scheduler.tick() == 0
    assert cycle.ran == [] and scheduler.ahead_of_clock is None


def test_readings_accepted_while_the_clock_ran_ahead_keep_healthz_not_ok_until_real_time_passes_them(
        tmp_path: Path) -> None:
    """A reading stamped a day ahead (accepted while the clock ran ahead: ingestion takes what is at most
    ``max_future_skew_s`` past the clock) would be windowed tomorrow as tomorrow's vitals. ``/healthz`` names the
    newest such reading and is not ok until the clock passes it; readings within the skew are not flagged."""
    clock = FixedClock(NOW)
    with serve(tmp_path, clock) as client:
        within_skew = NOW + timedelta(minutes=4)
        post_readings(client, [{"patient_id": "clock-1", "vital": "hr", "ts": within_skew.isoformat(), "value": 80}])
        health = client.get("/healthz").json()
        assert health["ok"] is True and health["readings_ahead_of_clock"] is None

        clock.advance(DAY)
        stamped = NOW + DAY + timedelta(minutes=1)
        post_readings(client, [{"patient_id": "clock-1", "vital": "hr", "ts": stamped.isoformat(), "value": 81}])
        clock.set(NOW)
        health = client.get("/healthz").json()
        assert health["ok"] is False  # main: ok, with tomorrow's reading stored
        assert datetime.fromisoformat(health["readings_ahead_of_clock"]) == stamped
        assert health["window_ends_ahead_of_clock"] == {}  # no cycle ran ahead: only the reading is flagged

        clock.set(stamped - timedelta(minutes=5))  # within the skew of the clock: as ingestion would accept now
        assert client.get("/healthz").json()["ok"] is True
