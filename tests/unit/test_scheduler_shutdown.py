"""A cycle interrupted by the service's shutdown (Ctrl-C mid-cycle) ends the scheduler's job quietly: APScheduler
logs whatever its job raises, a ``CancelledError`` included, as an error with a traceback (seen in the demo's
Ctrl-C test); the next start runs the same window end again (the resume point was not moved)."""

import asyncio
import logging
from datetime import UTC, datetime, timedelta

from app.clock import FixedClock
from app.pipeline.scheduler import CycleScheduler

T0 = datetime(2026, 12, 5, 12, 0, tzinfo=UTC)
GRACE_S = 30.0


class _Hangs:
    def __init__(self) -> None:
        self.entered = asyncio.Event()

    async def last_window_end(self) -> datetime:
        return T0 - timedelta(minutes=5)

    async def run(self, window_end: datetime, scored_at: datetime | None = None) -> None:
        self.entered.set()
        await asyncio.Event().wait()  # a cycle still running when the service stops


async def test_a_cycle_cancelled_by_the_shutdown_ends_the_job_without_an_error(caplog) -> None:
    cycle = _Hangs()
    scheduler = CycleScheduler(cycle, FixedClock(T0 + timedelta(seconds=GRACE_S)),  # type: ignore[arg-type]
                               grace_s=GRACE_S, interval_s=300)
    job = asyncio.create_task(scheduler._job())
    await cycle.entered.wait()
    with caplog.at_level(logging.INFO, logger="app.pipeline.scheduler"):
        job.cancel()
        await job  # returns: nothing for APScheduler to log as an error
    assert "interrupted by the shutdown" in caplog.text
    assert scheduler.last_window_end == T0 - timedelta(minutes=5)  # the interrupted window end runs again
