"""``wardtwin evaluate set-a-weights`` end to end on the five committed real stays (tests/fixtures/physionet2012)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lab.cli import main
from models import features as F
from models.twin import Twin

RECORDS = Path(__file__).resolve().parents[1] / "fixtures" / "physionet2012" / "set-a"


def test_writes_every_feature_and_the_headline_margins(tmp_path: Path) -> None:
    out = tmp_path / "set_a_weights.json"
    assert main(["evaluate", "set-a-weights", "--records", str(RECORDS), "--out", str(out), "--bootstrap", "10"]) == 0
    report = json.loads(out.read_text(encoding="utf-8"))
    assert {f["feature"] for f in report["features"]} == set(F.FEATURE_NAMES)
    assert set(report["models"]) == {"shipped", "shipped + NEWS2-scored", "set-a fit"}
    assert report["twin_version"] == Twin.load().version and report["records"] == RECORDS.name
    assert "fold_models" not in report  # only with --simulator-folds
    shipped = Twin.load().artifact["uncalibrated"]["coefficients"]
    for f in report["features"]:  # the shipped column is the artifact's, rescaled to set A's SD
        j = F.FEATURE_NAMES.index(f["feature"])
        assert f["shipped_per_set_a_sd"] == pytest.approx(shipped[j] * f["set_a_sd"] / f["simulator_sd"])


def test_refuses_a_twin_fitted_on_real_records(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    artifact = dict(Twin.load().artifact)
    artifact["cohort"] = {**artifact["cohort"], "real_data": {"records": "set-a.tar.gz", "records_sha256": "0" * 64}}
    twin = tmp_path / "twin.json"
    twin.write_text(json.dumps(artifact), encoding="utf-8")
    out = tmp_path / "out.json"
    assert main(["evaluate", "set-a-weights", "--records", str(RECORDS), "--artifact", str(twin), "--out",
                 str(out)]) == 2
    assert "in sample" in capsys.readouterr().out and not out.exists()
