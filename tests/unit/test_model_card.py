"""lab.model_card: the card stored in the shipped artifact is what model_card builds; its criteria follow
models.labels; the Markdown renders with and without an evaluation."""

from __future__ import annotations

import json

from lab.model_card import model_card, render_model_card
from models import labels as L
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


def test_real_patient_results_enter_the_card_only_for_this_twin() -> None:
    import json
    from pathlib import Path

    artifact = _shipped()
    real = json.loads((Path(__file__).parents[2] / "reports/physionet2012/report.json").read_text())
    real["twin_version"] = artifact["version"]
    md = render_model_card(artifact, real=real)
    assert "## Real patients: PhysioNet/CinC Challenge 2012 set A" in md
    auroc = real["events_6h"]["discrimination"]["twin"]["auroc"]
    assert f"{auroc:.3f}" in md.split("## Real patients")[1]
    real["twin_version"] = "another-twin"
    assert "## Real patients" not in render_model_card(artifact, real=real)
