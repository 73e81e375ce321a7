"""Cohort generation speed: patient-days of 1 Hz data per minute on one core, including writing Parquet.

    python bench/bench_simulator.py [--patients 200] [--hours 24] [--seed 1]
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from simulator.cohort import write_cohort


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--patients", type=int, default=200)
    p.add_argument("--hours", type=float, default=24.0)
    p.add_argument("--seed", type=int, default=1)
    a = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        cpu0 = time.process_time()
        summary = write_cohort(tmp, a.patients, a.hours, a.seed)
        wall = time.perf_counter() - t0
        cpu = time.process_time() - cpu0
        size = sum(f.stat().st_size for f in Path(tmp).iterdir())
    days = a.patients * a.hours / 24.0
    print(f"machine: {platform.machine()} {platform.processor() or ''} {os.cpu_count()} cpus, "
          f"python {platform.python_version()}, {platform.system()} {platform.release()}")
    try:
        with open("/proc/cpuinfo") as info:
            model = next(line.split(":", 1)[1].strip() for line in info if line.startswith("model name"))
        print(f"cpu: {model}")
    except (OSError, StopIteration):
        pass
    print(f"cohort: {a.patients} patients x {a.hours:g} h = {days:g} patient-days, {summary['rows']:,} rows, "
          f"{size / 1e6:.0f} MB on disk, {summary['events']} events")
    print(f"wall {wall:.1f} s, cpu {cpu:.1f} s (single process)")
    print(f"speed: {days / wall * 60:,.0f} patient-days/min (wall), {days / cpu * 60:,.0f} patient-days/min (cpu)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
