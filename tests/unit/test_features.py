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


def test_last_hour_hinges_std_trend_match_hand_computation() -> None:
    hr = 60.0 + np.arange(30) * 2  # +2 bpm per window = +24 bpm per hour
    out = F.build(flat_windows(30, hr_mean=hr))
    last = out.iloc[-1]
    window = hr[-12:]
    assert last["hr_above_90_1h"] == pytest.approx(window.mean() - 90, abs=1e-9)
    assert last["hr_below_60_1h"] == 0.0
    assert last["hr_std_1h"] == pytest.approx(window.std(ddof=1), abs=1e-9)
    assert last["hr_rise_1h"] == pytest.approx(24.0, abs=1e-9)
    assert last["approach_hr_120"] == pytest.approx(min(24.0 / (120 - hr[-1]), 4.0))  # 5 min away: capped
    assert last["approach_hr_50"] == 0.0
    assert last["shock_index_above_0_7"] == pytest.approx(hr[-1] / 120.0 - 0.7)
    assert np.isnan(out.iloc[1]["hr_above_90_1h"])  # fewer than 3 windows: NaN
    falling = F.build(flat_windows(30, hr_mean=100.0 - np.arange(30) * 2)).iloc[-1]
    assert falling["hr_rise_1h"] == 0.0
    assert falling["hr_below_60_1h"] == pytest.approx(60 - (100 - 2 * np.arange(18, 30)).mean())


def test_values_inside_the_normal_band_give_zero_level_features() -> None:
    row = F.build(flat_windows(80)).iloc[-1]  # HR 80, SpO2 97, RR 16, SBP 120, temp 37: all normal
    for name in ("hr_above_90_1h", "hr_below_60_1h", "spo2_below_96_1h", "rr_above_20_1h", "rr_below_12_1h",
                 "sbp_below_110", "temp_above_37_5", "shock_index_above_0_7", "hr_rise_vs_baseline",
                 "sbp_drop_vs_baseline", "spo2_below_95_min_4h"):
        assert row[name] == 0.0, name


def test_every_feature_declares_a_direction_with_a_reason() -> None:
    for f in F.FEATURES:
        assert f.direction in (-1, 0, 1) and f.reason, f.name
        assert F.DIRECTIONS[f.name] == f.direction


def test_missing_windows_are_skipped_not_invented() -> None:
    spo2 = np.full(24, 93.0)
    spo2[-12:-1] = np.nan  # only the newest window of the last hour has SpO2
    out = F.build(flat_windows(24, spo2_mean=spo2))
    assert np.isnan(out.iloc[-1]["spo2_below_96_1h"])
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
    assert F.sentence("sbp_below_110", {"sbp_below_110": 19.0}) == "Systolic BP is 91 mmHg, 19 mmHg below 110"


def test_a_contribution_that_lowers_risk_says_so() -> None:
    fields = {"hr_above_100_min_4h": 20.0}
    warning = F.render("hr_above_100_min_4h", fields, 0.5, 12.0)
    assert warning == "Heart rate above 100 bpm for 20 of the last 240 minutes"
    lower = F.render("hr_above_100_min_4h", fields, -0.3, 35.0)
    assert lower.startswith(warning) and "less than a typical ward patient (35 min)" in lower
    assert lower.endswith("which lowers the risk")
    assert F.render("o2_l_min", {"o2_l_min": 0.0}, -0.3, 0.4) == "Breathing room air (lowers the risk)"


# --------------------------------------------------------------------------------------------
# Twin v3: how sick the patient is now (NEWS2 points of the latest values), at both cadences.

_SICK = {"hr_mean": 115.0, "rr_mean": 28.0, "spo2_mean": 91.0, "sbp": 95.0, "temp": 38.5, "o2": 2.0, "acvpu": 1.0}


def test_now_features_are_the_news2_points_of_the_latest_values_on_a_monitor_stream() -> None:
    row = F.build(flat_windows(30, **_SICK)).iloc[-1]
    # RCP 2017: HR 111–130 → 2; RR ≥ 25 → 3; SpO2 ≤ 91 (scale 1) → 3; SBP 91–100 → 2; T 38.1–39.0 → 1; O2 → 2; C → 3
    expect = {"hr_news2_points": 2, "rr_news2_points": 3, "spo2_news2_points": 3, "sbp_news2_points": 2,
              "temp_news2_points": 1, "on_oxygen": 1, "not_alert": 1, "news2_latest": 2 + 3 + 3 + 2 + 1 + 2 + 3}
    for name, value in expect.items():
        assert row[name] == value, name
    normal = F.build(flat_windows(30)).iloc[-1]
    for name in F.NOW_FEATURES:
        assert normal[name] == 0.0, name
    low = F.build(flat_windows(30, hr_mean=45.0, rr_mean=10.0, temp=35.5, sbp=225.0)).iloc[-1]
    assert (low["hr_news2_points"], low["rr_news2_points"], low["temp_news2_points"], low["sbp_news2_points"]) == \
        (1, 1, 1, 3)


def test_now_features_work_at_charted_cadence_and_missing_stays_missing() -> None:
    # A nurse charts HR, RR and SpO2 once an hour: one window in twelve has them; SBP/temp carried ≤ 1 h already.
    n = 36
    charted = {k: np.full(n, np.nan) for k in ("hr_mean", "rr_mean", "spo2_mean")}
    for k, v in (("hr_mean", 115.0), ("rr_mean", 28.0), ("spo2_mean", 91.0)):
        charted[k][::12] = v
    out = F.build(flat_windows(n, **{**_SICK, **charted, "hr_count": 0}))
    last = out.iloc[-1]  # 11 windows (55 min) after the last charting: still the latest values
    assert (last["hr_news2_points"], last["rr_news2_points"], last["spo2_news2_points"]) == (2, 3, 3)
    assert np.isnan(last["hr_above_90_1h"])  # the last-hour mean needs 3 windows: charted cadence cannot give it
    assert last["news2_latest"] == 16
    # More than LEVEL_CARRY after the last charting the value is gone: NaN ("not measured"), never a normal 0.
    stale = {k: np.r_[v[:13], np.full(n - 13, np.nan)] for k, v in charted.items()}
    late = F.build(flat_windows(n, **{**_SICK, **stale})).iloc[-1]
    assert np.isnan(late["hr_news2_points"]) and np.isnan(late["rr_news2_points"])
    assert late["news2_latest"] == 2 + 1 + 2 + 3  # SBP, temperature, oxygen and ACVPU still charted
    assert F.sentence("hr_news2_points", late.to_dict()).endswith("not measured")
    nothing = F.build(flat_windows(3, hr_mean=np.nan, rr_mean=np.nan, spo2_mean=np.nan, sbp=np.nan, temp=np.nan,
                                   o2=np.nan, acvpu=np.nan)).iloc[-1]
    for name in (*F.NOW_FEATURES, "not_alert"):
        assert np.isnan(nothing[name]), name


def test_now_feature_sentences_read_like_a_chart() -> None:
    row = F.build(flat_windows(30, **_SICK)).iloc[-1].to_dict()
    assert F.sentence("rr_news2_points", row) == "Respiratory rate scores 3 of 3 NEWS2 points now (0 at 12–20 /min)"
    assert F.sentence("on_oxygen", row) == "On supplemental oxygen (oxygen need)"
    assert F.sentence("news2_latest", row) == "NEWS2 from the latest observations is 16"
    calm = F.build(flat_windows(30)).iloc[-1].to_dict()
    assert F.sentence("hr_news2_points", calm) == "Heart rate in the NEWS2 normal band (51–90 bpm)"
