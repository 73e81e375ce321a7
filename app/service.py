"""The running service's parts, wired once by ``app.main.create_app`` and reached by routes via app.state."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import timedelta

from app.alerts.engine import AlertEngine
from app.alerts.hub import AlertHub
from app.alerts.store import AlertStore
from app.alerts.webhooks import WebhookStore, WebhookWorker
from app.clock import Clock
from app.pipeline.cycle import Cycle
from app.pipeline.scheduler import CycleScheduler
from app.settings import Settings
from app.storage.base import VitalStore
from models.challenger import Challenger
from models.twin import Twin

logger = logging.getLogger(__name__)
#: How long each part may take to stop (``WardTwin.stop``).
STOP_TIMEOUT_S = 10.0


def load_challenger(settings: Settings) -> Challenger | None:
    """The shadow challenger, or None (disabled, absent, or built for other features: logged, not fatal)."""
    if not settings.challenger_enabled:
        return None
    try:
        return Challenger.load(settings.challenger_path)
    except (OSError, ValueError, KeyError) as exc:
        logger.warning("challenger not loaded, shadow scoring off: %s", exc)
        return None


@dataclass
class WardTwin:
    settings: Settings
    clock: Clock
    store: VitalStore
    alert_store: AlertStore
    hub: AlertHub
    engine: AlertEngine
    twin: Twin
    cycle: Cycle
    scheduler: CycleScheduler | None = None
    started: bool = field(default=False)
    webhooks: WebhookStore | None = None
    webhook_worker: WebhookWorker | None = None

    @classmethod
    def build(cls, settings: Settings, clock: Clock, store: VitalStore, twin: Twin,
              cycle_interval_s: float | None) -> WardTwin:
        alert_store = AlertStore(settings.alerts_path)

        async def confirm(seqs: Sequence[int], actor: str) -> None:
            await alert_store.confirm_delivery(seqs, clock.now(), actor)

        hub = AlertHub(alert_store, confirm, page_size=settings.ws_replay_page, max_unacked=settings.ws_max_unacked,
                       max_behind=settings.ws_max_behind, send_timeout_s=settings.ws_send_timeout_s)
        threshold, clear_threshold = twin.alert_thresholds(settings.alert_threshold, settings.alert_clear_threshold)
        engine = AlertEngine(
            alert_store, hub, clock, threshold=threshold,
            clear_threshold=clear_threshold,
            escalate_after=timedelta(minutes=settings.alert_escalate_after_min),
            news2_aggregate=settings.news2_alert_aggregate,
            news2_single_parameter=settings.news2_alert_single_parameter,
            clear_after=timedelta(minutes=settings.alert_clear_after_min),
            renotify_after=timedelta(minutes=settings.alert_renotify_after_min)
            if settings.alert_renotify_after_min else None,
        )
        webhooks = WebhookStore(alert_store.db)
        webhook_worker = WebhookWorker(
            webhooks, confirm, max_attempts=settings.webhook_max_attempts,
            backoff_base_s=settings.webhook_backoff_base_s, backoff_max_s=settings.webhook_backoff_max_s,
            timeout_s=settings.webhook_timeout_s, poll_s=settings.webhook_poll_s)
        engine.listeners.append(webhook_worker.wake)
        cycle = Cycle(store, twin, engine, stale_after=timedelta(minutes=settings.stale_after_min),
                      challenger=load_challenger(settings), disagreement=settings.challenger_disagreement)
        scheduler = (
            CycleScheduler(cycle, clock, grace_s=settings.cycle_grace_s, interval_s=cycle_interval_s)
            if cycle_interval_s else None
        )
        return cls(settings, clock, store, alert_store, hub, engine, twin, cycle, scheduler,
                   webhooks=webhooks, webhook_worker=webhook_worker)

    async def start(self) -> None:
        await self.store.open()
        await self.alert_store.open()
        if self.webhooks is not None and self.webhook_worker is not None:
            await self.webhooks.open()
            await self.webhook_worker.start()
        await self.engine.start()
        if self.scheduler is not None:
            self.scheduler.start()
        self.started = True
        logger.info("service started store=%s model=%s", self.store.name, self.twin.version)

    async def stop(self) -> None:
        """Stop every part, each within ``STOP_TIMEOUT_S``: a part that does not stop is logged and left behind, so
        one stuck task can never hold the process (and the stores after it) open."""
        if self.scheduler is not None:
            self.scheduler.shutdown()
        steps = [("alert engine", self.engine.stop)]
        if self.webhook_worker is not None:
            steps.append(("webhook worker", self.webhook_worker.stop))
        steps += [("alert store", self.alert_store.close), ("vital store", self.store.close)]
        for name, stop in steps:
            try:
                await asyncio.wait_for(stop(), timeout=STOP_TIMEOUT_S)
            except TimeoutError:
                logger.error("%s did not stop within %.0f s; shutting down without it", name, STOP_TIMEOUT_S)
        self.started = False
        logger.info("service stopped")
