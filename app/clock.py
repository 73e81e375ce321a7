"""Time for the service: system, fixed (tests) or accelerated (the demo's virtual ward)."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Protocol


class Clock(Protocol):
    def now(self) -> datetime: ...  # timezone-aware UTC


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)


class FixedClock:
    """A clock that only moves when told to."""

    def __init__(self, at: datetime) -> None:
        if at.tzinfo is None:
            raise ValueError("FixedClock needs a timezone-aware time")
        self._at = at.astimezone(UTC)

    def now(self) -> datetime:
        return self._at

    def set(self, at: datetime) -> None:
        self._at = at.astimezone(UTC)

    def advance(self, delta: timedelta) -> None:
        self._at += delta


class AcceleratedClock:
    """Simulated time that runs ``speed`` times faster than the wall clock from ``start``."""

    def __init__(self, start: datetime, speed: float, monotonic=time.monotonic) -> None:
        if speed <= 0:
            raise ValueError("speed must be positive")
        self.start = start.astimezone(UTC)
        self.speed = speed
        self._monotonic = monotonic
        self._t0 = monotonic()

    def now(self) -> datetime:
        return self.start + timedelta(seconds=(self._monotonic() - self._t0) * self.speed)
