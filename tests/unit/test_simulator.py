"""Simulator: determinism, schema, ground-truth events, artefacts, cohort files, CLI."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pandas as pd
import pytest

from lab.cli import main
from models import labels
from models import windows as W
from models.schema import PATIENT_ID_PATTERN, PLAUSIBLE_RANGES, QUALITY_PATTERN, SOURCED_READING_COLUMNS, VITALS
from simulator.archetypes import (
    ARCHETYPES,
    DEFAULT_MIX,
    ENRICHED_MIX,
    EVENT_ARCHETYPES,
    WARD_EVENT_RATE_PER_DAY,
    mix_for_event_rate,
    normalise_mix,
    parse_mix,
    quota_archetypes,
)
from simulator.cohort import iter_cohort, iter_cohort_files, load_cohort, write_cohort
from simulator.patient import generate_patient, to_epoch_ms

START = pd.Timestamp("2026-01-05T00:00Z")
START_MS = to_epoch_ms(START)


@pytest.fixture(scope="module")
def by_archetype() -> dict[str, list]:
    """Two 12-hour patients of every archetype."""
    return {a: [generate_patient(f"x{a[:3]}{k}", (11, i, k), START_MS, 12.0, archetype=a) for k in range(2)]
            for i, a in enumerate(ARCHETYPES)}


def test_same_seed_gives_byte_identical_files(tmp_path):
    a = write_cohort(tmp_path / "a", 6, 3.0, seed=5)
    b = write_cohort(tmp_path / "b", 6, 3.0, seed=5)
    assert a["rows"] == b["rows"] > 0
    for name in ("readings.parquet", "patients.parquet", "events.parquet", "observations.parquet", "manifest.json"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name
    write_cohort(tmp_path / "c", 6, 3.0, seed=6)
    assert (tmp_path / "a" / "readings.parquet").read_bytes() != (tmp_path / "c" / "readings.parquet").read_bytes()


def test_patient_depends_only_on_seed_and_index():
    whole = list(iter_cohort(4, 2.0, seed=9))
    again = generate_patient("p0003", (9, 2), START_MS, 2.0)
    assert whole[2].readings["value"].to_numpy().tobytes() == again.value.tobytes()
    assert whole[2].patient == again.patient


def test_cohort_files_follow_the_reading_schema(tmp_path):
    summary = write_cohort(tmp_path, 5, 2.0, seed=1)
    readings, patients, events = load_cohort(tmp_path)
    assert tuple(readings.columns) == SOURCED_READING_COLUMNS
    assert set(readings["source"]) == {"monitor", "charted"}
    assert str(readings["ts"].dtype) == "datetime64[ns, UTC]"
    assert readings["value"].dtype == np.float64
    assert len(readings) == summary["rows"]
    assert set(readings["vital"]) <= set(VITALS)
    assert all(QUALITY_PATTERN.match(q) for q in readings["quality"].unique())
    assert all(PATIENT_ID_PATTERN.match(p) for p in patients["patient_id"])
    assert (readings["ts"].astype("int64") % 1_000_000 == 0).all()  # ms precision
    for vital, (lo, hi) in PLAUSIBLE_RANGES.items():
        v = readings.loc[readings["vital"] == vital, "value"]
        assert v.between(lo, hi).all(), vital
    assert list(patients.columns) == ["patient_id", "age", "sex", "archetype", "spo2_scale"]
    assert set(patients["sex"]) <= {"F", "M"} and patients["age"].between(18, 98).all()
    assert {"patient_id", "kind", "onset"} <= set(events.columns)
    assert json.loads((tmp_path / "manifest.json").read_text())["seed"] == 1
    records = list(iter_cohort_files(tmp_path))
    assert [r.patient["patient_id"] for r in records] == list(patients["patient_id"])
    assert sum(len(r.readings) for r in records) == len(readings)


@pytest.mark.parametrize("archetype", ARCHETYPES)
def test_events_are_the_first_sustained_crossing_of_the_windows(by_archetype, archetype):
    """Whatever the archetype, the recorded event is exactly the label's first event (nothing is redrawn)."""
    for stream in by_archetype[archetype]:
        found = labels.events(W.build(stream.frame()))
        if found.empty:
            assert stream.events == []
            continue
        (event,) = stream.events
        assert event["kind"] == archetype
        assert found["onset"].iloc[0] == event["onset"]
        assert found["kind"].iloc[0] == event["criterion"]


def test_deterioration_has_a_prodrome():
    """A gradual prodrome: hours before onset the primary vital already drifts toward its threshold."""
    checked = 0
    for archetype in sorted(EVENT_ARCHETYPES - {"recovery"}):
        for k in range(12):
            stream = generate_patient(f"g{k}", (12, k), START_MS, 16.0, archetype=archetype, onset_window_h=(6.0, 12.0))
            if stream.traits["shape"] != "gradual" or not stream.events:
                continue
            onset = stream.events[0]["onset"]
            win = W.build(stream.frame()).set_index("start")
            column = {"hr_high": "hr_mean", "hr_low": "hr_mean", "sbp_low": "sbp", "spo2_low": "spo2_mean",
                      "temp_high": "temp"}[stream.events[0]["criterion"]]
            early = win.loc[:onset - pd.Timedelta(hours=3), column].mean()
            late = win.loc[onset - pd.Timedelta(minutes=45):onset - pd.Timedelta(minutes=5), column].mean()
            towards_high = stream.events[0]["criterion"] == "hr_high"
            assert (late > early) if towards_high else (late < early), (archetype, early, late)
            checked += 1
            break
    assert checked >= 3


def test_prodromes_vary_and_heart_block_is_abrupt():
    """Prodrome shapes of every kind occur; most bradyarrhythmias fall within minutes, not hours."""
    from simulator import physiology as P

    rng = np.random.default_rng(4)
    plans = [P.draw_plan(rng, a, 24 * 3600.0) for a in ("sepsis", "respiratory_failure", "haemorrhage")
             for _ in range(200)]
    assert set(p.shape for p in plans) == set(P.PRODROME_SHAPES)
    assert any(p.prodrome_s < 3600 for p in plans) and any(p.prodrome_s > 3 * 3600 for p in plans)
    assert 0.05 < np.mean([p.peak < 1 for p in plans]) < 0.2  # some stop short of the threshold
    assert 0.15 < np.mean([p.resolves and p.peak == 1 for p in plans]) < 0.3  # some cross and resolve
    fluct = next(p for p in plans if p.shape == "fluctuating")
    t = np.arange(0.0, fluct.t_plan_s, 60.0)
    assert (np.diff(P.severity(fluct, t)) < -1e-4).any()  # comes and goes before the crossing
    brady = [P.draw_plan(rng, "bradyarrhythmia", 24 * 3600.0) for _ in range(200)]
    assert np.mean([p.prodrome_s <= 600 for p in brady]) > 0.5
    # an abrupt block: the heart rate falls through 50 within minutes of being normal
    for k in range(20):
        s = generate_patient(f"b{k}", (31, k), START_MS, 12.0, archetype="bradyarrhythmia", onset_window_h=(3.0, 8.0))
        if s.traits["shape"] == "abrupt" and s.events:
            win = W.build(s.frame()).set_index("start")["hr_mean"]
            onset = s.events[0]["onset"]
            assert win.loc[onset - pd.Timedelta(minutes=40):onset - pd.Timedelta(minutes=20)].mean() > 55
            break
    else:
        pytest.fail("no abrupt bradyarrhythmia in 20 patients")


def test_stable_patients_are_not_redrawn_the_label_decides():
    """Stable and fever patients who cross a threshold for half an hour keep it, as an event the label also finds;
    on the ward mix that is rare (issue 20: at most 0.03 per patient-day; the report measures 1,500 patients)."""
    crossed = total = 0
    for rec in iter_cohort(40, 24.0, seed=3, archetype_mix={"stable": 0.8, "fever": 0.2}):
        found = labels.events(W.build(rec.readings))
        assert len(rec.events) == min(len(found), 1)
        crossed += bool(rec.events)
        total += 1
    assert crossed <= 0.1 * total


def test_stable_news2_at_charted_rounds_is_rare_and_rounds_follow_rcp():
    """NEWS2 ≥ 5 as the nurse meets it (charted rounds, nurse-counted RR) on stable patients, near the real-ward
    2–5.5 per 100 patient-days; rounds at the RCP 2017 minimum frequency for the band."""
    from simulator.report import charted_news2

    days = high = sets = 0
    for s in (generate_patient(f"s{i}", (21, i), START_MS, 24.0, archetype="stable") for i in range(40)):
        got = charted_news2(s)
        assert got and all(a[0] < b[0] for a, b in itertools.pairwise(got))
        gaps = np.diff(s.nurse_rr_ms) / 3_600_000
        assert (gaps <= 12.0 + 1e-9).all() and (gaps >= 0.2 - 1e-9).all()  # at least 12-hourly, at most every 12 min
        days += (s.end_ms - s.start_ms) / 86_400_000
        sets += len(got)
        high += sum(total >= 5 for _, total, _ in got)
    assert 2.0 <= sets / days <= 8.0
    assert 100 * high / days < 25  # per 100 stable patient-days (real wards: 2–5.5; see the report)


def test_artefacts_gaps_late_and_duplicate_deliveries(by_archetype):
    frame = pd.concat([s.frame() for s in by_archetype["stable"]])
    qualities = set(frame["quality"].astype(str))
    assert {"ok", "probe_off", "motion"} <= qualities
    probe = frame[(frame["quality"] == "probe_off")]
    assert (probe["vital"] == "spo2").all() and probe["value"].between(50, 100).all()
    motion_hr = frame[(frame["quality"] == "motion") & (frame["vital"] == "hr")]
    assert len(motion_hr) > 0
    assert frame.duplicated(["patient_id", "vital", "ts", "value", "quality"]).any()  # retransmissions
    hr = frame[frame["vital"] == "hr"]
    assert (hr.groupby("patient_id", observed=True)["ts"].diff() < pd.Timedelta(0)).any()  # out of order
    assert any(((s.deliver_ms - s.ts_ms) > 60_000).any() for s in by_archetype["stable"])  # some minutes late
    assert all(np.all(np.diff(s.deliver_ms) >= 0) for s in by_archetype["stable"])
    longest = [np.diff(np.unique(s.ts_ms[s.vital == VITALS.index("hr")])).max()
               for streams in by_archetype.values() for s in streams]
    assert max(longest) > 20_000  # a gap (leads off, off the ward) in some 1 Hz series


def test_charted_observations_and_rates(by_archetype):
    s = by_archetype["stable"][0]
    frame = s.frame()
    monitor = frame[frame["source"] == "monitor"]
    counts = monitor.drop_duplicates(["vital", "ts"])["vital"].value_counts()
    assert 0.9 * 12 * 3600 < counts["hr"] <= 12 * 3600
    assert counts["spo2"] <= 12 * 120 and counts["sbp"] <= 12 * 4 and counts["temp"] <= 12 * 12
    assert counts["acvpu"] == counts["o2"] == 0  # the monitor charts nothing
    charted = frame[frame["source"] == "charted"]
    per_set = charted.groupby("ts")["vital"].agg(lambda v: tuple(sorted(v)))
    assert len(per_set) >= 1 and set(per_set) == {tuple(sorted(("rr", "spo2", "o2", "sbp", "hr", "acvpu", "temp")))}
    assert (charted.groupby("ts")["quality"].agg(set) == {"ok"}).all()


def test_charted_sets_are_full_observation_sets_apart_from_the_monitor(by_archetype):
    """Each set is the nurse's own full NEWS2 set (her RR count, not the monitor's), the same values as its charted
    readings, delivered whole at one time, and shaped as ``POST /v1/observations`` takes it."""
    for s in (x for streams in by_archetype.values() for x in streams):
        sets = s.observation_sets()
        table = s.charted_sets()
        assert len(sets) == len(table) == len(s.nurse_doc_ms) >= 1
        charted = s.frame().assign(deliver_ms=s.deliver_ms)
        charted = charted[charted["source"] == "charted"]
        assert charted.groupby("ts")["deliver_ms"].nunique().eq(1).all()  # one delivery per set
        for doc, body in sets:
            assert set(body) == {"patient_id", "ts", "rr", "spo2", "spo2_scale", "o2", "sbp", "hr", "acvpu", "temp",
                                 "by"}
            assert body["acvpu"] in "ACVPU" and body["spo2_scale"] == s.spo2_scale
            at = charted[charted["ts"] == pd.Timestamp(doc, unit="ms", tz="UTC")].set_index("vital")["value"]
            assert at["rr"] == body["rr"] and at["sbp"] == body["sbp"] and at["temp"] == body["temp"]
        np.testing.assert_array_equal(table["rr"].to_numpy(float), s.nurse_rr)


def test_mix():
    assert abs(sum(normalise_mix(None).values()) - 1) < 1e-12
    events = sum(DEFAULT_MIX[a] for a in EVENT_ARCHETYPES)
    assert events == pytest.approx(WARD_EVENT_RATE_PER_DAY)  # a general ward over a 24-hour block
    assert sum(mix_for_event_rate(0.05, 48.0)[a] for a in EVENT_ARCHETYPES) == pytest.approx(0.1)
    assert parse_mix("enriched") == normalise_mix(ENRICHED_MIX) and parse_mix("ward") == DEFAULT_MIX
    ward = quota_archetypes(24, normalise_mix(ENRICHED_MIX), np.random.default_rng(1))
    assert sum(a in EVENT_ARCHETYPES for a in ward) == 3 and ward.count("stable") == 20
    with pytest.raises(ValueError):
        normalise_mix({"zombie": 1.0})


def test_cli_cohort(tmp_path, capsys):
    assert main(["simulate", "cohort", "--patients", "3", "--hours", "1", "--seed", "2", "--out", str(tmp_path),
                 "--quiet"]) == 0
    assert json.loads(capsys.readouterr().out)["patients"] == 3
    assert (tmp_path / "readings.parquet").exists()


def test_charted_news2_uses_the_window_aggregates_of_models_windows():
    from simulator import detect

    s = generate_patient("w1", (22, 1), START_MS, 6.0, archetype="stable")
    win = W.build(s.frame()).set_index("start")
    m = s.quality == 0
    key = s.ts_ms[m] * 16 + s.vital[m]
    _, first = np.unique(key, return_index=True)
    origin, series = detect.window_aggregates(s.ts_ms[m][first], s.vital[m][first], s.value[m][first])
    starts = pd.to_datetime(origin + detect.WINDOW_MS * np.arange(len(series["rr"])), unit="ms", utc=True)
    for ours, theirs in (("rr", "rr_mean"), ("hr", "hr_mean"), ("spo2", "spo2_mean"), ("sbp", "sbp")):
        np.testing.assert_allclose(series[ours], win.loc[starts, theirs].to_numpy(float), equal_nan=True)


def test_ward_population_has_hard_negatives_af_night_dips_and_opioids():
    from simulator import physiology as P

    rng = np.random.default_rng(3)
    bases = [P.draw_baseline(rng, 80, "F", "stable") for _ in range(2000)]
    copd = [b for b in bases if b.spo2_scale == 2]
    assert 0.03 < len(copd) / 2000 < 0.07 and all(b.chronic_o2 > 0 and 90.5 <= b.spo2 <= 93.0 for b in copd)
    tachy = [b for b in bases if b.chronic == "tachycardia"]
    low_bp = [b for b in bases if b.chronic == "hypotension"]
    assert 0.03 < len(tachy) / 2000 < 0.07 and all(100 <= b.hr <= 108 for b in tachy)
    assert 0.04 < len(low_bp) / 2000 < 0.08 and all(102 <= b.sbp <= 112 for b in low_bp)
    assert 0.08 < sum(b.af_cv > 0 for b in bases) / 2000 < 0.16
    assert 0.08 < sum(b.night_dips_per_h > 0 for b in bases) / 2000 < 0.20
    assert 0.30 < sum(b.opioid for b in bases) / 2000 < 0.40 and any(b.delirium for b in bases)
    assert all(b.spo2_scale == 1 and b.af_cv == 0 and not b.chronic
               for b in (P.draw_baseline(rng, 70, "M", "sepsis") for _ in range(50)))


def test_charted_sets_carry_their_documentation_time():
    """ACVPU and oxygen are stamped when documented (1–30 min after the bedside round) and forwarded in seconds,
    so a window built from readings by ``ts`` sees a set exactly when serving does."""
    s = generate_patient("n1", (25, 1), START_MS, 24.0, archetype="stable")
    nurse = s.vital == VITALS.index("acvpu")
    assert nurse.sum() >= 2
    assert ((s.deliver_ms[nurse] - s.ts_ms[nurse]) < 30_000).all()
    lag = s.nurse_doc_ms - s.nurse_rr_ms
    assert (lag >= 60_000).all() and (lag <= 1_800_000).all()
    assert set(s.ts_ms[nurse].tolist()) <= set(s.nurse_doc_ms.tolist())


@pytest.mark.parametrize("archetype", sorted(EVENT_ARCHETYPES - {"recovery"}))
def test_deterioration_is_extreme_only_after_onset_and_stays_on_the_ward(archetype):
    """The event phase goes well beyond the threshold, but only after the recorded onset; transfer takes hours."""
    beyond = {"hr_high": ("hr_mean", lambda x: x > 134), "hr_low": ("hr_mean", lambda x: x < 36),
              "sbp_low": ("sbp", lambda x: x < 84), "spo2_low": ("spo2_mean", lambda x: x < 85)}
    worst = []
    for k in range(4):
        s = generate_patient(f"d{k}", (24, k), START_MS, 24.0, archetype=archetype, onset_window_h=(2.0, 8.0))
        (event,) = s.events
        onset = event["onset"]
        end = pd.Timestamp(s.end_ms, unit="ms", tz="UTC")
        assert end - onset >= pd.Timedelta(hours=2) - pd.Timedelta(minutes=5)  # escalation takes hours
        win = W.build(s.frame()).set_index("start")
        before = win.loc[:onset - pd.Timedelta(minutes=5)]
        for column, test in beyond.values():
            x = before[column].dropna()
            if column == "sbp":  # a noisy cuff reading or two (carried forward) may dip; never three (the label's rule)
                assert test(x.drop_duplicates().to_numpy(float)).sum() <= 2, (archetype, column)
            else:
                assert not test(x.to_numpy(float)).any(), (archetype, column, x.index[test(x.to_numpy(float))][0])
        column, test = beyond[event["criterion"]]
        worst.append(bool(test(win.loc[onset:, column].to_numpy(float)).any()))
    assert sum(worst) >= 2  # most go well beyond the threshold before they leave
