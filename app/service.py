"""The running service's parts, wired once by ``app.main.create_app`` and reached by routes via app.state."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import pandas as pd

from app.alerts.engine import AlertEngine
from app.alerts.hub import AlertHub
from app.alerts.rules import Changes, ChartedSet, Policy, finite_risk
from app.alerts.store import Alert, AlertStore
from app.alerts.timers import Timers
from app.alerts.webhooks import WebhookStore, WebhookWorker
from app.clock import Clock
from app.domain import Reading, Score
from app.errors import PatientNotFoundError, ReadingRejectedError, StoreUnavailableError
from app.fleet import fleet_dsn
from app.ingest_observations import Observation
from app.pipeline.cycle import Cycle, CycleResult
from app.pipeline.scheduler import CycleScheduler
from app.readmodel import LatestView
from app.security.keys import Principal
from app.security.outbound import GuardedTransport, OutboundPolicy
from app.security.secrets_box import SecretBox
from app.settings import Settings
from app.storage.base import VitalStore
from app.write_guard import split_conflicts, split_scope
from models import features, news2
from models.challenger import Challenger
from models.schema import ACVPU_CODES, SOURCE_CHARTED, SOURCE_COLUMN
from models.scoring import to_score
from models.twin import Twin
from models.what_if import what_if
from models.windows import WINDOW

if TYPE_CHECKING:
    from app.fleet.runner import FleetCycle

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


def acting(key_name: str, nurse: str | None) -> str:
    """The actor of a nurse's transition: the person beside the key they used (``"S. Patel via ward 7 board"``)."""
    return f"{nurse} via {key_name}" if nurse else key_name


@dataclass(frozen=True)
class Ingested:
    """What ``WardTwin.ingest`` stored, and an item error (loc, msg, type) for each reading it refused."""

    stored: list[Reading]
    refused: list[dict[str, Any]]

    @property
    def accepted(self) -> int:
        return len(self.stored)


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
    #: A fleet instance's cycle (``app.fleet``: only its leased patients), when the control store is PostgreSQL.
    fleet: FleetCycle | None = None
    #: The board's hour-before scores by (patient, latest window end) (``ward_snapshot``).
    _hour_before: dict[tuple[str, datetime], Score | None] = field(default_factory=dict)

    @classmethod
    def build(cls, settings: Settings, clock: Clock, store: VitalStore, twin: Twin,
              cycle_interval_s: float | None) -> WardTwin:
        alert_store = AlertStore(settings.control_target)  # alerts.db, or PostgreSQL (WARDTWIN_CONTROL_DB)

        async def confirm(seqs: Sequence[int], actor: str) -> None:
            await alert_store.confirm_delivery(seqs, clock.now(), actor)

        hub = AlertHub(alert_store, confirm, page_size=settings.ws_replay_page, max_unacked=settings.ws_max_unacked,
                       max_behind=settings.ws_max_behind, send_timeout_s=settings.ws_send_timeout_s)
        threshold, clear_threshold = twin.alert_thresholds(settings.alert_threshold, settings.alert_clear_threshold)
        policy = Policy(threshold=threshold, clear_threshold=clear_threshold,
                        news2_aggregate=settings.news2_alert_aggregate,
                        news2_single_parameter=settings.news2_alert_single_parameter,
                        clear_after=timedelta(minutes=settings.alert_clear_after_min),
                        twin_sustain_windows=settings.twin_sustain_windows,
                        obs_due_statistic=settings.obs_due_statistic,
                        obs_due_after=timedelta(minutes=settings.obs_due_after_min),
                        obs_due_aggregate=settings.obs_due_aggregate,
                        obs_due_single_parameter=settings.obs_due_single_parameter, fold=settings.alert_fold)
        timers = Timers(alert_store, escalate_after=timedelta(minutes=settings.alert_escalate_after_min),
                        renotify_after=timedelta(minutes=settings.alert_renotify_after_min)
                        if settings.alert_renotify_after_min else None)
        engine = AlertEngine(alert_store, clock, policy, timers)
        webhooks = WebhookStore(alert_store.db, box=SecretBox.from_settings(settings))  # secrets sealed (H18)
        webhook_worker = WebhookWorker(
            webhooks, confirm, max_attempts=settings.webhook_max_attempts,
            backoff_base_s=settings.webhook_backoff_base_s, backoff_max_s=settings.webhook_backoff_max_s,
            timeout_s=settings.webhook_timeout_s, poll_s=settings.webhook_poll_s,
            transport=GuardedTransport(OutboundPolicy.from_settings(settings)))
        engine.subscribe(hub)  # the WebSocket clients first, then the webhooks (as one burst per cycle)
        engine.subscribe(webhook_worker)
        cycle = Cycle(store, twin, engine.evaluate, stale_after=timedelta(minutes=settings.stale_after_min),
                      challenger=load_challenger(settings), disagreement=settings.challenger_disagreement)
        dsn = fleet_dsn(settings)
        if dsn is not None:
            from app.fleet.runner import build_fleet  # psycopg is imported only for a fleet

            fleet = build_fleet(settings, cycle, dsn)
        else:
            fleet = None
        scheduler = (
            CycleScheduler(fleet or cycle, clock, grace_s=settings.cycle_grace_s, interval_s=cycle_interval_s)
            if cycle_interval_s else None
        )
        return cls(settings, clock, store, alert_store, hub, engine, twin, cycle, scheduler,
                   webhooks=webhooks, webhook_worker=webhook_worker, fleet=fleet)

    async def start(self) -> None:
        await self.store.open()
        if self.fleet is not None:
            await self.fleet.start()
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
        if self.fleet is not None:  # first: the others take its buckets over at once
            try:
                await asyncio.wait_for(self.fleet.stop(), timeout=STOP_TIMEOUT_S)
            except TimeoutError:
                logger.error("fleet leases not released within %.0f s; they lapse", STOP_TIMEOUT_S)
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

    async def ingest(self, readings: Sequence[Reading], who: Principal | None = None) -> Ingested:
        """Store valid readings durably (the read model learns of their patients), except those ``who``'s scope
        does not cover and those that would replace a different value (``app.write_guard``): what was stored, and
        an item error for each refused (the good items beside them are stored all the same)."""
        kept, refused = split_scope(readings, who)
        if kept:
            start, end = min(r.ts for r in kept), max(r.ts for r in kept) + timedelta(milliseconds=1)
            try:
                stored = await self.store.readings(sorted({r.patient_id for r in kept}), start, end)
            except StoreUnavailableError:  # the store is down: the write spools, unchecked (H25), never refused
                stored = None
            kept, conflicts = split_conflicts(kept, stored)
            refused += conflicts
        if kept:
            await self.store.write_readings(kept)
        return Ingested(kept, refused)

    async def run_cycle(self, window_end: datetime) -> CycleResult:
        return await (self.fleet or self.cycle).run(window_end, scored_at=self.clock.now())

    async def view(self) -> LatestView:
        """The read model, with the store's state in it: loaded at start-up, or now if the store was unreachable
        then (``StoreUnavailableError``, a 503, while it still is)."""
        assert self.read_model is not None, "create_app wires the read model"
        self.read_model.drop_ahead()  # scores ahead of a corrected clock: reloaded up to it (issue 21, H17)
        if self.read_model.loaded and self.read_model.reload_wanted:
            with contextlib.suppress(StoreUnavailableError):  # the store down: serve what is held, retry next read
                await self.store.load()  # type: ignore[attr-defined]  # an ObservedStore (app.main)
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

    async def stored_windows(self, patient_id: str, since: datetime, until: datetime) -> pd.DataFrame:
        """The patient's stored windows starting in ``[since, until)`` as aggregated, no carry-forward (missing stays
        missing): what the FHIR Observations are made of (``app.api.fhir``)."""
        await self.require_patient(patient_id)
        return await self.store.windows([patient_id], since, until)

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

    async def acknowledge(self, alert_id: str, actor: str, nurse: str | None = None,
                          note: str | None = None) -> Alert:
        """A nurse takes the alert, recorded as ``nurse via <key's name>`` (the key's name alone without one)."""
        alert = await self.alert_store.acknowledge(alert_id, acting(actor, nurse), self.clock.now(), note)
        self.engine.wake()
        return alert

    async def resolve(self, alert_id: str, actor: str, nurse: str | None = None, note: str | None = None) -> Alert:
        who = acting(actor, nurse)
        reason = f"resolved by {who}" + (f": {note}" if note else "")
        alert = await self.alert_store.resolve(alert_id, self.clock.now(), reason, actor=who, note=note)
        self.engine.wake()
        return alert

    async def observe(self, observation: Observation, actor: str, who: Principal | None = None) -> Observed:
        """A nurse's charted set (``POST /v1/observations``): store its readings (source ``charted``) durably, then
        apply NEWS2 escalation as the RCP defines it at once (``AlertEngine.raise_charted``), before the answer.
        ``actor`` (who charted: the set's ``by``, else the key's name) is every transition's actor. A set ``who``
        may not write (its scope), or holding a value that differs from one stored, is refused (422) unscored."""
        ingested = await self.ingest(observation.readings, who)
        if ingested.refused:
            raise ReadingRejectedError(ingested.refused, accepted=ingested.accepted)
        view = self.read_model
        latest = view.latest(observation.patient_id) if view is not None and view.loaded else None
        chart = ChartedSet(observation.patient_id, observation.ts, news2.News2Summary.of(observation.news2),
                           by=observation.by or actor, missing=observation.missing,
                           risk=finite_risk(latest.risk) if latest is not None else 0.0)
        alert, changes = await self.engine.raise_charted(chart)
        return Observed(chart, alert, changes)

    async def transitions(self, alert_id: str) -> list[dict[str, Any]]:
        """Every transition of one alert, oldest first (404 for an unknown alert)."""
        await self.alert_store.get(alert_id)
        return await self.alert_store.transitions(alert_id)

    async def ward_snapshot(self, hours: timedelta) -> WardSnapshot:
        """What the ward board shows (``app.api.board``): every known patient's latest score and the one an hour
        before it, the open alerts, and the stored windows of the last ``hours`` (missing stays missing). While the
        vital store cannot be read, what the read model and the alert store hold, with ``store_error`` saying why
        (no vitals, no hour-before change): the board says the store is down instead of failing (issue 21, H24)."""
        view, now = await self.view(), self.clock.now()
        try:
            return await self._ward_snapshot(view, now, hours)
        except StoreUnavailableError as exc:
            ids = view.patient_ids()
            alerts = list((await self.alert_store.open_by_kind()).values())
            return WardSnapshot(now, {pid: view.latest(pid) for pid in ids}, {}, alerts, pd.DataFrame(), {},
                                store_error=str(exc)[:300])

    async def _ward_snapshot(self, view: LatestView, now: datetime, hours: timedelta) -> WardSnapshot:
        ids = sorted(await self.store.patient_ids())
        latest = {pid: view.latest(pid) for pid in ids}

        async def hour_before(score: Score) -> Score | None:  # kept per latest window end: read once per cycle
            key = (score.patient_id, score.window_end)
            if key not in self._hour_before:
                at = score.window_end - timedelta(hours=1)
                near = await self.store.score_history(score.patient_id, at - WINDOW / 2, at + WINDOW / 2)
                self._hour_before[key] = min(near, key=lambda s: abs(s.window_end - at)) if near else None
            return self._hour_before[key]

        scored = [s for s in latest.values() if s is not None]
        earlier = [await hour_before(s) for s in scored]
        self._hour_before = {(s.patient_id, s.window_end): e for s, e in zip(scored, earlier, strict=True)}
        alerts = list((await self.alert_store.open_by_kind()).values())
        windows = await self.store.windows(ids, now - hours, now + WINDOW) if ids else pd.DataFrame()
        # Readings of the newest aggregated window and after (at most two windows' worth): the exact last time.
        newest_start = windows["start"].max() if not windows.empty else now
        since = max(now - 2 * WINDOW, min(newest_start, now))
        recent = await self.store.readings(ids, since, now + WINDOW) if ids else pd.DataFrame()
        newest = recent.groupby("patient_id")["ts"].max() if not recent.empty else pd.Series(dtype=object)
        last = {pid: ts.to_pydatetime() for pid, ts in newest.items()}
        return WardSnapshot(now, latest, {s.patient_id: e for s, e in zip(scored, earlier, strict=True)},
                            alerts, windows, last)


@dataclass(frozen=True)
class WardSnapshot:
    """The ward board's inputs at ``now`` (``WardTwin.ward_snapshot``)."""

    now: datetime
    latest: dict[str, Score | None]
    hour_before: dict[str, Score | None]
    open_alerts: list[Alert]
    windows: pd.DataFrame
    #: Each patient's newest reading of the last two windows (absent: none that recent).
    last_reading_at: dict[str, datetime]
    #: Why the vital store could not be read (None: it was).
    store_error: str | None = None


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


@dataclass(frozen=True)
class Observed:
    """What charting one observation set did: the set as the rules saw it, the patient's open ``news2`` alert after
    it (None: none open) and the alert changes it made."""

    chart: ChartedSet
    alert: Alert | None
    changes: Changes


@dataclass(frozen=True)
class ChartedReadings:
    """One charted observation set as stored: its time and each vital's value (``acvpu`` as its letter).

    Who charted is not stored with the readings (it is the news2 alert's actor), so a set read back has none."""

    ts: datetime
    values: dict[str, float | str]


async def charted_sets(wt: WardTwin, patient_id: str, since: datetime, until: datetime) -> list[ChartedReadings]:
    """The patient's charted sets of ``[since, until]``, oldest first: the stored readings of source ``charted``,
    grouped by their time (a set is stored as readings sharing one ``ts``). 404 for an unknown patient."""
    await wt.require_patient(patient_id)
    frame = await wt.store.readings([patient_id], since, until + timedelta(milliseconds=1))
    frame = frame[frame[SOURCE_COLUMN] == SOURCE_CHARTED]
    sets: list[ChartedReadings] = []
    for ts, group in frame.groupby("ts", sort=True):
        values: dict[str, float | str] = {}
        for vital, value in zip(group["vital"], group["value"], strict=True):
            values[vital] = ACVPU_CODES[int(value)] if vital == "acvpu" else float(value)
        sets.append(ChartedReadings(pd.Timestamp(ts).to_pydatetime(), values))
    return sets
