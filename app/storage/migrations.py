"""Versioned SQLite schemas: each schema is an ordered list of steps; ``migrate`` applies the missing ones.

Why a ``schema_versions(name, version)`` table and not ``PRAGMA user_version``: ``user_version`` is one
integer per *file*, and a file may hold more than one schema. ``alerts.db`` holds the alert store's schema
(``app/alerts/store.py``) and the webhook store's (``app/alerts/webhooks.py``), each opened and migrated by
its own module; one counter for both would make each module number the other's steps. So every schema keeps
its own version under its name, in its file, and a new schema can join a file without renumbering anything.

A step runs once, in order, inside the same ``BEGIN IMMEDIATE`` transaction as the version it sets, so a
crash leaves the previous version whole, and two processes opening one file (the service and
``wardtwin keys`` on ``access.db``) apply each step once: the second waits, then finds it done. Never edit a
shipped step; append a new one.

Databases made before versioning (no ``schema_versions`` row) start at version 0. Their first steps are
written to be safe over them: ``CREATE … IF NOT EXISTS`` and ``add_column``, which skips a column the table
already has (SQLite's ``ALTER TABLE … ADD COLUMN`` has no ``IF NOT EXISTS``). A database newer than the code
(a version past the last step) is refused rather than written with an older idea of its tables.

PostgreSQL (issue 24, the shared control store): a schema also lists its PostgreSQL steps (``Schema.postgres``),
numbered apart from its SQLite steps (PostgreSQL has no databases from before versioning, so its first step is the
whole current shape). ``migrate_postgres`` keeps the same ``schema_versions`` table in the database and applies the
missing steps in one transaction under an advisory lock, so instances starting together apply each step once.

Not a step: a rewrite of data that needs a key the schema cannot know. Sealing webhook secrets at rest (hazard H18)
runs in ``WebhookStore.open`` after ``migrate``, on every start, in one transaction under the webhook lock: it seals
only rows still in plain text, so it is idempotent and also catches a row an instance not yet upgraded wrote.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from app.errors import StoreUnavailableError

#: A step: a SQL script (one or more statements) or a function of the connection, run inside the transaction.
Step = str | Callable[[sqlite3.Connection], None]

_VERSIONS = "CREATE TABLE IF NOT EXISTS schema_versions (name TEXT PRIMARY KEY, version INTEGER NOT NULL)"


@dataclass(frozen=True)
class Schema:
    """A named schema: ``steps[i]`` takes the schema from version ``i`` to ``i + 1``."""

    name: str
    steps: Sequence[Step]
    #: The PostgreSQL steps (SQL scripts, or functions of a psycopg connection), numbered on their own.
    postgres: Sequence[str | Callable[[Any], None]] = ()

    @property
    def version(self) -> int:
        return len(self.steps)

    @property
    def postgres_version(self) -> int:
        return len(self.postgres)


def statements(script: str) -> list[str]:
    """The statements of ``script``, split where SQLite says a statement is complete (triggers keep their ``;``).

    ``executescript`` would commit the open transaction first, so a step's script runs statement by statement.
    """
    found: list[str] = []
    pending = ""
    for line in script.splitlines(keepends=True):
        pending += line
        if sqlite3.complete_statement(pending):
            found.append(pending.strip())
            pending = ""
    if pending.strip():
        raise ValueError(f"incomplete SQL statement: {pending.strip()[:80]!r}")
    return found


def add_column(table: str, column: str, ddl: str) -> Callable[[sqlite3.Connection], None]:
    """A step adding ``column`` to ``table`` unless it is there already (a database made before versioning)."""

    def step(conn: sqlite3.Connection) -> None:
        if column not in {row[1] for row in conn.execute(f"PRAGMA table_info({table})")}:
            conn.execute(f"ALTER TABLE {table} ADD COLUMN {column} {ddl}")

    step.__qualname__ = f"add_column({table}.{column})"
    return step


def version(conn: sqlite3.Connection, name: str) -> int:
    """The version of schema ``name`` in this file (0 when none was recorded)."""
    if conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_versions'").fetchone() is None:
        return 0
    row = conn.execute("SELECT version FROM schema_versions WHERE name = ?", (name,)).fetchone()
    return 0 if row is None else int(row[0])


def migrate(conn: sqlite3.Connection, schema: Schema) -> int:
    """Apply the steps of ``schema`` this file lacks, in one transaction; return the number applied.

    ``conn`` must be in autocommit mode (``isolation_level=None``) with no transaction open.
    """
    conn.execute("BEGIN IMMEDIATE")
    try:
        conn.execute(_VERSIONS)
        current = version(conn, schema.name)
        if current > schema.version:
            raise StoreUnavailableError(
                f"schema {schema.name!r} is at version {current}, newer than this code knows ({schema.version})")
        for step in schema.steps[current:]:
            if callable(step):
                step(conn)
            else:
                for statement in statements(step):
                    conn.execute(statement)
        if current < schema.version:
            conn.execute("INSERT INTO schema_versions (name, version) VALUES (?, ?) "
                         "ON CONFLICT (name) DO UPDATE SET version = excluded.version", (schema.name, schema.version))
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")
    return schema.version - current


_PG_VERSIONS = "CREATE TABLE IF NOT EXISTS schema_versions (name TEXT PRIMARY KEY, version INTEGER NOT NULL)"


def migrate_postgres(conn: Any, schema: Schema) -> int:
    """Apply the PostgreSQL steps of ``schema`` the database lacks, in one transaction; return the number applied.

    ``conn``: a psycopg connection in autocommit mode. The transaction first takes an advisory lock, so a second
    instance starting at once waits, then finds the steps done; a version newer than the code is refused."""
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(hashtext('wardtwin.schema_versions'))")
        conn.execute(_PG_VERSIONS)
        row = conn.execute("SELECT version FROM schema_versions WHERE name = %s", (schema.name,)).fetchone()
        current = 0 if row is None else int(row[0])
        if current > schema.postgres_version:
            raise StoreUnavailableError(f"schema {schema.name!r} is at version {current}, newer than this code knows "
                                        f"({schema.postgres_version})")
        for step in schema.postgres[current:]:
            if callable(step):
                step(conn)
            else:
                conn.execute(step)  # no parameters: PostgreSQL runs every statement of the script
        if current < schema.postgres_version:
            conn.execute("INSERT INTO schema_versions (name, version) VALUES (%s, %s) ON CONFLICT (name) "
                         "DO UPDATE SET version = excluded.version", (schema.name, schema.postgres_version))
    return schema.postgres_version - current
