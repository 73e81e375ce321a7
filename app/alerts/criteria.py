"""Deterioration criteria met *now*, in words: the reasons of a ``criteria`` alert and of the ward board's top line.

The cycle flags a score ``criteria_met:<kind>`` (``models.scoring.CRITERIA_MET``) when a sustained event per
``models.labels`` runs at its window end; it is alerted whatever the 6-hour risk.
"""

from __future__ import annotations

from models import labels
from models.scoring import CRITERIA_MET, Score


def criterion_text(kind: str) -> str:
    """``kind`` in words with the threshold ``models.labels`` uses (an unknown kind is shown as it is)."""
    return labels.criterion_text(kind) if kind in labels.CRITERIA else kind


def criteria_reasons(score: Score) -> list[str]:
    """Sentences for the criteria flagged on a score (empty when none is met)."""
    prefix = CRITERIA_MET + ":"
    return [f"Meets the deterioration criterion now: {criterion_text(f[len(prefix):])}"
            for f in score.flags if f.startswith(prefix)]
