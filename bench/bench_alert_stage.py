"""The alert stage for a burst of new alerts (issue 21, finding 8: 1,800 alerts took 25–85 s): 2,000 patients whose
twin rule holds in one cycle, through ``AlertEngine.evaluate`` on the embedded SQLite control store, as shipped (one
transaction for the cycle's raises) and with the store raising one alert per transaction (the path before), in the
same run; medians of 3 and their ratio.

    PYTHONPATH=. python bench/bench_alert_stage.py [--alerts 2000]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from app.alerts.engine import AlertEngine
from app.alerts.rules import Policy
from app.alerts.store import AlertStore, NewAlert
from app.alerts.timers import Timers
from app.clock import FixedClock
from app.domain import Score

T0 = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)


async def one_run(n: int, per_alert: bool) -> float:
    store = AlertStore(Path(tempfile.mkdtemp()) / "alerts.db")
    await store.open()
    if per_alert:  # the path before: one transaction (and one commit) per alert
        batched = store.raise_alerts

        async def one_by_one(batch: list[NewAlert], at: datetime) -> list:
            return [a for item in batch for a in await batched([item], at)]

        store.raise_alerts = one_by_one  # type: ignore[method-assign]
    engine = AlertEngine(store, FixedClock(T0), Policy(threshold=0.7, clear_threshold=0.6, twin_sustain_windows=1),
                         Timers(store, escalate_after=timedelta(hours=1), renotify_after=None))
    scores = [Score(f"bed-{i:05d}", T0, 0.9, 0.0, 0.0, (), "bench") for i in range(n)]
    start = time.perf_counter()
    raised = await engine.evaluate(scores)
    elapsed = time.perf_counter() - start
    assert raised is not None and len(raised) == n
    await store.close()
    return elapsed


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--alerts", type=int, default=2000, help="new alerts in the one cycle")
    args = parser.parse_args()
    shipped, before = [], []
    for _ in range(3):  # interleaved, so both see the same machine
        shipped.append(await one_run(args.alerts, per_alert=False))
        before.append(await one_run(args.alerts, per_alert=True))
    s, b = statistics.median(shipped), statistics.median(before)
    print(f"{args.alerts} new alerts in one cycle: one transaction {s:.2f} s, one per alert {b:.2f} s "
          f"(median of 3; the batch is {b / s:.1f}x faster)")


if __name__ == "__main__":
    asyncio.run(main())
