"""Issue 21, H24: ``InfluxStore.close`` while InfluxDB is unreachable and readings wait in the spool waited the whole
request timeout (10 s) for a drain that could not happen, so the service's shutdown abandoned the vital store ("vital
store did not stop within 10 s"). Now it does not wait while the spool's replays fail; the spool keeps the readings
for the next start."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path

from app.domain import Reading
from app.storage.influx import CLOSE_DRAIN_S, InfluxStore
from app.storage.influxd_local import free_port
from app.storage.spool import Spool

T0 = datetime(2026, 3, 2, 12, tzinfo=UTC)


async def test_close_during_an_outage_does_not_wait_for_a_drain(tmp_path: Path, monkeypatch, caplog) -> None:
    store = InfluxStore(f"http://127.0.0.1:{free_port()}", "nowhere", spool_path=tmp_path / "spool.db",
                        timeout_s=10.0, retry_initial_s=0.01, retry_max_s=0.05)
    await store.open()
    await store.write_readings([Reading("bed-1", "hr", T0, 80.0)])
    assert store.backlog > 0
    while not any("spool replay failed" in r.getMessage() for r in caplog.records):  # the drainer tried, failed
        await asyncio.sleep(0.01)
    waited: list[object] = []
    original = store.wait_drained

    async def recorded(*args, **kwargs):
        waited.append(args)
        return await original(*args, **kwargs)

    monkeypatch.setattr(store, "wait_drained", recorded)
    await store.close()
    assert waited == []  # today's main: close waited for the drain (up to timeout_s, 10 s)
    spool = Spool(tmp_path / "spool.db")
    await spool.open()
    try:
        assert spool.backlog > 0  # kept for the next start
    finally:
        await spool.close()
    assert CLOSE_DRAIN_S < 10.0
