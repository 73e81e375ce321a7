"""Real stays (the five committed set-A records) streamed through the service in process: every alert counted is
one the service's alert engine stored, per stay and kind."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from lab import alert_burden as B
from lab import physionet2012 as P
from lab import physionet_eval as E
from lab.alert_burden import POLICIES
from lab.alert_burden_physionet import ICU_CHART, hourly_sets, pareto_on_set_a, stay_streams, summary_lines
from lab.cli import main
from lab.physionet_cmd import Tally, _skew, validated
from models.schema import VITALS
from models.twin import Twin
from simulator.patient import PatientStream

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
    # the report names the records given and the twin's training data from its artifact
    cohort = Twin.load().artifact["cohort"]
    assert report["scope"].startswith(f"PhysioNet/CinC Challenge 2012 records {RECORDS.name}")
    assert report["twin_training_data"] == E.training_data({"cohort": cohort})
    assert f"trained on {report['twin_training_data']}" in text
    assert report["twin_in_sample"] is None and "IN SAMPLE" not in text  # the fixtures are not what it was fitted on


def test_twin_numbers_on_the_records_it_was_fitted_on_are_labelled_in_sample() -> None:
    est = {"value": 0.5, "ci95": [0.4, 0.6]}
    report = {"scope": "records set-a.tar.gz", "model_version": "twin-x", "twin_threshold": 0.1,
              "twin_training_data": "4000 stays of set-a.tar.gz",
              "twin_in_sample": "sha256 a6814b707e5e, all its stays",
              "pooled": {"patients": 2, "patient_days": 4.0, "first_events": 1, "stable_patients": 1,
                         "estimates": {**{f"per100d_{k}": est for k in POLICIES},
                                       **{f"sens_{k}": est for k in POLICIES},
                                       "per100d_episodes": est, "lead_gain_mean_h": est},
                         "stable_patients_alerted": dict.fromkeys(POLICIES, 1)}}
    lines = summary_lines(report)
    assert any(line.startswith("IN SAMPLE: the twin was fitted on these records") for line in lines)
    assert "twin (IN SAMPLE)" in lines[-1] and "combined (IN SAMPLE)" in lines[-1]
    assert "news2 (IN SAMPLE)" not in "\n".join(lines)


def _stream() -> PatientStream:
    t0 = int(pd.Timestamp(P.ADMISSION_AT).value // 1_000_000)
    m = 60_000
    rows = [(10 * m, "hr", 80.0), (50 * m, "hr", 95.0), (30 * m, "acvpu", 1.0), (70 * m, "rr", 22.0),
            (55 * m, "o2", 2.0), (200 * m, "temp", 38.5)]
    ts = np.asarray([t0 + t for t, _, _ in rows], np.int64)
    return PatientStream(patient={"patient_id": "pn2012-1"}, events=[], start_ms=t0, end_ms=t0 + 4 * 3_600_000,
                         ts_ms=ts, deliver_ms=ts, vital=np.asarray([VITALS.index(v) for _, v, _ in rows], np.int8),
                         value=np.asarray([x for _, _, x in rows]), quality=np.zeros(len(rows), np.int8))


def test_hourly_sets_take_the_newest_value_of_the_hour_and_acvpu_and_oxygen_from_12_hours() -> None:
    sets = {at.hour: body for at, body in hourly_sets(_stream(), hours=4)}
    assert sets[1] == {"patient_id": "pn2012-1", "ts": "2012-01-01T01:00:00+00:00", "hr": 95.0, "acvpu": "C",
                       "o2": 2.0, "by": ICU_CHART}
    assert sets[2] == {"patient_id": "pn2012-1", "ts": "2012-01-01T02:00:00+00:00", "rr": 22.0, "acvpu": "C",
                       "o2": 2.0, "by": ICU_CHART}  # HR older than an hour: left out (a partial set)
    assert sets[4]["temp"] == 38.5 and "hr" not in sets[4]


def test_set_a_pareto_uses_out_of_fold_risk_or_leaves_the_twin_out(tmp_path: Path) -> None:
    streams, _ = stay_streams(RECORDS, None, 6.0)
    run = asyncio.run(B.run_streams(streams, 6.0, 0, tmp_path / "data", start=pd.Timestamp(P.ADMISSION_AT),
                                    progress_every=0))
    left = pareto_on_set_a(run, streams, "sha256 x, all its stays", 6.0, n_boot=20, out_of_fold=tmp_path / "none")
    assert "left_out" in left and left["replay_check"]["all_same"]
    rows = [(E.record_id(pid), h, 2.0 if h == 3 else -9.0) for pid in run.scores for h in range(1, 7)]
    pd.DataFrame(rows, columns=["record_id", "hour", "logit"]).to_csv(tmp_path / "oof.csv.gz", index=False)
    got = pareto_on_set_a(run, streams, "sha256 x, all its stays", 6.0, n_boot=20, out_of_fold=tmp_path / "oof.csv.gz")
    assert got["twin_risk"].startswith("out of fold")
    cal = run.meta["twin_calibration"]
    for scores in run.scores.values():
        for score in scores:
            hour = int((score.window_end - P.ADMISSION_AT) // pd.Timedelta(hours=1))  # newest hour end before it
            logit = 2.0 if hour == 3 else -9.0
            expected = 0.0 if hour == 0 else 1 / (1 + np.exp(-(cal["a"] * logit + cal["c"])))
            assert score.risk == pytest.approx(expected)
    names = [r["policy"] for r in got["pareto"]["rows"]]
    assert names[0] == "charted NEWS2 (hourly sets)" and names[-1] == "shipped policy (replayed)"
