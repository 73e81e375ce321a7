"""Per-key token buckets, in memory (a restart forgets, which only forgives).

In a fleet (issue 24) each instance keeps its own buckets and takes its share of a key's rate: ``rate / n`` a second
and bursts of ``burst / n`` (at least 1), ``n`` the live instances as its last lease renewal counted them. A client
spread over every instance (a load balancer's round robin) then gets the configured rate in all; one pinned to a
single instance gets its share. No round trip to the database per request."""

from __future__ import annotations

import math
import time
from collections.abc import Callable


class RateLimiter:
    """``rate_per_s`` requests a second on average per key, bursts up to ``burst``."""

    def __init__(self, rate_per_s: float, burst: int, monotonic: Callable[[], float] = time.monotonic) -> None:
        self.rate, self.burst, self._now = rate_per_s, burst, monotonic
        self._buckets: dict[str, tuple[float, float]] = {}  # key → (tokens, at)
        #: The live instances sharing each key's rate (a fleet's view; 1 alone).
        self.instances: Callable[[], int] = lambda: 1

    def take(self, key: str) -> int | None:
        """None if the request may go ahead, else the whole seconds to wait (``Retry-After``)."""
        n = max(1, self.instances())
        rate, burst = self.rate / n, max(1.0, self.burst / n)
        now = self._now()
        tokens, at = self._buckets.get(key, (burst, now))
        tokens = min(burst, tokens + (now - at) * rate)
        if tokens >= 1.0:
            self._buckets[key] = (tokens - 1.0, now)
            return None
        self._buckets[key] = (tokens, now)
        return max(1, math.ceil((1.0 - tokens) / rate))
