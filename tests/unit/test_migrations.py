"""Versioned SQLite schemas: fresh files, files made before versioning, files that share schemas, newer files."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from app.alerts import store as alert_store
from app.alerts import webhooks
from app.errors import StoreUnavailableError
from app.security import keys
from app.storage import spool, sqlite
from app.storage.migrations import Schema, add_column, migrate, statements, version
from app.storage.sqlite_db import SqliteDatabase

SCHEMAS = (sqlite.SCHEMA, spool.SCHEMA, alert_store.SCHEMA, webhooks.SCHEMA, keys.SCHEMA)

# alerts.db as the code before versioning left it: kinds and the indexes, but not the later columns, and an alert.
_UNVERSIONED_ALERTS = """
CREATE TABLE alerts (
    id TEXT PRIMARY KEY, patient_id TEXT NOT NULL, window_end TEXT NOT NULL, raised_at TEXT NOT NULL,
    risk REAL NOT NULL, reasons TEXT NOT NULL, state TEXT NOT NULL, updated_at TEXT NOT NULL,
    delivered_at TEXT, acknowledged_by TEXT, acknowledged_at TEXT, escalated_at TEXT, resolved_at TEXT,
    resolved_reason TEXT, kind TEXT NOT NULL DEFAULT 'twin', news2 TEXT);
CREATE UNIQUE INDEX alerts_one_open_per_kind ON alerts (patient_id, kind)
    WHERE state IN ('raised', 'delivered', 'escalated', 'acknowledged');
CREATE TABLE outbox (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, alert_id TEXT NOT NULL, event TEXT NOT NULL,
    payload TEXT NOT NULL, created_at TEXT NOT NULL, delivered_at TEXT, attempts INTEGER NOT NULL DEFAULT 0);
CREATE TABLE webhook_endpoints (
    id TEXT PRIMARY KEY, url TEXT NOT NULL, secret TEXT NOT NULL, events TEXT NOT NULL, created_at TEXT NOT NULL,
    cursor INTEGER NOT NULL, deleted_at TEXT);
INSERT INTO alerts (id, patient_id, window_end, raised_at, risk, reasons, state, updated_at, kind)
    VALUES ('a-1', 'a', 't', 't', 0.9, '["x"]', 'raised', 't', 'news2');
INSERT INTO webhook_endpoints VALUES ('ep_1', 'http://x', 'whsec_x', '[]', 't', 0, NULL);
"""


def connect(path: Path) -> sqlite3.Connection:
    return sqlite3.connect(path, isolation_level=None)


def layout(conn: sqlite3.Connection) -> dict[str, object]:
    """Tables with their columns (in order), indexes and triggers: what two files must share to be the same schema."""
    objects = conn.execute("SELECT type, name, tbl_name FROM sqlite_master WHERE name NOT LIKE 'sqlite_%' "
                           "ORDER BY type, name").fetchall()
    return {f"{kind}:{name}": [tuple(r[1:3]) for r in conn.execute(f"PRAGMA table_info({name})")]
            if kind == "table" else table for kind, name, table in objects}


def alert_columns(conn: sqlite3.Connection) -> list[str]:
    return [row[1] for row in conn.execute("PRAGMA table_info(alerts)")]


@pytest.mark.parametrize("schema", SCHEMAS, ids=lambda s: s.name)
def test_a_fresh_file_gets_every_step_once(tmp_path, schema):
    conn = connect(tmp_path / "x.db")
    assert migrate(conn, schema) == schema.version >= 1
    assert version(conn, schema.name) == schema.version
    before = layout(conn)
    assert migrate(conn, schema) == 0  # opening again changes nothing
    assert layout(conn) == before


@pytest.mark.parametrize("schema", (sqlite.SCHEMA, spool.SCHEMA, webhooks.SCHEMA, keys.SCHEMA), ids=lambda s: s.name)
def test_a_file_made_by_the_unversioned_script_is_adopted(tmp_path, schema):
    """Before versioning these files were made by running their one (first) script; its rows survive the adoption
    and every later step."""
    script = schema.steps[0]
    assert isinstance(script, str)
    old = connect(tmp_path / "old.db")
    old.executescript(script)
    old.execute("CREATE TABLE kept (x INTEGER)")
    old.execute("INSERT INTO kept VALUES (1)")
    assert migrate(old, schema) == schema.version
    fresh = connect(tmp_path / "fresh.db")
    migrate(fresh, schema)
    assert {k: v for k, v in layout(old).items() if k != "table:kept"} == layout(fresh)
    assert old.execute("SELECT x FROM kept").fetchall() == [(1,)]


def test_a_database_made_before_versioning_is_upgraded_in_place(tmp_path):
    path = tmp_path / "alerts.db"
    old = connect(path)
    old.executescript(_UNVERSIONED_ALERTS)
    assert version(old, "alerts") == 0 and "renotifications" not in alert_columns(old)
    assert migrate(old, alert_store.SCHEMA) == alert_store.SCHEMA.version
    assert migrate(old, webhooks.SCHEMA) == webhooks.SCHEMA.version
    fresh = connect(tmp_path / "fresh.db")
    migrate(fresh, alert_store.SCHEMA)
    migrate(fresh, webhooks.SCHEMA)
    assert layout(old) == layout(fresh)  # the same tables, columns in the same order, indexes
    row = old.execute("SELECT id, kind, news2, last_notified_at, renotifications FROM alerts").fetchone()
    assert row == ("a-1", "news2", None, None, 0)
    assert old.execute("SELECT id FROM webhook_endpoints").fetchall() == [("ep_1",)]


async def test_the_alert_store_opens_a_database_made_before_versioning(tmp_path):
    path = tmp_path / "alerts.db"
    with connect(path) as old:
        old.executescript(_UNVERSIONED_ALERTS)
    store = alert_store.AlertStore(path)
    await store.open()
    try:
        (alert,) = await store.list()
        assert (alert.id, alert.kind, alert.renotifications) == ("a-1", "news2", 0)
        hooks = webhooks.WebhookStore(store.db)
        await hooks.open()
        conn = connect(path)
        assert {n: version(conn, n) for n in ("alerts", "webhooks")} == {
            "alerts": alert_store.SCHEMA.version, "webhooks": webhooks.SCHEMA.version}
        conn.close()
    finally:
        await store.close()


def test_schemas_sharing_a_file_keep_their_own_versions(tmp_path):
    conn = connect(tmp_path / "shared.db")
    first = Schema("first", ("CREATE TABLE a (x INTEGER);",))
    second = Schema("second", ("CREATE TABLE b (y INTEGER);",))
    migrate(conn, first)
    migrate(conn, second)
    grown = Schema("first", (*first.steps, add_column("a", "z", "TEXT")))
    assert migrate(conn, grown) == 1  # only the new step
    assert (version(conn, "first"), version(conn, "second")) == (2, 1)


def test_a_failing_step_leaves_the_previous_version_whole(tmp_path):
    conn = connect(tmp_path / "x.db")
    base = Schema("s", ("CREATE TABLE a (x INTEGER);",))
    migrate(conn, base)
    broken = Schema("s", (*base.steps, "CREATE TABLE b (y INTEGER);", "CREATE TABLE a (x INTEGER);"))
    with pytest.raises(sqlite3.OperationalError, match="already exists"):
        migrate(conn, broken)
    assert version(conn, "s") == 1
    assert conn.execute("SELECT name FROM sqlite_master WHERE name = 'b'").fetchone() is None


def test_a_database_newer_than_the_code_is_refused(tmp_path):
    path = tmp_path / "access.db"
    newer = Schema("access", (*keys.SCHEMA.steps, "CREATE TABLE later (x INTEGER);"))
    conn = connect(path)
    migrate(conn, newer)
    conn.close()
    db = SqliteDatabase(path, keys.SCHEMA)
    with pytest.raises(StoreUnavailableError, match="newer than this code"):
        db.open()


def test_statements_keep_a_trigger_whole():
    script = keys.SCHEMA.steps[0]
    assert isinstance(script, str)
    triggers = [s for s in statements(script) if s.startswith("CREATE TRIGGER")]
    assert len(triggers) == 5 and all(s.endswith("END;") for s in triggers)
    with pytest.raises(ValueError, match="incomplete"):
        statements("CREATE TABLE a (x INTEGER)")


def test_readings_gain_their_source_as_part_of_the_key(tmp_path):
    """Step 2 of the readings schema: rows stored before sources existed become the monitor's, and a charted value
    at the same patient, vital and time is then kept beside the monitor's (issue 20)."""
    old = connect(tmp_path / "wardtwin.db")
    old.executescript(sqlite.SCHEMA.steps[0])
    old.execute("INSERT INTO readings VALUES ('a', 'rr', 1000, 26.0, 'ok')")
    assert migrate(old, sqlite.SCHEMA) == sqlite.SCHEMA.version == 2
    assert old.execute("SELECT patient_id, vital, ts_ms, value, quality, source FROM readings").fetchall() == [
        ("a", "rr", 1000, 26.0, "ok", "monitor")]
    old.execute("INSERT OR REPLACE INTO readings (patient_id, vital, ts_ms, value, quality, source) "
                "VALUES ('a', 'rr', 1000, 18.0, 'ok', 'charted')")
    assert sorted(old.execute("SELECT source, value FROM readings").fetchall()) == [("charted", 18.0),
                                                                                    ("monitor", 26.0)]
    fresh = connect(tmp_path / "fresh.db")
    migrate(fresh, sqlite.SCHEMA)
    assert layout(old) == layout(fresh)
