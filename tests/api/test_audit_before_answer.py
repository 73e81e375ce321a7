"""Issue 21, finding 9, per read: with ``Settings.audit_commit = "before_answer"`` an audited answer is sent only
once its audit row is committed; a read whose row cannot be committed is answered 503 without its data (under
``after_answer``, the default, it was served unaudited: ``test_probe_audit.py``). The trail is read straight from
``access.db`` (no helper that waits for the writer), and at the instant the answer starts, by a wrapper around the
app's ``send``."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from starlette.types import Message, Receive, Scope, Send

from app.clock import FixedClock
from tests.support.api import EVERY_ROLE_KEY, NOW, bearer, serve
from tests.support.wait import wait_until


@pytest.fixture
def strict(tmp_path: Path) -> Iterator[TestClient]:
    with serve(tmp_path, FixedClock(NOW), audit_commit="before_answer") as client:
        yield client


def _rows(data_dir: Path) -> list[tuple[str, str | None, int | None]]:
    """The trail as committed now: (action, target, status), in order. No waiting for the writer."""
    with sqlite3.connect(data_dir / "access.db") as conn:
        return conn.execute("SELECT action, target, status FROM audit ORDER BY seq").fetchall()


def _unwritable(data_dir: Path, on: bool) -> None:
    """The audit store refusing every insert (as a full disk would), or writable again."""
    with sqlite3.connect(data_dir / "access.db", isolation_level=None) as conn:
        conn.execute("CREATE TRIGGER audit_full BEFORE INSERT ON audit BEGIN SELECT RAISE(ABORT, 'disk full'); END"
                     if on else "DROP TRIGGER audit_full")


def test_a_read_whose_row_cannot_be_committed_is_refused_and_the_next_is_served(strict, tmp_path):
    writer = strict.app.state.access.audit_writer
    _unwritable(tmp_path, True)
    refused = strict.get("/v1/patients")
    assert refused.status_code == 503 and refused.headers["content-type"] == "application/problem+json"
    assert refused.headers["Retry-After"] and refused.headers["X-Frame-Options"] == "DENY"
    body = refused.json()
    assert body["code"] == "store_unavailable" and "audit" in body["detail"]
    assert set(body) == {"type", "title", "status", "detail", "code"}  # the problem only, none of the data
    assert writer.failing and writer.lost == 1  # the breaker trips as under after_answer
    assert strict.get("/v1/patients/p1/risk").status_code == 503  # its row and its probe fail: still refused
    assert writer.lost == 2
    _unwritable(tmp_path, False)
    served = strict.get("/v1/patients")  # the first read once the trail can be written: its probe, then its row
    assert served.status_code == 200 and isinstance(served.json(), list)
    assert not writer.failing and writer.lost == 0
    # the trail, as committed when the answer came: the two refused reads are counted, the served one is there
    assert _rows(tmp_path)[-2:] == [("AUDIT unwritable", "lost:2", None), ("GET /v1/patients", None, 200)]


class _Watched:
    """The app, with the trail read at the instant each answer starts (before the client can see it)."""

    def __init__(self, app, data_dir: Path) -> None:
        self.app, self.data_dir = app, data_dir
        self.seen: dict[str, tuple[int, list[tuple[str, str | None, int | None]]]] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def watched(message: Message) -> None:
            if message["type"] == "http.response.start":
                self.seen[scope["path"]] = (message["status"], _rows(self.data_dir))
            await send(message)

        await self.app(scope, receive, watched)


def test_each_answer_starts_after_its_row_is_committed_and_concurrent_reads_share_a_commit(strict, tmp_path,
                                                                                           monkeypatch):
    writer = strict.app.state.access.audit_writer
    log = writer.log
    release, batches = threading.Event(), []
    real = log.append_rows

    def held(rows: Sequence) -> None:  # the first batch waits until every read has handed its row over
        batches.append(len(rows))
        if len(batches) == 1:
            assert release.wait(120), "never released"
        real(rows)

    monkeypatch.setattr(log, "append_rows", held)
    watched = _Watched(strict.app, tmp_path)
    client = TestClient(watched, headers=bearer(EVERY_ROLE_KEY))  # the lifespan is strict's
    paths = ["/v1/patients", *(f"/v1/patients/p{i}/risk" for i in range(7))]  # 200, and 404s (no such patient)
    submitted = writer._submitted
    with ThreadPoolExecutor(len(paths)) as pool:
        answers = pool.map(client.get, paths)
        try:
            wait_until(lambda: writer._submitted - submitted >= len(paths), "every read's row handed over")
        finally:
            release.set()
        statuses = {path: answer.status_code for path, answer in zip(paths, answers, strict=True)}
    assert statuses == {p: 200 if p == "/v1/patients" else 404 for p in paths}
    for path in paths:
        sent, trail = watched.seen[path]
        target = None if path == "/v1/patients" else f"patient:{path.split('/')[3]}"
        action = "GET /v1/patients" if target is None else "GET /v1/patients/{patient_id}/risk"
        assert (action, target, sent) in trail, f"{path}: no row with its status when its answer started"
    assert sum(batches) == len(paths) and len(batches) <= 2  # group commit: 8 reads, at most 2 transactions
    # and read right after the answers, without waiting for the writer: every row is there
    assert len([r for r in _rows(tmp_path) if r[0].startswith("GET /v1/patients")]) == len(paths)

