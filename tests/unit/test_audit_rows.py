"""``AuditLog.append_rows`` (the audit writer's group commit): many rows in one transaction, in order, all or none."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime

import pytest

from app.errors import StoreUnavailableError
from app.security.audit import AuditLog, audit_row
from app.security.keys import KeyStore, Principal

AT = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
WHO = Principal("k1", "board", frozenset({"clinician"}))


@pytest.fixture
def log(tmp_path):
    keys = KeyStore(tmp_path / "access.db")
    keys.open()
    try:
        yield AuditLog(keys)
    finally:
        keys.close()


@pytest.mark.parametrize("n", [1, 99, 100, 101, 250])
def test_rows_are_appended_in_order(log, n):
    rows = [audit_row(AT, WHO if i % 2 else None, "GET /v1/patients/{patient_id}/risk", f"patient:p{i}", 200,
                      "127.0.0.1") for i in range(n)]
    log.append_rows(rows)
    entries = log.query(limit=1000)
    assert [e.target for e in entries] == [f"patient:p{i}" for i in range(n)]
    assert [e.seq for e in entries] == list(range(1, n + 1))
    assert [(e.at, e.key_id, e.key_name, e.role, e.action, e.target, e.status, e.remote) for e in entries] == rows


def test_a_bad_row_fails_the_whole_batch(log):
    rows = [audit_row(AT, WHO, "GET /v1/patients", None, 200, None) for _ in range(150)]
    rows[120] = (*rows[120][:4], None, *rows[120][5:])  # action is NOT NULL, in the second statement
    with pytest.raises((sqlite3.IntegrityError, StoreUnavailableError)):
        log.append_rows(rows)
    assert log.query() == []


async def test_access_stamps_the_audit_with_its_wall_clock(tmp_path):
    from app.clock import FixedClock
    from app.security.access import Access
    from app.settings import Settings

    access = Access(Settings(data_dir=tmp_path), wall_clock=FixedClock(AT))
    access.open()
    try:
        await access.record(WHO, "GET /v1/patients", None, 200, "127.0.0.1")
        (entry,) = access.audit.query()
    finally:
        access.close()
    assert datetime.fromisoformat(entry.at) == AT
