"""Nothing lost: influxd stopped, killed or hung mid-stream while ingest goes on; every reading is counted back.

Each test runs its own ``influxd`` (it gets stopped) and asserts ``sent == accepted == found in InfluxDB`` and
that the value stored for every key is the last copy delivered (replay kept the order, exactly once in effect).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from app.domain import Reading
from app.storage.influx import InfluxStore
from app.storage.influxd_local import ManagedInfluxd
from tests.support.influx import find_influxd

pytestmark = pytest.mark.influx
T0 = datetime(2024, 3, 2, 0, 0, tzinfo=UTC)
PATIENTS = [f"fault-{i:02d}" for i in range(20)]


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[ManagedInfluxd]:
    influxd = ManagedInfluxd(find_influxd(), tmp_path / "influxd")
    influxd.start()
    try:
        yield influxd
    finally:
        influxd.stop()


def make_store(server: ManagedInfluxd, tmp_path: Path, **kw) -> InfluxStore:
    options = {"batch_size": 2000, "timeout_s": 1.0, "retry_initial_s": 0.05, "retry_max_s": 0.4, **kw}
    return InfluxStore(server.url, "fault", spool_path=tmp_path / "spool.db", **options)


@dataclass
class Tally:
    sent: int = 0
    accepted: int = 0
    spooled_seen: int = 0
    expected: dict[tuple[str, str, int], float] = field(default_factory=dict)


async def stream(store: InfluxStore, tally: Tally, seconds: int, start_s: int = 0, redeliver: bool = True) -> None:
    """1 Hz HR and SpO2 for 20 patients, one batch per simulated second; every 7th batch re-delivers the previous
    second with new values (the later copy must win)."""
    for s in range(start_s, start_s + seconds):
        ts = T0 + timedelta(seconds=s)
        batch = [Reading(p, v, ts, 60.0 + (s % 50) + i * 0.5) for i, p in enumerate(PATIENTS) for v in ("hr", "spo2")]
        if redeliver and s % 7 == 0 and s > start_s:
            prev = T0 + timedelta(seconds=s - 1)
            batch += [Reading(p, "hr", prev, 200.0 + s % 50) for p in PATIENTS]
        tally.sent += len(batch)
        await store.write_readings(batch)
        tally.accepted += len(batch)
        for r in batch:
            tally.expected[(r.patient_id, r.vital, int(r.ts.timestamp() * 1000))] = r.value
        tally.spooled_seen = max(tally.spooled_seen, store.backlog)
        await asyncio.sleep(0.005)


async def check_everything_arrived(store: InfluxStore, tally: Tally, server: ManagedInfluxd) -> int:
    await asyncio.wait_for(store.wait_drained(), timeout=60)
    found = await store.readings(PATIENTS, T0 - timedelta(hours=1), T0 + timedelta(hours=1))
    stored = {
        (p, v, int(ts.value // 1_000_000)): value
        for p, v, ts, value in zip(found["patient_id"], found["vital"], found["ts"], found["value"], strict=True)
    }
    counted = server.query("SELECT count(value) FROM vitals", database="fault")["results"][0]["series"][0]["values"]
    distinct = len(tally.expected)
    print(f"sent={tally.sent} accepted={tally.accepted} distinct_keys={distinct} found={len(stored)} "
          f"influx_count={counted[0][1]} max_backlog={tally.spooled_seen}")
    assert tally.accepted == tally.sent
    assert counted[0][1] == len(stored) == distinct
    assert stored == tally.expected
    health = await store.health()
    assert health["ok"] and health["backlog"] == 0 and health["rejected"] == 0
    return len(stored)


async def run_with_outage(
    server: ManagedInfluxd, store: InfluxStore, down: Callable[[], None], up: Callable[[], None]
) -> Tally:
    tally = Tally()
    await store.open()
    try:
        await stream(store, tally, 40)                       # healthy
        writer = asyncio.create_task(stream(store, tally, 40, start_s=40))
        await asyncio.sleep(0.05)
        await asyncio.to_thread(down)                        # mid-stream: writes are in flight
        await writer                                         # … and ingest keeps going while it is down
        assert store.backlog > 0
        health = await store.health()
        assert health["backlog"] == store.backlog > 0 and health["ok"] is False
        await stream(store, tally, 30, start_s=80)           # still down
        await asyncio.to_thread(up)
        await stream(store, tally, 30, start_s=110)          # back: new readings queue behind the spool
        await check_everything_arrived(store, tally, server)
    finally:
        await store.close()
    return tally


async def test_influxd_stopped_mid_stream_nothing_lost(server: ManagedInfluxd, tmp_path: Path) -> None:
    tally = await run_with_outage(server, make_store(server, tmp_path), server.stop, server.start)
    assert tally.spooled_seen > 0


async def test_influxd_killed_mid_stream_nothing_lost(server: ManagedInfluxd, tmp_path: Path) -> None:
    """SIGKILL: whatever InfluxDB acknowledged must be in its WAL; the rest is in our spool."""
    tally = await run_with_outage(server, make_store(server, tmp_path), server.kill, server.start)
    assert tally.spooled_seen > 0


async def test_influxd_hung_writes_time_out_into_the_spool(server: ManagedInfluxd, tmp_path: Path) -> None:
    """SIGSTOP: connections hang; writes time out after ``timeout_s`` and are spooled; replay after SIGCONT."""
    tally = Tally()
    store = make_store(server, tmp_path, timeout_s=0.3)
    await store.open()
    try:
        await stream(store, tally, 10)
        server.pause()
        try:
            await stream(store, tally, 5, start_s=10)
            assert store.backlog > 0
        finally:
            server.resume()
        await stream(store, tally, 10, start_s=15)
        await check_everything_arrived(store, tally, server)
    finally:
        await store.close()


async def test_spool_survives_a_service_restart(server: ManagedInfluxd, tmp_path: Path) -> None:
    tally = Tally()
    server.stop()
    first = make_store(server, tmp_path)
    await first.open()  # influxd is down: open still succeeds, readings are spooled
    await stream(first, tally, 20)
    assert first.backlog == tally.sent
    await first.close(drain_timeout_s=0.2)  # the service stops with a backlog
    server.start()
    second = make_store(server, tmp_path)
    await second.open()
    try:
        await check_everything_arrived(second, tally, server)
    finally:
        await second.close()


async def test_rejected_points_are_reported_not_retried(
    server: ManagedInfluxd, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    server.create_database("fault")
    # a string `value` field in this shard makes InfluxDB refuse the float values of the next writes (400)
    with contextlib.closing(__import__("httpx").Client()) as client:
        response = client.post(f"{server.url}/write", params={"db": "fault", "precision": "ms"},
                               content=f'vitals,patient_id=x,vital=hr value="oops" {int(T0.timestamp() * 1000)}')
        assert response.status_code == 204
    store = make_store(server, tmp_path)
    await store.open()
    try:
        with caplog.at_level(logging.ERROR, logger="app.storage.influx"):
            await store.write_readings([Reading("rej-1", "hr", T0, 70.0), Reading("rej-1", "hr", T0, 71.0)])
        assert "field type conflict" in caplog.text
        health = await store.health()
        assert health["rejected"] == 2 and health["backlog"] == 0 and "field type conflict" in health["last_rejection"]
        # the same refusal met while replaying the spool is reported once and the spool moves on
        server.stop()
        await store.write_readings([Reading("rej-2", "hr", T0, 70.0)])
        assert store.backlog == 1
        server.start()
        await asyncio.wait_for(store.wait_drained(), timeout=30)
        assert (await store.health())["rejected"] == 3
    finally:
        await store.close()


async def test_reads_fail_at_once_while_influxd_hangs_then_probe_it_again(server: ManagedInfluxd,
                                                                          tmp_path: Path) -> None:
    """SIGSTOP: the first read waits out ``timeout_s`` and fails; the next reads fail at once (they do not ask the
    hung server again: every ingest's conflict check and every board read would wait ``timeout_s`` each), and once
    the server answers again a read after the back-off succeeds."""
    from app.errors import StoreUnavailableError

    store = make_store(server, tmp_path, timeout_s=0.5)
    await store.open()
    try:
        await store.write_readings([Reading(PATIENTS[0], "hr", T0, 80.0)])
        window = (T0, T0 + timedelta(minutes=1))
        assert len(await store.readings([PATIENTS[0]], *window)) == 1
        server.pause()
        try:
            with pytest.raises(StoreUnavailableError, match="ReadTimeout"):
                await store.readings([PATIENTS[0]], *window)
            for _ in range(3):
                with pytest.raises(StoreUnavailableError, match="refused without waiting"):
                    await store.readings([PATIENTS[0]], *window)
            assert store.reads_short_circuited == 3
        finally:
            server.resume()
        back = None
        for _ in range(2400):  # a condition, polled: the back-off passes, then a read probes the server again
            with contextlib.suppress(StoreUnavailableError):
                back = await store.readings([PATIENTS[0]], *window)
                break
            await asyncio.sleep(0.05)
        assert back is not None and len(back) == 1, "reads did not come back after influxd resumed"
    finally:
        await store.close()
