"""models.metrics: bootstrap metrics equal scikit-learn's, calibration, the alert rule, operating points."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import average_precision_score, roc_auc_score

from models import metrics as M
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
