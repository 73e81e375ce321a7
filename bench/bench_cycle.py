"""The five-minute cycle for a 1,000-bed population: InfluxDB store versus the embedded SQLite store.

Both stores get the same readings: ``--patients`` beds over ``--hours`` hours, monitor-rate (HR 1 Hz, SpO2 every 5 s)
for the newest 15 minutes (the windows each cycle re-aggregates) and a sparser rate before (HR every 30 s, SpO2 and RR
every minute, temperature every 5 min, NIBP every 15 min, ACVPU/O2 hourly). History is materialized once (not timed)
by ``materialize_pending``, as the first cycle after a backfill does.
Then, per store, ``--repeat`` times (median reported):

  materialize  ``materialize_windows(W - 15 min, W)``            the push-down of the newest three windows
  windows      ``patient_ids()`` + ``windows(all, W - 24 h, W)``   what the cycle reads (12 h features + 12 h carry)
  cycle        ``Cycle.run(W)`` end to end: the newest window's readings re-delivered first (not timed), so the
               cycle aggregates one marked window, reads, scores in its worker thread, saves (no alert engine)

    python bench/bench_cycle.py                          # starts its own influxd
    python bench/bench_cycle.py --patients 1000 --hours 3 --repeat 3
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from app.domain import Reading  # noqa: E402
from app.storage.base import VitalStore  # noqa: E402
from app.storage.influx import InfluxStore  # noqa: E402
from app.storage.sqlite import SqliteStore  # noqa: E402
from bench.influxd_for_bench import influxd_url  # noqa: E402
from models.windows import WINDOW  # noqa: E402

WINDOW_END = datetime(2024, 3, 1, 12, 0, tzinfo=UTC)
RECENT = timedelta(minutes=15)


def readings_for(p: int, hours: float) -> list[Reading]:
    pid = f"bed-{p:04d}"
    start = WINDOW_END - timedelta(hours=hours)
    dense_from = WINDOW_END - RECENT
    out: list[Reading] = []
    total = int(hours * 3600)
    for s in range(total):
        ts = start + timedelta(seconds=s)
        dense = ts >= dense_from
        if dense or s % 30 == 0:
            out.append(Reading(pid, "hr", ts, 60.0 + (s * 7 + p) % 61))
        if (dense and s % 5 == 0) or s % 60 == 0:
            out.append(Reading(pid, "spo2", ts, 90.0 + (s + p) % 10))
        if s % 60 == 17:
            out.append(Reading(pid, "rr", ts, 12.0 + (s // 60 + p) % 12))
        if s % 300 == 40:
            out.append(Reading(pid, "temp", ts, 36.5 + ((s // 300 + p) % 20) / 10))
        if s % 900 == 100:
            out.append(Reading(pid, "sbp", ts, 100.0 + (s // 900 + p) % 50))
            out.append(Reading(pid, "dbp", ts, 60.0 + (s // 900 + p) % 30))
        if s % 3600 == 200:
            out.append(Reading(pid, "acvpu", ts, 0.0))
            out.append(Reading(pid, "o2", ts, float((s // 3600 + p) % 3)))
    return out


async def timed(fn: Callable[[], Awaitable[object]]) -> tuple[float, object]:
    t0 = time.perf_counter()
    result = await fn()
    return time.perf_counter() - t0, result


async def bench_store(store: VitalStore, patients: int, hours: float, repeat: int, twin) -> dict[str, float]:
    await store.open()
    try:
        t0 = time.perf_counter()
        points = 0
        newest: list[Reading] = []
        for p0 in range(0, patients, 20):
            batch = [r for p in range(p0, min(patients, p0 + 20)) for r in readings_for(p, hours)]
            newest += [r for r in batch if r.ts >= WINDOW_END - WINDOW]
            for i in range(0, len(batch), 5000):
                await store.write_readings(batch[i : i + 5000])
            points += len(batch)
        load_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        await store.materialize_pending(WINDOW_END)  # what the first cycle after the backfill does
        backfill_s = time.perf_counter() - t0
        print(f"  [{store.name}] loaded {points:,} readings in {load_s:.1f} s ({points / load_s:,.0f}/s); "
              f"materialized {hours} h of windows in {backfill_s:.1f} s")
        runs: dict[str, list[float]] = {"materialize": [], "windows": [], "cycle": []}
        cycle = None
        if twin is not None:
            from app.pipeline.cycle import Cycle

            cycle = Cycle(store, twin, None)
        for _ in range(repeat):
            took, written = await timed(lambda: store.materialize_windows(WINDOW_END - RECENT, WINDOW_END))
            runs["materialize"].append(took)

            async def read() -> int:
                ids = await store.patient_ids()
                frame = await store.windows(ids, WINDOW_END - timedelta(hours=24), WINDOW_END)
                return len(frame)

            took, rows = await timed(read)
            runs["windows"].append(took)
            if cycle is not None:
                # the newest window's readings arrive again (idempotent), so the cycle has one marked window
                # to aggregate, as a steady cycle does
                for i in range(0, len(newest), 5000):
                    await store.write_readings(newest[i : i + 5000])
                took, result = await timed(lambda: cycle.run(WINDOW_END))
                runs["cycle"].append(took)
                scored = result.scored
            else:
                scored = None
        med = {k: statistics.median(v) for k, v in runs.items() if v}
        print(f"  [{store.name}] windows written={written} rows read={rows} scored={scored}; median of {repeat}: "
              + " ".join(f"{k}={v * 1000:,.0f} ms" for k, v in med.items()))
        return med
    finally:
        await store.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--patients", type=int, default=1000)
    parser.add_argument("--hours", type=float, default=3.0)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--influx-url", default=None)
    parser.add_argument("--no-twin", action="store_true", help="time the store calls only")
    args = parser.parse_args()
    twin = None
    if not args.no_twin:
        from models.twin import Twin

        twin = Twin.load()
    work = Path(tempfile.mkdtemp(prefix="bench-cycle-"))
    try:
        with influxd_url(args.influx_url, work) as (url, _pid):
            version = httpx.get(f"{url}/ping", timeout=5).headers.get("X-Influxdb-Version")
            print(f"machine: {platform.machine()} cpus={os.cpu_count()} python={platform.python_version()} "
                  f"influxd={version}; patients={args.patients} hours={args.hours} "
                  f"window_end={WINDOW_END.isoformat()}")
            influx = asyncio.run(bench_store(
                InfluxStore(url, f"bench_cycle_{int(time.time())}", spool_path=work / "spool.db", timeout_s=120),
                args.patients, args.hours, args.repeat, twin,
            ))
            sqlite = asyncio.run(bench_store(SqliteStore(work / "wardtwin.db"), args.patients, args.hours,
                                             args.repeat, twin))
        for key in influx:
            print(f"{key:>12}: influx {influx[key] * 1000:8,.0f} ms   sqlite {sqlite[key] * 1000:8,.0f} ms   "
                  f"influx/sqlite {influx[key] / sqlite[key]:.2f}")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
