"""A SQLite file opened for durable use from asyncio: WAL, ``synchronous=FULL``, worker threads.

Writes go through one connection under one lock. Reads (``run_read``) use a connection of their own per
worker thread: in WAL mode readers never wait for the writer, so the board, the REST reads and
``/healthz`` keep answering while a cycle holds the write lock to aggregate windows.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from app.errors import StoreUnavailableError
from app.storage.control_db import SQLITE, Dialect
from app.storage.migrations import Schema, migrate

T = TypeVar("T")

#: Modes of what the service creates: readings, scores, alerts, keys' hashes and the audit are patient data and
#: credentials (issue 21, finding 11: they were world-readable). SQLite gives its ``-wal`` and ``-shm`` files the
#: mode of the database file.
DIR_MODE, FILE_MODE = 0o700, 0o600


def private_file(path: Path) -> None:
    """Create ``path``'s directory (``DIR_MODE``, if missing) and the file itself (``FILE_MODE``, empty: SQLite takes an
    empty file as a new database); an existing file and its ``-wal``/``-shm`` lose any group and other permissions."""
    path.parent.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
    with contextlib.suppress(FileExistsError):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE))
    for existing in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        try:
            mode = existing.stat().st_mode
            if mode & 0o077:
                os.chmod(existing, mode & 0o700)
        except (FileNotFoundError, PermissionError):
            pass


def enable_wal(conn: sqlite3.Connection, attempts: int = 50) -> None:
    """Put the file in WAL mode, retrying while another connection opens it at the same moment.

    Switching a new file to WAL needs its exclusive lock, and SQLite answers ``database is locked`` at once, without
    the busy handler, when two connections holding shared locks both want it (to avoid a deadlock): two instances
    starting together hit it now and then (CI saw it).
    """
    for attempt in range(attempts):
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if exc.sqlite_errorcode != sqlite3.SQLITE_BUSY or attempt == attempts - 1:
                raise
            time.sleep(0.01 * (1 + attempt % 10))


class SqliteDatabase:
    """The embedded engine of the control store (``app.storage.control_db.ControlDatabase``)."""

    dialect: Dialect = SQLITE

    def __init__(self, path: Path, schema: Schema) -> None:
        self.path = Path(path)
        self._schema = schema
        self._conn: sqlite3.Connection | None = None
        self._lock = threading.Lock()
        self._local = threading.local()
        self._readers: list[sqlite3.Connection] = []
        self._readers_lock = threading.Lock()  # never the write lock: a reader must not wait for a writer
        self._generation = 0  # bumped on close, so a thread never reuses a closed reader
        #: the last write refused because the disk is full (SQLITE_FULL), cleared by the next write that commits;
        #: health reports it, so /healthz never says ok while every write is refused
        self.write_error: str | None = None
        #: reads in flight; close() waits for them, so no connection is closed under a running query (a segfault)
        self._in_flight = 0
        self._idle = threading.Condition(threading.Lock())

    def open(self) -> None:
        if self._conn is not None:
            return
        private_file(self.path)
        conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        conn.execute("PRAGMA busy_timeout=5000")
        try:
            enable_wal(conn)
            conn.execute("PRAGMA synchronous=FULL")
            migrate(conn, self._schema)
        except BaseException:
            conn.close()
            raise
        self._conn = conn

    def close(self) -> None:
        if self._conn is not None:
            with self._idle:
                conn, self._conn = self._conn, None  # new reads are refused from here
                self._idle.wait_for(lambda: self._in_flight == 0)
            with self._lock, self._readers_lock:
                conn.close()
                self._generation += 1
                readers, self._readers = self._readers, []
            for reader in readers:
                reader.close()

    def _reader(self) -> sqlite3.Connection:
        cached = getattr(self._local, "reader", None)
        if cached is not None and cached[0] == self._generation:
            return cached[1]
        conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        conn.execute("PRAGMA busy_timeout=5000")
        with self._readers_lock:
            self._readers.append(conn)
            self._local.reader = (self._generation, conn)
        return conn

    def call_read(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run a read-only ``fn`` on this thread's reader connection (no lock: WAL readers see the last commit)."""
        with self._idle:
            if self._conn is None:
                raise StoreUnavailableError(f"{self.path.name} is not open")
            self._in_flight += 1
        try:
            return fn(self._reader())
        except sqlite3.OperationalError as exc:
            raise StoreUnavailableError(f"sqlite {self.path.name}: {exc}") from exc
        finally:
            with self._idle:
                self._in_flight -= 1
                self._idle.notify_all()

    async def run_read(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        return await asyncio.to_thread(self.call_read, fn)

    def call(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``fn`` with the connection under the lock (in the calling thread)."""
        with self._lock:
            conn = self._conn  # read under the lock: close() clears it before taking the lock
            if conn is None:
                raise StoreUnavailableError(f"{self.path.name} is not open")
            try:
                result = fn(conn)
            except sqlite3.OperationalError as exc:
                if exc.sqlite_errorcode == sqlite3.SQLITE_FULL:
                    self.write_error = f"sqlite {self.path.name}: {exc}"
                raise StoreUnavailableError(f"sqlite {self.path.name}: {exc}") from exc
            self.write_error = None
            return result

    async def run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``fn`` in a worker thread so the event loop never waits on fsync."""
        return await asyncio.to_thread(self.call, fn)

    def call_tx(self, fn: Callable[[sqlite3.Connection], T], lock: str | None = None) -> T:
        """``fn`` in one ``BEGIN IMMEDIATE`` transaction: the file's one writer, so ``lock`` adds nothing here."""
        return self.call(lambda conn: self.transaction(conn, fn))

    async def run_tx(self, fn: Callable[[sqlite3.Connection], T], lock: str | None = None) -> T:
        return await asyncio.to_thread(self.call_tx, fn, lock)

    async def migrate(self, schema: Schema) -> int:
        """Apply another schema's missing steps to this file (``app/storage/migrations.py``)."""
        return await self.run(lambda conn: migrate(conn, schema))

    async def health(self) -> dict[str, Any]:
        """The engine, and whether the file answers a read (and its last write did not fail for space)."""
        try:
            await self.run_read(lambda conn: conn.execute("SELECT 1").fetchone())
        except StoreUnavailableError as exc:
            return {"engine": self.dialect.name, "database": self.path.name, "ok": False, "error": str(exc)}
        return {"engine": self.dialect.name, "database": self.path.name, "ok": self.write_error is None,
                **({"error": self.write_error} if self.write_error else {})}

    @staticmethod
    def transaction(conn: sqlite3.Connection, fn: Callable[[sqlite3.Connection], T]) -> T:
        conn.execute("BEGIN IMMEDIATE")
        try:
            result = fn(conn)
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
        return result
