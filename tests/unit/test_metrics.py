"""lab.metrics: bootstrap metrics equal scikit-learn's, calibration, the alert rule, operating points."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import average_precision_score, roc_auc_score

from lab import metrics as M
from tests.support.synthetic_windows import T0

MIN5 = pd.Timedelta(minutes=5)


def test_fast_auroc_and_average_precision_match_scikit_learn() -> None:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 3000)
    score = np.round(rng.normal(y * 0.7, 1.0), 1)  # many ties
    w = rng.integers(0, 3, 3000).astype(float)
    auc, ap = M._Ranked(y, score).metrics(w)
    assert auc == pytest.approx(roc_auc_score(y, score, sample_weight=w), abs=1e-12)
    assert ap == pytest.approx(average_precision_score(y, score, sample_weight=w), abs=1e-12)


def test_calibration_of_a_calibrated_model_is_slope_one() -> None:
    rng = np.random.default_rng(1)
    p = rng.uniform(0.01, 0.99, 40_000)
    y = (rng.random(40_000) < p).astype(int)
    slope, intercept = M.calibration(y, p)
    assert slope == pytest.approx(1.0, abs=0.05) and intercept == pytest.approx(0.0, abs=0.05)
    a, c = M.logistic_fit(M.logit(p) * 2 - 1, y)  # Platt undoes a distortion
    assert a == pytest.approx(0.5, abs=0.03) and c == pytest.approx(0.5, abs=0.05)


def _stream(above: list[int], label: list[int] | None = None) -> pd.DataFrame:
    n = len(above)
    return pd.DataFrame({"patient_id": "a", "window_end": T0 + MIN5 * np.arange(1, n + 1),
                         "eligible": True, "label": label if label is not None else [0] * n})


def test_alerts_are_new_crossings_rearmed_after_an_hour() -> None:
    above = np.array([0, 1, 1, 0, 1] + [0] * 12 + [1, 1], dtype=bool)
    new = M.alerts(_stream(list(above)), above)
    assert list(np.flatnonzero(new)) == [1, 17]


def test_operating_point_sensitivity_ppv_lead_time() -> None:
    n = 100
    onset = T0 + MIN5 * 80  # event begins at window end 80
    t = T0 + MIN5 * np.arange(1, n + 1)
    label = ((t <= onset) & (t > onset - pd.Timedelta(hours=6))).astype(int)
    frame = _stream([0] * n, list(label))
    above = np.zeros(n, dtype=bool)
    above[55] = True  # window end 56: 2 h before onset → detected, lead 2 h
    above[5] = True  # false alert (no event within 6 h of window end 6)
    events = pd.DataFrame({"patient_id": ["a"], "onset": [onset]})
    op = M.operating_point(frame, events, above, pd.Timedelta(hours=6))
    assert op["events"] == 1 and op["detected"] == 1 and op["sensitivity"] == 1.0
    assert op["median_lead_h"] == pytest.approx(2.0)
    assert op["alerts"] == 2 and op["ppv"] == pytest.approx(0.5)
    assert op["alerts_per_patient_day"] == pytest.approx(2 / (n * 5 / 1440))


# --------------------------------------------------------------------------------------------
# The honest evaluation: first events, charted NEWS2, decision curve, bootstrap intervals.


def _windows(n: int, pid: str = "a") -> pd.DataFrame:
    return pd.DataFrame({"patient_id": pid, "window_end": T0 + MIN5 * np.arange(1, n + 1)})


def test_first_event_counts_each_patient_once_and_repeat_crossings_do_not_add_events() -> None:
    onset = T0 + MIN5 * 80
    truth = pd.DataFrame({"patient_id": ["a", "a"], "kind": ["sepsis", "sepsis"],
                          "onset": [onset, onset + pd.Timedelta(hours=2)]})
    first = M.first_events(truth)
    assert len(first) == 1 and first["onset"].iloc[0] == onset
    frame = _windows(120)
    above = np.zeros(120, dtype=bool)
    above[[40, 41, 60, 61, 100, 101]] = True  # three separate crossings, one before the event in its 6 h
    op = M.first_event_point(frame, first, above)
    assert op["first_events"] == 1 and op["events"] == 1 and op["detected"] == 1
    assert op["median_lead_h"] == pytest.approx((80 - 41) * 5 / 60)
    assert op["alerts"] == 3  # three alerts, still one event


def test_a_detection_with_less_than_30_minutes_lead_does_not_count() -> None:
    onset = T0 + MIN5 * 80
    first = pd.DataFrame({"patient_id": ["a"], "onset": [onset]})
    frame = _windows(120)
    for late in (80, 79, 75):  # window ends at onset (zero lead), 5 min and 25 min before it
        above = np.zeros(120, dtype=bool)
        above[late - 1:] = True
        op = M.first_event_point(frame, first, above)
        assert op["events"] == 1 and op["detected"] == 0 and op["sensitivity"] == 0.0
    above = np.zeros(120, dtype=bool)
    above[73] = True  # window end 74: exactly 30 min before onset
    op = M.first_event_point(frame, first, above)
    assert op["detected"] == 1 and op["median_lead_h"] == pytest.approx(0.5)
    assert op["ppv"] == 1.0 and op["ppv_alerts"] == 1


def test_an_event_too_early_to_warn_of_is_unobservable_not_missed() -> None:
    first = pd.DataFrame({"patient_id": ["a"], "onset": [T0 + MIN5 * 5]})
    frame = _windows(40).iloc[12:]  # monitored from window end 13 (after an hour of history)
    op = M.first_event_point(frame.reset_index(drop=True), first, np.ones(28, dtype=bool))
    assert op["first_events"] == 1 and op["events"] == 0 and op["unobservable"] == 1 and op["sensitivity"] is None


def test_charted_news2_follows_the_rcp_frequency_of_the_last_charted_result() -> None:
    # 5-minute NEWS2 of one patient over 16 h; the nurse charts at admission, then at the chart-4 interval.
    n = 16 * 12
    total = np.zeros(n, dtype=int)
    total[:12] = 2      # charted 2 at the first window end (0 h 05) → next chart due 6 h later (6 h 05)
    total[12:72] = 6    # the monitor shows 6 from 1 h 05, but nobody charts it
    total[72:84] = 3    # charted 3 at 6 h 05 (row 72) → next chart due at 12 h 05
    total[84:144] = 0   # 0 on the monitor, not charted
    total[144:] = 8     # charted 8 at 12 h 05 (row 144) → continuous: every window from then on
    frame = _windows(n).assign(news2=total)
    for k in ("rr", "spo2", "o2", "sbp", "hr", "acvpu", "temp"):
        frame[f"news2_{k}"] = 0
    frame.loc[100, "news2_rr"] = 3  # a single 3 that nobody charts: it changes nothing
    charted = M.charted_news2(frame)
    assert (charted[:72] == 2).all()           # the 6 on the monitor never reaches the chart
    assert (charted[72:144] == 3).all()
    assert (charted[144:] == 8).all()
    # A single parameter scoring 3 when charted → hourly; a total >= 7 → every window.
    frame2 = _windows(36).assign(news2=[1] * 12 + [4] * 12 + [7] * 12)
    for k in ("rr", "spo2", "o2", "sbp", "hr", "acvpu", "temp"):
        frame2[f"news2_{k}"] = 0
    frame2["news2_hr"] = 3
    frame2["news2"] = [1] * 12 + [4] * 12 + [7, 8, 9] * 4
    charted2 = M.charted_news2(frame2)
    assert (charted2[:12] == 1).all() and (charted2[12:24] == 4).all()   # hourly because of the 3
    assert list(charted2[24:]) == list(frame2["news2"].iloc[24:])          # continuous at >= 7


def test_decision_curve_net_benefit_by_hand() -> None:
    # 10 windows, 3 events. The model alerts on 4 windows: 2 true positives, 2 false positives.
    y = np.array([1, 1, 1, 0, 0, 0, 0, 0, 0, 0])
    risk = np.array([0.9, 0.6, 0.1, 0.7, 0.5, 0.1, 0.1, 0.1, 0.1, 0.1])
    # pt = 0.2: NB = 2/10 − 2/10 · 0.2/0.8 = 0.2 − 0.05 = 0.15; treat all = 3/10 − 7/10 · 0.25 = 0.125
    assert M.net_benefit(y, risk >= 0.2, 0.2) == pytest.approx(0.15)
    dc = M.decision_curve(y, risk, {"news2 >= 5": np.array([1, 0, 0, 0, 0, 0, 0, 0, 0, 1], dtype=bool)},
                          thresholds=(0.2, 0.5))
    assert dc["model"][0] == pytest.approx(0.15) and dc["treat_all"][0] == pytest.approx(0.125)
    # pt = 0.5: model alerts on risk >= 0.5 → TP 2, FP 2 → 0.2 − 0.2 · 1 = 0; treat all 0.3 − 0.7 = −0.4
    assert dc["model"][1] == pytest.approx(0.0) and dc["treat_all"][1] == pytest.approx(-0.4)
    # the fixed policy: 1 TP, 1 FP → at 0.2: 0.1 − 0.1 · 0.25 = 0.075
    assert dc["news2 >= 5"][0] == pytest.approx(0.075) and dc["treat_none"] == [0.0, 0.0]


def test_calibration_in_the_large() -> None:
    y = np.array([1, 0, 0, 0])
    p = np.full(4, 0.25)
    c = M.calibration_in_the_large(y, p)
    assert c["observed_minus_expected"] == pytest.approx(0.0) and c["intercept_slope_1"] == pytest.approx(0, abs=1e-8)
    c = M.calibration_in_the_large(y, np.full(4, 0.1))
    assert c["observed_minus_expected"] == pytest.approx(0.15)
    assert c["intercept_slope_1"] == pytest.approx(np.log(1 / 3) - np.log(0.1 / 0.9), abs=1e-6)


def test_bootstrap_intervals_contain_the_point_estimates() -> None:
    rng = np.random.default_rng(3)
    frames, truth_rows = [], []
    for i in range(30):
        pid = f"p{i}"
        frames.append(_windows(200, pid))
        if i % 3 == 0:
            truth_rows.append((pid, T0 + MIN5 * int(rng.integers(60, 200))))
    frame = pd.concat(frames, ignore_index=True)
    first = pd.DataFrame(truth_rows, columns=["patient_id", "onset"])
    score = rng.random(len(frame))
    op = M.first_event_point(frame, first, score > 0.97)
    ids = np.asarray(pd.unique(frame["patient_id"]))
    counts = M.patient_draws(ids, n=200, seed=0)
    out = M.with_intervals(op, ids, counts)
    for k in ("sensitivity", "alerts_per_patient_day", "ppv"):
        lo, hi = out[f"{k}_ci"]
        assert lo <= out[k] <= hi, k
    y = (rng.random(len(frame)) < 0.1).astype(int)
    b = M.bootstrap(y, {"twin": score + y * 0.3, "news2": np.round(score * 5) + y}, frame["patient_id"].to_numpy(),
                    n=100, seed=1)
    for k in ("twin", "news2"):
        for m in ("auroc", "auprc"):
            assert b[k][f"{m}_ci"][0] <= b[k][m] <= b[k][f"{m}_ci"][1]
    for m in ("auroc", "auprc"):
        lo, hi = b["twin"][f"{m}_minus_news2_ci"]
        assert lo <= b["twin"][f"{m}_minus_news2"] <= hi
