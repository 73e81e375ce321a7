"""A fleet instance's cycle: score only the patients of the buckets it leases, each window of each bucket once.

For a window end ``W`` (from the scheduler or ``POST /v1/cycle``), in order: every window of a held bucket left
unscored before ``W`` (the catch-up of a bucket taken over from an instance that died before scoring it), then
``W`` itself. Each is claimed first (``Claims.claim``: the database admits one claim per bucket and window, and only
from the lease holder), scored by the ordinary ``Cycle`` restricted to the won buckets' patients (a ``Scope``), and
marked done with the patients scored per bucket. So no window of a patient is skipped across a takeover (its new
owner finds the windows after the bucket's last finished claim) and none is scored twice (a finished claim is never
taken again). The one way to a second scoring is an instance stalled past its lease in the middle of a cycle: its
unfinished claim is taken over and both save the same (idempotent) scores; the alert rules' uniqueness is the
control store's (one open alert per patient and kind, enforced by the database).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import datetime
from typing import Any

import psycopg

from app.errors import StoreUnavailableError
from app.fleet.leases import SCORED_CHANNEL, Claims, Leases, connect
from app.fleet.partition import bucket_of, select
from app.pipeline.cycle import Cycle, CycleResult, Scope
from app.pipeline.scheduler import MAX_CATCH_UP
from app.settings import Settings

logger = logging.getLogger(__name__)
#: Notifications of peers' finished windows within this many seconds make one reload of the latest-score view.
PEER_RELOAD_S = 0.5


class FleetCycle:
    """Drives ``cycle`` for the buckets ``leases`` holds; renews the leases every ``renew_s`` seconds meanwhile."""

    def __init__(self, cycle: Cycle, leases: Leases, claims: Claims, *, renew_s: float,
                 on_peer_scores: Callable[[], Awaitable[None]] | None = None) -> None:
        self.cycle = cycle
        self.leases = leases
        self.claims = claims
        self.renew_s = renew_s
        #: Called (coalesced) after another instance finished scoring a window: the service reloads its latest-score
        #: view from the shared store (``ObservedStore.load``), so every instance answers for every patient.
        self.on_peer_scores = on_peer_scores
        self._lock = asyncio.Lock()
        self._tasks: list[asyncio.Task[None]] = []
        self._peer_scored = asyncio.Event()
        self.renew_failures = 0
        self.peer_reloads = 0

    @property
    def instance_id(self) -> str:
        return self.leases.instance_id

    async def start(self) -> None:
        await self.leases.connect()
        await self.claims.connect()
        store = self.cycle.store
        self.cycle.aggregate = lambda end: self.claims.aggregate(store.materialize_pending, end)
        await self.leases.renew()
        self._tasks = [asyncio.create_task(self._renewing(), name="fleet-leases")]
        if self.on_peer_scores is not None:
            self._tasks += [asyncio.create_task(self._listening(), name="fleet-listen"),
                            asyncio.create_task(self._reloading(), name="fleet-reload")]

    async def stop(self) -> None:
        """Stop renewing and hand every bucket back (the others take them at their next renewal)."""
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        try:
            await self.leases.release_all()
        except Exception as exc:  # the database gone: the leases simply expire
            logger.warning("leases not released at stop (they expire in %.0f s): %s", self.leases.lease_s, exc)
        await self.leases.close()
        await self.claims.close()

    async def _renewing(self) -> None:
        while True:
            await asyncio.sleep(self.renew_s)
            try:
                await self.leases.renew()
            except Exception as exc:  # a lost connection: reconnect at the next renewal, score nothing meanwhile
                self.renew_failures += 1
                logger.warning("lease renewal failed (%s); holding %d buckets until they lapse", exc,
                               len(self.leases.held()))
                with contextlib.suppress(Exception):
                    await self.leases.close()
                    await self.leases.connect()

    async def _listening(self) -> None:
        """LISTEN for other instances' finished windows (reconnecting after a lost connection)."""
        while True:
            try:
                conn = await connect(self.leases.dsn)
                try:
                    await conn.execute(f"LISTEN {SCORED_CHANNEL}")
                    self._peer_scored.set()  # (re)connected: anything missed meanwhile is in the store
                    async for note in conn.notifies():
                        if note.payload.split("|", 1)[0] != self.instance_id:
                            self._peer_scored.set()
                finally:
                    await conn.close()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                logger.warning("fleet listener lost (%s); reconnecting in %.0f s", exc, self.renew_s)
            await asyncio.sleep(self.renew_s)

    async def _reloading(self) -> None:
        """Reload the latest-score view after peers' windows, at most once per ``PEER_RELOAD_S`` (a cycle's
        notifications from every peer arrive together)."""
        assert self.on_peer_scores is not None
        while True:
            await self._peer_scored.wait()
            await asyncio.sleep(PEER_RELOAD_S)
            self._peer_scored.clear()
            try:
                await self.on_peer_scores()
                self.peer_reloads += 1
            except Exception as exc:  # the store down: the next notification tries again
                logger.warning("latest scores not reloaded after a peer's cycle: %s", exc)

    async def last_window_end(self) -> datetime | None:
        """None: a (re)starting scheduler runs the window end now due, and ``run`` catches each held bucket up from
        its own newest finished claim. Not the store's newest score: in a fleet that is whichever instance scored
        last, and resuming after it would skip this instance's buckets for that window."""
        return None

    async def run(self, window_end: datetime, scored_at: datetime | None = None) -> CycleResult:
        """Score the held buckets' unscored windows before ``window_end``, then ``window_end``; the result is
        ``window_end``'s, with ``fleet`` listing every window scored here."""
        async with self._lock:
            if self.claims.conn is None or self.claims.conn.closed:  # lost at an earlier run: connect again
                await self.claims.connect()
            held = self.leases.held()
            runs: list[dict[str, Any]] = []
            try:
                for past, buckets in (await self.claims.unscored(window_end, held, MAX_CATCH_UP)).items():
                    _, account = await self._score(past, frozenset(buckets), scored_at)
                    if account is not None:
                        runs.append(account)
                result, account = await self._score(window_end, held, scored_at)
            except psycopg.OperationalError as exc:  # the scheduler retries the window end at its next tick
                raise StoreUnavailableError(f"the fleet's PostgreSQL: {exc}") from exc
            if account is not None:
                runs.append(account)
            return replace(result, fleet={"instance": self.instance_id, "held": len(held), "runs": runs})

    async def _score(self, window_end: datetime, buckets: frozenset[int],
                     scored_at: datetime | None) -> tuple[CycleResult, dict[str, Any] | None]:
        won = await self.claims.claim(window_end, buckets) if buckets else frozenset()
        if not won:
            return CycleResult(window_end, 0, 0, 0, 0.0, False), None
        n = self.leases.buckets
        scope = Scope(won, lambda ids: select(ids, won, n))
        result = await self.cycle.run(window_end, scored_at, scope)
        per_bucket = Counter(bucket_of(p, n) for p in result.scored_ids)
        await self.claims.done(window_end, {b: per_bucket.get(b, 0) for b in won})
        return result, {"window_end": window_end.isoformat(), "buckets": sorted(won), "scored": result.scored,
                        "per_bucket": {str(b): per_bucket.get(b, 0) for b in sorted(won)}}

    def health(self) -> dict[str, Any]:
        return {**self.leases.health(), "renew_s": self.renew_s, "renew_failures": self.renew_failures,
                "peer_reloads": self.peer_reloads}


def build_fleet(settings: Settings, cycle: Cycle, dsn: str) -> FleetCycle:
    """The fleet instance ``settings`` describe, driving ``cycle`` on the control store at ``dsn``."""
    from app.fleet import default_instance_id

    instance = settings.instance_id or default_instance_id()
    leases = Leases(dsn, instance, lease_s=settings.fleet_lease_s)
    load = getattr(cycle.store, "load", None)  # the service's ObservedStore: reloads the latest-score view
    return FleetCycle(cycle, leases, Claims(dsn, instance), renew_s=settings.fleet_renew_s, on_peer_scores=load)
