"""The PhysioNet 2012 parser and its stated mappings (lab.physionet2012), and the charted event rule."""

from __future__ import annotations

import tarfile
from datetime import timedelta
from pathlib import Path

import pandas as pd
import pytest

from lab import physionet2012 as P
from lab import physionet_eval as E

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "physionet2012"
RECORDS = FIXTURES / "set-a"
OUTCOMES = FIXTURES / "Outcomes-a.txt"
HEADER = "Time,Parameter,Value\n00:00,RecordID,999001\n00:00,Age,70\n00:00,Gender,1\n00:00,Height,-1\n" \
         "00:00,ICUType,3\n00:00,Weight,80\n"


def stay(body: str) -> P.Stay:
    return P.parse_stay(HEADER + body)


def of(s: P.Stay, vital: str) -> list[tuple[str, float, str]]:
    """(HH:MM, value, source) of one vital's readings."""
    out = []
    for r in s.readings:
        if r.vital == vital:
            minutes = int((r.ts - P.ADMISSION_AT).total_seconds() // 60)
            out.append((f"{minutes // 60:02d}:{minutes % 60:02d}", r.value, r.source))
    return out


@pytest.mark.parametrize(("gcs", "code"), [
    (15, 0), (14, 1), (13, 1), (12, 2), (9, 2), (8, 3), (6, 3), (5, 4), (3, 4),
    (2, None), (16, None), (0, None), (14.5, None), (float("nan"), None),
])
def test_gcs_to_acvpu_band_edges(gcs: float, code: int | None) -> None:
    assert P.acvpu_from_gcs(gcs) == code


def test_descriptors_times_and_direct_mappings() -> None:
    s = stay("00:07,HR,73\n00:07,RespRate,19\n00:07,Temp,35.1\n01:00,SaO2,97\n48:00,HR,80\n00:07,Urine,900\n"
             "02:00,Weight,81\n03:00,Lactate,2.1\n")
    assert (s.record_id, s.age, s.gender, s.height, s.icu_type, s.weight) == (999001, 70, 1, None, 3, 80)
    assert s.patient_id == "pn2012-999001"
    assert of(s, "hr") == [("00:07", 73, "HR"), ("48:00", 80, "HR")]
    assert of(s, "rr") == [("00:07", 19, "RespRate")]
    assert of(s, "temp") == [("00:07", 35.1, "Temp")]
    assert of(s, "spo2") == [("01:00", 97, "SaO2")]  # arterial blood gas, stated as such
    assert {r.vital for r in s.readings} == {"hr", "rr", "temp", "spo2"}  # urine, weight, labs are not readings
    assert s.readings[0].ts == P.ADMISSION_AT + timedelta(minutes=7)
    item = s.items()[0]
    assert item == {"patient_id": "pn2012-999001", "vital": "hr", "value": 73.0, "ts": "2012-01-01T00:07:00Z",
                    "quality": "ok"}


def test_zeros_and_implausible_values_are_passed_on_unchanged() -> None:
    s = stay("00:10,HR,0\n00:10,NISysABP,0\n00:10,Temp,-17.8\n")
    assert of(s, "hr") == [("00:10", 0, "HR")]
    assert of(s, "sbp") == [("00:10", 0, "NISysABP")]
    assert of(s, "temp") == [("00:10", -17.8, "Temp")]


def test_arterial_blood_pressure_only_when_no_cuff_value_at_that_time() -> None:
    s = stay("01:00,NISysABP,120\n01:00,NIDiasABP,70\n01:00,SysABP,130\n01:00,DiasABP,60\n"
             "02:00,SysABP,110\n02:00,DiasABP,55\n"
             "03:00,NIDiasABP,65\n03:00,SysABP,100\n03:00,DiasABP,50\n"
             "04:00,NISysABP,0\n04:00,SysABP,105\n")
    assert of(s, "sbp") == [("01:00", 120, "NISysABP"), ("02:00", 110, "SysABP"), ("04:00", 0, "NISysABP")]
    assert of(s, "dbp") == [("01:00", 70, "NIDiasABP"), ("02:00", 55, "DiasABP"), ("03:00", 65, "NIDiasABP")]
    assert s.sources()["sbp<-SysABP"] == 1


def test_oxygen_rule() -> None:
    s = stay("01:00,FiO2,0.4\n02:00,MechVent,1\n03:00,FiO2,0.21\n04:00,FiO2,0.21\n04:00,MechVent,1\n"
             "05:00,FiO2,0.5\n05:00,MechVent,1\n06:00,FiO2,1.5\n07:00,FiO2,0\n08:00,MechVent,0\n")
    nominal = P.NOMINAL_O2_L_MIN
    assert of(s, "o2") == [("01:00", nominal, "FiO2"), ("02:00", nominal, "MechVent"), ("03:00", 0.0, "FiO2"),
                           ("04:00", nominal, "MechVent"), ("05:00", nominal, "FiO2+MechVent")]
    assert s.unmapped == {"FiO2 outside 0.21–1": 2}


def test_gcs_readings_and_unmappable_gcs_are_counted() -> None:
    s = stay("00:30,GCS,15\n04:30,GCS,13\n08:30,GCS,7\n09:00,GCS,0\n")
    assert of(s, "acvpu") == [("00:30", 0.0, "GCS"), ("04:30", 1.0, "GCS"), ("08:30", 3.0, "GCS")]
    assert s.unmapped == {"GCS outside 3–15": 1}


def test_not_a_record_is_refused() -> None:
    with pytest.raises(ValueError, match="not a PhysioNet 2012 record"):
        P.parse_stay("a,b,c\n")
    with pytest.raises(ValueError, match="RecordID"):
        P.parse_stay("Time,Parameter,Value\n00:07,HR,80\n")


def test_outcomes() -> None:
    out = P.read_outcomes(OUTCOMES)
    assert sorted(out) == [132539, 132543, 132551, 132588, 132698]
    assert out[132539] == P.Outcome(132539, 6, 1, 5, None, 0)
    assert out[132543].survival_d == 575 and out[132543].in_hospital_death == 0
    assert out[132588].saps1 is None and out[132588].in_hospital_death == 1
    assert sum(o.in_hospital_death for o in out.values()) == 3


def test_outcomes_file_with_other_columns_is_refused(tmp_path: Path) -> None:
    bad = tmp_path / "o.txt"
    bad.write_text("RecordID,SAPS\n1,2\n", encoding="utf-8")
    with pytest.raises(ValueError, match="not an Outcomes file"):
        P.read_outcomes(bad)


def test_folder_and_streamed_tarball_give_the_same_stays(tmp_path: Path) -> None:
    archive = tmp_path / "set-a.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(RECORDS, arcname="set-a")
    from_folder = list(P.iter_stays(RECORDS))
    from_tar = sorted(P.iter_stays(archive), key=lambda s: s.record_id)
    assert [s.record_id for s in from_folder] == [132539, 132543, 132551, 132588, 132698]
    assert from_tar == from_folder
    assert [s.record_id for s in P.iter_stays(RECORDS, limit=2)] == [132539, 132543]
    assert len(list(P.iter_stays(archive, limit=3))) == 3
    assert list(P.iter_stays(RECORDS, limit=0)) == []
    assert not any(p.suffix == ".txt" for p in tmp_path.rglob("*"))  # streamed, nothing extracted


def test_fixture_stays_cover_the_mappings() -> None:
    sources = sum((s.sources() for s in P.iter_stays(RECORDS)), start=__import__("collections").Counter())
    for key in ("hr<-HR", "sbp<-NISysABP", "sbp<-SysABP", "acvpu<-GCS", "o2<-FiO2+MechVent", "temp<-Temp"):
        assert sources[key] > 0, key


# --------------------------------------------------------------------------------------------
# The charted-cadence event rule


def readings(rows: list[tuple[str, str, float]], pid: str = "pn2012-1") -> pd.DataFrame:
    return pd.DataFrame({"patient_id": pid, "ts": [pd.Timestamp(P.ADMISSION_AT) + pd.Timedelta(t) for t, _, _ in rows],
                         "vital": [v for _, v, _ in rows], "value": [x for _, _, x in rows], "quality": "ok"})


def test_event_needs_two_consecutive_abnormal_charted_values() -> None:
    one = readings([("1h", "hr", 135), ("2h", "hr", 100), ("3h", "hr", 136)])
    assert E.charted_events(one).empty
    two = readings([("1h7min", "hr", 135), ("2h7min", "hr", 135), ("3h7min", "hr", 100)])
    ev = E.charted_events(two)
    assert len(ev) == 1
    assert ev.loc[0, "kind"] == "hr_high"
    assert ev.loc[0, "onset"] == pd.Timestamp(P.ADMISSION_AT) + pd.Timedelta("1h5min")
    assert ev.loc[0, "end"] == pd.Timestamp(P.ADMISSION_AT) + pd.Timedelta("2h10min")


def test_event_run_breaks_on_a_long_gap_and_equal_values_still_count() -> None:
    gap = readings([("1h", "sbp", 85), ("5h1min", "sbp", 85)])
    assert E.charted_events(gap).empty
    fever = readings([("1h", "temp", 40.2), ("5h", "temp", 40.2)])
    assert E.charted_events(fever)["kind"].tolist() == ["temp_high"]


def test_events_merge_within_an_hour_and_ignore_artefact_flagged_readings() -> None:
    rows = readings([("1h", "hr", 135), ("2h", "hr", 136), ("2h30min", "sbp", 80), ("3h", "sbp", 82),
                     ("10h", "spo2", 85), ("11h", "spo2", 86)])
    ev = E.charted_events(rows)
    assert ev["kind"].tolist() == ["hr_high", "spo2_low"]
    flagged = rows.assign(quality=["ok", "motion", "ok", "ok", "ok", "ok"])
    assert E.charted_events(flagged)["kind"].tolist() == ["sbp_low", "spo2_low"]
