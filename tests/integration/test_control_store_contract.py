"""One control-store contract, two engines (issue 24): every test runs on the embedded SQLite file and on a real
PostgreSQL server (``tests/support/postgres.py``: a session cluster, a fresh database per test)."""

from __future__ import annotations

import asyncio
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from app.alerts.store import SCHEMA, AlertStore
from app.alerts.webhooks import WebhookStore, WebhookWorker
from app.errors import (
    AlertConflictError,
    AlertNotFoundError,
    DeliveryConflictError,
    KeyNotFoundError,
    StoreUnavailableError,
    WebhookNotFoundError,
)
from app.security.audit import AuditLog, audit_row
from app.security.keys import KeyStore, LastAdminKeyError, Principal
from app.storage.control import open_control_db
from app.storage.migrations import Schema
from app.storage.postgres_db import PostgresDatabase
from app.storage.postgres_local import ManagedPostgres
from tests.support.postgres import find_postgres

T0 = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
ENGINES = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


@pytest.fixture(params=ENGINES)
def target(request: pytest.FixtureRequest, tmp_path: Path) -> Path | str:
    """Where the control state lives: a SQLite file, or a fresh PostgreSQL database's URL."""
    if request.param == "sqlite":
        return tmp_path / "alerts.db"
    return request.getfixturevalue("postgres_dsn")


@pytest.fixture
async def store(target: Path | str):
    store = AlertStore(target)
    await store.open()
    yield store
    await store.close()


async def raise_one(store: AlertStore, patient: str = "bed-01", kind: str = "news2", at: datetime = T0,
                    risk: float = 0.8):
    return await store.raise_alert(patient, at, risk, [f"NEWS2 7 at {at:%H:%M}"], at, kind=kind,
                                   news2={"total": 7} if kind == "news2" else None)


# -- the lifecycle ---------------------------------------------------------------------------------------------------
async def test_raise_ack_escalate_resolve_with_transitions_and_outbox(store: AlertStore) -> None:
    alert = await raise_one(store)
    assert alert is not None and alert.state == "raised" and alert.delivery_pending
    assert alert.news2 == {"total": 7} and alert.reasons == ["NEWS2 7 at 12:00"] and alert.risk == 0.8
    escalated = await store.escalate(alert.id, T0 + timedelta(minutes=15))
    assert escalated.state == "escalated" and escalated.escalated_at == (T0 + timedelta(minutes=15)).isoformat()
    acked = await store.acknowledge(alert.id, "S. Patel", T0 + timedelta(minutes=16), note="seen")
    assert acked.state == "acknowledged" and acked.acknowledged_by == "S. Patel"
    with pytest.raises(AlertConflictError):
        await store.escalate(alert.id, T0 + timedelta(minutes=20))
    resolved = await store.resolve(alert.id, T0 + timedelta(minutes=30), "news2 below trigger")
    assert resolved.state == "resolved" and resolved.resolved_reason == "news2 below trigger"
    with pytest.raises(AlertNotFoundError):
        await store.acknowledge("nope", "x", T0)
    moves = [(t["from_state"], t["to_state"], t["event"], t["actor"]) for t in await store.transitions(alert.id)]
    assert moves == [(None, "raised", "raised", "engine"), ("raised", "escalated", "escalated", "engine"),
                     ("escalated", "acknowledged", "acknowledged", "S. Patel"),
                     ("acknowledged", "resolved", "resolved", "engine")]
    assert (await store.transitions(alert.id))[2]["note"] == "seen"
    events = await store.events_after(0)
    assert [e.event for e in events] == ["raised", "escalated", "acknowledged", "resolved"]
    assert [e.seq for e in events] == sorted(e.seq for e in events) and len({e.seq for e in events}) == 4
    assert events[-1].payload["alert"]["state"] == "resolved" and events[0].payload["alert"]["kind"] == "news2"
    assert await store.open_alerts() == {}


async def test_one_open_alert_per_patient_and_kind(store: AlertStore) -> None:
    first = await raise_one(store)
    assert first is not None
    # a later window, same patient and kind, while the first is open: refused by the database's partial unique index
    assert await raise_one(store, at=T0 + timedelta(minutes=5)) is None
    assert await raise_one(store) is None  # the same window again (a cycle rerun)
    other_kind = await raise_one(store, kind="twin", at=T0 + timedelta(minutes=5))
    assert other_kind is not None
    await store.resolve(first.id, T0 + timedelta(minutes=10), "cleared")
    assert await raise_one(store, at=T0 + timedelta(minutes=15)) is not None  # once resolved, a new one may open
    assert set(await store.open_by_kind()) == {("bed-01", "news2"), ("bed-01", "twin")}


async def test_concurrent_raises_from_two_stores_exactly_one_wins(target: Path | str) -> None:
    """Two stores on one database (two instances), racing to raise the same patient's alert of one kind for
    different windows: the database lets exactly one in, every time."""
    one, two = AlertStore(target), AlertStore(target)
    await one.open()
    await two.open()
    try:
        for n in range(8):
            patient = f"bed-{n:02d}"
            results = await asyncio.gather(raise_one(one, patient, at=T0), raise_one(two, patient, at=T0 + timedelta(
                minutes=5)))
            assert sum(r is not None for r in results) == 1, results
        assert len(await one.open_by_kind()) == 8
        raised = [e for e in await two.events_after(0) if e.event == "raised"]
        assert len(raised) == 8
    finally:
        await one.close()
        await two.close()


def test_the_database_itself_refuses_a_second_open_alert(target: Path | str) -> None:
    """Not the store's code: a plain INSERT of a second open alert of a kind fails on either engine."""
    db = open_control_db(target, SCHEMA)
    db.open()
    try:
        row = "INSERT INTO alerts (id, patient_id, window_end, raised_at, risk, reasons, state, updated_at, kind) " \
              "VALUES (?, 'p', 'w', 'r', 0.5, '[]', ?, 'u', 'twin')"
        db.call(lambda c: c.execute(row, ("a1", "raised")))
        db.call(lambda c: c.execute(row, ("a0", "resolved")))  # a closed one beside it is fine
        with pytest.raises(Exception, match=r"(?i)unique"):
            db.call(lambda c: c.execute(row, ("a2", "acknowledged")))
    finally:
        db.close()


# -- the outbox --------------------------------------------------------------------------------------------------
async def test_outbox_order_events_after_and_delivery_confirmation(store: AlertStore) -> None:
    alerts = [await raise_one(store, f"bed-{n}") for n in range(3)]
    assert all(alerts)
    seqs = [e.seq for e in await store.events_after(0)]
    assert seqs == sorted(seqs) and await store.last_seq() == seqs[-1]
    assert [e.seq for e in await store.events_after(seqs[0])] == seqs[1:]
    assert [e.seq for e in await store.events_after(0, limit=2)] == seqs[:2]
    assert await store.backlog() == 3 and await store.pending_delivery() == 3
    assert await store.first_pending_seq() == seqs[0]
    delivered = await store.confirm_delivery(seqs[:2], T0 + timedelta(minutes=1), "websocket:c1")
    assert sorted(delivered) == sorted(a.id for a in alerts[:2])  # type: ignore[union-attr]
    # confirmed again by another subscriber: the first confirmation wins, no second "delivered" event
    assert await store.confirm_delivery(seqs[:2], T0 + timedelta(minutes=2), "webhook:ep_1") == []
    assert (await store.get(alerts[0].id)).state == "delivered"  # type: ignore[union-attr]
    assert await store.pending_delivery() == 1
    after = [e.event for e in await store.events_after(seqs[-1])]
    assert after == ["delivered", "delivered"]
    assert next(e.seq for e in await store.pending_events()) == seqs[2]


async def test_two_instances_confirming_one_event_at_once_deliver_it_once(target: Path | str) -> None:
    """A WebSocket client on one instance and a webhook on another confirm the same events at the same moment: each
    alert becomes delivered once, with one ``delivered`` event and one transition."""
    one, two = AlertStore(target), AlertStore(target)
    await one.open()
    await two.open()
    try:
        alerts = [await raise_one(one, f"bed-{n}") for n in range(10)]
        seqs = [e.seq for e in await one.events_after(0)]
        for seq in seqs:
            first, second = await asyncio.gather(one.confirm_delivery([seq], T0, "websocket:c1"),
                                                 two.confirm_delivery([seq], T0, "webhook:ep_1"))
            assert len(first) + len(second) == 1
        delivered = [e for e in await two.events_after(seqs[-1]) if e.event == "delivered"]
        assert sorted(e.alert_id for e in delivered) == sorted(a.id for a in alerts)  # type: ignore[union-attr]
        for alert in alerts:
            moves = [t["event"] for t in await one.transitions(alert.id)]  # type: ignore[union-attr]
            assert moves == ["raised", "delivered"]
    finally:
        await one.close()
        await two.close()


async def test_concurrent_writers_leave_no_gap_behind_a_seen_seq(target: Path | str) -> None:
    """Outbox seqs from two instances writing at once: read as they commit, the seqs never go back (a reader at seq
    N never later finds a smaller seq: the ``?since=`` resume and the webhook cursors rely on it)."""
    one, two = AlertStore(target), AlertStore(target)
    await one.open()
    await two.open()
    seen: list[int] = []
    stop = asyncio.Event()

    async def reader() -> None:
        cursor = 0
        while True:
            done = stop.is_set()
            for event in await one.events_after(cursor):
                assert event.seq > cursor
                seen.append(event.seq)
                cursor = event.seq
            if done:
                return

    async def writer(store: AlertStore, prefix: str) -> None:
        for n in range(15):
            await raise_one(store, f"{prefix}-{n}")

    try:
        task = asyncio.create_task(reader())
        await asyncio.gather(writer(one, "a"), writer(two, "b"))
        stop.set()
        await task
        every = [e.seq for e in await two.events_after(0)]
        assert len(every) == 30 and seen == every
    finally:
        await one.close()
        await two.close()


# -- the alert clock, streaks, last met ----------------------------------------------------------------------------
async def test_claim_window_only_at_or_after_the_newest(store: AlertStore) -> None:
    assert await store.newest_window_end() is None
    assert await store.claim_window(T0)
    assert await store.claim_window(T0)  # the same window again (a rerun)
    assert await store.claim_window(T0 + timedelta(minutes=5))
    assert not await store.claim_window(T0)  # a past window leaves alert state alone
    assert await store.newest_window_end() == T0 + timedelta(minutes=5)
    # written while the clock ran ahead: the claim replaces it once the clock is back (issue 21)
    assert await store.claim_window(T0 + timedelta(days=1))
    assert await store.claim_window(T0 + timedelta(minutes=10), now=T0 + timedelta(minutes=10))
    assert await store.newest_window_end() == T0 + timedelta(minutes=10)


async def test_streaks_and_last_met(store: AlertStore) -> None:
    await store.save_streaks({("bed-1", "twin"): (T0, T0 + timedelta(minutes=5)), ("bed-2", "obs_due"): (T0, T0)})
    await store.save_streaks({("bed-2", "obs_due"): None, ("bed-1", "twin"): (T0, T0 + timedelta(minutes=10))})
    assert await store.streaks() == {("bed-1", "twin"): (T0, T0 + timedelta(minutes=10))}
    alert = await raise_one(store)
    assert alert is not None
    await store.mark_met([(alert.id, T0 + timedelta(minutes=10))])
    await store.mark_met([(alert.id, T0 + timedelta(minutes=5))])  # an older window never moves it back
    assert await store.last_met() == {alert.id: T0 + timedelta(minutes=10)}


async def test_renotify_and_regrade(store: AlertStore) -> None:
    alert = await raise_one(store)
    assert alert is not None
    again = await store.renotify(alert.id, T0 + timedelta(minutes=10))
    assert again is not None and again.renotifications == 1
    regraded = await store.regrade(alert.id, ["NEWS2 9"], {"total": 9}, T0 + timedelta(minutes=12), "engine")
    assert regraded.state == "escalated" and regraded.news2 == {"total": 9} and regraded.delivered_at is None
    await store.acknowledge(alert.id, "nurse", T0 + timedelta(minutes=13))
    assert await store.renotify(alert.id, T0 + timedelta(minutes=20)) is None
    assert [e.event for e in await store.events_after(0)] == ["raised", "renotified", "escalated", "acknowledged"]


# -- migrations ----------------------------------------------------------------------------------------------------
async def test_migrations_applied_once_and_a_newer_schema_refused(target: Path | str) -> None:
    store = AlertStore(target)
    await store.open()
    version = SCHEMA.postgres_version if isinstance(target, str) else SCHEMA.version
    row = await store.db.run(lambda c: c.execute("SELECT version FROM schema_versions WHERE name = 'alerts'")
                             .fetchone())
    assert row[0] == version
    await store.db.run(lambda c: c.execute("UPDATE schema_versions SET version = ? WHERE name = 'alerts'",
                                           (version + 1,)))
    await store.close()
    with pytest.raises(StoreUnavailableError, match="newer than this code"):
        await AlertStore(target).open()


async def test_a_second_schema_joins_the_database_with_its_own_version(store: AlertStore) -> None:
    extra = Schema("contract_extra", ("CREATE TABLE IF NOT EXISTS contract_extra (k TEXT PRIMARY KEY);",),
                   postgres=("CREATE TABLE contract_extra (k TEXT PRIMARY KEY);",))
    assert await store.db.migrate(extra) == 1
    assert await store.db.migrate(extra) == 0  # applied once
    await store.db.run(lambda c: c.execute("INSERT INTO contract_extra (k) VALUES (?)", ("x",)))


async def test_health_names_the_engine(store: AlertStore, target: Path | str) -> None:
    health = await store.db.health()
    assert health["ok"] is True and health["engine"] == ("postgresql" if isinstance(target, str) else "sqlite")


def test_two_instances_starting_at_once_migrate_once(target: Path | str) -> None:
    """Several open (and migrate) at the same moment: no error, one schema.

    Six, not two: SQLite's switch of a new file to WAL refused one of three now and then (``database is locked``, no
    busy wait); ``bench/bench_sqlite_open_race.py`` counts it with eight (reports/sqlite-open-race).
    """
    dbs = [open_control_db(target, SCHEMA) for _ in range(6)]
    errors: list[BaseException] = []
    barrier = threading.Barrier(len(dbs))

    def start(db) -> None:
        barrier.wait()
        try:
            db.open()
        except BaseException as exc:  # collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=start, args=(db,)) for db in dbs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    try:
        assert errors == []
    finally:
        for db in dbs:
            db.close()


# -- webhook endpoints, deliveries and claims ------------------------------------------------------------------------
SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
EVENTS = ["alert.raised", "alert.escalated", "alert.acknowledged", "alert.resolved"]


async def instance(target: Path | str, wall: float = 1_000.0) -> tuple[AlertStore, WebhookStore]:
    """One instance's alert and webhook stores on the shared database."""
    alerts = AlertStore(target)
    await alerts.open()
    hooks = WebhookStore(alerts.db, wall=lambda: wall)
    await hooks.open()
    return alerts, hooks


async def test_endpoints_fan_out_and_delivery_outcomes(target: Path | str) -> None:
    alerts, hooks = await instance(target)
    try:
        await raise_one(alerts, "before")  # raised before the endpoint existed: not sent to it
        endpoint = await hooks.create("http://receiver/hook", SECRET, ["alert.raised"])
        assert endpoint.cursor == await alerts.last_seq()
        first, second = await raise_one(alerts, "bed-1"), await raise_one(alerts, "bed-2")
        await alerts.acknowledge(first.id, "nurse", T0)  # type: ignore[union-attr]  # not subscribed: not copied
        assert await hooks.fan_out() == 2 and await hooks.fan_out() == 0
        due = await hooks.due(1_000.0)
        assert [d.alert_id for d, *_ in due] == [first.id, second.id]  # type: ignore[union-attr]
        assert [url for _, url, _, _ in due] == ["http://receiver/hook"] * 2
        one, two = (d for d, *_ in due)
        await hooks.succeeded(one.id, 204)
        await hooks.failed(two.id, 500, "HTTP 500", None)  # the budget spent: dead-lettered
        assert (await hooks.get(one.id)).status == "delivered" and (await hooks.get(two.id)).status == "dead"
        assert (await hooks.counts())[endpoint.id] == {"delivered": 1, "dead": 1}
        again = await hooks.redeliver(two.id)
        assert again.status == "pending" and again.attempts == 0
        with pytest.raises(DeliveryConflictError):
            await hooks.redeliver(one.id)
        await hooks.delete(endpoint.id)
        assert await hooks.endpoints() == [] and (await hooks.get(two.id)).status == "cancelled"
        with pytest.raises(WebhookNotFoundError):
            await hooks.delete(endpoint.id)
    finally:
        await alerts.close()


async def test_a_claimed_delivery_is_no_other_workers_until_its_lease_ends(target: Path | str) -> None:
    alerts, hooks = await instance(target)
    try:
        await hooks.create("http://receiver/hook", SECRET, EVENTS)
        for n in range(4):
            await raise_one(alerts, f"bed-{n}")
        await hooks.fan_out()
        assert len(await hooks.claim_pending("c", 1_000.0, lease_s=60, per_endpoint=2)) == 2  # one endpoint: 2 of 4
        await hooks.release("c", [d.id for d, *_ in await hooks.due(1_000.0)])
        mine = await hooks.claim_pending("a", 1_000.0, limit=3, lease_s=60)
        assert len(mine) == 3
        rest = await hooks.claim_pending("b", 1_000.0, lease_s=60)
        assert len(rest) == 1 and {d.id for d, *_ in rest}.isdisjoint(d.id for d, *_ in mine)
        assert await hooks.claim_pending("b", 1_059.0) == []  # every one claimed, none expired
        await hooks.succeeded(mine[0][0].id, 200)  # an outcome clears the claim
        await hooks.failed(mine[1][0].id, 503, "HTTP 503", 1_010.0)  # retried later, by anyone
        await hooks.release("a", [mine[2][0].id])
        again = await hooks.claim_pending("b", 1_010.0, lease_s=60)
        assert {d.id for d, *_ in again} == {mine[1][0].id, mine[2][0].id}
        # worker b died holding them: once the lease is over, a takes them
        assert {d.id for d, *_ in await hooks.claim_pending("a", 1_070.0)} == {d.id for d, *_ in again + rest}
    finally:
        await alerts.close()


async def test_two_instances_claiming_at_once_take_disjoint_deliveries(target: Path | str) -> None:
    (a_alerts, a_hooks), (b_alerts, b_hooks) = await instance(target), await instance(target)
    try:
        await a_hooks.create("http://receiver/hook", SECRET, EVENTS)
        for n in range(40):
            await raise_one(a_alerts, f"bed-{n}")
        await asyncio.gather(a_hooks.fan_out(), b_hooks.fan_out())  # both copy: each event once per endpoint
        assert sum((await a_hooks.counts()).popitem()[1].values()) == 40
        claimed: list[list[str]] = [[], []]
        for _ in range(10):
            got = await asyncio.gather(a_hooks.claim_pending("a", 1_000.0, limit=3),
                                       b_hooks.claim_pending("b", 1_000.0, limit=3))
            for mine, rows in zip(claimed, got, strict=True):
                mine.extend(d.id for d, *_ in rows)
        assert set(claimed[0]).isdisjoint(claimed[1])
        assert len(claimed[0]) + len(claimed[1]) == 40 and len(set(claimed[0] + claimed[1])) == 40
    finally:
        await a_alerts.close()
        await b_alerts.close()


async def test_two_workers_deliver_every_event_exactly_once(target: Path | str) -> None:
    """Two instances' webhook workers drain one outbox at once: every delivery POSTed once, every alert delivered."""
    received: list[str] = []
    gate = asyncio.Event()

    async def receive(request: httpx.Request) -> httpx.Response:
        await gate.wait()  # hold the first attempts, so both workers are busy claiming meanwhile
        received.append(request.headers["webhook-id"])
        return httpx.Response(204)

    stores = [await instance(target, wall=0.0) for _ in range(2)]
    workers = []
    for alerts, hooks in stores:
        async def confirm(seqs, actor, alerts=alerts):
            await alerts.confirm_delivery(seqs, T0, actor)

        workers.append(WebhookWorker(hooks, confirm, max_attempts=3, backoff_base_s=1, backoff_max_s=1,
                                     timeout_s=5, poll_s=0.05, wall=time.time,
                                     transport=httpx.MockTransport(receive)))
    alerts = stores[0][0]
    try:
        await stores[1][1].create("http://receiver/hook", SECRET, EVENTS)
        for n in range(30):
            await raise_one(alerts, f"bed-{n}")
        async def state() -> str:
            return (f"in flight {[len(w._in_flight) for w in workers]}, received {len(received)}, pending alerts "
                    f"{await alerts.pending_delivery()}, deliveries {dict(await stores[0][1].counts())}")

        async def until(condition, what: str) -> None:
            for _ in range(6000):  # polls a condition; the bound only turns a hang into a failure that says where
                if await condition():
                    return
                await asyncio.sleep(0.02)
            pytest.fail(f"never {what}: {await state()}")

        for worker in workers:
            await worker.start()

        async def both_attempting() -> bool:  # more than one worker's cap (4 per endpoint): both are attempting
            return sum(len(w._in_flight) for w in workers) > 4

        await until(both_attempting, "were both workers attempting")
        assert all(w._in_flight for w in workers)
        gate.set()

        async def all_delivered() -> bool:
            return not await alerts.pending_delivery() and len(received) >= 30 \
                and not any(w._in_flight for w in workers)

        await until(all_delivered, "was every alert delivered")
        assert sorted(received) == sorted(set(received)) and len(received) == 30
    finally:
        for worker in workers:
            await worker.stop()
        for alerts_, _ in stores:
            await alerts_.close()


# -- keys and the audit trail ----------------------------------------------------------------------------------------
def access_target(target: Path | str) -> Path | str:
    return target.with_name("access.db") if isinstance(target, Path) else target


def test_a_key_revoked_through_one_instance_is_refused_by_another_at_its_next_lookup(target: Path | str) -> None:
    one, two = KeyStore(access_target(target)), KeyStore(access_target(target))
    one.open()
    two.open()
    try:
        key, token = one.create("ward 7 board", "clinician", T0)
        admin, _ = one.create("admin", "admin", T0)
        assert two.lookup(token) == two.lookup(token) == Principal(key.id, "ward 7 board", frozenset({"clinician"}))
        assert two.lookup("wt_not-a-key") is None
        one.revoke(key.id, T0 + timedelta(minutes=1))
        assert two.lookup(token) is None  # the very next lookup, on the other instance
        assert {k.id: k.revoked_at is not None for k in two.list()} == {key.id: True, admin.id: False}
        with pytest.raises(LastAdminKeyError):
            two.revoke(admin.id, T0, keep_an_admin=True)
        with pytest.raises(KeyNotFoundError):
            two.revoke("nope", T0)
        _, device_token = two.create("monitor gw", "device", T0, scope=["bed-0*"])
        assert one.lookup(device_token).scope == ("bed-0*",)  # type: ignore[union-attr]
    finally:
        one.close()
        two.close()


def test_the_audit_chain_holds_across_instances_appending_at_once(target: Path | str) -> None:
    stores = [KeyStore(access_target(target)) for _ in range(2)]
    for keys in stores:
        keys.open()
    logs = [AuditLog(keys) for keys in stores]
    who = Principal("k1", "board", frozenset({"clinician"}))
    barrier = threading.Barrier(2)

    def append(log: AuditLog, name: str) -> None:
        barrier.wait()
        for n in range(20):
            log.append_rows([audit_row(T0, who, "GET", f"/v1/{name}/{n}", 200, "10.0.0.1")] * 2)

    try:
        threads = [threading.Thread(target=append, args=(log, f"i{i}")) for i, log in enumerate(logs)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        report = logs[1].verify()
        assert report.intact and report.rows == 80 and report.unchained == 0
        entries = logs[0].query(limit=1000)
        assert [e.seq for e in entries] == list(range(1, 81))
        assert len(logs[0].query(target="/v1/i0/3")) == 2
        with pytest.raises(Exception, match="append-only"):
            stores[0].db.call(lambda c: c.execute("UPDATE audit SET action = 'x' WHERE seq = 1"))
        with pytest.raises(Exception, match="append-only"):
            stores[0].db.call(lambda c: c.execute("DELETE FROM audit WHERE seq = 2"))
    finally:
        for keys in stores:
            keys.close()


# -- PostgreSQL down and back ----------------------------------------------------------------------------------------
@pytest.mark.postgres
async def test_postgres_down_is_unavailable_and_health_says_so_then_it_recovers() -> None:
    """A server of its own (the session's is shared): stopped, the store answers 503-style errors and ``health`` says
    not ok (within its timeout, not hanging); started again, the pool reconnects and writes go on."""
    server = ManagedPostgres(find_postgres())
    server.start()
    try:
        # a short pool timeout: the refused write below waits it out (the default 10 s is for a real deployment)
        store = AlertStore(PostgresDatabase(server.create_database("down_and_back"), SCHEMA, timeout_s=2.0))
        await store.open()
        try:
            assert await raise_one(store, "bed-1") is not None
            server.stop(remove=False)
            health = await store.db.health()
            assert health["ok"] is False and health["engine"] == "postgresql" and "error" in health
            with pytest.raises(StoreUnavailableError):
                await raise_one(store, "bed-2")
            server.start()
            for _ in range(100):  # the pool reconnects with a backoff: wait for the condition, bounded
                if (await store.db.health())["ok"]:
                    break
                await asyncio.sleep(0.1)
            else:
                pytest.fail("the control store never became healthy after the server came back")
            assert await raise_one(store, "bed-2") is not None
            assert {a.patient_id for a in (await store.open_alerts()).values()} == {"bed-1", "bed-2"}
        finally:
            await store.close()
    finally:
        server.stop()


@pytest.mark.postgres
async def test_postgres_an_outbox_seq_never_commits_behind_a_later_one(postgres_dsn: str) -> None:
    """Deterministic: instance A has appended to the outbox and not committed; instance B's raise waits for A's
    advisory lock (seen in ``pg_locks``) instead of committing a later seq first, which a reader at B's seq would
    then have skipped A's for good. On SQLite the file's one writer gives the same by construction."""
    a, b = AlertStore(postgres_dsn), AlertStore(postgres_dsn)
    await a.open()
    await b.open()
    appended, release = threading.Event(), threading.Event()

    def slow_append(conn) -> None:
        conn.execute("INSERT INTO outbox (alert_id, event, payload, created_at) VALUES (?, 'raised', ?, ?)",
                     ("a-1", '{"alert": {"id": "a-1"}}', T0.isoformat()))
        appended.set()
        assert release.wait(timeout=60)

    def waiting_on_advisory_locks() -> int:
        return a.db.call_read(lambda c: c.execute(
            "SELECT COUNT(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted").fetchone()[0])

    try:
        holder = asyncio.create_task(asyncio.to_thread(a.db.call_tx, slow_append, store_lock()))
        assert await asyncio.to_thread(appended.wait, 60)
        raising = asyncio.create_task(raise_one(b, "bed-b"))
        for _ in range(2000):  # B's raise reaches the lock and waits (a condition, not a fixed sleep)
            if await asyncio.to_thread(waiting_on_advisory_locks):
                break
            await asyncio.sleep(0.005)
        else:
            pytest.fail("the second instance's raise never waited for the outbox lock")
        assert await b.events_after(0) == []  # nothing committed past A's pending seq
        release.set()
        await holder
        await raising
        events = await b.events_after(0)
        assert [e.alert_id for e in events] == ["a-1", "bed-b-20261124T1200Z-news2"]
    finally:
        release.set()
        await a.close()
        await b.close()


def store_lock() -> str:
    from app.alerts import store

    return store.LOCK


@pytest.mark.postgres
async def test_postgres_another_instances_commit_wakes_this_ones_engine(postgres_dsn: str) -> None:
    """LISTEN/NOTIFY: an event committed through instance B calls instance A's ``on_event`` (its engine then
    delivers from the outbox at once, not at its next poll)."""
    a, b = AlertStore(postgres_dsn), AlertStore(postgres_dsn)
    await a.open()
    await b.open()
    woken = asyncio.Event()
    a.on_event = woken.set
    try:
        await raise_one(b, "bed-b")  # b's listener is on too: several attempts may be needed for a's to be ready
        for _ in range(200):
            try:
                await asyncio.wait_for(woken.wait(), timeout=0.5)
                break
            except TimeoutError:
                await raise_one(b, f"bed-b{_}")
        assert woken.is_set()
        woken.clear()
        await b.acknowledge((await b.list(patient_id="bed-b"))[0].id, "nurse", T0)  # a transition, not only a raise
        await asyncio.wait_for(woken.wait(), timeout=30)
    finally:
        await a.close()
        await b.close()
