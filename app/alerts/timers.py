"""Alert timers on the service clock: escalate what nobody acknowledged, re-notify while nobody does.

An alert not acknowledged within ``escalate_after`` of being raised escalates; while unacknowledged it is
re-notified every ``renotify_after`` since it was last notified (raised, escalated or re-notified). The engine
sweeps after every driving cycle and from its delivery loop; sweeps never overlap (no double notice).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import datetime, timedelta

from app.alerts.store import AlertStore
from app.errors import AlertConflictError

logger = logging.getLogger(__name__)


class Timers:
    def __init__(self, store: AlertStore, *, escalate_after: timedelta,
                 renotify_after: timedelta | None = None) -> None:
        self.store = store
        self.escalate_after = escalate_after
        self.renotify_after = renotify_after
        self._sweeping = asyncio.Lock()

    async def sweep(self, now: datetime) -> tuple[int, int]:
        """Escalate alerts unacknowledged for ``escalate_after`` and re-notify those unacknowledged for
        ``renotify_after`` since their last notification. Returns (escalated, re-notified)."""
        async with self._sweeping:
            return await self._sweep(now)

    async def _sweep(self, now: datetime) -> tuple[int, int]:
        escalated = renotified = 0
        for alert in await self.store.unacknowledged():
            if alert.state in ("raised", "delivered") and now - datetime.fromisoformat(alert.raised_at) >= (
                    self.escalate_after):
                with contextlib.suppress(AlertConflictError):  # acknowledged meanwhile
                    await self.store.escalate(alert.id, now)
                    escalated += 1
                    logger.info("alert escalated id=%s", alert.id)
                continue
            last = datetime.fromisoformat(alert.last_notified_at or alert.raised_at)
            due = self.renotify_after is not None and now - last >= self.renotify_after
            if due and await self.store.renotify(alert.id, now) is not None:
                renotified += 1
        return escalated, renotified
