"""APScheduler decides when; these tests call the scheduler's tick with a fixed clock (no waiting, no sleeps):
due window ends run in order, missed ones are caught up (at most ``MAX_CATCH_UP``), and a restarted scheduler
resumes after the newest window end scored, read from the store."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd

from app.clock import FixedClock
from app.ingest import validate_batch
from app.pipeline.cycle import Cycle
from app.pipeline.scheduler import MAX_CATCH_UP, CycleScheduler
from app.storage.sqlite import SqliteStore
from models.twin import Twin
from models.windows import WINDOW
from simulator.ward import Ward

T0 = datetime(2026, 2, 2, 6, 0, tzinfo=UTC)
GRACE_S = 30.0


class Recording(Cycle):
    """The real cycle, recording which window ends it ran."""

    ran: list[datetime]

    async def run(self, window_end: datetime, scored_at: datetime | None = None):  # type: ignore[override]
        self.ran.append(window_end)
        return await super().run(window_end, scored_at)


async def scheduler_on(path: Path, clock: FixedClock) -> tuple[CycleScheduler, Recording, SqliteStore]:
    store = SqliteStore(path)
    await store.open()
    cycle = Recording(store, Twin.load())
    cycle.ran = []
    return CycleScheduler(cycle, clock, grace_s=GRACE_S, interval_s=300), cycle, store


async def write_ward(store: SqliteStore, until: datetime) -> None:
    items = Ward(2, 5, pd.Timestamp(T0 - timedelta(hours=2))).advance(pd.Timestamp(until))
    await store.write_readings(validate_batch(items, until, timedelta(0)).readings)


async def test_due_window_waits_for_its_grace_period(tmp_path: Path) -> None:
    clock = FixedClock(T0 + timedelta(seconds=GRACE_S - 1))  # 06:00 has not had its grace yet
    scheduler, _, store = await scheduler_on(tmp_path / "s.db", clock)
    assert scheduler.due_window_end() == T0 - WINDOW
    clock.advance(timedelta(seconds=1))
    assert scheduler.due_window_end() == T0
    await store.close()


async def test_catch_up_runs_missed_windows_in_order_then_only_new_ones(tmp_path: Path) -> None:
    clock = FixedClock(T0 + timedelta(seconds=GRACE_S))
    scheduler, cycle, store = await scheduler_on(tmp_path / "s.db", clock)
    await write_ward(store, T0 + timedelta(hours=1))
    assert await scheduler.tick() == 1 and cycle.ran == [T0]  # a fresh service starts at the due window
    clock.advance(timedelta(minutes=17))  # three window ends became due meanwhile
    assert await scheduler.tick() == 3
    assert cycle.ran[1:] == [T0 + WINDOW, T0 + 2 * WINDOW, T0 + 3 * WINDOW]
    assert await scheduler.tick() == 0  # nothing new is due: nothing runs twice
    assert len(cycle.ran) == 4
    await store.close()


async def test_a_restarted_scheduler_resumes_after_the_newest_scored_window(tmp_path: Path) -> None:
    clock = FixedClock(T0 + timedelta(seconds=GRACE_S))
    scheduler, cycle, store = await scheduler_on(tmp_path / "s.db", clock)
    await write_ward(store, T0 + timedelta(hours=3))
    await scheduler.tick()
    assert await store.last_window_end() == T0
    await store.close()

    clock.advance(timedelta(minutes=20))  # down for 20 minutes: four window ends missed
    scheduler, cycle, store = await scheduler_on(tmp_path / "s.db", clock)
    assert await scheduler.tick() == 4
    assert cycle.ran == [T0 + k * WINDOW for k in range(1, 5)]
    await store.close()

    clock.advance(timedelta(hours=2))  # down longer than the catch-up limit: only the newest are scored
    scheduler, cycle, store = await scheduler_on(tmp_path / "s.db", clock)
    assert await scheduler.tick() == MAX_CATCH_UP
    due = scheduler.due_window_end()
    assert cycle.ran == [due - k * WINDOW for k in range(MAX_CATCH_UP - 1, -1, -1)]
    assert await store.last_window_end() == due
    await store.close()
