"""Issue 21, finding 9: 401s were neither audited nor rate-limited. A refused credential is now an audit row (the
client's address, the request, the key's prefix hash, never the key), at most ``PER_ADDRESS_PER_MINUTE`` rows per
address and minute, the rest counted and written as one ``suppressed:N`` row."""

from __future__ import annotations

import hashlib
import sqlite3
from datetime import timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from app.clock import FixedClock
from app.security.audit_refusals import PER_ADDRESS_PER_MINUTE, RefusalAudit
from tests.support.api import NOW, bearer, serve

WRONG_KEY = "wt_" + "Z" * 43  # shaped like a key, never created
PREFIX = "key_sha256:" + hashlib.sha256(WRONG_KEY.encode()).hexdigest()[:8]


@pytest.fixture
def service(tmp_path: Path):
    with serve(tmp_path) as client:
        client.app.state.access.wall_clock = FixedClock(NOW)  # the audit's minutes, not the wall clock's
        yield client


def _refusals(client: TestClient) -> list:
    return [e for e in client.app.state.access.audit.query(limit=10_000) if e.status == 401]


def _as(client: TestClient, address: str, headers: dict[str, str] | None = None) -> TestClient:
    return TestClient(client.app, headers=headers or {}, client=(address, 40000))


def test_a_wrong_key_is_audited_with_its_prefix_hash_and_never_the_key(service, tmp_path):
    probe = _as(service, "10.9.8.7", bearer(WRONG_KEY))
    assert probe.get("/v1/patients").status_code == 401
    assert probe.post("/v1/readings", json=[]).status_code == 401  # refused before its body is read
    assert _as(service, "10.9.8.6").get("/v1/alerts").status_code == 401  # no key at all
    rows = _refusals(service)
    assert [(e.action, e.target, e.remote, e.key_id) for e in rows] == [
        ("GET /v1/patients", PREFIX, "10.9.8.7", None),
        ("POST /v1/readings", PREFIX, "10.9.8.7", None),
        ("GET /v1/alerts", None, "10.9.8.6", None),
    ]
    # the key itself is nowhere in the trail (any column), nor in the database's files
    with sqlite3.connect(tmp_path / "access.db") as conn:
        cells = [str(v) for row in conn.execute("SELECT * FROM audit") for v in row]
    assert not any(WRONG_KEY in c or WRONG_KEY[3:20] in c for c in cells)
    for path in tmp_path.glob("access.db*"):
        assert WRONG_KEY.encode() not in path.read_bytes()


def test_a_flood_of_401s_is_capped_per_address_and_counted(service):
    flood, other = _as(service, "10.6.6.6", bearer(WRONG_KEY)), _as(service, "10.1.1.1", bearer(WRONG_KEY))
    for _ in range(200):
        assert flood.get("/v1/patients").status_code == 401
    assert other.get("/v1/patients").status_code == 401  # another address still gets its row
    rows = _refusals(service)
    assert sum(e.remote == "10.6.6.6" for e in rows) == PER_ADDRESS_PER_MINUTE
    assert sum(e.remote == "10.1.1.1" for e in rows) == 1
    writer = service.app.state.access.audit_writer
    assert writer.refusals.suppressed == 200 - PER_ADDRESS_PER_MINUTE
    # a minute later the address's next 401 writes the count of what was suppressed, then itself
    service.app.state.access.wall_clock.advance(timedelta(minutes=1))
    assert flood.get("/v1/patients").status_code == 401
    later = _refusals(service)[len(rows):]
    assert [(e.action, e.target, e.remote) for e in later] == [
        ("401 suppressed", f"suppressed:{200 - PER_ADDRESS_PER_MINUTE}", "10.6.6.6"),
        ("GET /v1/patients", PREFIX, "10.6.6.6"),
    ]


def test_a_distributed_flood_is_capped_overall_and_the_addresses_held_are_bounded():
    overall = RefusalAudit(per_address=10, overall=25, max_addresses=1_000)
    assert sum(len(overall.rows(NOW, "GET /v1/patients", None, f"10.1.0.{i}")) for i in range(100)) == 25
    assert overall.suppressed == 75
    audit = RefusalAudit(per_address=10, overall=25, max_addresses=5)
    written = [row for i in range(100) for row in audit.rows(NOW, "GET /v1/patients", WRONG_KEY, f"10.0.0.{i}")]
    assert len(written) <= 25 and len(audit._windows) <= 5
    assert audit.suppressed == 100 - len(written)
    # the next minute: the unattributed count is written as one row, with no address
    later = audit.rows(NOW + timedelta(minutes=1), "GET /v1/patients", WRONG_KEY, "10.0.0.200")
    assert later[0][2:] == ("401 suppressed", f"suppressed:{100 - 5}", 401, None)
    assert sum(int(r[3].removeprefix("suppressed:")) for r in later if r[2] == "401 suppressed") + \
        len(written) == 100


def test_a_valid_key_is_not_recorded_as_a_refusal(service):
    assert service.get("/v1/patients").status_code == 200
    assert _refusals(service) == []


def test_reads_are_refused_while_the_audit_cannot_be_written_and_resume_after(tmp_path):
    """Fail closed, ``after_answer`` (rows written behind the answer): the audit store refusing writes (here a
    trigger, as a full disk would) turns audited reads into 503s until a probe row commits; the trail then says how
    many entries were lost. The default, ``before_answer``: tests/api/test_audit_before_answer.py."""
    with serve(tmp_path, audit_commit="after_answer") as service:
        _reads_refused_then_resumed(service, tmp_path)


def _reads_refused_then_resumed(service, tmp_path):
    writer = service.app.state.access.audit_writer
    with sqlite3.connect(tmp_path / "access.db", isolation_level=None) as conn:
        conn.execute("CREATE TRIGGER audit_full BEFORE INSERT ON audit BEGIN SELECT RAISE(ABORT, 'disk full'); END")
    assert service.get("/v1/patients").status_code == 200  # answered before its row failed: the one batch lost
    writer.wait_settled()
    assert writer.failing and writer.lost == 1
    refused = service.get("/v1/patients")
    assert refused.status_code == 503 and "audit" in refused.json()["detail"]
    assert refused.headers["Retry-After"]
    writer.wait_settled()  # its probe failed too: still closed
    assert service.get("/v1/patients/p1/risk").status_code == 503
    writer.wait_settled()  # its rows fail before the store comes back
    with sqlite3.connect(tmp_path / "access.db", isolation_level=None) as conn:
        conn.execute("DROP TRIGGER audit_full")
    assert service.get("/v1/patients").status_code == 503  # this one's probe commits
    writer.wait_settled()
    assert not writer.failing
    assert service.get("/v1/patients").status_code == 200
    entries = service.app.state.access.audit.query(limit=1000)
    probes = [e for e in entries if e.action == "AUDIT unwritable"]
    # lost: the served read's row and the rows of the first two 503s (the probes themselves are not counted)
    assert [p.target for p in probes] == ["lost:3"] and writer.lost == 0
    assert entries[-1].action == "GET /v1/patients" and entries[-1].status == 200


def test_a_websocket_with_a_wrong_first_message_key_is_audited(service):
    from starlette.websockets import WebSocketDisconnect

    probe = _as(service, "10.9.8.5")
    with pytest.raises(WebSocketDisconnect), probe.websocket_connect("/v1/ws/alerts") as ws:
        ws.send_json({"key": WRONG_KEY})
        ws.receive_json()
    assert [(e.action, e.target, e.remote) for e in _refusals(service)] == [("WS /v1/ws/alerts", PREFIX, "10.9.8.5")]
