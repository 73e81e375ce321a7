"""The control store's database port: one contract, two engines (issue 24).

The control state (alerts, transitions, the outbox, streaks, the alert clock, webhook endpoints and deliveries)
is written through a ``ControlDatabase``: the embedded ``SqliteDatabase`` (``app/storage/sqlite_db.py``, the
default, one file per store as before) or ``PostgresDatabase`` (``app/storage/postgres_db.py``, shared by every
instance of a fleet, selected by ``WARDTWIN_CONTROL_DB=postgresql://…``). The stores hold their SQL once, written
for both engines (``?`` placeholders, ``INSERT … ON CONFLICT``, partial unique indexes); what differs is in a
``Dialect`` and in each schema's per-engine migration steps (``app.storage.migrations.Schema.postgres``).

Transactions: ``run_tx(fn, lock=…)`` runs ``fn(conn)`` in one transaction on a worker thread. SQLite takes the
file's write lock at ``BEGIN IMMEDIATE`` (one writer, as ever), so ``lock`` changes nothing there; PostgreSQL
takes ``pg_advisory_xact_lock`` on the lock's name first, so every transaction naming the same lock runs one at a
time *across instances* (held to commit). The alert store names one lock for every transaction that appends to
the outbox: outbox sequence numbers then commit in the order they are allocated, and a reader that has seen
``seq`` N never later finds a smaller one committing (the gap an identity column alone would leave).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from app.storage.migrations import Schema

T = TypeVar("T")


@dataclass(frozen=True)
class Dialect:
    """What the two engines spell differently."""

    name: str
    #: the scalar maximum of two values (SQLite's two-argument ``MAX``; PostgreSQL's ``GREATEST``)
    greatest: str
    #: appended to a ``SELECT`` that picks rows to claim: skip rows another transaction holds (PostgreSQL only; a
    #: SQLite write transaction is alone)
    skip_locked: str

    def claim_suffix(self, alias: str) -> str:
        return self.skip_locked.format(alias=alias)


SQLITE = Dialect("sqlite", "MAX", "")
POSTGRES = Dialect("postgresql", "GREATEST", " FOR UPDATE OF {alias} SKIP LOCKED")


class Connection(Protocol):
    """The part of a DB-API connection the stores use (``sqlite3.Connection``; PostgreSQL's is wrapped)."""

    def execute(self, sql: str, params: Any = ..., /) -> Any: ...

    def executemany(self, sql: str, params: Any, /) -> Any: ...


class ControlDatabase(Protocol):
    """One database of control state, used from asyncio: every call runs on a worker thread."""

    dialect: Dialect
    #: the last write refused for want of space (cleared by the next commit); ``/healthz`` reports it
    write_error: str | None

    def open(self) -> None:
        """Connect and apply the schema's missing migration steps (refusing a schema newer than the code)."""

    def close(self) -> None: ...

    def call(self, fn: Callable[[Any], T]) -> T:
        """``fn(conn)`` in the calling thread, each statement committing on its own."""

    def call_read(self, fn: Callable[[Any], T]) -> T:
        """A read-only ``fn(conn)`` in the calling thread."""

    def call_tx(self, fn: Callable[[Any], T], lock: str | None = None) -> T:
        """``fn(conn)`` in one transaction (see the module's note on ``lock``)."""

    async def run(self, fn: Callable[[Any], T]) -> T: ...

    async def run_read(self, fn: Callable[[Any], T]) -> T: ...

    async def run_tx(self, fn: Callable[[Any], T], lock: str | None = None) -> T: ...

    async def migrate(self, schema: Schema) -> int:
        """Apply another schema's missing steps to this database (the webhook store's beside the alert store's)."""

    async def health(self) -> dict[str, Any]:
        """``engine``, ``ok`` (answered a query just now) and, when not, ``error``."""
