"""Deterioration criteria met *now*: flagged on the score, alerted whatever the 6-hour risk."""

from __future__ import annotations

from datetime import datetime

import pandas as pd

from app.domain import Score
from models import labels

#: Flag prefix on a score whose patient meets a deterioration criterion *now* (a sustained event
#: per ``models.labels`` is running at the window end). The twin predicts deterioration within 6 h
#: and was not trained on such windows, so its risk there is not the message: this flag is.
CRITERIA_MET = "criteria_met"


def ongoing_events(grid: pd.DataFrame, window_end: datetime) -> dict[str, str]:
    """patient_id → the kind of the deterioration event still running at ``window_end``."""
    running = labels.events(grid)
    running = running[running["end"] == pd.Timestamp(window_end)]
    return dict(zip(running["patient_id"], running["kind"], strict=True))


def criterion_text(kind: str) -> str:
    """``kind`` in words with the threshold ``models.labels`` uses (an unknown kind is shown as it is)."""
    return labels.criterion_text(kind) if kind in labels.CRITERIA else kind


def criteria_reasons(score: Score) -> list[str]:
    """Sentences for the criteria flagged on a score (empty when none is met)."""
    prefix = CRITERIA_MET + ":"
    return [f"Meets the deterioration criterion now: {criterion_text(f[len(prefix):])}"
            for f in score.flags if f.startswith(prefix)]
