"""``AuditWriter``: write-behind group commit on a thread of its own. ``submit`` returns before the commit, every
read of the trail (``AuditLog.query``) waits for what was submitted before it, ``record`` waits for its own
commit, a failed batch fails each of its entries, ``close`` writes what is pending. The writer's database calls
are held on events, never timed."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path

import pytest

from app.security.audit import AuditLog, AuditRow
from app.security.audit_writer import AuditWriter
from app.security.keys import KeyStore, Principal

AT = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
WHO = Principal("k1", "board", frozenset({"clinician"}))


class HeldLog(AuditLog):
    """An ``AuditLog`` whose batches wait for ``release`` (set: never wait) and can be made to fail."""

    def __init__(self, keys: KeyStore) -> None:
        super().__init__(keys)
        self.release = threading.Event()
        self.entered = threading.Event()
        self.batches: list[int] = []
        self.fail = False

    def append_rows(self, rows: Sequence[AuditRow]) -> None:
        self.entered.set()
        self.release.wait()
        self.batches.append(len(rows))
        if self.fail:
            raise OSError("disk full")
        super().append_rows(rows)


@pytest.fixture
def keys(tmp_path: Path) -> Iterator[KeyStore]:
    store = KeyStore(tmp_path / "access.db")
    store.open()
    yield store
    store.close()


def _submit(writer: AuditWriter, n: int, start: int = 0) -> None:
    for i in range(start, start + n):
        writer.submit(AT, WHO, "GET /v1/patients/{patient_id}/risk", f"patient:p{i}", 200, "127.0.0.1")


def test_submit_returns_before_the_commit_and_a_read_waits_for_it(keys):
    log = HeldLog(keys)
    writer = AuditWriter(log)
    _submit(writer, 1)
    assert log.entered.wait(30)  # the thread holds the first batch, uncommitted
    _submit(writer, 3, start=1)  # returns at once: the commit is not waited for
    assert log.batches == []
    seen: list[list[str | None]] = []
    reader = threading.Thread(target=lambda: seen.append([e.target for e in AuditLog(keys).query()]))
    reader.start()  # a read of the trail by another AuditLog on the same database
    log.release.set()
    reader.join(30)
    assert seen == [[f"patient:p{i}" for i in range(4)]]
    assert log.batches == [1, 3] and writer.commits == 2  # the three waiting entries shared one transaction
    writer.close()


async def test_record_returns_once_its_entry_is_committed(keys):
    log = HeldLog(keys)
    writer = AuditWriter(log)
    recording = asyncio.ensure_future(writer.record(AT, WHO, "GET /v1/alerts", None, 200, None))
    await asyncio.to_thread(log.entered.wait, 30)
    assert not recording.done()
    log.release.set()
    await recording
    assert [e.action for e in AuditLog(keys).query()] == ["GET /v1/alerts"]
    writer.close()


async def test_a_failed_batch_fails_each_recorder_and_is_logged_once(keys, caplog):
    log = HeldLog(keys)
    log.fail = True
    log.release.set()
    writer = AuditWriter(log)
    with pytest.raises(OSError, match="disk full"):
        await writer.record(AT, WHO, "GET /v1/alerts", None, 200, None)
    _submit(writer, 2)
    assert AuditLog(keys).query() == []  # settled (failed): the read does not wait for ever
    assert sum("audit entries not written" in r.message for r in caplog.records) == 2  # one per failed batch
    log.fail = False
    _submit(writer, 1, start=7)
    assert [e.target for e in AuditLog(keys).query()] == ["patient:p7"]
    writer.close()


def test_close_writes_what_is_pending_and_a_later_submit_starts_again(keys):
    log = HeldLog(keys)
    writer = AuditWriter(log)
    _submit(writer, 2)
    assert log.entered.wait(30)
    closing = threading.Thread(target=writer.close)
    closing.start()
    log.release.set()
    closing.join(30)
    assert not closing.is_alive() and [e.target for e in log.query()] == ["patient:p0", "patient:p1"]
    _submit(writer, 1, start=2)
    assert [e.target for e in log.query()][-1] == "patient:p2"
    writer.close()


def test_an_audited_request_ends_before_its_entry_is_committed(tmp_path):
    """``after_answer``: the edge hands the entry over and the request ends: the answer is not held for the commit
    (which kept each request's objects alive and cost the hot reads more than the read itself, BENCHMARKS.md). The
    default, ``before_answer``, holds it: tests/api/test_audit_before_answer.py."""
    from tests.support.api import SICK, serve

    with serve(tmp_path, audit_commit="after_answer") as client:
        access = client.app.state.access  # type: ignore[attr-defined]
        held = HeldLog(access.keys)
        access.audit_writer.log = held  # its batches now wait for ``held.release``
        response = client.get(f"/v1/patients/{SICK}/risk/history")
        assert response.status_code == 404  # answered, the app's call returned, and nothing is committed yet
        assert held.entered.wait(30) and held.batches == []
        held.release.set()
        (entry,) = [e for e in AuditLog(access.keys).query() if e.action.endswith("/risk/history")]
        assert (entry.target, entry.status) == (f"patient:{SICK}", 404)
