"""A durable local FIFO of line-protocol batches: readings accepted while InfluxDB is down or slow wait here.

One SQLite file (WAL, ``synchronous=FULL``, via ``SqliteDatabase``): ``append`` returns only after the batch
is committed and fsync'd, so a batch the service has acknowledged survives a crash of the service. Batches
keep their arrival order (``seq``); the InfluxDB store's drainer replays them oldest first and removes a
batch only after InfluxDB has acknowledged it. A batch replayed twice (acknowledged, then the service died
before the removal) is harmless: a point with the same series and timestamp overwrites itself.

The file also keeps the service's record of the database's identity marker (``store_identity``, one row per database
name; ``app.storage.identity``). Here because it must outlive a restart and belong to this InfluxDB store alone: the
spool is the one durable file the store already owns (under the data directory, fsync'd, 0600), so no other store
(the control store) learns about InfluxDB, and deleting the data directory forgets both together.
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

from app.storage.identity import Identity
from app.storage.migrations import Schema
from app.storage.sqlite_db import SqliteDatabase

#: Versioned (``app/storage/migrations.py``): append steps, never edit one.
SCHEMA = Schema("spool", ("""
CREATE TABLE IF NOT EXISTS spool (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    points INTEGER NOT NULL,
    body BLOB NOT NULL,
    spooled_at_ms INTEGER NOT NULL
);
""", """
CREATE TABLE IF NOT EXISTS store_identity (
    database TEXT PRIMARY KEY,
    store_id TEXT NOT NULL,
    created_at TEXT NOT NULL,
    seen_at TEXT
);
"""))


class Spool:
    """Append-only queue of ``(seq, points, body)``; ``backlog`` counts the points not yet acknowledged."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._db = SqliteDatabase(self.path, SCHEMA)
        self._backlog = 0
        self._batches = 0

    @property
    def backlog(self) -> int:
        """Points spooled and not yet acknowledged by InfluxDB."""
        return self._backlog

    @property
    def batches(self) -> int:
        return self._batches

    async def open(self) -> None:
        self._db.open()
        points, batches = await self._db.run(
            lambda c: c.execute("SELECT COALESCE(SUM(points), 0), COUNT(*) FROM spool").fetchone()
        )
        self._backlog, self._batches = int(points), int(batches)

    async def close(self) -> None:
        self._db.close()

    async def append(self, body: bytes, points: int) -> None:
        """Commit one batch durably (fsync'd before this returns)."""
        now_ms = int(time.time() * 1000)

        def insert(conn: sqlite3.Connection) -> None:
            conn.execute("INSERT INTO spool (points, body, spooled_at_ms) VALUES (?, ?, ?)", (points, body, now_ms))

        await self._db.run(lambda c: SqliteDatabase.transaction(c, insert))
        self._backlog += points
        self._batches += 1

    async def peek(self, max_points: int) -> list[tuple[int, int, bytes]]:
        """The oldest batches, ``(seq, points, body)``, up to ``max_points`` in total (always at least one)."""

        def read(conn: sqlite3.Connection) -> list[tuple[int, int, bytes]]:
            out: list[tuple[int, int, bytes]] = []
            total = 0
            for seq, points, body in conn.execute("SELECT seq, points, body FROM spool ORDER BY seq LIMIT 256"):
                if out and total + points > max_points:
                    break
                out.append((int(seq), int(points), bytes(body)))
                total += points
            return out

        return await self._db.run(read)

    async def remove_through(self, seq: int) -> None:
        """Forget every batch up to and including ``seq`` (acknowledged or rejected by InfluxDB)."""

        def delete(conn: sqlite3.Connection) -> tuple[int, int]:
            points, batches = conn.execute(
                "SELECT COALESCE(SUM(points), 0), COUNT(*) FROM spool WHERE seq <= ?", (seq,)
            ).fetchone()
            conn.execute("DELETE FROM spool WHERE seq <= ?", (seq,))
            return int(points), int(batches)

        points, batches = await self._db.run(lambda c: SqliteDatabase.transaction(c, delete))
        self._backlog -= points
        self._batches -= batches

    # -- the database's identity record (``app.storage.identity``) --------------------------------------------------
    async def identity(self, database: str) -> Identity | None:
        """The recorded marker of ``database``; read each time, so ``wardtwin store accept-database`` run in another
        process is seen by the running service at its next health check."""
        row = await self._db.run_read(lambda c: c.execute(
            "SELECT store_id, created_at, seen_at FROM store_identity WHERE database = ?", (database,)).fetchone())
        return Identity(*row) if row else None

    async def record_identity(self, database: str, identity: Identity) -> None:
        def upsert(conn: sqlite3.Connection) -> None:
            conn.execute(
                "INSERT INTO store_identity (database, store_id, created_at, seen_at) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (database) DO UPDATE SET store_id = excluded.store_id, "
                "created_at = excluded.created_at, seen_at = excluded.seen_at",
                (database, identity.store_id, identity.created_at, identity.seen_at),
            )

        await self._db.run(lambda c: SqliteDatabase.transaction(c, upsert))
