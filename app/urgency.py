"""The ward board's order: which bed needs a nurse first. Pure: same beds, same order (the browser only renders it).

Key, most urgent first::

    1. escalation level   the RCP 2017 clinical-response band of the bed: the latest NEWS2 band, raised to the band
                          of an open ``news2`` alert's NEWS2, to ``low-medium`` by an open ``obs_due`` alert, and
                          to ``low-medium`` when the bed is stale (no data past its cadence: an unknown state is
                          never shown as reassurance)
    2. twin risk          higher first (a bed without a score after every scored bed of its level)
    3. 1-hour trend       risk now minus risk an hour ago, rising first
    4. patient id         ties broken the same way every time

Levels: ``LEVELS`` (``low`` 0 … ``high`` 3), the names of ``models.news2.BANDS``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from models.news2 import BANDS

LEVELS: tuple[str, ...] = BANDS  # low, low-medium, medium, high
#: Alert kinds that escalate the bed to at least a level by themselves.
_ALERT_FLOOR = {"obs_due": "low-medium"}


@dataclass(frozen=True)
class BedUrgency:
    """What the order is computed from: one bed's latest NEWS2 band, risk, trend, open alerts and staleness."""

    patient_id: str
    news2_band: str | None = None
    risk: float | None = None
    risk_change_1h: float | None = None
    #: ``(kind, news2 band of the score that raised it or None)`` of every open alert of the bed.
    open_alerts: tuple[tuple[str, str | None], ...] = ()
    stale: bool = False


def level(bed: BedUrgency) -> int:
    """The bed's escalation level, an index into ``LEVELS``."""
    found = [LEVELS.index(bed.news2_band)] if bed.news2_band in LEVELS else [0]
    for kind, band in bed.open_alerts:
        if kind == "news2" and band in LEVELS:
            found.append(LEVELS.index(band))
        if kind in _ALERT_FLOOR:
            found.append(LEVELS.index(_ALERT_FLOOR[kind]))
    if bed.stale:
        found.append(LEVELS.index("low-medium"))
    return max(found)


def urgency_key(bed: BedUrgency) -> tuple[int, float, float, str]:
    """Sort key, ascending = most urgent first."""
    risk = -1.0 if bed.risk is None else bed.risk
    trend = 0.0 if bed.risk_change_1h is None else bed.risk_change_1h
    return -level(bed), -risk, -trend, bed.patient_id


def order(beds: Iterable[BedUrgency]) -> list[BedUrgency]:
    """The beds, most urgent first."""
    return sorted(beds, key=urgency_key)


def last_data_at(window_starts: Sequence[datetime], window: timedelta) -> datetime | None:
    """The end of the newest window holding any reading: the latest a reading can be (window granularity)."""
    return max(window_starts) + window if window_starts else None


def is_stale(last_at: datetime | None, now: datetime, cadence: timedelta) -> bool:
    """No reading past the expected cadence (or none at all)."""
    return last_at is None or now - last_at > cadence
