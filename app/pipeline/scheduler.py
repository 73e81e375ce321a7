"""APScheduler decides *when*; the cycle decides nothing about time but its window end argument.

A resume point ahead of the clock (more than one window past its now, the most a manual cycle may run: the newest
window end scored while the host clock ran ahead, in memory or read back from the store at a restart) is never
trusted: the scheduler logs it, remembers it for ``/healthz`` (``ahead_of_clock``) and resumes at the window end now
due, so scoring and alerting recover on the first tick after the clock comes back instead of waiting for real time
to catch up (issue 21, finding 1)."""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime, timedelta
from typing import Protocol

from apscheduler.schedulers.asyncio import AsyncIOScheduler

from app.clock import Clock
from app.errors import StoreUnavailableError
from app.pipeline.cycle import CycleResult
from models.windows import WINDOW, align

logger = logging.getLogger(__name__)

#: After a restart, missed windows are scored in order, but no more than this many.
MAX_CATCH_UP = 12


class Runs(Protocol):
    """What the scheduler drives: ``app.pipeline.cycle.Cycle``, or a fleet instance's ``app.fleet.runner.FleetCycle``
    (the same two calls, scoring only its leased patients)."""

    async def last_window_end(self) -> datetime | None: ...

    async def run(self, window_end: datetime, scored_at: datetime | None = None) -> CycleResult: ...


class CycleScheduler:
    def __init__(self, cycle: Runs, clock: Clock, *, grace_s: float, interval_s: float) -> None:
        self.cycle = cycle
        self.clock = clock
        self.grace_s = grace_s
        self.interval_s = interval_s
        self.last_window_end: datetime | None = None
        #: The last resume point found ahead of the clock and discarded (None: never), reported by ``/healthz``.
        self.ahead_of_clock: datetime | None = None
        self._scheduler = AsyncIOScheduler()
        self._lock = asyncio.Lock()

    def due_window_end(self) -> datetime:
        """The newest window end whose grace period for late readings has passed."""
        now = self.clock.now()
        return align(now - timedelta(seconds=self.grace_s)).to_pydatetime()

    async def tick(self) -> int:
        """Run every due window end not yet run (in order); returns how many ran."""
        async with self._lock:
            due = self.due_window_end()
            if self.last_window_end is None:  # (re)start: resume after the newest window end scored
                self.last_window_end = await self.cycle.last_window_end() or due - WINDOW
            if self.last_window_end > self.clock.now() + WINDOW:  # scored under a clock that ran ahead
                logger.warning("resume point window_end=%s is ahead of the clock (due %s): discarded",
                               self.last_window_end.isoformat(), due.isoformat())
                self.ahead_of_clock = self.last_window_end
                self.last_window_end = due - WINDOW
            pending = []
            next_end = self.last_window_end + WINDOW
            while next_end <= due:
                pending.append(next_end)
                next_end += WINDOW
            for window_end in pending[-MAX_CATCH_UP:]:
                await self.cycle.run(window_end, scored_at=self.clock.now())
                self.last_window_end = window_end
            return len(pending[-MAX_CATCH_UP:])

    async def _job(self) -> None:
        try:
            await self.tick()
        except StoreUnavailableError as exc:  # an outage ridden out: one line a tick, not a traceback (H24)
            logger.warning("cycle not run, the store is unavailable; the next tick retries the same window end: %s",
                           exc)
        except Exception:
            logger.exception("cycle failed; the next tick retries the same window end")
        except asyncio.CancelledError:  # the service stopping mid-cycle (Ctrl-C): APScheduler would log a traceback
            logger.info("cycle interrupted by the shutdown; the next start runs the same window end again")

    def start(self) -> None:
        self._scheduler.add_job(self._job, "interval", seconds=self.interval_s, max_instances=1, coalesce=True,
                                id="cycle")
        self._scheduler.start()
        asyncio.get_running_loop().call_soon(lambda: asyncio.ensure_future(self._job()))

    def shutdown(self) -> None:
        if self._scheduler.running:
            self._scheduler.shutdown(wait=False)

