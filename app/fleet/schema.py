"""The fleet's tables in PostgreSQL, as numbered steps applied at start (a newer schema is refused).

Applied by the control store's mechanism (``app.storage.migrations.migrate_postgres``): the ``schema_versions(name,
version)`` record under the name ``fleet``, so these tables share a database with the control store's; the steps run
in one transaction under its advisory lock, so instances starting together apply each step once. Never edit a
shipped step; append one.
"""

from __future__ import annotations

import asyncio

import psycopg

from app.storage.migrations import Schema, migrate_postgres

NAME = "fleet"

STEPS: tuple[str, ...] = (
    # 1: instances' heartbeats, one lease per bucket, the per-window scoring claims, the shared aggregation marks
    """
    CREATE TABLE IF NOT EXISTS fleet_config (id INTEGER PRIMARY KEY CHECK (id = 1), buckets INTEGER NOT NULL);
    CREATE TABLE IF NOT EXISTS fleet_instances (
        instance_id TEXT PRIMARY KEY,
        started_at TIMESTAMPTZ NOT NULL DEFAULT now(),
        last_seen TIMESTAMPTZ NOT NULL DEFAULT now()
    );
    CREATE TABLE IF NOT EXISTS bucket_leases (
        bucket INTEGER PRIMARY KEY,
        owner TEXT,
        expires_at TIMESTAMPTZ NOT NULL DEFAULT '-infinity',
        taken_at TIMESTAMPTZ
    );
    CREATE TABLE IF NOT EXISTS window_claims (
        bucket INTEGER NOT NULL,
        window_end TIMESTAMPTZ NOT NULL,
        owner TEXT NOT NULL,
        claimed_at TIMESTAMPTZ NOT NULL DEFAULT now(),
        done_at TIMESTAMPTZ,
        scored INTEGER,
        PRIMARY KEY (bucket, window_end)
    );
    CREATE INDEX IF NOT EXISTS window_claims_by_end ON window_claims (window_end);
    CREATE TABLE IF NOT EXISTS fleet_marks (
        seq BIGSERIAL PRIMARY KEY,
        window_start TIMESTAMPTZ NOT NULL,
        at TIMESTAMPTZ NOT NULL DEFAULT now()
    );
    """,
)


#: The fleet's schema in the control store's migration mechanism (no SQLite steps: a fleet needs PostgreSQL).
SCHEMA = Schema(NAME, (), postgres=STEPS)


async def migrate(dsn: str, schema: Schema = SCHEMA) -> int:
    """Apply the steps the database lacks (``app.storage.migrations.migrate_postgres``: the control store's own
    mechanism, one transaction under its advisory lock, a newer schema refused), on a short-lived connection in a
    worker thread; return how many were applied."""

    def run() -> int:
        with psycopg.connect(dsn, autocommit=True) as conn:
            return migrate_postgres(conn, schema)

    return await asyncio.to_thread(run)
