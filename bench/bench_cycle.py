"""The five-minute cycle at 100 to 10,000 patients, 6 h and 24 h of history, on SQLite and InfluxDB.

Each configuration runs in a process of its own through the service's own wiring
(``create_app`` with a fixed clock, scheduler off, the shipped twin and challenger, the alert engine, the
latest-score view): the cycle windows, featurises, scores (twin, challenger, NEWS2), persists and publishes.

Set-up, not timed: ``--hours`` of history per patient is seeded as stored 5-minute windows (what the aggregation
leaves after a backfill; written with the store's own window encoding), then the newest window's readings are
written as the monitors send them (HR every ``--hr-period`` s, SpO2 every 30 s, RR every minute, temperature
every 5 min, NIBP every 15 min; 1 % of patients deteriorating). A first cycle starts the service's ward grid
(``cold``: it reads the whole span). Then ``--cycles`` times: the next window's readings arrive (not timed) and
the cycle for its window end runs (timed, ``steady``), stage by stage as ``CycleResult.stages`` reports.
After them, on the same store and window end, the read and scoring as they were before the ward grid
(``models.scoring.score_ward`` on 24 h of every patient's windows), timed for the before/now ratio.
Memory: the process's resident set before the steady cycles and its peak during them (``VmHWM``, reset after the
set-up), and the ward grid's own arrays.

    python bench/bench_cycle.py                                   # the issue-14 table (about 15 min)
    python bench/bench_cycle.py --patients 1000 --hours 6 --stores sqlite --cycles 2
    python bench/bench_cycle.py --one --stores sqlite --patients 10000 --hours 6 --profile /tmp/cycle.prof.txt
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import gc
import io
import json
import os
import platform
import pstats
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from app.clock import FixedClock  # noqa: E402
from app.domain import Reading  # noqa: E402
from app.main import create_app  # noqa: E402
from app.settings import Settings  # noqa: E402
from models import features  # noqa: E402
from models.scoring import score_ward  # noqa: E402
from models.windows import MAX_CARRY_FORWARD, WINDOW  # noqa: E402

FIRST_END = datetime(2024, 3, 1, 12, 0, tzinfo=UTC)
STEP = WINDOW.to_pytimedelta()
SICK_EVERY = 100  # one patient in a hundred deteriorates over the last hours


def _pid(p: int) -> str:
    return f"bed-{p:05d}"


def history_rows(patients: int, hours: float, end: datetime) -> list[tuple]:
    """Stored windows of ``[end - hours, end)``: (patient_id, start_ms, hr_mean, hr_std, hr_count, spo2_mean, rr_mean,
    sbp, dbp, temp, acvpu, o2), deterministic per patient and window."""
    n = int(hours * 12)
    p = np.repeat(np.arange(patients), n)
    k = np.tile(np.arange(n), patients)
    start_ms = int(end.timestamp() * 1000) - (n - k) * 300_000
    wave = np.sin((k + p) / 7.0)
    sick = (p % SICK_EVERY == 0) & (k > n - 36)
    ramp = np.where(sick, (k - (n - 36)) / 36.0, 0.0)
    hr = 78 + 8 * wave + (p % 17) + 45 * ramp
    spo2 = np.minimum(100.0, 96 + 1.5 * np.cos((k + 2 * p) / 9.0) - 6 * ramp)
    rr = 16 + 2 * wave + 8 * ramp
    sbp = np.where(k % 3 == 0, 122 - 6 * wave - (p % 13) - 30 * ramp, np.nan)
    dbp = np.where(k % 3 == 0, 74 - 3 * wave, np.nan)
    temp = 36.8 + 0.3 * wave + 1.5 * ramp
    acvpu = np.where(k % 12 == 0, 0.0, np.nan)
    o2 = np.where(k % 12 == 0, np.where(sick, 2.0, 0.0), np.nan)
    cols = [hr, 2.5 + np.abs(wave), np.full(len(p), 10.0), spo2, rr, sbp, dbp, temp, acvpu, o2]
    values = [[None if np.isnan(x) else float(x) for x in col] for col in cols]
    hr_count = [int(x) for x in cols[2]]
    pids = [_pid(i) for i in range(patients)]
    return [(pids[pi], int(s), values[0][i], values[1][i], hr_count[i], *(values[j][i] for j in range(3, 10)))
            for i, (pi, s) in enumerate(zip(p.tolist(), start_ms.tolist(), strict=True))]


def window_readings(patients: range, start: datetime, hr_period_s: int) -> list[Reading]:
    """One window of monitor readings for the given patients (1 % deteriorating)."""
    out: list[Reading] = []
    for p in patients:
        pid, sick = _pid(p), p % SICK_EVERY == 0
        base = 130.0 if sick else 76.0 + p % 17
        for s in range(0, 300, hr_period_s):
            out.append(Reading(pid, "hr", start + timedelta(seconds=s), base + (s * 7 + p) % 5))
        for s in range(0, 300, 30):
            out.append(Reading(pid, "spo2", start + timedelta(seconds=s), 86.0 if sick else 95.0 + (s + p) % 4))
        for s in range(17, 300, 60):
            out.append(Reading(pid, "rr", start + timedelta(seconds=s), 26.0 if sick else 14.0 + (s + p) % 5))
        out.append(Reading(pid, "temp", start + timedelta(seconds=40), 38.9 if sick else 36.9))
        if int(start.timestamp()) // 300 % 3 == p % 3:
            out.append(Reading(pid, "sbp", start + timedelta(seconds=100), 88.0 if sick else 121.0))
            out.append(Reading(pid, "dbp", start + timedelta(seconds=100), 55.0 if sick else 74.0))
    return out


async def seed_history(store, rows: list[tuple]) -> None:
    """Write stored windows with the adapter's own encoding (not a public API: a bench's shortcut past hours of
    ingest and aggregation that would give the same rows)."""
    inner = store.inner
    if inner.name == "sqlite":
        from app.storage.sqlite_db import SqliteDatabase

        def write(conn) -> None:
            conn.executemany(f"INSERT OR REPLACE INTO windows VALUES ({', '.join('?' * 12)})", rows)

        await inner._run(lambda c: SqliteDatabase.transaction(c, write))
    else:
        names = ("hr_mean", "hr_std", "hr_count", "spo2_mean", "rr_mean", "sbp", "dbp", "temp", "acvpu", "o2")
        lines = [inner._window_line(r[0], r[1], dict(zip(names, r[2:], strict=True))) for r in rows]
        for i in range(0, len(lines), 20_000):
            await inner._write("\n".join(lines[i : i + 20_000]).encode(), len(lines[i : i + 20_000]))


async def write_window(store, patients: int, start: datetime, hr_period_s: int) -> int:
    """Write one window's readings for every patient, 500 patients at a time; returns how many."""
    n = 0
    for p0 in range(0, patients, 500):
        readings = window_readings(range(p0, min(patients, p0 + 500)), start, hr_period_s)
        for i in range(0, len(readings), 10_000):
            await store.write_readings(readings[i : i + 10_000])
        n += len(readings)
    if hasattr(store.inner, "wait_drained"):
        await store.inner.wait_drained()
    return n


def _rss_mb(field: str) -> float:
    """VmRSS / VmHWM of this process in MB (Linux)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _reset_peak_rss() -> None:
    """Start VmHWM afresh (Linux: writing 5 to clear_refs), so the peak is the cycles' own, not the set-up's."""
    gc.collect()
    Path("/proc/self/clear_refs").write_text("5")


async def time_reference(wt, end: datetime) -> float:
    """The cycle's read and scoring as they were before the ward grid (issue 14), on the same store and window end:
    every patient's 24 h of windows read, carried forward and featurised whole (``models.scoring.score_ward``)."""
    t0 = time.perf_counter()
    ids = await wt.store.patient_ids()
    stored = await wt.store.windows(ids, end - features.HISTORY - MAX_CARRY_FORWARD, end)
    scores = await asyncio.to_thread(score_ward, stored, end, wt.twin, scored_at=end, stale_after=wt.cycle.stale_after,
                                     challenger=wt.cycle.challenger, disagreement=wt.cycle.disagreement)
    assert len(scores) > 0
    return time.perf_counter() - t0


async def one(store_kind: str, patients: int, hours: float, cycles: int, hr_period_s: int, influx_url: str | None,
              work: Path, reference: bool, profile: str | None = None) -> dict:
    settings = Settings(data_dir=work, scheduler_enabled=False,
                        influx_url=influx_url if store_kind == "influx" else None,
                        influx_database=f"bench_cycle_{patients}_{int(hours)}_{os.getpid()}", influx_batch_size=20_000)
    clock = FixedClock(FIRST_END)
    app = create_app(settings, clock, cycle_interval_s=None)
    wt = app.state.wardtwin
    async with app.router.lifespan_context(app):
        t0 = time.perf_counter()
        await seed_history(wt.store, history_rows(patients, hours, FIRST_END - STEP))
        await write_window(wt.store, patients, FIRST_END - STEP, hr_period_s)
        setup_s = time.perf_counter() - t0
        cold = await wt.cycle.run(FIRST_END)
        steady = []
        rss_before = _rss_mb("VmRSS")
        _reset_peak_rss()
        for c in range(1, cycles + 1):
            end = FIRST_END + c * STEP
            readings = await write_window(wt.store, patients, end - STEP, hr_period_s)
            clock.set(end + timedelta(seconds=30))
            steady.append(await wt.cycle.run(end))
            print(f"    [{store_kind} {patients} × {hours} h] cycle {c}: {steady[-1].took_ms:,.0f} ms "
                  f"{steady[-1].stages} scored={steady[-1].scored} alerts={steady[-1].alerts_raised}",
                  file=sys.stderr, flush=True)
        peak_mb = _rss_mb("VmHWM")  # before the reference's own allocations
        if profile:  # the score stage again, in this thread so cProfile sees it (the cycle runs it in a worker)
            profiler = cProfile.Profile()
            profiler.runcall(wt.cycle.score_grid, wt.cycle._grid, end, end)
            text = io.StringIO()
            pstats.Stats(profiler, stream=text).sort_stats("tottime").print_stats(25)
            Path(profile).write_text(text.getvalue())
        reference_s = await time_reference(wt, end) if reference else None
    took = [r.took_ms for r in steady]
    stages = {k: statistics.median(r.stages[k] for r in steady) for k in steady[0].stages}
    return {"store": store_kind, "patients": patients, "hours": hours, "setup_s": setup_s,
            "readings_per_window": readings, "grid_mb": wt.cycle.grid_bytes() / 2**20, "cold_ms": cold.took_ms,
            "steady_ms": statistics.median(took),
            "steady_max_ms": max(took), "stages": stages, "scored": steady[-1].scored,
            "rss_before_mb": rss_before, "peak_rss_mb": peak_mb,
            "reference_ms": None if reference_s is None else reference_s * 1000}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--patients", default="100,1000,10000")
    parser.add_argument("--hours", default="6,24")
    parser.add_argument("--stores", default="sqlite,influx")
    parser.add_argument("--cycles", type=int, default=3)
    parser.add_argument("--hr-period", type=int, default=1, help="seconds between heart-rate readings")
    parser.add_argument("--influx-url", default=None)
    parser.add_argument("--no-reference", action="store_true",
                        help="skip timing the pre-grid read and scoring (models.scoring.score_ward) after the cycles")
    parser.add_argument("--one", action="store_true", help="run one configuration (--stores is then one store)")
    parser.add_argument("--profile", default=None,
                        help="with --one: cProfile of the score stage (run again after the cycles) to this file")
    args = parser.parse_args()
    if args.one:
        work = Path(tempfile.mkdtemp(prefix="bench-cycle-"))
        try:
            result = asyncio.run(one(args.stores, int(args.patients), float(args.hours), args.cycles, args.hr_period,
                                     args.influx_url, work, not args.no_reference, args.profile))
        finally:
            shutil.rmtree(work, ignore_errors=True)
        print(json.dumps(result))
        return 0

    from bench.influxd_for_bench import influxd_url

    stores = args.stores.split(",")
    work = Path(tempfile.mkdtemp(prefix="bench-cycle-influxd-"))
    results = []
    try:
        with influxd_url(args.influx_url, work) as (url, _pid):
            print(f"machine: {platform.machine()} cpus={os.cpu_count()} python={platform.python_version()} "
                  f"loadavg={Path('/proc/loadavg').read_text().split()[:3]}; HR every {args.hr_period} s",
                  flush=True)
            for store in stores:
                for hours in args.hours.split(","):
                    for patients in args.patients.split(","):
                        cmd = [sys.executable, __file__, "--one", "--stores", store, "--patients", patients,
                               "--hours", hours, "--cycles", str(args.cycles), "--hr-period", str(args.hr_period),
                               "--influx-url", url, *(["--no-reference"] if args.no_reference else [])]
                        out = subprocess.run(cmd, check=True, stdout=subprocess.PIPE, text=True).stdout
                        results.append(json.loads(out.strip().splitlines()[-1]))
                        r = results[-1]
                        print(f"  {r['store']:>6} {r['patients']:>6} × {r['hours']:>4} h: steady {r['steady_ms']:,.0f} "
                              f"ms (max {r['steady_max_ms']:,.0f}), cold {r['cold_ms']:,.0f} ms, "
                              f"RSS {r['rss_before_mb']:,.0f} → peak {r['peak_rss_mb']:,.0f} MB; stages {r['stages']}",
                              flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"\nloadavg after: {Path('/proc/loadavg').read_text().split()[:3]}")
    print("| store | patients | history | readings per window | steady cycle (median) | per patient | aggregate | read "
          "| score | save | alerts | read + score before the grid (same run) | before / now | cold (first) cycle "
          "| RSS before → peak during cycles | ward grid |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in results:
        s = r["stages"]
        ref = "—" if r["reference_ms"] is None else f"{r['reference_ms']:,.0f} ms"
        ratio = "—" if r["reference_ms"] is None else f"{r['reference_ms'] / (s['read'] + s['score']):.1f}×"
        print(f"| {r['store']} | {r['patients']:,} | {r['hours']:g} h | {r['readings_per_window']:,} | "
              f"{r['steady_ms'] / 1000:.2f} s | {r['steady_ms'] / r['patients']:.2f} ms | {s['aggregate']:,.0f} ms | "
              f"{s['read']:,.0f} ms | {s['score']:,.0f} ms | {s['save']:,.0f} ms | {s['alerts']:,.0f} ms | "
              f"{ref} | {ratio} | {r['cold_ms'] / 1000:.2f} s | "
              f"{r['rss_before_mb']:,.0f} → {r['peak_rss_mb']:,.0f} MB | {r['grid_mb']:,.0f} MB |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
