"""What issue 21's first-value check (``app.write_guard``: one read of the batch's patients over its time span before
each write) costs ``POST /v1/readings``: one 10,000-reading batch (24 patients × 5 vitals), in process (TestClient,
embedded SQLite), median of 7 posts, with the check and with the store's read replaced by nothing.

    PYTHONPATH=. python bench/bench_write_guard.py            # new times each post (the live case)
    PYTHONPATH=. python bench/bench_write_guard.py --resend   # the same batch again (a retry: 10,000 rows read)
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

from tests.support.api import T0, reading, serve

RESEND = "--resend" in sys.argv


def run(label: str, off: bool = False) -> None:
    with serve(Path(tempfile.mkdtemp())) as client:
        if off:
            async def nothing(*args: object) -> None:
                return None

            client.app.state.wardtwin.store.readings = nothing  # type: ignore[attr-defined]
        times = []
        for k in range(7):
            ts0 = T0 - timedelta(hours=2) + timedelta(minutes=10 * (0 if RESEND else k))
            batch = [reading(f"bed-{p:02d}", v, 80, ts=ts0 + timedelta(seconds=s))
                     for p in range(24) for v in ("hr", "rr", "spo2", "sbp", "dbp") for s in range(84)][:10000]
            start = time.perf_counter()
            response = client.post("/v1/readings", json={"readings": batch})
            times.append(time.perf_counter() - start)
            assert response.status_code == 200, response.text[:300]
        print(f"{label}, {'re-sending one batch' if RESEND else 'new times'}: "
              f"median {statistics.median(times) * 1000:.0f} ms per 10,000-reading batch")


if __name__ == "__main__":
    run("check on")
    run("check off (no read before the write)", off=True)
