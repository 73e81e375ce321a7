"""The running service's parts, wired once by ``app.main.create_app`` and reached by routes via app.state."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pandas as pd

from app.alerts.engine import AlertEngine
from app.alerts.hub import AlertHub
from app.alerts.rules import Policy
from app.alerts.store import Alert, AlertStore
from app.alerts.timers import Timers
from app.alerts.webhooks import WebhookStore, WebhookWorker
from app.clock import Clock
from app.domain import Reading, Score
from app.errors import PatientNotFoundError
from app.pipeline.cycle import Cycle, CycleResult
from app.pipeline.scheduler import CycleScheduler
from app.readmodel import LatestView
from app.settings import Settings
from app.storage.base import VitalStore
from models import features, news2
from models.challenger import Challenger
from models.scoring import to_score
from models.twin import Twin
from models.what_if import what_if
from models.windows import WINDOW

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
    #: The read model the reads answer from (``app.readmodel``), fed by ``store`` (an ``ObservedStore``).
    read_model: LatestView | None = None

    @classmethod
    def build(cls, settings: Settings, clock: Clock, store: VitalStore, twin: Twin,
              cycle_interval_s: float | None) -> WardTwin:
        alert_store = AlertStore(settings.alerts_path)

        async def confirm(seqs: Sequence[int], actor: str) -> None:
            await alert_store.confirm_delivery(seqs, clock.now(), actor)

        hub = AlertHub(alert_store, confirm, page_size=settings.ws_replay_page, max_unacked=settings.ws_max_unacked,
                       max_behind=settings.ws_max_behind, send_timeout_s=settings.ws_send_timeout_s)
        threshold, clear_threshold = twin.alert_thresholds(settings.alert_threshold, settings.alert_clear_threshold)
        policy = Policy(threshold=threshold, clear_threshold=clear_threshold,
                        news2_aggregate=settings.news2_alert_aggregate,
                        news2_single_parameter=settings.news2_alert_single_parameter,
                        clear_after=timedelta(minutes=settings.alert_clear_after_min))
        timers = Timers(alert_store, escalate_after=timedelta(minutes=settings.alert_escalate_after_min),
                        renotify_after=timedelta(minutes=settings.alert_renotify_after_min)
                        if settings.alert_renotify_after_min else None)
        engine = AlertEngine(alert_store, clock, policy, timers)
        webhooks = WebhookStore(alert_store.db)
        webhook_worker = WebhookWorker(
            webhooks, confirm, max_attempts=settings.webhook_max_attempts,
            backoff_base_s=settings.webhook_backoff_base_s, backoff_max_s=settings.webhook_backoff_max_s,
            timeout_s=settings.webhook_timeout_s, poll_s=settings.webhook_poll_s)
        engine.subscribe(hub)  # the WebSocket clients first, then the webhooks (as one burst per cycle)
        engine.subscribe(webhook_worker)
        cycle = Cycle(store, twin, engine.evaluate, stale_after=timedelta(minutes=settings.stale_after_min),
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

    # -- use cases: what the routes call (``app.api.deps.ServiceDep``) ---------------------------------------------
    def now(self) -> datetime:
        return self.clock.now()

    async def ingest(self, readings: Sequence[Reading]) -> int:
        """Store valid readings durably (the read model learns of their patients); how many."""
        await self.store.write_readings(readings)
        return len(readings)

    async def run_cycle(self, window_end: datetime) -> CycleResult:
        return await self.cycle.run(window_end, scored_at=self.clock.now())

    async def view(self) -> LatestView:
        """The read model, with the store's state in it: loaded at start-up, or now if the store was unreachable
        then (``StoreUnavailableError``, a 503, while it still is)."""
        assert self.read_model is not None, "create_app wires the read model"
        if not self.read_model.loaded:
            await self.store.load()  # type: ignore[attr-defined]  # an ObservedStore (app.main)
        return self.read_model

    async def board(self) -> bytes:
        """The ward, highest risk first, as the read model holds it encoded."""
        return await (await self.view()).board_body(self.alert_store.open_alerts)

    async def risk(self, patient_id: str) -> bytes:
        """The patient's latest score, encoded; 404 when unknown or not scored yet."""
        body = (await self.view()).risk_body(patient_id)
        if body is None:
            await self.latest_score(patient_id)  # raises the 404
        assert body is not None
        return body

    async def require_patient(self, patient_id: str) -> None:
        """404 unless the patient has readings: the read model knows every patient this service wrote or found in
        the store at start-up; one it does not know is looked up in the store (written by another instance)."""
        view = await self.view()
        if view.knows(patient_id):
            return
        if patient_id in await self.store.patient_ids():
            view.patients_seen([patient_id])
            return
        raise PatientNotFoundError(patient_id)

    async def latest_score(self, patient_id: str) -> Score:
        score = (await self.view()).latest(patient_id)
        if score is None:
            await self.require_patient(patient_id)
            raise PatientNotFoundError(patient_id)
        return score

    async def risk_history(self, patient_id: str, since: datetime, until: datetime) -> list[Score]:
        """Every score of ``[since, until]``, oldest first."""
        await self.require_patient(patient_id)
        return await self.store.score_history(patient_id, since, until + timedelta(milliseconds=1))

    async def windows(self, patient_id: str, since: datetime, until: datetime) -> pd.DataFrame:
        """The carried-forward windows covering ``[since, until]`` (aligned outwards), as the twin sees them."""
        await self.require_patient(patient_id)
        start = pd.Timestamp(since).floor(WINDOW).to_pydatetime()
        end = pd.Timestamp(until).ceil(WINDOW).to_pydatetime()
        return await self.cycle.grid([patient_id], end, end - start)

    async def what_if(self, patient_id: str, changes: dict[str, float]) -> WhatIf:
        """Rescore the patient's latest window with ``changes`` (``models.what_if``), in a worker thread so the
        event loop keeps serving. ``ValueError`` for changes the twin cannot apply."""
        window_end = (await self.latest_score(patient_id)).window_end
        grid = await self.cycle.grid([patient_id], window_end, features.HISTORY)
        before, after, changed = await asyncio.to_thread(what_if, self.twin, grid, patient_id, changes)
        last_row = grid[grid["start"] == pd.Timestamp(window_end) - WINDOW].iloc[-1]
        summary, now = news2.summary(last_row), self.clock.now().astimezone(UTC)
        return WhatIf(patient_id, window_end, to_score(before, summary, self.twin.version, now),
                      to_score(after, summary, self.twin.version, now), changed)

    async def alerts(self, *, patient_id: str | None, state: str | None, kind: str | None, limit: int) -> list[Alert]:
        return await self.alert_store.list(patient_id=patient_id, state=state, kind=kind, limit=limit)

    async def acknowledge(self, alert_id: str, actor: str) -> Alert:
        """A nurse takes the alert; ``actor`` is the key's name."""
        alert = await self.alert_store.acknowledge(alert_id, actor, self.clock.now())
        self.engine.wake()
        return alert

    async def resolve(self, alert_id: str, actor: str) -> Alert:
        alert = await self.alert_store.resolve(alert_id, self.clock.now(), f"resolved by {actor}", actor=actor)
        self.engine.wake()
        return alert

    async def transitions(self, alert_id: str) -> list[dict[str, Any]]:
        """Every transition of one alert, oldest first (404 for an unknown alert)."""
        await self.alert_store.get(alert_id)
        return await self.alert_store.transitions(alert_id)


@dataclass(frozen=True)
class WhatIf:
    """A what-if answer: the latest window's score before and after the changes, and what moved."""

    patient_id: str
    window_end: datetime
    before: Score
    after: Score
    changed: dict[str, Any]

    @property
    def risk_change(self) -> float:
        return self.after.risk - self.before.risk
