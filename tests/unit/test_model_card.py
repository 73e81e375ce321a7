"""models.model_card: the card stored in the shipped artifact is what model_card builds; its criteria follow
models.labels; the Markdown renders with and without an evaluation."""

from __future__ import annotations

import json

from models import labels as L
from models.model_card import model_card, render_model_card
from models.twin import DEFAULT_ARTIFACT


def _shipped() -> dict:
    return json.loads(DEFAULT_ARTIFACT.read_text(encoding="utf-8"))


def test_the_shipped_card_is_what_model_card_builds() -> None:
    artifact = _shipped()
    assert model_card(artifact) == artifact["card"]
    md = render_model_card(artifact)
    assert artifact["version"] in md and "## Known limitations" in md and "reports/evaluation/" in md


def test_intended_use_states_the_label_thresholds(monkeypatch) -> None:
    use = model_card(_shipped())["intended_use"]
    assert "HR > 120 or < 50 bpm, SBP < 90 mmHg, SpO2 < 90 %, temperature > 39 °C" in use
    monkeypatch.setitem(L.CRITERIA, "temp_high", ("temp", ">", 38.5, True))
    assert "temperature > 38.5 °C" in model_card(_shipped())["intended_use"]
