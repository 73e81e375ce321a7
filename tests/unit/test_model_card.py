"""lab.model_card: the card stored in the shipped artifact is what model_card builds; its criteria follow
models.labels; the Markdown renders with and without an evaluation."""

from __future__ import annotations

import json
import math

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
    c = {kind: f"{op} {threshold:g}" for kind, (_, op, threshold, *_) in L.CRITERIA.items()}
    assert f"HR {c['hr_high']} or {c['hr_low']} bpm, SBP {c['sbp_low']} mmHg, SpO2 {c['spo2_low']} %" in use
    monkeypatch.setitem(L.CRITERIA, "temp_high", ("temp", ">", 38.5, True))
    assert "temperature > 38.5 °C" in model_card(_shipped())["intended_use"]


def test_the_card_reads_the_coefficients_per_sd_and_the_single_abnormalities() -> None:
    artifact = _shipped()
    md = render_model_card(artifact)
    assert "| odds ratio per SD |" in md and "### Constraint set" in md
    for name, coef in zip(artifact["feature_names"], artifact["coefficients"], strict=True):
        row = next(line for line in md.splitlines() if line.startswith(f"| `{name}` |"))
        assert f"| {coef:+.3f} | {math.exp(coef):.2f} |" in row, name
    table = {line.split(" | ")[0].strip("| "): float(line.split(" | ")[2])
             for line in md.split("### What one abnormality adds")[1].splitlines() if line.startswith("| heart rate")}
    # Two-sided levels with a floor: 55 bpm adds nothing, 118 bpm adds risk, bradycardia counts on its own NEWS2
    # scale (38 bpm scores 3 points, 118 bpm 2), and no winsorising flattens them.
    assert table["heart rate 55 bpm"] == 0.0 < table["heart rate 118 bpm"]
    assert table["heart rate 38 bpm"] > table["heart rate 45 bpm"] > 0.0
    assert table["heart rate 38 bpm"] > table["heart rate 118 bpm"]


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
