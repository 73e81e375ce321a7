"""The ward board's read (``GET /v1/board``) in process: a simulated ward of ``--beds`` beds with ``--hours`` of
history posted and scored window by window, then the board read ``--reads`` times through the ASGI app (no
sockets), next to ``GET /v1/patients`` (the read model's bytes). Reports the median and 90th percentile per read.

    python bench/bench_board.py                 # 24 beds, 4 h of history, 30 reads
    python bench/bench_board.py --beds 48
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

import pandas as pd
from fastapi.testclient import TestClient

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from app.clock import FixedClock  # noqa: E402
from app.main import create_app  # noqa: E402
from app.settings import Settings  # noqa: E402
from models.windows import WINDOW, align  # noqa: E402
from simulator.ward import Ward  # noqa: E402

KEY = "wt_bench-every-role-0123456789abcdef"


def timed(client: TestClient, path: str, reads: int) -> list[float]:
    out = []
    for _ in range(reads):
        t0 = time.perf_counter()
        client.get(path).raise_for_status()
        out.append((time.perf_counter() - t0) * 1000)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--beds", type=int, default=24)
    parser.add_argument("--hours", type=float, default=4.0)
    parser.add_argument("--reads", type=int, default=30)
    args = parser.parse_args()
    epoch = align(pd.Timestamp("2026-03-02T06:00:00Z")).to_pydatetime()
    end = epoch + timedelta(hours=args.hours)
    clock = FixedClock(end + timedelta(minutes=1))
    with tempfile.TemporaryDirectory() as tmp:
        app = create_app(Settings.explicit(data_dir=Path(tmp), demo_key=KEY), clock, cycle_interval_s=None)
        with TestClient(app, headers={"Authorization": f"Bearer {KEY}"}) as client:
            readings = Ward(args.beds, 7, pd.Timestamp(epoch)).advance(pd.Timestamp(end))
            for i in range(0, len(readings), 10_000):
                client.post("/v1/readings", json={"readings": readings[i:i + 10_000]}).raise_for_status()
            window_end = epoch + WINDOW
            while window_end <= end:
                client.post("/v1/cycle", params={"window_end": window_end.isoformat()}).raise_for_status()
                window_end += WINDOW
            print(f"{args.beds} beds, {len(readings):,} readings over {args.hours:g} h, scored")
            for path in ("/v1/board", "/v1/patients"):
                ms = sorted(timed(client, path, args.reads))
                p90 = ms[int(0.9 * (len(ms) - 1))]
                print(f"  {path:<13} median {statistics.median(ms):7.1f} ms   p90 {p90:7.1f} ms"
                      f"   ({len(client.get(path).content):,} bytes)")


if __name__ == "__main__":
    main()
