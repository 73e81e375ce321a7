"""Where InfluxDB's share of the cycle goes: each aggregation statement of one window timed alone, and variants.

One window of monitor readings (``bench_cycle.window_readings``: HR 1 Hz, SpO2 every 30 s, ...) for ``--patients``
patients is written to a fresh influxd (started here unless ``--influx-url``); then each statement of
``app.storage.influx._MATERIALIZE_Q`` runs alone, then the heart-rate statement's aggregates one by one, with and
without the ``quality = 'ok'`` field filter, then the five statements at once with and without it, the count of
flagged readings that chooses between them, and ``materialize_windows`` end to end.

    python bench/bench_influx_aggregate.py --patients 3000
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from app.storage.codec import to_ms  # noqa: E402
from app.storage.influx import (  # noqa: E402
    _FLAGGED_Q,
    _MATERIALIZE_ANY_QUALITY_Q,
    _MATERIALIZE_Q,
    InfluxStore,
    _rfc3339,
)
from bench.bench_cycle import FIRST_END, STEP, window_readings  # noqa: E402
from bench.influxd_for_bench import influxd_url  # noqa: E402

HR_FROM = ("FROM vitals WHERE vital = 'hr' AND quality = 'ok' AND time >= $lo AND time < $hi "
           "GROUP BY time(5m), patient_id fill(none)")


async def run(url: str, patients: int, work: Path) -> None:
    store = InfluxStore(url, "bench_aggregate", spool_path=work / "spool.db", timeout_s=600)
    await store.open()
    try:
        start = FIRST_END - STEP
        for p0 in range(0, patients, 500):
            await store.write_readings(window_readings(range(p0, min(patients, p0 + 500)), start, 1))
        await store.wait_drained()
        bounds = {"lo": _rfc3339(to_ms(start)), "hi": _rfc3339(to_ms(FIRST_END))}

        async def timed(label: str, q: str) -> None:
            t0 = time.perf_counter()
            await store._query(q, bounds)
            print(f"{time.perf_counter() - t0:7.2f} s  {label}", flush=True)

        print(f"{patients} patients, one window ({patients * 317:,} readings)")
        for q in _MATERIALIZE_Q:
            await timed(q[:100], q)
        for select in ("mean(value)", "count(value)", "stddev(value)", "sum(value), count(value)",
                       "mean(value), stddev(value), count(value)"):
            await timed(f"hr {select}", f"SELECT {select} {HR_FROM}")
            unfiltered = HR_FROM.replace(" AND quality = 'ok'", "")
            await timed(f"hr {select}, no quality filter", f"SELECT {select} {unfiltered}")
        for label, statements in (("with the quality filter", _MATERIALIZE_Q),
                                  ("without it", _MATERIALIZE_ANY_QUALITY_Q)):
            t0 = time.perf_counter()
            await asyncio.gather(*(store._query(q, bounds) for q in statements))
            print(f"{time.perf_counter() - t0:7.2f} s  the five statements at once, {label}", flush=True)
        await timed("the count of flagged readings that decides between them", _FLAGGED_Q)
        t0 = time.perf_counter()
        await store.materialize_windows(start, FIRST_END)
        print(f"{time.perf_counter() - t0:7.2f} s  materialize_windows (the cycle's aggregation, end to end)")
    finally:
        await store.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--patients", type=int, default=3000)
    parser.add_argument("--influx-url", default=None)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-aggregate-"))
    with influxd_url(args.influx_url, work) as (url, _pid):
        asyncio.run(run(url, args.patients, work))
    return 0


if __name__ == "__main__":
    sys.exit(main())
