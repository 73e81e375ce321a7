"""The audit trail: who did what, to what, when, from where. Append-only (SQLite triggers refuse UPDATE and
DELETE), shared ``access.db`` with the keys; read by admins through ``GET /v1/audit``."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from app.security.keys import KeyStore, Principal
from app.storage.sqlite_db import SqliteDatabase


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


_INSERT = "INSERT INTO audit (at, key_id, key_name, role, action, target, status, remote) VALUES "
_ROW = "(?, ?, ?, ?, ?, ?, ?, ?)"
_ROWS_PER_INSERT = 100  # 800 parameters, far below SQLite's limit (32,766)


class AuditLog:
    def __init__(self, keys: KeyStore) -> None:
        self.db = keys.db

    def append(self, at: datetime, who: Principal | None, action: str, target: str | None, status: int | None,
               remote: str | None) -> None:
        self.append_rows([audit_row(at, who, action, target, status, remote)])

    def append_rows(self, rows: Sequence[AuditRow]) -> None:
        """Append ``rows`` (``audit_row``) in one transaction, in order: all of them or none."""

        def insert(conn: sqlite3.Connection) -> None:
            # Up to _ROWS_PER_INSERT rows per statement rather than ``executemany``: the sqlite3 module releases
            # and retakes the GIL around every statement step, and each retake waits for the busy event loop.
            for start in range(0, len(rows), _ROWS_PER_INSERT):
                chunk = rows[start:start + _ROWS_PER_INSERT]
                conn.execute(_INSERT + ", ".join([_ROW] * len(chunk)), [value for row in chunk for value in row])

        self.db.call(lambda conn: SqliteDatabase.transaction(conn, insert))

    def query(self, *, key_name: str | None = None, target: str | None = None, after: int = 0,
              limit: int = 200) -> list[AuditEntry]:
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
