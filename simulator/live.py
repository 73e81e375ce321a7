"""The live loop: advance the ward on an accelerated clock and hand each delivery batch to the sinks.

Simulated time runs ``speed`` × real time from ``ward.until``. Every ``tick_s`` of real time the
ward is advanced to the current simulated time and what it delivered goes to every sink. The real
clock and the sleep are injectable, so tests run the loop instantly.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from typing import Protocol

import pandas as pd

from simulator.ward import Ward

logger = logging.getLogger(__name__)


class Sink(Protocol):
    def send(self, readings: Sequence[dict]) -> int: ...
    def close(self) -> None: ...


def run_live(ward: Ward, sinks: Sink | Sequence[Sink], speed: float = 60.0, *, tick_s: float = 1.0,
             duration_s: float | None = None, until: pd.Timestamp | None = None,
             monotonic: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep,
             on_batch: Callable[[pd.Timestamp, int], None] | None = None,
             not_after: Callable[[], pd.Timestamp] | None = None) -> int:
    """Stream until ``duration_s`` of real time, simulated time ``until``, or Ctrl-C. Returns readings sent.

    ``not_after`` caps simulated time (the wall clock, for a service that refuses future timestamps):
    an accelerated run then replays the past quickly and continues in real time once it catches up.
    """
    if speed <= 0:
        raise ValueError("speed must be positive")
    targets = [sinks] if hasattr(sinks, "send") else list(sinks)  # type: ignore[arg-type]
    sim0, real0, sent = ward.until, monotonic(), 0
    try:
        while True:
            elapsed = monotonic() - real0
            now = sim0 + pd.Timedelta(seconds=elapsed * speed)
            if until is not None and now >= until:
                now = until
            if not_after is not None:
                now = min(now, not_after())
            batch = ward.advance(now)
            for sink in targets:
                sink.send(batch)
            sent += len(batch)
            if on_batch:
                on_batch(now, len(batch))
            logger.debug("live sim_time=%s readings=%d", now.isoformat(), len(batch))
            if (until is not None and now >= until) or (duration_s is not None and elapsed >= duration_s):
                break
            sleep(max(0.0, tick_s - (monotonic() - real0 - elapsed)))
    except KeyboardInterrupt:
        logger.info("live stopped at sim_time=%s sent=%d", ward.until.isoformat(), sent)
    return sent


__all__ = ["Sink", "run_live"]
