"""models.labels: the sustain rule, the 6-hour horizon, eligibility."""

from __future__ import annotations

import numpy as np
import pandas as pd

from models import labels as L
from tests.support.synthetic_windows import T0, flat_windows

MIN = pd.Timedelta(minutes=1)


def test_fifteen_minutes_is_not_an_event_but_a_sustained_half_hour_is() -> None:
    hr = np.full(200, 80.0)
    hr[50:53] = 135  # 15 minutes: the old rule's event, now a spell
    hr[150:156] = 135  # 30 minutes: sustained
    ev = L.events(flat_windows(200, hr_mean=hr))
    assert list(ev["kind"]) == ["hr_high"]
    assert ev["onset"].iloc[0] == T0 + 150 * 5 * MIN and ev["end"].iloc[0] == T0 + 156 * 5 * MIN


def test_the_span_median_decides_one_window_back_inside_does_not_break_it() -> None:
    spo2 = np.full(200, 96.0)
    spo2[40:46] = [86, 86, 91, 86, 86, 91]  # 4 of 6 windows below 88: the span's median is below
    spo2[100:106] = [86, 91, 86, 91, 86, 91]  # 3 of 6: not sustained
    ev = L.events(flat_windows(200, spo2_mean=spo2))
    assert list(ev["kind"]) == ["spo2_low"] and ev["onset"].iloc[0] == T0 + 40 * 5 * MIN
    assert ev["end"].iloc[0] == T0 + 45 * 5 * MIN  # the end of the last window beyond


def test_thresholds_are_the_news2_three_edges_not_a_sleeping_heart_rate() -> None:
    """HR 45 for two hours (NEWS2 1 point) is no event; HR 38 for half an hour (NEWS2 3 points) is. HR 125 (NEWS2 2)
    is none either, nor SpO2 89 % (within a hypercapnic patient's 88–92 % target), nor a fever of 39.5 °C."""
    hr = np.full(300, 70.0)
    hr[20:44] = 45.0
    hr[60:84] = 125.0
    spo2 = np.full(300, 95.0)
    spo2[100:150] = 89.0
    temp = np.full(300, 37.0)
    temp[160:220] = np.linspace(39.4, 39.7, 60).round(2)  # fresh readings, an hour above 39 °C
    assert L.events(flat_windows(300, hr_mean=hr, spo2_mean=spo2, temp=temp)).empty
    hr[250:256] = 38.0
    assert list(L.events(flat_windows(300, hr_mean=hr))["kind"]) == ["hr_low"]


def test_low_cuff_readings_need_three_in_a_row() -> None:
    sbp = np.full(300, 120.0)
    sbp[60:66] = np.repeat([86.0, 84.0], 3)  # two low readings 15 minutes apart, carried: repeated, not escalated
    sbp[120:132] = 85.0  # one reading carried for an hour
    sbp[200:209] = np.repeat([86.0, 84.0, 85.0], 3)  # three consecutive cuff cycles below 90
    ev = L.events(flat_windows(300, sbp=sbp))
    assert list(ev["kind"]) == ["sbp_low"] and ev["onset"].iloc[0] == T0 + 200 * 5 * MIN


def test_missing_windows_and_exact_thresholds() -> None:
    spo2 = np.full(100, 96.0)
    spo2[40:46] = [86, np.nan, np.nan, 86, 86, 86]  # two of six windows missing: not enough seen
    hr = np.full(100, 70.0)
    hr[60:66] = 130.0  # exactly 130 is not > 130
    hr[80:86] = [39, 39, np.nan, 39, 39, 39]  # one missing window is tolerated
    ev = L.events(flat_windows(100, spo2_mean=spo2, hr_mean=hr))
    assert list(ev["kind"]) == ["hr_low"] and ev["onset"].iloc[0] == T0 + 80 * 5 * MIN


def test_sustained_runs_is_the_one_rule() -> None:
    x = np.r_[np.full(10, 80.0), np.full(7, 135.0), np.full(10, 80.0), np.full(6, 135.0)]
    assert L.sustained_runs(x, ">", 130.0, False) == [(10, 17), (27, 33)]
    assert L.sustained_runs(x[:13], ">", 130.0, False) == []  # 15 minutes beyond: fewer than 4 of 6 windows
    assert L.sustained_runs(x[:14], ">", 130.0, False) == [(10, 14)]  # 4 of the span's 6: its median is beyond
    assert L.sustained_runs(np.full(20, np.nan), "<", 90.0, True) == []


def test_label_horizon_eligibility_and_censoring() -> None:
    n = 12 * 20  # 20 hours
    hr = np.full(n, 80.0)
    onset_i = 12 * 10  # event at 10 h, lasting 1 h
    hr[onset_i:onset_i + 12] = 135
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
    hr[50:56] = 135
    hr[66:72] = 135  # 50 minutes after the first ended: same event
    hr[125:131] = 135  # 65 minutes after the previous end: a new one
    ev = L.events(flat_windows(200, hr_mean=hr))
    assert len(ev) == 2 and ev["end"].iloc[0] == T0 + 72 * 5 * MIN


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
        "heart rate above 130 bpm", "heart rate below 40 bpm", "systolic BP below 90 mmHg", "SpO2 below 88 %",
        "temperature above 40 °C"]
    hr = np.full(100, 80.0)
    hr[50:56] = 135.0  # 30 minutes at 135 bpm
    assert list(L.events(flat_windows(100, hr_mean=hr))["kind"]) == ["hr_high"]
    monkeypatch.setitem(L.CRITERIA, "hr_high", ("hr_mean", ">", 140.0, False))
    assert L.criterion_text("hr_high") == "heart rate above 140 bpm"
    assert L.events(flat_windows(100, hr_mean=hr)).empty  # one threshold: the rule and its words move together
