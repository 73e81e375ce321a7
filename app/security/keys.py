"""API keys: a random token shown once, stored only as its SHA-256, with one role and a name.

The token has 256 bits of entropy (``secrets``), so a plain SHA-256 is enough to make a stolen table useless
(no salt or slow hash is needed for a token nobody chose). Keys and the audit trail share ``access.db`` in the
data directory, a SQLite file of their own whichever store holds the readings.

Verified keys are cached in memory by their hash, and every lookup first asks whether anything was committed to
``access.db`` since the cache was last checked:

1. ``WalWatch``: the WAL-index header, the first 48 bytes of ``access.db-shm``, mapped read-only. Every write
   transaction, by any connection of any process, rewrites it before its commit returns (``iChange`` counts
   transactions, ``mxFrame`` is the last frame: https://www.sqlite.org/walformat.html, "2.2.1 The WAL-Index
   Header"), so unchanged bytes mean nothing was committed. Reading it is a memory compare: no system call.
2. When they changed (or there is no ``-shm``, e.g. not in WAL mode): ``PRAGMA data_version`` on the reader
   connection (changes when any other connection commits) and, when that changed, the ``key_generation``
   counter, which triggers bump on every insert, update or delete of ``api_keys``. A new generation empties the
   cache; audit commits (most of them) do not.

A revocation, over HTTP, from ``wardtwin keys revoke`` in another process, or by hand in the ``sqlite3`` shell,
is therefore seen by the very next request. Unknown tokens are not cached (so guessing cannot grow the cache).

On PostgreSQL (``WARDTWIN_CONTROL_DB``, issue 24) the keys and the audit trail are in the shared database, and
nothing is cached: every lookup reads the key by its hash (one indexed row, on a worker thread: ``Access``), so a
key revoked through any instance is refused by every instance at its next request, with no notification to miss.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import mmap
import os
import re
import secrets
import threading
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Final, Literal

from app.errors import KeyNotFoundError
from app.storage.control import open_control_db
from app.storage.control_db import Connection
from app.storage.migrations import Schema, add_column

#: device: post readings · clinician: read patients, alerts, acknowledge · ehr: read patients and scores ·
#: admin: keys, webhooks, cycles, model, audit.
ROLES: Final = ("device", "clinician", "ehr", "admin")
Role = Literal["device", "clinician", "ehr", "admin"]
TOKEN_PREFIX: Final = "wt_"

#: ``access.db``, versioned (``app/storage/migrations.py``): append steps, never edit one.
SCHEMA = Schema("access", ("""
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
""",
    # issue 21, finding 9: each audit row chained to the previous by a hash (app/security/audit.py); rows made
    # before this step keep NULL (unchained).
    add_column("audit", "row_hash", "TEXT"),
    # issue 21, finding 4: a device key's scope, a JSON list of patient-id patterns (NULL: every patient).
    add_column("api_keys", "scope", "TEXT"),
), postgres=("""
CREATE TABLE api_keys (
    id TEXT PRIMARY KEY, name TEXT NOT NULL, role TEXT NOT NULL, token_sha256 TEXT NOT NULL UNIQUE,
    created_at TEXT NOT NULL, revoked_at TEXT, scope TEXT);
CREATE TABLE audit (
    seq BIGINT PRIMARY KEY, at TEXT NOT NULL, key_id TEXT, key_name TEXT, role TEXT, action TEXT NOT NULL,
    target TEXT, status INTEGER, remote TEXT, row_hash TEXT);
CREATE FUNCTION audit_append_only() RETURNS trigger LANGUAGE plpgsql AS
    $$ BEGIN RAISE EXCEPTION 'the audit trail is append-only'; END $$;
CREATE TRIGGER audit_no_update_or_delete BEFORE UPDATE OR DELETE ON audit
    FOR EACH ROW EXECUTE FUNCTION audit_append_only();
CREATE TRIGGER audit_no_truncate BEFORE TRUNCATE ON audit FOR EACH STATEMENT EXECUTE FUNCTION audit_append_only();
""",))
#: The advisory lock (PostgreSQL) of a revocation's check for the last admin key.
LOCK = "wardtwin.keys"

#: A scope pattern: a patient-id prefix or glob (``bed-0*``, ``ward7-bed-1?``): patient-id characters, ``*``, ``?``.
SCOPE_PATTERN: Final = r"^[A-Za-z0-9_*?-]{1,64}$"
_SCOPE_RE: Final = re.compile(SCOPE_PATTERN)
MAX_SCOPE_PATTERNS: Final = 64


def check_scope(role: str, scope: Sequence[str] | None) -> tuple[str, ...] | None:
    """A key's scope as stored (None: unscoped), or ValueError naming the problem. Only device keys carry one."""
    if scope is None:
        return None
    if role != "device":
        raise ValueError("only a device key may carry a scope")
    patterns = tuple(dict.fromkeys(p.strip() for p in scope))
    if not patterns or len(patterns) > MAX_SCOPE_PATTERNS:
        raise ValueError(f"a scope is 1 to {MAX_SCOPE_PATTERNS} patient-id patterns")
    for pattern in patterns:
        if not _SCOPE_RE.fullmatch(pattern):
            raise ValueError(f"scope pattern {pattern[:70]!r} must be 1-64 of A-Z a-z 0-9 _ - and the wildcards * ?")
    return patterns


@dataclass(frozen=True)
class Principal:
    """Who is calling: a stored key (one role) or the demo key (every role)."""

    key_id: str
    name: str
    roles: frozenset[str]
    #: patient-id patterns (``fnmatch``, case-sensitive) this key may write; None: every patient (issue 21, 4)
    scope: tuple[str, ...] | None = None

    def may_write(self, patient_id: str) -> bool:
        return self.scope is None or any(fnmatch.fnmatchcase(patient_id, p) for p in self.scope)

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
    scope: tuple[str, ...] | None = None


def new_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _scope(stored: str | None) -> tuple[str, ...] | None:
    return None if stored is None else tuple(json.loads(stored))


def _row(row: tuple) -> ApiKey:
    return ApiKey(*row[:5], scope=_scope(row[5]))


_KEY_COLUMNS: Final = "id, name, role, created_at, revoked_at, scope"


class WalWatch:
    """The WAL-index header of a database in WAL mode, mapped read-only: ``header()`` changes with every commit.

    Open only while a connection of this process holds the database open (then no other process can reset the
    ``-shm`` file: SQLite only truncates it for the first connection of all), and close before that connection.
    """

    HEADER = 48  # bytes: the first copy of WalIndexHdr

    def __init__(self, shm: mmap.mmap) -> None:
        self._shm = shm

    @classmethod
    def open(cls, database: Path) -> WalWatch | None:
        """The watch of ``database``'s ``-shm``, or None when there is none to watch (not in WAL mode)."""
        try:
            fd = os.open(f"{database}-shm", os.O_RDONLY)
        except OSError:
            return None
        try:
            if os.fstat(fd).st_size < 4096:  # SQLite sizes it in 32 KiB pieces; anything less is not initialised
                return None
            return cls(mmap.mmap(fd, 4096, mmap.MAP_SHARED, mmap.PROT_READ))
        except (OSError, ValueError):
            return None
        finally:
            os.close(fd)

    def header(self) -> bytes | None:
        """The header's bytes now (None once closed)."""
        try:
            return self._shm[:self.HEADER]
        except ValueError:  # closed
            return None

    def close(self) -> None:
        self._shm.close()


class LastAdminKeyError(ValueError):
    """Revoking this key would leave no active admin key."""


class KeyStore:
    """Keys in ``access.db``; also opened by ``wardtwin keys`` while the service runs (WAL: both see commits)."""

    def __init__(self, target: Path | str) -> None:
        """``target``: ``access.db``, or a ``postgresql://`` URL (the shared control store)."""
        self.db = open_control_db(target, SCHEMA)
        #: Keys in a server shared with other instances: every lookup reads the database (no cache), and the caller
        #: runs it off the event loop (``Access.authenticate``).
        self.remote = self.db.dialect.name != "sqlite"
        #: per thread (each has its own reader connection, whose ``data_version`` is its own): (connection,
        #: data_version seen, key generation seen, {token hash: principal}, the watch, its header before that check)
        self._local = threading.local()
        self._watch: WalWatch | None = None
        self.database_reads = 0  # lookups that went to api_keys (tests check that hits do not)
        self.checks = 0  # lookups that asked the database whether a key changed (the header had changed)

    def open(self) -> None:
        self.db.open()
        if self._watch is None and not self.remote:
            self._watch = WalWatch.open(self.db.path)  # type: ignore[attr-defined]  # a SqliteDatabase

    def close(self) -> None:
        watch, self._watch = self._watch, None
        if watch is not None:
            watch.close()
        self.db.close()

    def create(self, name: str, role: str, at: datetime,
               scope: Sequence[str] | None = None) -> tuple[ApiKey, str]:
        """A new key and its token (shown once; only the hash is kept). ``scope``: a device key's patient-id
        patterns (``check_scope``); None: every patient."""
        if role not in ROLES:
            raise ValueError(f"role must be one of {', '.join(ROLES)}")
        patterns = check_scope(role, scope)
        key = ApiKey(uuid.uuid4().hex[:12], name, role, at.astimezone(UTC).isoformat(), scope=patterns)
        token = new_token()

        def insert(conn: Connection) -> None:
            conn.execute("INSERT INTO api_keys (id, name, role, token_sha256, created_at, revoked_at, scope) "
                         "VALUES (?, ?, ?, ?, ?, NULL, ?)",
                         (key.id, key.name, key.role, token_hash(token), key.created_at,
                          None if patterns is None else json.dumps(list(patterns))))

        self.db.call(insert)
        return key, token

    def list(self) -> list[ApiKey]:
        return self.db.call_read(lambda conn: [_row(r) for r in conn.execute(
            f"SELECT {_KEY_COLUMNS} FROM api_keys ORDER BY created_at, id")])

    def revoke(self, key_id: str, at: datetime, *, keep_an_admin: bool = False) -> ApiKey:
        """Revoke a key (idempotent). ``keep_an_admin``: refuse (``LastAdminKeyError``) to revoke the last active
        admin key, which would leave nobody able to manage keys through the API (issue 21, finding 11)."""
        def update(conn: Connection) -> ApiKey:
            if keep_an_admin:
                admins = [r[0] for r in conn.execute(
                    "SELECT id FROM api_keys WHERE role = 'admin' AND revoked_at IS NULL")]
                if admins == [key_id]:
                    raise LastAdminKeyError(f"key {key_id} is the last active admin key; create another first")
            conn.execute("UPDATE api_keys SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL",
                         (at.astimezone(UTC).isoformat(), key_id))
            row = conn.execute(f"SELECT {_KEY_COLUMNS} FROM api_keys WHERE id = ?",
                               (key_id,)).fetchone()
            if row is None:
                raise KeyNotFoundError(f"no key {key_id!r}")
            return _row(row)

        return self.db.call_tx(update, LOCK)

    def lookup(self, token: str) -> Principal | None:
        """The active key with this token, or None (unknown or revoked): from the cache unless a key changed since
        (checked here, against the database, on every call)."""
        digest = token_hash(token)
        if self.remote:
            return self.db.call_read(lambda conn: self._read(conn, digest))
        state, watch = getattr(self._local, "state", None), self._watch
        if state is not None and watch is not None and state[4] is watch:
            header = watch.header()
            if header is not None and header == state[5]:  # nothing committed since the cache was checked
                principal = state[3].get(digest)
                if principal is not None:
                    return principal
        return self.db.call_read(lambda conn: self._lookup(conn, digest, watch))

    def _lookup(self, conn: Connection, digest: str, watch: WalWatch | None) -> Principal | None:
        self.checks += 1
        header = watch.header() if watch is not None else None  # before the check: a commit after it is seen next
        state = getattr(self._local, "state", None)
        version = conn.execute("PRAGMA data_version").fetchone()[0]
        if state is None or state[0] is not conn or state[1] != version:
            generation = conn.execute("SELECT n FROM key_generation WHERE id = 0").fetchone()
            generation = generation[0] if generation else None
            cache = state[3] if state is not None and state[0] is conn and state[2] == generation \
                and generation is not None else {}
            state = (conn, version, generation, cache)
        self._local.state = (*state[:4], watch, header)
        cache = state[3]
        principal = cache.get(digest)
        if principal is None:
            principal = self._read(conn, digest)
            if principal is None:
                return None
            cache[digest] = principal
        return principal

    def _read(self, conn: Connection, digest: str) -> Principal | None:
        """The active key with this hash, read from the database."""
        self.database_reads += 1
        row = conn.execute("SELECT id, name, role, scope FROM api_keys "
                           "WHERE token_sha256 = ? AND revoked_at IS NULL", (digest,)).fetchone()
        return None if row is None else Principal(row[0], row[1], frozenset({row[2]}), _scope(row[3]))
