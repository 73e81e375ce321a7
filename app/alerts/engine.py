"""Alert rules, timers and the outbox worker.

Three kinds of alert, each with its own rule, at most one open per patient and kind:

- ``twin``: the twin's risk is at or above ``threshold``; resolves when the risk falls below
  ``clear_threshold`` (hysteresis, so a risk hovering at the threshold does not alert every five minutes).
- ``news2``: the NEWS2 floor, the RCP 2017 chart whatever the twin says: an aggregate at or above
  ``news2_aggregate`` (default 5) or any single parameter scoring at least ``news2_single_parameter``
  (default 3); the reasons give the score, its band and the chart's clinical response and monitoring
  frequency. Resolves when the score is below both triggers.
- ``criteria``: a deterioration criterion is met now (flag ``criteria_met:<kind>`` from the cycle);
  resolves when none is met.

Only the cycle for the newest window end drives alert state: ``evaluate`` first claims its window end
(``AlertStore.claim_window``, durable); a cycle for a past window (backfill, late data, a manual trigger) has
already written its scores and changes no alert. An open alert resolves only once its rule has not held for
``clear_after`` (measured in window time from the last window end at which it held, recorded durably), so a
score flickering across a trigger keeps one alert open instead of raising a new one every few minutes.

Timers run on the service clock (``sweep``, from every driving cycle and from the worker loop): an alert not
acknowledged within ``escalate_after`` of being raised escalates; while unacknowledged it is re-notified every
``renotify_after`` since it was last notified (raised, escalated or re-notified).

The outbox worker publishes every new outbox event to the WebSocket hub and wakes the webhook worker; what
counts as delivered is decided by the subscribers' confirmations (``AlertStore.confirm_delivery``)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any

from app.alerts.hub import AlertHub
from app.alerts.store import Alert, AlertStore
from app.clock import Clock
from app.domain import Score
from app.errors import AlertConflictError
from app.pipeline.criteria import criteria_reasons
from models import news2

logger = logging.getLogger(__name__)

#: NEWS2 parameters in words, for the reasons of a ``news2`` alert.
_PARAMETER_NAMES = {"rr": "respiration rate", "spo2": "SpO2", "o2": "supplemental oxygen", "sbp": "systolic BP",
                    "hr": "pulse", "acvpu": "consciousness (new confusion, V, P or U)", "temp": "temperature"}


def news2_brief(score: Score) -> dict[str, Any] | None:
    """The NEWS2 of the score that raised an alert, as a nurse-call system needs it: total, band, the RCP 2017
    clinical response and monitoring frequency."""
    summary = score.news2
    if not summary:
        return None
    total, points = news2_points(score)
    row = news2.clinical_response(total, news2.has_single_parameter_3(points))
    return {"total": total, "band": summary.get("band") or row.band,
            "response": summary.get("response") or row.response,
            "monitoring": summary.get("monitoring") or row.monitoring, "partial": bool(summary.get("partial"))}


def news2_points(score: Score) -> tuple[int, dict[str, int]]:
    """The aggregate and per-parameter points on a score (empty when the score carries no NEWS2)."""
    summary = score.news2 or {}
    return int(summary.get("total") or 0), {k: int(v) for k, v in (summary.get("points") or {}).items()}


class AlertEngine:
    def __init__(self, store: AlertStore, hub: AlertHub, clock: Clock, *, threshold: float,
                 clear_threshold: float, escalate_after: timedelta, news2_aggregate: int = 5,
                 news2_single_parameter: int = 3, clear_after: timedelta = timedelta(0),
                 renotify_after: timedelta | None = None, poll_s: float = 2.0) -> None:
        self.store = store
        self.hub = hub
        self.clock = clock
        self.threshold = threshold
        self.clear_threshold = clear_threshold
        self.escalate_after = escalate_after
        self.renotify_after = renotify_after
        self.news2_aggregate = news2_aggregate
        self.news2_single_parameter = news2_single_parameter
        self.clear_after = clear_after
        self.poll_s = poll_s
        #: Woken after every new outbox event (the webhook worker's ``wake``).
        self.listeners: list[Callable[[], None]] = []
        self._wake = asyncio.Event()
        self._task: asyncio.Task | None = None
        self._sweeping = asyncio.Lock()  # the cycle and the worker loop both sweep: never at once (no double notice)
        #: Rule evaluations in progress: the worker publishes nothing meanwhile. Fanning each raised alert out to
        #: every client while the cycle still writes the next one made a 1,000-client cycle 14x slower (issue 14).
        self._evaluating = 0
        #: The newest cycle's ward update, until the worker publishes it after the cycle's events.
        self._ward: dict[str, Any] | None = None
        store.on_event = self.wake

    # -- the rules --------------------------------------------------------------------------------
    def news2_reasons(self, score: Score) -> list[str]:
        """Why NEWS2 alerts on this score (empty when neither trigger is met): the score, its band and the
        RCP 2017 clinical response and monitoring frequency, then each parameter at the single-parameter trigger."""
        total, points = news2_points(score)
        high = [k for k, p in points.items() if p >= self.news2_single_parameter]
        if total < self.news2_aggregate and not high:
            return []
        row = news2.clinical_response(total, news2.has_single_parameter_3(points))
        partial = " (partial set: unobserved parameters score 0)" if (score.news2 or {}).get("partial") else ""
        reasons = [f"NEWS2 {total}{partial}, {row.band} clinical risk: {row.response}; monitoring: {row.monitoring}"]
        reasons += [f"NEWS2 {_PARAMETER_NAMES.get(k, k)} scores {points[k]}" for k in high]
        return reasons

    def _twin_reasons(self, score: Score) -> list[str]:
        rising = [c.sentence for c in score.contributions if c.sentence and c.points > 0][:3]
        return [f"Twin risk {score.risk:.0%} (alert threshold {self.threshold:.3g})", *rising]

    def _rules(self, score: Score, active: dict[str, Alert]) -> dict[str, tuple[bool, list[str], str]]:
        """Per kind: (raise now?, reasons, why it resolves). Resolution is 'not met' for news2 and criteria,
        'below the clear threshold' for the twin (hysteresis)."""
        criteria = criteria_reasons(score)
        news2_why = self.news2_reasons(score)
        total, _ = news2_points(score)
        twin_on = score.risk >= self.threshold if "twin" not in active else score.risk >= self.clear_threshold
        return {
            "news2": (bool(news2_why), news2_why, f"NEWS2 fell to {total}, below both triggers"),
            "criteria": (bool(criteria), criteria, "no deterioration criterion is met"),
            "twin": (twin_on, self._twin_reasons(score), f"risk fell to {score.risk:.2f}"),
        }

    async def evaluate(self, scores: Sequence[Score], window_end: datetime | None = None) -> list[Alert] | None:
        """Apply the rules to one cycle's scores (all at ``window_end``, by default theirs); returns the alerts
        raised, or ``None`` when ``window_end`` is older than the newest window that drove the rules (a past
        window: nothing changes)."""
        if window_end is None:
            if not scores:
                return []
            window_end = max(s.window_end for s in scores)
        if not await self.store.claim_window(window_end):
            logger.info("alerts untouched for past window_end=%s", window_end.isoformat())
            return None
        self._evaluating += 1  # the worker holds its fan-out until the rules are through (one burst, at the end)
        try:
            raised = await self._apply(scores, window_end)
        finally:
            self._evaluating -= 1
            self.wake()
        # sent by the worker right after this cycle's alert events (an alert before a board refresh)
        self._ward = {"window_end": window_end.isoformat(), "scored": len(scores), "alerts_raised": len(raised),
                      "published_at": self.clock.now().isoformat()}
        return raised

    async def _apply(self, scores: Sequence[Score], window_end: datetime) -> list[Alert]:
        now = self.clock.now()
        open_alerts = await self.store.open_by_kind()
        last_met = await self.store.last_met()
        still_met: list[tuple[str, datetime]] = []
        raised: list[Alert] = []
        for score in scores:
            active = {kind: a for (pid, kind), a in open_alerts.items() if pid == score.patient_id}
            for kind, (met, reasons, cleared) in self._rules(score, active).items():
                alert = active.get(kind)
                if alert is None:
                    if met:
                        new = await self.store.raise_alert(score.patient_id, score.window_end, score.risk, reasons,
                                                           now, kind=kind, news2=news2_brief(score))
                        if new is not None:
                            raised.append(new)
                            logger.info("alert raised id=%s kind=%s risk=%.3f", new.id, kind, score.risk)
                elif not met:
                    since = last_met.get(alert.id, datetime.fromisoformat(alert.window_end))
                    if score.window_end - since >= self.clear_after:  # clear for long enough, not a flicker
                        await self.store.resolve(alert.id, now, cleared)
                else:
                    still_met.append((alert.id, score.window_end))
        await self.store.mark_met(still_met)
        await self.sweep(now)
        return raised

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

    # -- delivery ---------------------------------------------------------------------------------
    async def publish_pending(self) -> int:
        """Hand every outbox event newer than the hub's head to the hub (which fans it out to each client at
        that client's own pace), then the newest cycle's ward update, then wake the other subscribers' workers.
        Returns how many events were published."""
        published = 0
        while events := await self.store.events_after(self.hub.head, 500):
            self.hub.publish(events)
            published += len(events)
        if self._ward is not None:
            ward, self._ward = self._ward, None
            self.hub.publish_ward(ward)
        for listener in self.listeners:
            listener()
        return published

    def wake(self) -> None:
        self._wake.set()

    async def _run(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=self.poll_s)
            self._wake.clear()
            try:
                if not self._evaluating:  # else evaluate wakes this loop again when it ends
                    await self.publish_pending()  # first: what woke the loop goes out before the timers' read
                await self.sweep(self.clock.now())
                if not self._evaluating:
                    await self.publish_pending()
            except Exception:
                logger.exception("alert delivery failed; will retry")

    async def start(self) -> None:
        if self._task is None:
            self.hub.reset(await self.store.last_seq())  # older events reach clients by replay from the store
            self._task = asyncio.create_task(self._run(), name="alert-delivery")
            self.wake()

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
