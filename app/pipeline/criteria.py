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

CRITERIA_TEXT = {
    "hr_high": "heart rate above 120 bpm",
    "hr_low": "heart rate below 50 bpm",
    "sbp_low": "systolic BP below 90 mmHg",
    "spo2_low": "SpO2 below 90 %",
    "temp_high": "temperature above 39 °C",
}


def criteria_reasons(score: Score) -> list[str]:
    """Sentences for the criteria flagged on a score (empty when none is met)."""
    prefix = CRITERIA_MET + ":"
    return [f"Meets the deterioration criterion now: {CRITERIA_TEXT.get(f[len(prefix):], f[len(prefix):])}"
            for f in score.flags if f.startswith(prefix)]
