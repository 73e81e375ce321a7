"""app.alerts.criteria: the reasons shown for a met criterion follow the thresholds of models.labels."""

from __future__ import annotations

import pandas as pd

from app.alerts.criteria import criteria_reasons
from app.domain import Score
from models import labels
from models.scoring import CRITERIA_MET

T0 = pd.Timestamp("2024-03-01 12:00", tz="UTC")


def _flagged(*kinds: str) -> Score:
    return Score("c", T0, 0.05, 0.0, 0.0, (), "test", flags=tuple(f"{CRITERIA_MET}:{k}" for k in kinds))


def test_every_criterion_has_its_reason_in_words() -> None:
    reasons = criteria_reasons(_flagged(*labels.CRITERIA))
    assert reasons == [f"Meets the deterioration criterion now: {labels.criterion_text(k)}" for k in labels.CRITERIA]
    assert reasons[2] == "Meets the deterioration criterion now: systolic BP below 90 mmHg"
    assert criteria_reasons(_flagged()) == [] and criteria_reasons(_flagged("new_kind"))[0].endswith(": new_kind")


def test_the_reason_follows_a_changed_label_threshold(monkeypatch) -> None:
    monkeypatch.setitem(labels.CRITERIA, "sbp_low", ("sbp", "<", 85.0, True))
    monkeypatch.setitem(labels.CRITERIA, "spo2_low", ("spo2_mean", "<", 88.5, False))
    assert criteria_reasons(_flagged("sbp_low", "spo2_low")) == [
        "Meets the deterioration criterion now: systolic BP below 85 mmHg",
        "Meets the deterioration criterion now: SpO2 below 88.5 %",
    ]
