"""Domain records passed between the API edge, the pipeline, the alert engine and the stores."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, NamedTuple


class Reading(NamedTuple):
    """One validated observation. ``ts`` is timezone-aware UTC, truncated to the millisecond.

    A NamedTuple rather than a frozen dataclass: ingest builds hundreds of thousands a second.
    """

    patient_id: str
    vital: str
    ts: datetime
    value: float
    quality: str = "ok"


@dataclass(frozen=True, slots=True)
class Contribution:
    """One feature's push on the logit: ``points`` = coefficient × standardised value."""

    feature: str
    value: float | None
    points: float
    sentence: str


@dataclass(frozen=True)
class Score:
    """The twin's calibrated risk for one patient at one window end, with NEWS2 beside it."""

    patient_id: str
    window_end: datetime
    risk: float
    logit: float
    intercept: float
    contributions: tuple[Contribution, ...]
    model_version: str
    news2: dict[str, Any] = field(default_factory=dict)
    challenger_risk: float | None = None
    flags: tuple[str, ...] = ()
    scored_at: datetime | None = None
