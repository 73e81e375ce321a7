"""Alert rules and delivery.

Three kinds of alert, each with its own rule, at most one open per patient and kind:

- ``twin``: the twin's risk is at or above ``threshold``; resolves when the risk falls below
  ``clear_threshold`` (hysteresis, so a risk hovering at the threshold does not alert every five minutes).
- ``news2``: the NEWS2 floor, the RCP 2017 chart whatever the twin says: an aggregate at or above
  ``news2_aggregate`` (default 5) or any single parameter scoring at least ``news2_single_parameter``
  (default 3); the reasons give the score, its band and the chart's clinical response and monitoring
  frequency. Resolves when the score is below both triggers.
- ``criteria``: a deterioration criterion is met now (flag ``criteria_met:<kind>`` from the cycle);
  resolves when none is met.

An open alert resolves only once its rule has not held for ``clear_after`` (measured in window time from the
last window end at which it held, recorded durably), so a score flickering across a trigger keeps one alert open
instead of raising a new one every few minutes. Any open alert not acknowledged within ``escalate_after`` of
being raised escalates. The outbox worker
delivers every alert event to the WebSocket hub."""

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
from models import news2

logger = logging.getLogger(__name__)

#: NEWS2 parameters in words, for the reasons of a ``news2`` alert.
_PARAMETER_NAMES = {"rr": "respiration rate", "spo2": "SpO2", "o2": "supplemental oxygen", "sbp": "systolic BP",
                    "hr": "pulse", "acvpu": "consciousness (new confusion, V, P or U)", "temp": "temperature"}


def news2_points(score: Score) -> tuple[int, dict[str, int]]:
    """The aggregate and per-parameter points on a score (empty when the score carries no NEWS2)."""
    summary = score.news2 or {}
    return int(summary.get("total") or 0), {k: int(v) for k, v in (summary.get("points") or {}).items()}


class AlertEngine:
    def __init__(self, store: AlertStore, hub: AlertHub, clock: Clock, *, threshold: float,
                 clear_threshold: float, escalate_after: timedelta, news2_aggregate: int = 5,
                 news2_single_parameter: int = 3, clear_after: timedelta = timedelta(0)) -> None:
        self.store = store
        self.hub = hub
        self.clock = clock
        self.threshold = threshold
        self.clear_threshold = clear_threshold
        self.escalate_after = escalate_after
        self.news2_aggregate = news2_aggregate
        self.news2_single_parameter = news2_single_parameter
        self.clear_after = clear_after
        self._wake = asyncio.Event()
        self._task: asyncio.Task | None = None

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

    async def evaluate(self, scores: Sequence[Score]) -> list[Alert]:
        """Apply the rules to one cycle's scores; returns the alerts raised."""
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
                                                           now, kind=kind)
                        if new is not None:
                            raised.append(new)
                            logger.info("alert raised id=%s kind=%s risk=%.3f", new.id, kind, score.risk)
                elif not met:
                    since = last_met.get(alert.id, datetime.fromisoformat(alert.window_end))
                    if score.window_end - since >= self.clear_after:  # clear for long enough, not a flicker
                        await self.store.resolve(alert.id, now, cleared)
                else:
                    still_met.append((alert.id, score.window_end))
                    if alert.state in ("raised", "delivered") and now - datetime.fromisoformat(alert.raised_at) >= (
                        self.escalate_after
                    ):
                        await self.store.escalate(alert.id, now)
        await self.store.mark_met(still_met)
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
