"""Domain records passed between the API edge, the pipeline, the alert engine and the stores."""

from __future__ import annotations

from datetime import datetime
from typing import NamedTuple

from models.scoring import Score
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
    #: ``"monitor"`` or ``"charted"`` (``models.schema.SOURCES``): part of the reading's identity in both stores.
    source: str = "monitor"


#: One feature's push on the logit (``feature``, ``value`` or None when not measured, ``points`` = coefficient ×
#: standardised value, ``sentence``): the twin's own type, so a score carries the twin's contributions as they are.
Contribution = TwinContribution

__all__ = ["Contribution", "Reading", "Score"]  # Score: the runtime contract's (models.scoring)
