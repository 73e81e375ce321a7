"""Alert rules and delivery.

An alert is raised when a patient with no open alert has a risk at or above the threshold, or
meets a deterioration criterion now (flag ``criteria_met:<kind>`` from the cycle); it resolves
when the risk is below the clear threshold (hysteresis) and no criterion is met; it escalates when
unacknowledged too long. The outbox worker delivers every alert event to the WebSocket hub."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from datetime import datetime, timedelta

from app.alerts.hub import AlertHub
from app.alerts.store import Alert, AlertStore
from app.clock import Clock
from app.domain import Score
from app.pipeline.criteria import criteria_reasons

logger = logging.getLogger(__name__)


class AlertEngine:
    def __init__(self, store: AlertStore, hub: AlertHub, clock: Clock, *, threshold: float,
                 clear_threshold: float, escalate_after: timedelta) -> None:
        self.store = store
        self.hub = hub
        self.clock = clock
        self.threshold = threshold
        self.clear_threshold = clear_threshold
        self.escalate_after = escalate_after
        self._wake = asyncio.Event()
        self._task: asyncio.Task | None = None

    async def evaluate(self, scores: Sequence[Score]) -> list[Alert]:
        """Apply the rules to one cycle's scores; returns the alerts raised."""
        now = self.clock.now()
        open_alerts = await self.store.open_alerts()
        raised: list[Alert] = []
        for score in scores:
            active = open_alerts.get(score.patient_id)
            criteria = criteria_reasons(score)
            if active is None:
                if score.risk >= self.threshold or criteria:
                    reasons = criteria + [c.sentence for c in score.contributions if c.sentence and c.points > 0][:3]
                    alert = await self.store.raise_alert(score.patient_id, score.window_end, score.risk, reasons, now)
                    if alert is not None:
                        raised.append(alert)
                        logger.info("alert raised id=%s risk=%.3f criteria=%s", alert.id, score.risk, criteria)
            elif score.risk < self.clear_threshold and not criteria:
                await self.store.resolve(active.id, now, f"risk fell to {score.risk:.2f}")
            elif active.state in ("raised", "delivered") and now - datetime.fromisoformat(active.raised_at) >= (
                self.escalate_after
            ):
                await self.store.escalate(active.id, now)
        self._wake.set()
        return raised

    # -- delivery ---------------------------------------------------------------------------------
    async def deliver_pending(self) -> int:
        """Push undelivered outbox events, oldest first, until none is left or one reaches nobody.

        Delivering a ``raised`` event moves its alert to ``delivered``, which is itself an event for
        the dashboards; the loop sends that too.
        """
        sent = 0
        while events := await self.store.pending_events():
            for event in events:
                if await self.hub.broadcast({"seq": event.seq, **event.payload}) == 0:
                    return sent
                now = self.clock.now()
                await self.store.mark_event_delivered(event.seq, now)
                if event.event == "raised":
                    await self.store.mark_delivered(event.alert_id, now)
                sent += 1
        return sent

    def wake(self) -> None:
        self._wake.set()

    async def _run(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=2.0)
            self._wake.clear()
            try:
                await self.deliver_pending()
            except Exception:
                logger.exception("alert delivery failed; will retry")

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="alert-delivery")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
