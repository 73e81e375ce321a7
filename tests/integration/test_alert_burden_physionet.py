"""Real stays (the five committed set-A records) streamed through the service in process: every alert counted is
one the service's alert engine stored, per stay and kind."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from lab import physionet2012 as P
from lab import physionet_eval as E
from lab.cli import main
from lab.physionet_cmd import Tally, _skew, validated

RECORDS = Path(__file__).resolve().parents[1] / "fixtures" / "physionet2012" / "set-a"


def test_real_stays_through_the_alert_engine(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "burden"
    assert main(["evaluate", "alert-burden-physionet2012", "--records", str(RECORDS), "--out", str(out),
                 "--bootstrap", "30", "--progress-every", "0", "--hours", "12"]) == 0
    report = json.loads((out / "report.json").read_text(encoding="utf-8"))
    pooled = report["pooled"]
    assert pooled["patients"] == 5 and pooled["patient_days"] == 2.5  # the first 12 h of each
    alerts = pd.read_csv(out / "alerts.csv")
    patients = pd.read_csv(out / "patients.csv")
    assert len(alerts) == pooled["alerts"]["combined"] == patients["n_combined"].sum()
    for kind in ("news2", "twin", "criteria"):
        assert (alerts["kind"] == kind).sum() == pooled["alerts"][kind]
    assert set(alerts["patient_id"]) <= set(patients["patient_id"])
    # first events are the stays' first charted events, found independently here
    frames = [pd.DataFrame(r) for _, r in validated(P.iter_stays(RECORDS, None), Tally(), _skew()) if r]
    readings = pd.concat(frames, ignore_index=True)
    charted = E.charted_events(readings[readings["ts"] <= P.ADMISSION_AT + pd.Timedelta(hours=12)])
    assert pooled["first_events"] == charted["patient_id"].nunique() == int(patients["event"].sum())
    text = capsys.readouterr().out
    assert "alerts per 100 patient-days" in text and "first events warned" in text
