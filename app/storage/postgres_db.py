"""The control store on PostgreSQL (issue 24): psycopg 3, a small connection pool, calls on worker threads.

The stores' SQL is written once for both engines with ``?`` placeholders (``app.storage.control_db``);
``PgConnection`` turns them into psycopg's ``%s`` (a literal ``%`` is doubled) and gives the connection the
``executemany`` the stores call on SQLite's. Connections are in autocommit mode: a bare ``call`` commits each
statement, ``call_tx`` wraps ``fn`` in one transaction (``BEGIN`` … ``COMMIT``, ``ROLLBACK`` on any exception)
after taking the named advisory lock, if any. Lost connections (a restarted server) are replaced by the pool;
a failure to reach the server is a ``StoreUnavailableError`` (503), as a SQLite I/O error is.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable, Iterable
from functools import lru_cache
from typing import Any, TypeVar
from urllib.parse import urlsplit

import psycopg
from psycopg_pool import ConnectionPool, PoolTimeout

from app.errors import StoreUnavailableError
from app.storage.control_db import POSTGRES, Dialect
from app.storage.migrations import Schema, migrate_postgres

T = TypeVar("T")
logger = logging.getLogger(__name__)
#: How long ``/healthz`` waits for a pooled connection before it reports the control store down.
HEALTH_TIMEOUT_S = 2.0


@lru_cache(maxsize=1024)
def to_psycopg(sql: str) -> str:
    """``?`` placeholders as psycopg's ``%s`` (the stores' SQL has no ``?`` inside a literal)."""
    return sql.replace("%", "%%").replace("?", "%s")


class PgConnection:
    """A psycopg connection that speaks the stores' SQL (``?`` placeholders, ``executemany``)."""

    __slots__ = ("raw",)

    def __init__(self, raw: psycopg.Connection) -> None:
        self.raw = raw

    def execute(self, sql: str, params: Any = None) -> psycopg.Cursor:
        if params is None:
            return self.raw.execute(sql)
        return self.raw.execute(to_psycopg(sql), params)

    def executemany(self, sql: str, params: Iterable[Any]) -> psycopg.Cursor:
        cur = self.raw.cursor()
        cur.executemany(to_psycopg(sql), list(params))
        return cur


def redact(dsn: str) -> str:
    """``host:port/database`` of a URL, without its user or password (for health and errors)."""
    parts = urlsplit(dsn)
    return f"{parts.hostname or 'localhost'}:{parts.port or 5432}{parts.path or '/'}"


class PostgresDatabase:
    """One PostgreSQL database of control state behind a pool of ``max_size`` connections."""

    dialect: Dialect = POSTGRES

    def __init__(self, dsn: str, schema: Schema, *, max_size: int = 8, timeout_s: float = 10.0) -> None:
        self.dsn = dsn
        self.name = redact(dsn)
        self._schema = schema
        self._max_size = max_size
        self._timeout_s = timeout_s
        self._pool: ConnectionPool | None = None
        self.write_error: str | None = None
        self._listeners: list[tuple[threading.Thread, threading.Event]] = []

    def open(self) -> None:
        if self._pool is not None:
            return
        pool = ConnectionPool(self.dsn, min_size=1, max_size=self._max_size,
                              kwargs={"autocommit": True, "connect_timeout": max(2, int(self._timeout_s))},
                              check=ConnectionPool.check_connection, timeout=self._timeout_s, open=False,
                              name=f"wardtwin-{self._schema.name}")
        try:
            pool.open(wait=True, timeout=self._timeout_s)
            with pool.connection() as conn:
                migrate_postgres(conn, self._schema)
        except (PoolTimeout, psycopg.OperationalError) as exc:
            pool.close()
            raise StoreUnavailableError(f"postgresql {self.name}: {exc}") from exc
        except BaseException:
            pool.close()
            raise
        self._pool = pool

    def close(self) -> None:
        listeners, self._listeners = self._listeners, []
        for _, stop in listeners:
            stop.set()
        for thread, _ in listeners:
            thread.join(timeout=5)
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.close()

    def listen(self, channel: str, callback: Callable[[str], None], *, poll_s: float = 0.5) -> None:
        """Call ``callback(payload)`` (on a thread of its own) for every ``NOTIFY channel`` committed by anyone, on a
        connection of its own, reconnecting after a lost connection (notifications sent meanwhile are lost: a
        listener must also poll, as the alert engine does). Stops at ``close``."""
        stop = threading.Event()

        def run() -> None:
            while not stop.is_set():
                try:
                    with psycopg.connect(self.dsn, autocommit=True, connect_timeout=5) as conn:
                        conn.execute(f"LISTEN {channel}")
                        while not stop.is_set():
                            for note in conn.notifies(timeout=poll_s):
                                callback(note.payload)
                except psycopg.Error as exc:
                    logger.warning("LISTEN %s on %s lost (%s); reconnecting", channel, self.name, exc)
                    stop.wait(1.0)

        thread = threading.Thread(target=run, name=f"listen-{channel}", daemon=True)
        self._listeners.append((thread, stop))
        thread.start()

    def _with(self, fn: Callable[[psycopg.Connection], T], timeout_s: float | None = None) -> T:
        pool = self._pool
        if pool is None:
            raise StoreUnavailableError(f"postgresql {self.name} is not open")
        try:
            with pool.connection(timeout=timeout_s) as conn:
                result = fn(conn)
        except psycopg.errors.DiskFull as exc:
            self.write_error = f"postgresql {self.name}: {exc}"
            raise StoreUnavailableError(self.write_error) from exc
        except (PoolTimeout, psycopg.OperationalError) as exc:
            raise StoreUnavailableError(f"postgresql {self.name}: {exc}") from exc
        return result

    def call(self, fn: Callable[[Any], T]) -> T:
        result = self._with(lambda raw: fn(PgConnection(raw)))
        self.write_error = None
        return result

    def call_read(self, fn: Callable[[Any], T]) -> T:
        return self._with(lambda raw: fn(PgConnection(raw)))

    def call_tx(self, fn: Callable[[Any], T], lock: str | None = None) -> T:
        def transaction(raw: psycopg.Connection) -> T:
            with raw.transaction():
                if lock is not None:
                    raw.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (lock,))
                return fn(PgConnection(raw))

        result = self._with(transaction)
        self.write_error = None
        return result

    async def run(self, fn: Callable[[Any], T]) -> T:
        return await asyncio.to_thread(self.call, fn)

    async def run_read(self, fn: Callable[[Any], T]) -> T:
        return await asyncio.to_thread(self.call_read, fn)

    async def run_tx(self, fn: Callable[[Any], T], lock: str | None = None) -> T:
        return await asyncio.to_thread(self.call_tx, fn, lock)

    async def migrate(self, schema: Schema) -> int:
        return await asyncio.to_thread(self._with, lambda raw: migrate_postgres(raw, schema))

    async def health(self) -> dict[str, Any]:
        """Whether the server answers ``SELECT 1`` within ``HEALTH_TIMEOUT_S`` (a health check must not hang)."""
        try:
            await asyncio.to_thread(self._with, lambda raw: raw.execute("SELECT 1").fetchone(), HEALTH_TIMEOUT_S)
        except StoreUnavailableError as exc:
            return {"engine": self.dialect.name, "database": self.name, "ok": False, "error": str(exc)}
        return {"engine": self.dialect.name, "database": self.name, "ok": self.write_error is None,
                **({"error": self.write_error} if self.write_error else {})}
