"""Per-key token buckets, in memory (one process serves a ward; a restart forgets, which only forgives)."""

from __future__ import annotations

import math
import time
from collections.abc import Callable


class RateLimiter:
    """``rate_per_s`` requests a second on average per key, bursts up to ``burst``."""

    def __init__(self, rate_per_s: float, burst: int, monotonic: Callable[[], float] = time.monotonic) -> None:
        self.rate, self.burst, self._now = rate_per_s, burst, monotonic
        self._buckets: dict[str, tuple[float, float]] = {}  # key → (tokens, at)

    def take(self, key: str) -> int | None:
        """None if the request may go ahead, else the whole seconds to wait (``Retry-After``)."""
        now = self._now()
        tokens, at = self._buckets.get(key, (float(self.burst), now))
        tokens = min(float(self.burst), tokens + (now - at) * self.rate)
        if tokens >= 1.0:
            self._buckets[key] = (tokens - 1.0, now)
            return None
        self._buckets[key] = (tokens, now)
        return max(1, math.ceil((1.0 - tokens) / self.rate))
