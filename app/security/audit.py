"""The audit trail: who did what, to what, when, from where. Append-only (SQLite triggers refuse UPDATE and
DELETE), shared ``access.db`` with the keys; read by admins through ``GET /v1/audit``.

Tamper-evident (issue 21, finding 9): the triggers do not stop someone with the file (``INSERT OR REPLACE`` in the
``sqlite3`` shell rewrote a row), so every row is chained to the one before it:
``row_hash = sha256(previous row_hash || "\\n" || canonical row)`` (``chain_hash``), the canonical row being the
compact JSON of ``[seq, at, key_id, key_name, role, action, target, status, remote]``. A rewritten, inserted or
removed row breaks the chain from there on; ``verify_chain`` (``wardtwin audit verify``) names the first such row.
Rows written before the ``row_hash`` column existed are *unchained* (reported as such, not as broken); the first
chained row starts from ``GENESIS``. Cutting rows off the end of the trail is not detectable from the trail alone.
"""

from __future__ import annotations

import hashlib
import json
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import cast

from app.security.keys import KeyStore, Principal
from app.storage.control_db import Connection, ControlDatabase


@dataclass(frozen=True)
class AuditEntry:
    seq: int
    at: str
    key_id: str | None
    key_name: str | None
    role: str | None
    action: str
    target: str | None
    status: int | None
    remote: str | None


AuditRow = tuple[str, str | None, str | None, str | None, str, str | None, int | None, str | None]


def audit_row(at: datetime, who: Principal | None, action: str, target: str | None, status: int | None,
              remote: str | None) -> AuditRow:
    return (at.astimezone(UTC).isoformat(), who.key_id if who else None, who.name if who else None,
            who.role if who else None, action, target, status, remote)


#: The write-behind writer of each open database (``AuditWriter``): what a read of the trail waits for first.
#: Weak both ways: the writer lives as long as its ``Access``, the entry as long as the database.
_WRITERS: weakref.WeakKeyDictionary[ControlDatabase, weakref.WeakMethod] = weakref.WeakKeyDictionary()


def register_writer(db: ControlDatabase, wait_settled: Callable[[], None]) -> None:
    """``wait_settled`` (a bound method) blocks until every entry handed to the writer of ``db`` so far is
    written."""
    _WRITERS[db] = weakref.WeakMethod(wait_settled)  # type: ignore[arg-type]


_INSERT = "INSERT INTO audit (seq, at, key_id, key_name, role, action, target, status, remote, row_hash) VALUES "
_ROW = "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
_ROWS_PER_INSERT = 100  # 1,000 parameters, far below SQLite's limit (32,766)
_COLUMNS = "seq, at, key_id, key_name, role, action, target, status, remote"
#: The advisory lock (PostgreSQL) of an append: one next row of the chain, whichever instance writes it.
LOCK = "wardtwin.audit"

#: The ``previous row_hash`` of the first chained row.
GENESIS = "0" * 64


def chain_hash(prev_hash: str, seq: int, row: AuditRow) -> str:
    """The ``row_hash`` of row ``seq`` (``row`` as ``audit_row`` makes it) following a row hashed ``prev_hash``."""
    canonical = json.dumps([seq, *row], separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(prev_hash.encode() + b"\n" + canonical.encode()).hexdigest()


@dataclass(frozen=True)
class ChainReport:
    """What ``verify_chain`` found: rows in all, unchained rows (before the chain began), and the first broken row
    with why (None: intact)."""

    rows: int
    unchained: int
    broken_seq: int | None = None
    reason: str | None = None

    @property
    def intact(self) -> bool:
        return self.broken_seq is None


def verify_chain(conn: Connection) -> ChainReport:
    """Walk the trail in ``seq`` order and check every chained row's hash against the row before it."""
    rows = unchained = 0
    prev: str | None = None  # None: the chain has not begun
    for record in conn.execute(f"SELECT {_COLUMNS}, row_hash FROM audit ORDER BY seq"):
        rows += 1
        seq, row, stored = record[0], cast(AuditRow, tuple(record[1:9])), record[9]
        if stored is None:
            if prev is not None:
                return ChainReport(rows, unchained, seq, "no row_hash after the chain began")
            unchained += 1
            continue
        expected = chain_hash(prev or GENESIS, seq, row)
        if stored != expected:
            return ChainReport(rows, unchained, seq, "row_hash does not match the row and the one before it")
        prev = stored
    return ChainReport(rows, unchained)


class AuditLog:
    def __init__(self, keys: KeyStore) -> None:
        self.db = keys.db

    def append(self, at: datetime, who: Principal | None, action: str, target: str | None, status: int | None,
               remote: str | None) -> None:
        self.append_rows([audit_row(at, who, action, target, status, remote)])

    def append_rows(self, rows: Sequence[AuditRow]) -> None:
        """Append ``rows`` (``audit_row``) in one transaction, in order: all of them or none."""

        def insert(conn: Connection) -> None:
            # The last row read inside this BEGIN IMMEDIATE transaction (on PostgreSQL: under the advisory lock
            # ``LOCK``, held to commit): no other writer (the CLI's process, another instance) can append between the
            # read and the insert, so the chain has one next row.
            last = conn.execute("SELECT seq, row_hash FROM audit ORDER BY seq DESC LIMIT 1").fetchone()
            seq, prev = (last[0], last[1] or GENESIS) if last is not None else (0, GENESIS)
            chained = []
            for row in rows:
                seq += 1
                prev = chain_hash(prev, seq, row)
                chained.append((seq, *row, prev))
            # Up to _ROWS_PER_INSERT rows per statement rather than ``executemany``: the sqlite3 module releases
            # and retakes the GIL around every statement step, and each retake waits for the busy event loop.
            for start in range(0, len(chained), _ROWS_PER_INSERT):
                chunk = chained[start:start + _ROWS_PER_INSERT]
                conn.execute(_INSERT + ", ".join([_ROW] * len(chunk)), [value for row in chunk for value in row])

        self.db.call_tx(insert, LOCK)

    def query(self, *, key_name: str | None = None, target: str | None = None, after: int = 0,
              limit: int = 200) -> list[AuditEntry]:
        """Entries after ``after``, oldest first; every entry submitted to this database's writer before the call
        is written first (not on the writer's own thread)."""
        writer = _WRITERS.get(self.db)
        wait_settled = writer() if writer is not None else None
        if wait_settled is not None:
            wait_settled()
        sql = "SELECT seq, at, key_id, key_name, role, action, target, status, remote FROM audit WHERE seq > ?"
        params: list[object] = [after]
        if key_name is not None:
            sql += " AND key_name = ?"
            params.append(key_name)
        if target is not None:
            sql += " AND target = ?"
            params.append(target)
        sql += " ORDER BY seq LIMIT ?"
        params.append(limit)
        return self.db.call_read(lambda conn: [AuditEntry(*r) for r in conn.execute(sql, params)])

    def verify(self) -> ChainReport:
        """``verify_chain`` over this database, after every entry submitted to its writer is written."""
        writer = _WRITERS.get(self.db)
        wait_settled = writer() if writer is not None else None
        if wait_settled is not None:
            wait_settled()
        return self.db.call_read(verify_chain)
