"""The alert engine: applies the rules' changes to the store, runs the timers, wakes the notifiers.

Stages, as Alertmanager's: the rules decide (``app.alerts.rules.decide``, pure), the engine applies the changes
to the store (every transition with its outbox event, in one transaction each), the timers escalate and re-notify
(``app.alerts.timers``), the notifiers deliver (``app.alerts.notify``: the WebSocket hub, the webhook worker, the
read model), each subscribed through :meth:`AlertEngine.subscribe`.

Only the cycle for the newest window end drives alert state: ``evaluate`` first claims its window end
(``AlertStore.claim_window``, durable); a cycle for a past window (backfill, late data, a manual trigger) has
already written its scores and changes no alert.

The delivery worker hands every new outbox event to the notifiers (``Notifier.deliver``), then the newest cycle's
ward update; what counts as delivered is decided by the subscribers' confirmations
(``AlertStore.confirm_delivery``)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from app.alerts.notify import Batch, Notifier
from app.alerts.rules import (
    Changes,
    ChartedSet,
    Corroborate,
    Policy,
    Raise,
    Regrade,
    Streak,
    by_patient,
    decide,
    decide_charted,
)
from app.alerts.store import Alert, AlertStore, NewAlert
from app.alerts.timers import Timers
from app.clock import Clock
from models.scoring import Score

logger = logging.getLogger(__name__)


class AlertEngine:
    def __init__(self, store: AlertStore, clock: Clock, policy: Policy, timers: Timers, *,
                 poll_s: float = 2.0) -> None:
        self.store = store
        self.clock = clock
        self.policy = policy
        self.timers = timers
        self.poll_s = poll_s
        #: The one subscription list: every notifier, in the order they are told.
        self._notifiers: list[Notifier] = []
        #: The newest outbox seq handed to the notifiers.
        self._head = 0
        self._wake = asyncio.Event()
        self._task: asyncio.Task | None = None
        #: Rule evaluations in progress: the worker delivers nothing meanwhile. Fanning each raised alert out to
        #: every client while the cycle still writes the next one made a 1,000-client cycle 14x slower (issue 14).
        self._evaluating = 0
        #: The newest cycle's ward update, until the worker delivers it after the cycle's events.
        self._ward: dict[str, Any] | None = None
        #: One rule application at a time: a cycle's and a charted set's changes never interleave.
        self._rules = asyncio.Lock()
        store.on_event = self._committed

    def subscribe(self, notifier: Notifier) -> None:
        """Add a notifier: told of every committed event and handed every outbox event from now on."""
        self._notifiers.append(notifier)

    def _committed(self) -> None:
        for notifier in self._notifiers:
            notifier.committed()
        self.wake()

    async def evaluate(self, scores: Sequence[Score], window_end: datetime | None = None) -> list[Alert] | None:
        """Apply the rules to one cycle's scores (all at ``window_end``, by default theirs); returns the alerts
        raised, or ``None`` when ``window_end`` is older than the newest window that drove the rules (a past
        window: nothing changes)."""
        if window_end is None:
            if not scores:
                return []
            window_end = max(s.window_end for s in scores)
        if not await self.store.claim_window(window_end, self.clock.now()):
            logger.info("alerts untouched for past window_end=%s", window_end.isoformat())
            return None
        self._evaluating += 1  # the worker holds its fan-out until the rules are through (one burst, at the end)
        try:
            raised = await self._apply(scores)
        finally:
            self._evaluating -= 1
            self.wake()
        # sent by the worker right after this cycle's alert events (an alert before a board refresh)
        self._ward = {"window_end": window_end.isoformat(), "scored": len(scores), "alerts_raised": len(raised),
                      "published_at": self.clock.now().isoformat()}
        return raised

    async def _apply(self, scores: Sequence[Score]) -> list[Alert]:
        async with self._rules:
            now = self.clock.now()
            open_alerts = by_patient((await self.store.open_by_kind()).values())
            streaks = {key: Streak(*run) for key, run in (await self.store.streaks()).items()}
            changes = decide(scores, open_alerts, await self.store.last_met(), self.policy, streaks)
            raised = await self._steps(changes, now)
            await self.store.mark_met(changes.still_met)
        await self.timers.sweep(now)
        return raised

    async def _steps(self, changes: Changes, now: datetime) -> list[Alert]:
        """Apply the rules' steps and the runs that changed; the alerts raised or escalated. Consecutive raises
        (a cycle's burst) go to the store as one transaction; the steps keep their order."""
        touched: list[Alert] = []
        burst: list[NewAlert] = []

        async def flush() -> None:
            for new in await self.store.raise_alerts(burst, now):
                touched.append(new)
                logger.info("alert raised id=%s kind=%s risk=%.3f", new.id, new.kind, new.risk)
            burst.clear()

        for step in changes.steps:
            if isinstance(step, Raise):
                burst.append(NewAlert(step.patient_id, step.window_end, step.risk, step.reasons, step.kind,
                                      step.news2, step.actor, step.alert_id))
                continue
            await flush()
            if isinstance(step, Corroborate):  # recorded on the open alert, notifies nobody (rules.fold)
                await self.store.corroborate(step.alert_id, step.reasons, now, step.actor,
                                             note=f"{step.kind} rule holds at window end "
                                                  f"{step.window_end.isoformat()}")
                logger.info("alert corroborated id=%s by the %s rule", step.alert_id, step.kind)
            elif isinstance(step, Regrade):
                touched.append(await self.store.regrade(step.alert_id, step.reasons, step.news2, now, step.actor))
                logger.info("alert escalated id=%s by a charted set", step.alert_id)
            else:
                await self.store.resolve(step.alert_id, now, step.reason, actor=step.actor)
        await flush()
        await self.store.save_streaks({key: None if run is None else (run.since, run.last)
                                       for key, run in changes.streaks.items()})
        return touched

    async def raise_charted(self, chart: ChartedSet) -> tuple[Alert | None, Changes]:
        """Apply one charted observation set's changes (``rules.decide_charted``) now, whatever window the cycle
        is at: a ``news2`` alert raised, escalated or resolved, an ``obs_due`` resolved. Each transition goes through
        the outbox like any alert's (so the WebSocket and the webhooks deliver it). Returns the patient's open
        ``news2`` alert afterwards (None when none is open) and the changes applied."""
        async with self._rules:
            now = self.clock.now()
            open_kinds = await self.store.open_for(chart.patient_id)
            changes = decide_charted(chart, open_kinds, self.policy)
            await self._steps(changes, now)
            current = (await self.store.open_for(chart.patient_id)).get("news2")
        self.wake()
        return current, changes

    # -- delivery ---------------------------------------------------------------------------------
    async def publish_pending(self) -> int:
        """Hand every outbox event after the head to the notifiers, page by page, then the newest cycle's ward
        update (in a last batch, which also reaches notifiers with nothing new). Returns how many events went."""
        published = 0
        while events := await self.store.events_after(self._head, 500):
            batch = Batch(self._head, events)
            self._head = events[-1].seq
            published += len(events)
            for notifier in self._notifiers:
                await notifier.deliver(batch)
        ward, self._ward = self._ward, None
        for notifier in self._notifiers:
            await notifier.deliver(Batch(self._head, (), ward))
        return published

    def wake(self) -> None:
        self._wake.set()

    async def _run(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):  # asyncio.timeout: 3.11's wait_for can hold a cancellation
                async with asyncio.timeout(self.poll_s):
                    await self._wake.wait()
            self._wake.clear()
            try:
                if not self._evaluating:  # else evaluate wakes this loop again when it ends
                    await self.publish_pending()  # first: what woke the loop goes out before the timers' read
                await self.timers.sweep(self.clock.now())
                if not self._evaluating:
                    await self.publish_pending()
            except Exception:
                logger.exception("alert delivery failed; will retry")

    async def start(self) -> None:
        if self._task is None:
            self._head = await self.store.last_seq()  # older events reach subscribers by replay from the store
            for notifier in self._notifiers:
                await notifier.deliver(Batch(self._head))
            self._task = asyncio.create_task(self._run(), name="alert-delivery")
            self.wake()

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
