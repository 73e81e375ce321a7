"""models.features: definitions by hand, batch independence, serving = training, sentences."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from models import features as F
from models.windows import WINDOW
from tests.support.synthetic_windows import flat_windows, synthetic_windows


def test_one_row_per_window_with_window_end_and_feature_order() -> None:
    w, _ = synthetic_windows(3, 6, seed=1)
    out = F.build(w)
    assert list(out.columns) == ["patient_id", "window_end", *F.FEATURE_NAMES]
    assert len(out) == len(w)
    assert (out["window_end"].to_numpy() == (w["start"] + WINDOW).to_numpy()).all()
    assert not out.duplicated(["patient_id", "window_end"]).any()


def test_last_hour_levels_std_trend_match_hand_computation() -> None:
    hr = 60.0 + np.arange(30) * 2  # +2 bpm per window = +24 bpm per hour
    out = F.build(flat_windows(30, hr_mean=hr))
    last = out.iloc[-1]
    window = hr[-12:]
    assert last["hr_outside_normal"] == pytest.approx((window.mean() - 90.5) / 20, abs=1e-9)
    assert last["hr_std_1h"] == pytest.approx(window.std(ddof=1), abs=1e-9)
    assert last["hr_rise_1h"] == pytest.approx(24.0, abs=1e-9)
    assert last["approach_hr_120"] == pytest.approx(min(24.0 / (120 - hr[-1]), 4.0))  # 5 min away: capped
    assert last["approach_hr_50"] == 0.0
    assert last["shock_index_above_0_7"] == pytest.approx(hr[-1] / 120.0 - 0.7)
    assert last["hr_outside_normal_min_4h"] == 5.0 * int((hr > 90.5).sum())
    assert out.iloc[1]["hr_outside_normal"] == 0.0  # fewer than 3 windows: the newest value (60 bpm, normal)
    falling = F.build(flat_windows(30, hr_mean=100.0 - np.arange(30) * 2.5)).iloc[-1]
    assert falling["hr_rise_1h"] == 0.0
    assert falling["hr_outside_normal"] == pytest.approx((50.5 - (100 - 2.5 * np.arange(18, 30)).mean()) / 5)


@pytest.mark.parametrize(("column", "feature", "normal", "low", "high"), [
    ("hr_mean", "hr_outside_normal", 75.0, 38.0, 118.0),
    ("rr_mean", "rr_outside_normal", 16.0, 8.0, 26.0),
    ("sbp", "sbp_outside_normal", 130.0, 88.0, 225.0),
    ("temp", "temp_outside_normal", 37.0, 34.8, 39.6),
])
def test_levels_are_two_sided_and_zero_inside_the_news2_band(column, feature, normal, low, high) -> None:
    def level(x: float) -> float:
        return float(F.build(flat_windows(30, **{column: x})).iloc[-1][feature])

    assert level(normal) == 0.0
    assert level(low) > 0 and level(high) > 0  # both sides count, in NEWS2 points
    assert level(high) > level((high + normal) / 2) > 0 or level((high + normal) / 2) == 0.0


def test_heart_rate_118_reads_above_55_and_bradycardia_on_its_own_scale() -> None:
    def hr(x: float) -> float:
        return float(F.build(flat_windows(30, hr_mean=x)).iloc[-1]["hr_outside_normal"])

    assert hr(55.0) == 0.0 < hr(45.0) < hr(118.0) < hr(38.0)  # 55 is normal on NEWS2; 38 scores 3 points
    assert hr(118.0) == pytest.approx((118 - 90.5) / 20) and hr(45.0) == pytest.approx((50.5 - 45) / 5)
    spo2 = F.build(flat_windows(30, spo2_mean=100.0)).iloc[-1]["spo2_below_normal"]
    assert spo2 == 0.0  # a high saturation is not abnormal


def test_values_inside_the_normal_band_give_zero_level_features() -> None:
    row = F.build(flat_windows(80)).iloc[-1]  # HR 80, SpO2 97, RR 16, SBP 120, temp 37: all normal
    for name in (*F.NOW_FEATURES, "shock_index_above_0_7", "hr_rise_vs_baseline", "sbp_drop_vs_baseline",
                 "spo2_below_normal_min_4h", "hr_outside_normal_min_4h", "not_alert"):
        assert row[name] == 0.0, name


def test_every_feature_declares_a_direction_with_a_reason() -> None:
    for f in F.FEATURES:
        assert f.direction in (-1, 0, 1) and f.reason, f.name
        assert F.DIRECTIONS[f.name] == f.direction


def test_missing_windows_are_skipped_not_invented() -> None:
    spo2 = np.full(24, 93.0)
    spo2[-12:-1] = np.nan  # only the newest window of the last hour has SpO2
    out = F.build(flat_windows(24, spo2_mean=spo2))
    assert out.iloc[-1]["spo2_below_normal"] == pytest.approx((95.5 - 93) / 2)  # one window: its value
    assert np.isnan(out.iloc[-1]["spo2_std_1h"])
    assert out.iloc[-1]["spo2_missing_min_1h"] == pytest.approx(55.0)


def test_a_patients_features_do_not_depend_on_the_batch() -> None:
    w, _ = synthetic_windows(6, 12, seed=2)
    alone = F.build(w[w["patient_id"] == "p0003"]).reset_index(drop=True)
    batch = F.build(w.sample(frac=1.0, random_state=0))  # shuffled input, other patients present
    batch = batch[batch["patient_id"] == "p0003"].reset_index(drop=True)
    pd.testing.assert_frame_equal(alone, batch)


def test_serving_on_history_equals_training_on_the_whole_stay() -> None:
    w, _ = synthetic_windows(2, 30, seed=4, frac_deteriorating=1.0)
    full = F.build(w)
    end = w["start"].max() + WINDOW
    recent = w[w["start"] >= end - F.HISTORY]
    served = F.build(recent)
    a = full[full["window_end"] == end].reset_index(drop=True)
    b = served[served["window_end"] == end].reset_index(drop=True)
    # bit-identical, not merely close: the service's scores must equal what-if's "before" and training's
    np.testing.assert_array_equal(a[list(F.FEATURE_NAMES)].to_numpy(float), b[list(F.FEATURE_NAMES)].to_numpy(float))
    for cut in (pd.Timedelta(hours=13), pd.Timedelta(hours=20)):
        c = F.build(w[w["start"] >= end - cut])
        c = c[c["window_end"] == end].reset_index(drop=True)
        np.testing.assert_array_equal(a[list(F.FEATURE_NAMES)].to_numpy(float),
                                      c[list(F.FEATURE_NAMES)].to_numpy(float))


def test_gaps_in_the_grid_are_tolerated() -> None:
    w = flat_windows(30, hr_mean=60.0 + np.arange(30))
    holed = w.drop(index=[10, 11]).reset_index(drop=True)
    nan = w.copy()
    nan.loc[[10, 11], ["hr_mean", "spo2_mean", "rr_mean", "sbp", "temp"]] = np.nan
    a = F.build(holed)
    b = F.build(nan).drop(index=[10, 11]).reset_index(drop=True)
    pd.testing.assert_frame_equal(a, b)


def test_duplicate_windows_are_refused() -> None:
    w = flat_windows(5)
    with pytest.raises(ValueError, match="duplicate"):
        F.build(pd.concat([w, w.iloc[[2]]]))


def test_build_is_deterministic() -> None:
    w, _ = synthetic_windows(4, 10, seed=5)
    a, b = F.build(w), F.build(w.copy())
    assert a.to_csv(index=False) == b.to_csv(index=False)


def test_every_feature_has_a_sentence_with_the_patients_numbers() -> None:
    w, _ = synthetic_windows(3, 12, seed=6, frac_deteriorating=1.0)
    row = F.build(w).iloc[-1].to_dict()
    for f in F.FEATURES:
        assert f.unit is not None and f.description
        text = F.sentence(f.name, row)
        assert text and "{" not in text and "nan" not in text.lower(), (f.name, text)
    assert F.sentence("hr_rise_1h", {"hr_rise_1h": 18.2}) == "Heart rate rising: +18 bpm over the last hour"
    assert F.sentence("hr_rise_1h", {"hr_rise_1h": float("nan")}).endswith("not measured")
    assert F.sentence("sbp_outside_normal", {"sbp_outside_normal": 1.9}) == \
        "Systolic BP outside its normal band (111–219 mmHg): worth 1.9 NEWS2 points"


def test_a_contribution_that_lowers_risk_says_so() -> None:
    fields = {"hr_outside_normal_min_4h": 20.0}
    warning = F.render("hr_outside_normal_min_4h", fields, 0.5, 12.0)
    assert warning == "Heart rate outside 51–90 bpm for 20 of the last 240 minutes"
    lower = F.render("hr_outside_normal_min_4h", fields, -0.3, 35.0)
    assert lower.startswith(warning) and "less than a typical ward patient (35 min)" in lower
    assert lower.endswith("which lowers the risk")
    assert F.render("o2_l_min", {"o2_l_min": 0.0}, -0.3, 0.4) == "Breathing room air (lowers the risk)"


# --------------------------------------------------------------------------------------------
# Levels at both cadences: a monitor's last-hour mean, a nurse's hourly chart.

_SICK = {"hr_mean": 115.0, "rr_mean": 28.0, "spo2_mean": 91.0, "sbp": 95.0, "temp": 38.5, "o2": 2.0, "acvpu": 1.0}
_EXPECT = {"hr_outside_normal": (115 - 90.5) / 20, "rr_outside_normal": (28 - 20.5) / 2,
           "spo2_below_normal": (95.5 - 91) / 2, "sbp_outside_normal": (110.5 - 95) / 10,
           "temp_outside_normal": 38.5 - 38.05, "on_oxygen": 1.0, "not_alert": 1.0}


def test_levels_on_a_monitor_stream() -> None:
    row = F.build(flat_windows(30, **_SICK)).iloc[-1]
    for name, value in _EXPECT.items():
        assert row[name] == pytest.approx(value), name


def test_levels_work_at_charted_cadence_and_missing_stays_missing() -> None:
    # A nurse charts HR, RR and SpO2 once an hour: one window in twelve has them; SBP/temp carried ≤ 1 h already.
    n = 36
    charted = {k: np.full(n, np.nan) for k in ("hr_mean", "rr_mean", "spo2_mean")}
    for k, v in (("hr_mean", 115.0), ("rr_mean", 28.0), ("spo2_mean", 91.0)):
        charted[k][::12] = v
    out = F.build(flat_windows(n, **{**_SICK, **charted, "hr_count": 0}))
    last = out.iloc[-1]  # 11 windows (55 min) after the last charting: still the latest values
    for name in ("hr_outside_normal", "rr_outside_normal", "spo2_below_normal"):
        assert last[name] == pytest.approx(_EXPECT[name]), name
    # More than LEVEL_CARRY after the last charting the value is gone: NaN ("not measured"), never a normal 0.
    stale = {k: np.r_[v[:13], np.full(n - 13, np.nan)] for k, v in charted.items()}
    late = F.build(flat_windows(n, **{**_SICK, **stale})).iloc[-1]
    assert np.isnan(late["hr_outside_normal"]) and np.isnan(late["rr_outside_normal"])
    assert F.sentence("hr_outside_normal", late.to_dict()).endswith("not measured")
    nothing = F.build(flat_windows(3, hr_mean=np.nan, rr_mean=np.nan, spo2_mean=np.nan, sbp=np.nan, temp=np.nan,
                                   o2=np.nan, acvpu=np.nan)).iloc[-1]
    for name in (*F.NOW_FEATURES, "not_alert"):
        assert np.isnan(nothing[name]), name


def test_level_sentences_read_like_a_chart() -> None:
    row = F.build(flat_windows(30, **_SICK)).iloc[-1].to_dict()
    assert F.sentence("rr_outside_normal", row) == \
        "Respiratory rate outside its normal band (12–20 /min): worth 3.8 NEWS2 points"
    assert F.sentence("on_oxygen", row) == "On supplemental oxygen (oxygen need)"
    calm = F.build(flat_windows(30)).iloc[-1].to_dict()
    assert F.sentence("hr_outside_normal", calm) == "Heart rate in its normal band (51–90 bpm)"


def test_a_recovery_towards_a_typical_value_is_not_a_rise_from_baseline() -> None:
    # Baseline RR 10 /min (bradypnoea) for 5 h, then 16 /min: back to typical, not "rising".
    rr = np.r_[np.full(60, 10.0), np.full(12, 16.0)]
    assert F.build(flat_windows(72, rr_mean=rr)).iloc[-1]["rr_rise_vs_baseline"] == 0.0
    # Baseline 14 /min, then 24 /min: a rise from max(baseline, 16) = 16, i.e. 8 /min.
    rr = np.r_[np.full(60, 14.0), np.full(12, 24.0)]
    assert F.build(flat_windows(72, rr_mean=rr)).iloc[-1]["rr_rise_vs_baseline"] == pytest.approx(8.0)
    # A fall of SpO2 from a baseline of 99 % counts from 97 %.
    spo2 = np.r_[np.full(60, 99.0), np.full(12, 94.0)]
    assert F.build(flat_windows(72, spo2_mean=spo2)).iloc[-1]["spo2_drop_vs_baseline"] == pytest.approx(3.0)
