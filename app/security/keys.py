"""API keys: a random token shown once, stored only as its SHA-256, with one role and a name.

The token has 256 bits of entropy (``secrets``), so a plain SHA-256 is enough to make a stolen table useless
(no salt or slow hash is needed for a token nobody chose). Keys and the audit trail share ``access.db`` in the
data directory, a SQLite file of their own whichever store holds the readings.
"""

from __future__ import annotations

import hashlib
import secrets
import sqlite3
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
        """The active key with this token, or None (unknown or revoked)."""
        row = self.db.call_read(lambda conn: conn.execute(
            "SELECT id, name, role FROM api_keys WHERE token_sha256 = ? AND revoked_at IS NULL",
            (token_hash(token),)).fetchone())
        return Principal(row[0], row[1], frozenset({row[2]})) if row else None
