"""models.evaluate: bootstrap metrics equal scikit-learn's, the alert rule, operating points, the report."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import average_precision_score, roc_auc_score

from models import evaluate as E
from models import train as T
from models.twin import Twin
from tests.unit.test_train_synth import T0, synthetic_windows

MIN5 = pd.Timedelta(minutes=5)


def test_fast_auroc_and_average_precision_match_scikit_learn() -> None:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 3000)
    score = np.round(rng.normal(y * 0.7, 1.0), 1)  # many ties
    w = rng.integers(0, 3, 3000).astype(float)
    auc, ap = E._Ranked(y, score).metrics(w)
    assert auc == pytest.approx(roc_auc_score(y, score, sample_weight=w), abs=1e-12)
    assert ap == pytest.approx(average_precision_score(y, score, sample_weight=w), abs=1e-12)


def test_calibration_of_a_calibrated_model_is_slope_one() -> None:
    rng = np.random.default_rng(1)
    p = rng.uniform(0.01, 0.99, 40_000)
    y = (rng.random(40_000) < p).astype(int)
    slope, intercept = E.calibration(y, p)
    assert slope == pytest.approx(1.0, abs=0.05) and intercept == pytest.approx(0.0, abs=0.05)
    a, c = E.logistic_fit(E.logit(p) * 2 - 1, y)  # Platt undoes a distortion
    assert a == pytest.approx(0.5, abs=0.03) and c == pytest.approx(0.5, abs=0.05)


def _stream(above: list[int], label: list[int] | None = None) -> pd.DataFrame:
    n = len(above)
    return pd.DataFrame({"patient_id": "a", "window_end": T0 + MIN5 * np.arange(1, n + 1),
                         "eligible": True, "label": label if label is not None else [0] * n})


def test_alerts_are_new_crossings_rearmed_after_an_hour() -> None:
    above = np.array([0, 1, 1, 0, 1] + [0] * 12 + [1, 1], dtype=bool)
    new = E.alerts(_stream(list(above)), above)
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
    op = E.operating_point(frame, events, above, pd.Timedelta(hours=6))
    assert op["events"] == 1 and op["detected"] == 1 and op["sensitivity"] == 1.0
    assert op["median_lead_h"] == pytest.approx(2.0)
    assert op["alerts"] == 2 and op["ppv"] == pytest.approx(0.5)
    assert op["alerts_per_patient_day"] == pytest.approx(2 / (n * 5 / 1440))


def test_evaluation_report_end_to_end(tmp_path) -> None:
    w, p = synthetic_windows(40, 20, seed=31, frac_deteriorating=0.6)
    ds = T.prepare(w, p)
    art = T.train(w, None, p, seed=2, cohort_fingerprint={"seed": 31, "n_patients": 40}, dataset=ds)
    ch = T.train_challenger(ds, seed=2, twin=art)
    T.write_json(ch, tmp_path / "challenger.json")
    twin = Twin.from_dict(art)
    w2, p2 = synthetic_windows(16, 20, seed=32, frac_deteriorating=0.6, prefix="q")
    rep = E.evaluate(twin, T.prepare(w2, p2), cohort_fingerprint={"seed": 32, "n_patients": 30},
                     challenger_path=tmp_path / "challenger.json", n_bootstrap=10, seed=0)
    assert rep["patients"] == 16 and rep["scope"].startswith("an independent cohort")
    assert rep["contributions_check"]["max_abs_error"] < 1e-9
    d = rep["discrimination"]
    assert d["twin"]["auroc_ci"][0] <= d["twin"]["auroc"] <= d["twin"]["auroc_ci"][1]
    assert {"twin >= 0.7", "NEWS2 >= 5", "NEWS2 >= 7", "challenger >= 0.7"} <= set(rep["operating_points"])
    assert {"sex=F", "sex=M", "age 70+"} <= set(rep["subgroups"])
    same = E.evaluate(twin, ds, cohort_fingerprint={"seed": 31, "n_patients": 40}, n_bootstrap=0)
    assert same["scope"].startswith("test patients") and same["patients"] < 40
    E.write_report(rep, tmp_path / "report")
    for name in ("report.json", "index.html", "roc.png", "calibration.png", "lead_time.png"):
        assert (tmp_path / "report" / name).stat().st_size > 0
    assert json.loads((tmp_path / "report" / "report.json").read_text())["twin_version"] == art["version"]
    assert "AUROC" in E.format_table(rep)
