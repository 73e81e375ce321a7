"""The verified-key cache (``KeyStore.lookup``): a hit does not read ``api_keys``, and any change to a key, made by
another connection (another process's ``wardtwin keys``, an admin over HTTP, the ``sqlite3`` shell), is seen by the
very next lookup. Commits that touch no key (the audit trail) keep the cache."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime

import pytest

from app.security.audit import AuditLog
from app.security.keys import KeyStore, Principal
from lab.cli import main

AT = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)


@pytest.fixture(params=["wal-index", "data_version"])
def stores(tmp_path, request):
    """The service's store (reads cached) and a second one on the same file, as another process has it. Each test
    runs with the WAL-index watch and without it (only ``PRAGMA data_version`` and the generation counter)."""
    service, other = KeyStore(tmp_path / "access.db"), KeyStore(tmp_path / "access.db")
    service.open()
    other.open()
    if request.param == "data_version":
        service._watch.close()
        service._watch = None
    try:
        yield service, other
    finally:
        other.close()
        service.close()


def test_a_hit_does_not_read_the_key_table(stores):
    service, other = stores
    key, token = other.create("board", "clinician", AT)
    first = service.lookup(token)
    assert first == Principal(key.id, "board", frozenset({"clinician"}))
    reads = service.database_reads
    for _ in range(5):
        assert service.lookup(token) == first
    assert service.database_reads == reads


def test_a_revocation_by_another_connection_bites_on_the_next_lookup(stores):
    service, other = stores
    key, token = other.create("board", "clinician", AT)
    _, kept = other.create("records", "ehr", AT)
    assert service.lookup(token) is not None and service.lookup(kept) is not None
    other.revoke(key.id, AT)
    assert service.lookup(token) is None
    assert service.lookup(kept) is not None and service.lookup(token) is None


def test_a_revocation_from_the_cli_bites_on_the_next_lookup(stores, tmp_path, capsys):
    service, _ = stores
    assert main(["keys", "create", "--role", "ehr", "--name", "records", "--data-dir", str(tmp_path)]) == 0
    token = capsys.readouterr().out.splitlines()[1]
    who = service.lookup(token)
    assert who is not None and service.lookup(token) == who
    assert main(["keys", "revoke", who.key_id, "--data-dir", str(tmp_path)]) == 0
    assert service.lookup(token) is None


@pytest.mark.parametrize(("statement", "roles"), [
    ("UPDATE api_keys SET revoked_at = '2026-03-02T12:00:00+00:00'", None),
    ("UPDATE api_keys SET role = 'device'", {"device"}),
    ("DELETE FROM api_keys", None),
])
def test_a_change_made_by_hand_bites_on_the_next_lookup(stores, tmp_path, statement, roles):
    service, other = stores
    _, token = other.create("board", "clinician", AT)
    assert service.lookup(token).roles == {"clinician"}
    conn = sqlite3.connect(tmp_path / "access.db")
    with conn:
        conn.execute(statement)
    conn.close()
    who = service.lookup(token)
    assert (who.roles if who else None) == roles


def test_the_database_is_asked_only_after_a_commit(tmp_path):
    """With the WAL-index watch, a hit while nothing was committed asks SQLite nothing; any commit (here an audit
    entry, by another connection) makes the next lookup check, and the check keeps the cache."""
    service, other = KeyStore(tmp_path / "access.db"), KeyStore(tmp_path / "access.db")
    service.open()
    other.open()
    try:
        assert service._watch is not None
        _, token = other.create("board", "clinician", AT)
        who = service.lookup(token)
        checks, reads = service.checks, service.database_reads
        for _ in range(5):
            assert service.lookup(token) == who
        assert (service.checks, service.database_reads) == (checks, reads)
        AuditLog(other).append(AT, who, "GET /v1/patients", None, 200, "127.0.0.1")
        assert service.lookup(token) == who and service.lookup(token) == who
        assert (service.checks, service.database_reads) == (checks + 1, reads)
    finally:
        other.close()
        service.close()


def test_audit_commits_keep_the_cache(stores):
    service, other = stores
    _, token = other.create("board", "clinician", AT)
    who = service.lookup(token)
    reads = service.database_reads
    for _ in range(3):
        AuditLog(other).append(AT, who, "GET /v1/patients", None, 200, "127.0.0.1")
        assert service.lookup(token) == who
    assert service.database_reads == reads


def test_unknown_tokens_are_not_cached(stores):
    service, other = stores
    for _ in range(3):
        assert service.lookup("wt_not-a-key") is None
    assert service.database_reads == 3
    _, token = other.create("board", "clinician", AT)
    assert service.lookup(token) is not None


def test_a_key_created_after_a_miss_is_found(stores):
    service, other = stores
    _, first = other.create("a", "ehr", AT)
    assert service.lookup(first) is not None
    _, second = other.create("b", "ehr", AT)
    assert service.lookup(second) is not None and service.lookup(first) is not None


def test_a_reopened_store_starts_afresh(tmp_path):
    """A reopened store's new reader connection counts ``data_version`` from its own start: the cache is not
    trusted across it."""
    store, other = KeyStore(tmp_path / "access.db"), KeyStore(tmp_path / "access.db")
    other.open()
    store.open()
    key, token = other.create("board", "clinician", AT)
    assert store.lookup(token) is not None
    store.close()
    other.revoke(key.id, AT)
    store.open()
    try:
        assert store.lookup(token) is None
    finally:
        store.close()
        other.close()
