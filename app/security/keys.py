"""API keys: a random token shown once, stored only as its SHA-256, with one role and a name.

The token has 256 bits of entropy (``secrets``), so a plain SHA-256 is enough to make a stolen table useless
(no salt or slow hash is needed for a token nobody chose). Keys and the audit trail share ``access.db`` in the
data directory, a SQLite file of their own whichever store holds the readings.

Verified keys are cached in memory by their hash, and the cache is checked against the database on every lookup:
``PRAGMA data_version`` (which changes when any other connection, in this process or another, commits) and, when
it has changed, the ``key_generation`` counter that triggers bump on every insert, update or delete of
``api_keys``. A revocation, over HTTP, from ``wardtwin keys revoke`` in another process, or by hand in the
``sqlite3`` shell, is therefore seen by the very next request. Unknown tokens are not cached (so guessing cannot
grow the cache).
"""

from __future__ import annotations

import hashlib
import secrets
import sqlite3
import threading
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Final, Literal

from app.errors import KeyNotFoundError
from app.storage.sqlite_db import SqliteDatabase

#: device: post readings · clinician: read patients, alerts, acknowledge · ehr: read patients and scores ·
#: admin: keys, webhooks, cycles, model, audit.
ROLES: Final = ("device", "clinician", "ehr", "admin")
Role = Literal["device", "clinician", "ehr", "admin"]
TOKEN_PREFIX: Final = "wt_"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS api_keys (
    id TEXT PRIMARY KEY, name TEXT NOT NULL, role TEXT NOT NULL, token_sha256 TEXT NOT NULL UNIQUE,
    created_at TEXT NOT NULL, revoked_at TEXT);
CREATE TABLE IF NOT EXISTS audit (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, at TEXT NOT NULL, key_id TEXT, key_name TEXT, role TEXT,
    action TEXT NOT NULL, target TEXT, status INTEGER, remote TEXT);
CREATE TRIGGER IF NOT EXISTS audit_no_update BEFORE UPDATE ON audit
    BEGIN SELECT RAISE(ABORT, 'the audit trail is append-only'); END;
CREATE TRIGGER IF NOT EXISTS audit_no_delete BEFORE DELETE ON audit
    BEGIN SELECT RAISE(ABORT, 'the audit trail is append-only'); END;
CREATE TABLE IF NOT EXISTS key_generation (id INTEGER PRIMARY KEY CHECK (id = 0), n INTEGER NOT NULL);
INSERT OR IGNORE INTO key_generation VALUES (0, 0);
CREATE TRIGGER IF NOT EXISTS api_keys_inserted AFTER INSERT ON api_keys
    BEGIN UPDATE key_generation SET n = n + 1 WHERE id = 0; END;
CREATE TRIGGER IF NOT EXISTS api_keys_updated AFTER UPDATE ON api_keys
    BEGIN UPDATE key_generation SET n = n + 1 WHERE id = 0; END;
CREATE TRIGGER IF NOT EXISTS api_keys_deleted AFTER DELETE ON api_keys
    BEGIN UPDATE key_generation SET n = n + 1 WHERE id = 0; END;
"""


@dataclass(frozen=True)
class Principal:
    """Who is calling: a stored key (one role) or the demo key (every role)."""

    key_id: str
    name: str
    roles: frozenset[str]

    @property
    def role(self) -> str:
        return ",".join(r for r in ROLES if r in self.roles)


@dataclass(frozen=True)
class ApiKey:
    id: str
    name: str
    role: str
    created_at: str
    revoked_at: str | None = None


def new_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _row(row: tuple) -> ApiKey:
    return ApiKey(*row)


class KeyStore:
    """Keys in ``access.db``; also opened by ``wardtwin keys`` while the service runs (WAL: both see commits)."""

    def __init__(self, path: Path) -> None:
        self.db = SqliteDatabase(path, _SCHEMA)
        #: per thread (each has its own reader connection, whose ``data_version`` is its own):
        #: (connection, data_version seen, key generation seen, {token hash: principal})
        self._local = threading.local()
        self.database_reads = 0  # lookups that went to api_keys (tests check that hits do not)

    def open(self) -> None:
        self.db.open()

    def close(self) -> None:
        self.db.close()

    def create(self, name: str, role: str, at: datetime) -> tuple[ApiKey, str]:
        """A new key and its token (shown once; only the hash is kept)."""
        if role not in ROLES:
            raise ValueError(f"role must be one of {', '.join(ROLES)}")
        key = ApiKey(uuid.uuid4().hex[:12], name, role, at.astimezone(UTC).isoformat())
        token = new_token()

        def insert(conn: sqlite3.Connection) -> None:
            conn.execute("INSERT INTO api_keys VALUES (?, ?, ?, ?, ?, NULL)",
                         (key.id, key.name, key.role, token_hash(token), key.created_at))

        self.db.call(insert)
        return key, token

    def list(self) -> list[ApiKey]:
        return self.db.call_read(lambda conn: [_row(r) for r in conn.execute(
            "SELECT id, name, role, created_at, revoked_at FROM api_keys ORDER BY created_at, id")])

    def revoke(self, key_id: str, at: datetime) -> ApiKey:
        def update(conn: sqlite3.Connection) -> ApiKey:
            conn.execute("UPDATE api_keys SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL",
                         (at.astimezone(UTC).isoformat(), key_id))
            row = conn.execute("SELECT id, name, role, created_at, revoked_at FROM api_keys WHERE id = ?",
                               (key_id,)).fetchone()
            if row is None:
                raise KeyNotFoundError(f"no key {key_id!r}")
            return _row(row)

        return self.db.call(update)

    def lookup(self, token: str) -> Principal | None:
        """The active key with this token, or None (unknown or revoked): from the cache unless a key changed since
        (checked here, against the database, on every call)."""
        digest = token_hash(token)
        return self.db.call_read(lambda conn: self._lookup(conn, digest))

    def _lookup(self, conn: sqlite3.Connection, digest: str) -> Principal | None:
        state = getattr(self._local, "state", None)
        version = conn.execute("PRAGMA data_version").fetchone()[0]
        if state is None or state[0] is not conn or state[1] != version:
            generation = conn.execute("SELECT n FROM key_generation WHERE id = 0").fetchone()
            generation = generation[0] if generation else None
            cache = state[3] if state is not None and state[0] is conn and state[2] == generation \
                and generation is not None else {}
            state = self._local.state = (conn, version, generation, cache)
        cache = state[3]
        principal = cache.get(digest)
        if principal is None:
            self.database_reads += 1
            row = conn.execute("SELECT id, name, role FROM api_keys WHERE token_sha256 = ? AND revoked_at IS NULL",
                               (digest,)).fetchone()
            if row is None:
                return None
            principal = cache[digest] = Principal(row[0], row[1], frozenset({row[2]}))
        return principal
