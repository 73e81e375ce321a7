"""models.labels: the sustain rule, the 6-hour horizon, eligibility."""

from __future__ import annotations

import numpy as np
import pandas as pd

from models import labels as L
from tests.support.synthetic_windows import T0, flat_windows

MIN = pd.Timedelta(minutes=1)


def test_a_spike_is_not_an_event_but_fifteen_minutes_is() -> None:
    hr = np.full(200, 80.0)
    hr[50:52] = 135  # 10 minutes: a spike
    hr[150:153] = 135  # 15 minutes: sustained
    ev = L.events(flat_windows(200, hr_mean=hr))
    assert list(ev["kind"]) == ["hr_high"]
    assert ev["onset"].iloc[0] == T0 + 150 * 5 * MIN and ev["end"].iloc[0] == T0 + 153 * 5 * MIN


def test_one_low_cuff_reading_carried_forward_is_not_an_event() -> None:
    sbp = np.full(200, 120.0)
    sbp[60:63] = 85.0  # one reading carried for 15 minutes
    sbp[120:126] = np.repeat([86.0, 84.0], 3)  # two readings
    ev = L.events(flat_windows(200, sbp=sbp))
    assert list(ev["kind"]) == ["sbp_low"] and ev["onset"].iloc[0] == T0 + 120 * 5 * MIN


def test_missing_windows_break_a_run_and_other_thresholds() -> None:
    spo2 = np.full(100, 96.0)
    spo2[40:44] = [88, np.nan, 88, 88]
    temp = np.full(100, 37.0)
    temp[70:80] = 39.0  # exactly 39 is not > 39
    hr = np.full(100, 70.0)
    hr[85:90] = 45.0
    ev = L.events(flat_windows(100, spo2_mean=spo2, temp=temp, hr_mean=hr))
    assert list(ev["kind"]) == ["hr_low"]


def test_label_horizon_eligibility_and_censoring() -> None:
    n = 12 * 20  # 20 hours
    hr = np.full(n, 80.0)
    onset_i = 12 * 10  # event at 10 h, lasting 1 h
    hr[onset_i:onset_i + 12] = 130
    lab = L.label(flat_windows(n, hr_mean=hr))
    onset = T0 + onset_i * 5 * MIN
    t = lab["window_end"]
    assert (lab.loc[(t >= onset - L.HORIZON + 5 * MIN) & (t <= onset), "label"] == 1).all()
    assert (lab.loc[t <= onset - L.HORIZON, "label"] == 0).all()
    end = onset + 12 * 5 * MIN
    ongoing = (t > onset) & (t <= end + L.REFRACTORY)
    assert not lab.loc[ongoing, "eligible"].any()
    assert lab.loc[(t > onset - L.HORIZON) & (t <= onset), "eligible"].all()
    assert not lab.loc[t - T0 < L.MIN_HISTORY, "eligible"].any()
    last = lab["window_end"].max()
    assert not lab.loc[(t + L.HORIZON > last) & (lab["label"] == 0), "eligible"].any()
    assert lab.loc[lab["label"] == 1, "onset"].eq(onset).all()
    assert lab.loc[lab["label"] == 0, "onset"].isna().all()


def test_events_closer_than_an_hour_merge() -> None:
    hr = np.full(200, 80.0)
    hr[50:55] = 130
    hr[60:65] = 130  # 25 minutes later: same event
    hr[120:125] = 130  # 65 minutes after the previous end: a new one
    ev = L.events(flat_windows(200, hr_mean=hr))
    assert len(ev) == 2 and ev["end"].iloc[0] == T0 + 65 * 5 * MIN


def test_derived_events_agree_with_the_simulators_ground_truth() -> None:
    cohort = __import__("pytest").importorskip("simulator.cohort")
    from models import windows as W

    mix = {"stable": 0.3, "sepsis": 0.2, "respiratory_failure": 0.2, "haemorrhage": 0.1, "bradyarrhythmia": 0.2}
    found = 0
    for record in cohort.iter_cohort(12, 24, 5, archetype_mix=mix):
        derived = L.events(W.build(record.readings))
        for truth in record.events:
            assert (derived["onset"] == pd.Timestamp(truth["onset"])).any(), (record.patient, truth)
            found += 1
        if not record.events:
            assert derived.empty or record.patient["archetype"] == "stable"
    assert found >= 5


def test_criterion_text_states_the_threshold_the_event_rule_uses(monkeypatch) -> None:
    assert [L.criterion_text(k) for k in L.CRITERIA] == [
        "heart rate above 120 bpm", "heart rate below 50 bpm", "systolic BP below 90 mmHg", "SpO2 below 90 %",
        "temperature above 39 °C"]
    hr = np.full(100, 80.0)
    hr[50:56] = 125.0  # 30 minutes at 125 bpm
    assert list(L.events(flat_windows(100, hr_mean=hr))["kind"]) == ["hr_high"]
    monkeypatch.setitem(L.CRITERIA, "hr_high", ("hr_mean", ">", 130.0, False))
    assert L.criterion_text("hr_high") == "heart rate above 130 bpm"
    assert L.events(flat_windows(100, hr_mean=hr)).empty  # one threshold: the rule and its words move together
