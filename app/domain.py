"""Domain records passed between the API edge, the pipeline, the alert engine and the stores."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, NamedTuple

from models.twin import TwinContribution


class Reading(NamedTuple):
    """One validated observation. ``ts`` is timezone-aware UTC, truncated to the millisecond.

    A NamedTuple rather than a frozen dataclass: ingest builds hundreds of thousands a second.
    """

    patient_id: str
    vital: str
    ts: datetime
    value: float
    quality: str = "ok"


#: One feature's push on the logit (``feature``, ``value`` or None when not measured, ``points`` = coefficient ×
#: standardised value, ``sentence``): the twin's own type, so a score carries the twin's contributions as they are.
Contribution = TwinContribution


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
