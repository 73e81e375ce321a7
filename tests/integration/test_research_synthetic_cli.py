"""``wardtwin export synthetic`` end to end on the five committed set-A stays (tests/fixtures/physionet2012): the
files, the report's structure, and the same output for the same input and seed."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from lab.cli import main

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "physionet2012"
#: Seed 7 splits the five stays into 2 train, 1 holdout and 2 test stays, each side with hours before an event.
ARGS = ["export", "synthetic", "--physionet-records", str(FIXTURES / "set-a"), "--physionet-outcomes",
        str(FIXTURES / "Outcomes-a.txt"), "--seed", "7", "--bootstrap", "20", "--sizes", "1,2"]


def test_synthetic_cli_writes_a_deterministic_report(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    first, second = tmp_path / "a", tmp_path / "b"
    assert main([*ARGS, "--out", str(first)]) == 0
    printed = capsys.readouterr().out
    assert "classifier two-sample test, AUROC" in printed and "membership inference AUROC" in printed
    assert main([*ARGS, "--out", str(second)]) == 0
    for name in ("report.json", "README.md", "index.html", "ks.png", "correlation.png", "auroc.png",
                 "synthetic.csv.gz"):
        assert (first / name).stat().st_size > 0, name
    a = json.loads((first / "report.json").read_text(encoding="utf-8"))
    b = json.loads((second / "report.json").read_text(encoding="utf-8"))
    a.pop("command"), b.pop("command")
    assert a == b  # same records, same seed: the same report
    assert (first / "synthetic.csv.gz").read_bytes() == (second / "synthetic.csv.gz").read_bytes()

    assert a["source"] == "PhysioNet 2012 set A"
    assert a["split"]["train"]["patients"] == 2 and a["split"]["test"]["patients"] == 2
    synth = pd.read_csv(first / "synthetic.csv.gz")
    assert len(synth) == a["synthetic"]["records"] == a["split"]["train"]["records"]
    assert list(synth.columns) == a["columns"] and "in_hospital_death" in a["columns"]
    scores = a["utility"]["all"]["scores"]
    assert set(scores) == {"TRTR", "TSTR"} and 0.0 <= scores["TSTR"]["auroc"] <= 1.0
    assert "auroc_minus_TRTR_ci" in scores["TSTR"]
    assert a["fidelity"]["ks"]["synthetic"]["columns_compared"] > 0
    assert 0.0 <= a["privacy"]["membership_inference"]["auroc_worst"] <= 1.0
    assert a["privacy"]["dcr"]["synthetic_to_train"]["median"] > 0
    assert [x["real_patients"] for x in a["augmentation"]] == [1, 2]
    assert a["augmentation"][1]["real_records"] == a["split"]["train"]["records"]  # both train stays
    assert set(a["augmentation"][1]["test"]["all"]["scores"]) == {"real", "real + synthetic x1",
                                                                  "real + synthetic x4"}
    assert "cannot skew" in a["rebalancing"]["skipped"]  # both train stays are women
    readme = (first / "README.md").read_text(encoding="utf-8")
    assert "| classifier two-sample test, AUROC |" in readme and a["synthetic"]["digest"] in readme


def test_synthetic_cli_refuses_two_sources(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([*ARGS, "--store", "--out", str(tmp_path)]) == 2
    assert "exactly one of" in capsys.readouterr().err
