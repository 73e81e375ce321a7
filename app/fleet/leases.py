"""Bucket leases and per-window scoring claims in PostgreSQL (the fleet's only shared coordination).

Tables (``app.fleet.schema``): ``fleet_instances`` (a heartbeat row per instance), ``bucket_leases(bucket, owner,
expires_at)`` (one row per hash bucket, ``app.fleet.partition``), ``window_claims(bucket, window_end)`` (primary key:
a bucket's window is scored by whoever inserted its claim) and ``fleet_marks`` (windows re-aggregated, shared so
every instance's kept ward grid learns of them: hazard H16).

**Times.** Lease expiry and heartbeats use the database's ``now()``, never a host clock: the one clock that judges
every lease, so hosts whose clocks disagree can never both believe they hold a bucket. Window ends come from the
service's injected ``Clock`` (the cycle's argument), as everywhere else. Locally, an instance trusts its leases
only until ``lease_s`` after the renewal *began* (monotonic time): earlier than the database's expiry, so it
stops scoring a bucket before anyone else may take it.

**Lease time.** A lease lasts ``lease_s`` (15 s by default) and is renewed every ``renew_s`` (5 s): an instance may
miss two renewals before it loses anything. An instance that dies holds its buckets for at most ``lease_s``; the
survivors count it dead after the same time and take the expired buckets at their next renewal, so the takeover
completes within ``lease_s + renew_s`` (20 s) of the death, and the survivors score the dead instance's patients
from their next cycle, catching up every window of those buckets not yet scored (``unscored``).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import psycopg

from app.fleet import schema
from app.fleet.partition import BUCKETS, rebalance
from models.windows import WINDOW

logger = logging.getLogger(__name__)

#: ``pg_advisory_xact_lock`` key serialising the store's aggregation with publishing its marks (``Leases.aggregate``).
AGGREGATE_LOCK = 0x77617264_0002
#: The ``NOTIFY`` channel a finished window claim is announced on (payload ``instance|window_end``).
SCORED_CHANNEL = "wardtwin_fleet_scored"


async def connect(dsn: str) -> psycopg.AsyncConnection:
    """An autocommit connection whose times come back in UTC."""
    conn = await psycopg.AsyncConnection.connect(dsn, autocommit=True)
    await conn.execute("SET TIME ZONE 'UTC'")
    return conn


@dataclass(frozen=True)
class FleetView:
    """The fleet as one renewal saw it (``/healthz``)."""

    instances_alive: int
    buckets_per_instance: dict[str, int]
    unowned_buckets: int
    as_of: datetime | None = None


class _OwnConnection:
    """``close`` and the open connection (``_c``) of a holder of one PostgreSQL connection in ``self.conn``."""

    conn: psycopg.AsyncConnection | None

    async def close(self) -> None:
        if self.conn is not None:
            await self.conn.close()
            self.conn = None

    def _c(self) -> psycopg.AsyncConnection:
        if self.conn is None or self.conn.closed:
            raise RuntimeError(f"{type(self).__name__}.connect first")
        return self.conn


@dataclass
class Leases(_OwnConnection):
    """One instance's leases over one PostgreSQL connection (``connect`` opens it; the caller renews)."""

    dsn: str
    instance_id: str
    buckets: int = BUCKETS
    lease_s: float = 15.0
    conn: psycopg.AsyncConnection | None = None
    _held: frozenset[int] = frozenset()
    _valid_until: float = 0.0  # time.monotonic()
    view: FleetView = field(default_factory=lambda: FleetView(0, {}, BUCKETS))

    @property
    def lease(self) -> timedelta:
        return timedelta(seconds=self.lease_s)

    async def connect(self) -> None:
        """Connect, migrate, and make sure the config and one lease row per bucket exist (all instances must agree
        on the bucket count: a mismatch is refused)."""
        self.conn = await connect(self.dsn)
        await schema.migrate(self.dsn)
        async with self.conn.transaction():
            await self.conn.execute("INSERT INTO fleet_config (id, buckets) VALUES (1, %s) ON CONFLICT DO NOTHING",
                                    (self.buckets,))
            row = await (await self.conn.execute("SELECT buckets FROM fleet_config WHERE id = 1")).fetchone()
            if row is None or row[0] != self.buckets:
                raise ValueError(f"the fleet uses {row and row[0]} buckets, this instance {self.buckets}")
            await self.conn.execute("INSERT INTO bucket_leases (bucket) SELECT generate_series(0, %s - 1) "
                                    "ON CONFLICT DO NOTHING", (self.buckets,))


    def held(self) -> frozenset[int]:
        """The buckets this instance may score now: those of its last renewal, while it is still valid."""
        return self._held if time.monotonic() < self._valid_until else frozenset()

    async def renew(self) -> frozenset[int]:
        """One heartbeat: renew held leases, release those above the fair share, claim free or expired buckets up to
        it (``partition.rebalance``), in one transaction. Returns the buckets held."""
        conn, me, lease = self._c(), self.instance_id, self.lease
        began = time.monotonic()
        async with conn.transaction():
            await conn.execute("INSERT INTO fleet_instances (instance_id, last_seen) VALUES (%s, now()) "
                               "ON CONFLICT (instance_id) DO UPDATE SET last_seen = now()", (me,))
            (live,) = await (await conn.execute(
                "SELECT count(*) FROM fleet_instances WHERE last_seen > now() - %s", (lease,))).fetchone()
            held = [r[0] for r in await (await conn.execute(
                "UPDATE bucket_leases SET expires_at = now() + %s WHERE owner = %s RETURNING bucket",
                (lease, me))).fetchall()]
            free = [r[0] for r in await (await conn.execute(
                "SELECT bucket FROM bucket_leases WHERE owner IS NULL OR expires_at <= now()")).fetchall()]
            release, claim = rebalance(held, free, live, self.buckets)
            if release:
                await conn.execute("UPDATE bucket_leases SET owner = NULL, expires_at = '-infinity' "
                                   "WHERE owner = %s AND bucket = ANY(%s)", (me, release))
            taken: list[int] = []
            if claim:  # the WHERE is checked again under each row's lock: of two racing instances one wins a bucket
                taken = [r[0] for r in await (await conn.execute(
                    "UPDATE bucket_leases SET owner = %s, expires_at = now() + %s, taken_at = now() "
                    "WHERE bucket = ANY(%s) AND (owner IS NULL OR expires_at <= now()) RETURNING bucket",
                    (me, lease, claim))).fetchall()]
            rows = await (await conn.execute(
                "SELECT owner, count(*) FROM bucket_leases WHERE owner IS NOT NULL AND expires_at > now() "
                "GROUP BY owner")).fetchall()
            (db_now,) = await (await conn.execute("SELECT now()")).fetchone()
        held_now = frozenset(set(held) - set(release) | set(taken))
        if taken or release:
            logger.info("leases instance=%s live=%d took=%s released=%s holding=%d", me, live, taken, release,
                        len(held_now))
        self._held, self._valid_until = held_now, began + self.lease_s
        per = {owner: int(n) for owner, n in rows}
        self.view = FleetView(int(live), per, self.buckets - sum(per.values()), db_now)
        return held_now

    async def release_all(self) -> None:
        """Give every lease up and leave the fleet (a clean stop: the others take over at their next renewal)."""
        self._held, self._valid_until = frozenset(), 0.0
        conn = self._c()
        async with conn.transaction():
            await conn.execute("UPDATE bucket_leases SET owner = NULL, expires_at = '-infinity' WHERE owner = %s",
                               (self.instance_id,))
            await conn.execute("DELETE FROM fleet_instances WHERE instance_id = %s", (self.instance_id,))

    def health(self) -> dict[str, Any]:
        held = self.held()
        return {"instance": self.instance_id, "lease_s": self.lease_s, "buckets": self.buckets,
                "held": sorted(held), "held_count": len(held),
                "valid_for_s": round(max(0.0, self._valid_until - time.monotonic()), 1),
                "fleet": {"instances_alive": self.view.instances_alive,
                          "buckets_per_instance": self.view.buckets_per_instance,
                          "unowned_buckets": self.view.unowned_buckets, "as_of": self.view.as_of}}


class Claims(_OwnConnection):
    """Per-window scoring claims and shared aggregation marks, over their own connection (a cycle's aggregation may
    hold it for seconds; the lease renewals must never wait behind it)."""

    def __init__(self, dsn: str, instance_id: str) -> None:
        self.dsn = dsn
        self.instance_id = instance_id
        self.conn: psycopg.AsyncConnection | None = None
        self._seen: int | None = None  # the newest fleet_marks seq this instance has read
        self._lock = asyncio.Lock()  # one operation at a time on the one connection (a transaction is per connection)

    async def connect(self) -> None:
        self.conn = await connect(self.dsn)
        await schema.migrate(self.dsn)


    async def _claim(self, window_end: datetime, buckets: Iterable[int]) -> frozenset[int]:
        rows = await (await self._c().execute(
            "INSERT INTO window_claims (bucket, window_end, owner) "
            "SELECT bucket, %(w)s, %(me)s FROM bucket_leases "
            "WHERE bucket = ANY(%(b)s) AND owner = %(me)s AND expires_at > now() "
            "ON CONFLICT (bucket, window_end) DO UPDATE SET owner = excluded.owner, claimed_at = now() "
            "WHERE window_claims.done_at IS NULL RETURNING bucket",
            {"w": window_end, "me": self.instance_id, "b": sorted(buckets)})).fetchall()
        return frozenset(r[0] for r in rows)

    async def claim(self, window_end: datetime, buckets: Iterable[int]) -> frozenset[int]:
        """Claim ``window_end`` for those of ``buckets`` this instance holds a live lease on (checked by the
        database) and nobody has scored yet: returns the buckets won. A claim left unfinished (its scorer died or
        lost the lease mid-cycle) is taken over; a finished one never is."""
        async with self._lock:
            return await self._claim(window_end, buckets)

    async def done(self, window_end: datetime, scored: dict[int, int]) -> None:
        """Mark the claims of ``window_end`` finished with the patients scored per bucket, and tell the other
        instances (``NOTIFY`` on ``SCORED_CHANNEL`` at commit: they reload their latest-score view)."""
        if not scored:
            return
        async with self._lock, self._c().transaction():
            cur = self._c().cursor()
            await cur.executemany(
                "UPDATE window_claims SET done_at = now(), scored = %s WHERE bucket = %s AND window_end = %s "
                "AND owner = %s", [(n, b, window_end, self.instance_id) for b, n in scored.items()])
            await self._c().execute("SELECT pg_notify(%s, %s)", (SCORED_CHANNEL, f"{self.instance_id}|{window_end}"))

    async def unscored(self, window_end: datetime, buckets: Iterable[int],
                       max_windows: int) -> dict[datetime, set[int]]:
        """For each bucket, the window ends after its newest finished claim and before ``window_end`` (at most
        ``max_windows`` of them): what a takeover must still score. A bucket never scored has none."""
        async with self._lock:
            rows = await (await self._c().execute(
                "SELECT bucket, max(window_end) FROM window_claims WHERE bucket = ANY(%s) AND done_at IS NOT NULL "
                "AND window_end < %s GROUP BY bucket", (sorted(buckets), window_end))).fetchall()
        todo: dict[datetime, set[int]] = {}
        for bucket, last in rows:
            ends = []
            end = last + WINDOW
            while end < window_end:
                ends.append(end)
                end += WINDOW
            for end in ends[-max_windows:]:
                todo.setdefault(end, set()).add(bucket)
        return dict(sorted(todo.items()))

    async def aggregate(self, materialize: Any, window_end: datetime) -> list[datetime]:
        """Run the store's ``materialize_pending(window_end)`` under the fleet's aggregation lock, publish the window
        starts it aggregated, and return every start any instance published since this one last looked (its own
        included): the windows its kept grid must read back (H16). The lock makes "aggregated in the store" and
        "published" one step for everyone else."""
        conn = self._c()
        async with self._lock, conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock(%s)", (AGGREGATE_LOCK,))
            starts = await materialize(window_end)
            if starts:
                await conn.execute("INSERT INTO fleet_marks (window_start) SELECT unnest(%s::timestamptz[])",
                                   (list(starts),))
            if self._seen is None:  # first cycle: it reads its span whole; only its own marks matter
                (top,) = await (await conn.execute("SELECT coalesce(max(seq), 0) FROM fleet_marks")).fetchone()
                self._seen = int(top)
                return sorted(set(starts))
            rows = await (await conn.execute("SELECT seq, window_start FROM fleet_marks WHERE seq > %s",
                                             (self._seen,))).fetchall()
            await conn.execute("DELETE FROM fleet_marks WHERE at < now() - interval '1 day'")
        if rows:
            self._seen = max(int(r[0]) for r in rows)
        return sorted({r[1] for r in rows} | set(starts))

    async def scored_by_window(self) -> list[tuple[datetime, int, str, int | None]]:
        """Every finished claim as (window_end, bucket, owner, scored), oldest first (tests, ``/healthz`` tools)."""
        return [tuple(r) for r in await (await self._c().execute(  # type: ignore[misc]
            "SELECT window_end, bucket, owner, scored FROM window_claims WHERE done_at IS NOT NULL "
            "ORDER BY window_end, bucket")).fetchall()]
