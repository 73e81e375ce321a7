"""lab.train: patient-level split, Platt folding, deterministic artifact."""

from __future__ import annotations

import json

import numpy as np
import pytest

from lab import train as T
from models import features as F
from models.twin import Twin
from tests.support.synthetic_windows import synthetic_windows


@pytest.fixture(scope="module")
def cohort():
    return synthetic_windows(60, 30, seed=21, frac_deteriorating=0.5)


@pytest.fixture(scope="module")
def artifact(cohort):
    w, p = cohort
    return T.train(w, None, p, seed=3, cohort_fingerprint={"source": "test", "seed": 21})


def test_split_is_by_patient_deterministic_and_roughly_60_20_20() -> None:
    ids = [f"x{i}" for i in range(3000)]
    a, b = T.split_of(ids, 5), T.split_of(list(reversed(ids)), 5)[::-1]
    assert (a == b).all()
    share = {s: float(np.mean(a == s)) for s in ("train", "validation", "test")}
    assert abs(share["train"] - 0.6) < 0.04 and abs(share["test"] - 0.2) < 0.04
    assert (T.split_of(ids, 6) != a).any()


def test_training_twice_gives_the_identical_artifact(cohort, artifact) -> None:
    w, p = cohort
    again = T.train(w, None, p, seed=3, cohort_fingerprint={"source": "test", "seed": 21})
    assert json.dumps(artifact, sort_keys=True) == json.dumps(again, sort_keys=True)


def test_platt_calibration_is_folded_into_coefficients(cohort, artifact) -> None:
    a, c = artifact["calibration"]["a"], artifact["calibration"]["c"]
    raw_w = np.asarray(artifact["uncalibrated"]["coefficients"])
    raw_b = artifact["uncalibrated"]["intercept"]
    np.testing.assert_allclose(artifact["coefficients"], a * raw_w, rtol=1e-12)
    assert artifact["intercept"] == pytest.approx(a * raw_b + c, abs=1e-12)
    twin = Twin.from_dict(json.loads(json.dumps(artifact)))
    feats = F.build(cohort[0].iloc[:500])
    pts = twin.points(feats)
    assert np.allclose(twin.logit(feats), a * (pts.sum(axis=1) / a + raw_b) + c)


def test_artifact_is_plain_json_with_card_and_fingerprint(artifact, tmp_path) -> None:
    path = T.write_artifact(artifact, tmp_path / "twin.json")
    loaded = Twin.load(path)
    assert loaded.version == artifact["version"] and artifact["cohort"]["seed"] == 21
    assert artifact["metrics"]["development"]["auroc"] > 0.7 and artifact["metrics"]["test"]["n"] > 0
    card = (tmp_path / "MODEL_CARD.md").read_text(encoding="utf-8")
    assert artifact["version"] in card and "## Known limitations" in card and "Intended use" in card
    assert "### Constraint set" in card and "| odds ratio per SD |" in card and "## Calibration" in card
    for name, coef in zip(artifact["feature_names"], artifact["coefficients"], strict=True):
        assert f"| `{name}` |" in card and f"{coef:+.3f}" in card


def test_trained_coefficients_keep_their_declared_signs(artifact) -> None:
    assert artifact["format"] == "wardtwin.twin/2" and artifact["calibration"]["a"] > 0
    for name, d, c, raw in zip(artifact["feature_names"], artifact["directions"], artifact["coefficients"],
                               artifact["uncalibrated"]["coefficients"], strict=True):
        assert d == F.DIRECTIONS[name] and d * c >= 0 and d * raw >= 0, (name, d, c)


def test_constrained_fit_is_scikit_learns_objective_with_bounds() -> None:
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(4)
    z = rng.normal(size=(4000, 3))
    y = (rng.random(4000) < 1 / (1 + np.exp(-(-2.5 + 1.0 * z[:, 0] - 0.8 * z[:, 1] + 0.5 * z[:, 2])))).astype(int)
    free, b = T.fit_constrained(z, y, np.zeros(3, dtype=int))
    ref = LogisticRegression(C=1.0, class_weight="balanced", tol=1e-10, max_iter=5000).fit(z, y)
    np.testing.assert_allclose(free, ref.coef_[0], atol=1e-4)
    assert b == pytest.approx(ref.intercept_[0], abs=1e-4)
    bound, _ = T.fit_constrained(z, y, np.array([1, 1, 1]))  # the true second coefficient is negative
    assert bound[0] > 0 and bound[1] == 0.0 and bound[2] > 0


def test_cross_fitting_folds_cover_development_patients_only() -> None:
    ids = [f"x{i}" for i in range(2000)]
    split, fold = T.split_of(ids, 5), T.fold_of(ids, 5)
    assert ((fold == -1) == (split == "test")).all()
    assert set(fold[fold >= 0]) == set(range(T.CV_FOLDS))


def test_the_shipped_variant_follows_the_stated_rule(artifact) -> None:
    var = artifact["variants"]
    assert var["rule"] == T.SELECTION_RULE and set(var["candidates"]) == set(T.VARIANTS)
    assert var["chosen"] == T.select_variant(var["candidates"])
    left_out = set(T.VARIANTS[var["chosen"]])
    for name, c in zip(artifact["feature_names"], artifact["coefficients"], strict=True):
        if name in left_out:
            assert c == 0.0, name


def test_selection_prefers_fewer_features_on_a_tie_and_the_best_auroc_otherwise() -> None:
    cands = {"big": {"cross_fitted_auroc": 0.801, "free_features": 40},
             "small": {"cross_fitted_auroc": 0.800, "free_features": 30},
             "worse": {"cross_fitted_auroc": 0.700, "free_features": 10}}
    assert T.select_variant(cands) == "small"
    cands["big"]["cross_fitted_auroc"] = 0.81
    assert T.select_variant(cands) == "big"


def test_alert_threshold_comes_from_the_budget_on_development_patients(cohort, artifact) -> None:
    point = artifact["operating_points"]["alert"]
    budget = point["budget_alerts_per_100_patient_days"]
    assert budget == T.ALERT_BUDGET_PER_100_PATIENT_DAYS and point["sustain_windows"] == T.SUSTAIN_WINDOWS
    assert point["target"] == T.ALERT_TARGET.format(budget=budget, sustain=T.SUSTAIN_WINDOWS)
    assert 0 < point["threshold"] < 1 and round(point["threshold"] * 200) == point["threshold"] * 200
    # Half this synthetic cohort deteriorates: no threshold keeps 5 per 100 patient-days, and the artifact says so.
    assert point["budget_met"] == (point["twin_alerts_per_100_patient_days"] <= budget)
    lo, hi = point["threshold_ci"]
    assert lo <= hi and point["bootstrap"]["draws"] == T.THRESHOLD_BOOTSTRAP
    assert Twin.from_dict(artifact).alert_threshold == point["threshold"]
    assert Twin.from_dict(artifact).sustain_windows == T.SUSTAIN_WINDOWS
    # Only development patients count: changing every test patient's risk leaves the threshold as it is.
    ds = T.prepare(*cohort[:1], cohort[1])
    split = T.split_of(ds.frame["patient_id"].to_numpy(), 3)
    dev = split != "test"
    rng = np.random.default_rng(0)
    risk = rng.uniform(0, 0.3, len(ds.frame))
    curve = T.alert_threshold(ds, dev, risk, seed=3, n_boot=5)["curve"]
    budget = float(np.median([c["alerts_per_100_patient_days"] for c in curve]))
    a = T.alert_threshold(ds, dev, risk, seed=3, n_boot=5, budget=budget)
    assert a["budget_met"] and a["twin_alerts_per_100_patient_days"] <= budget  # the budget is kept …
    assert all(c["alerts_per_100_patient_days"] <= budget for c in a["curve"] if c["threshold"] >= a["threshold"])
    lower = [c for c in a["curve"] if c["threshold"] < a["threshold"]]
    assert any(c["alerts_per_100_patient_days"] > budget for c in lower)  # … by the lowest threshold that keeps it
    b = T.alert_threshold(ds, dev, np.where(dev, risk, 0.99), seed=3, n_boot=5, budget=budget)
    assert a["threshold"] == b["threshold"] and a["twin_alerts_per_100_patient_days"] == \
        b["twin_alerts_per_100_patient_days"]
    # A bigger budget never needs a higher threshold.
    assert T.alert_threshold(ds, dev, risk, seed=3, n_boot=5, budget=2 * budget)["threshold"] <= a["threshold"]


def test_alerts_need_the_sustained_run_and_clear_with_hysteresis() -> None:
    import pandas as pd

    t0 = pd.Timestamp("2026-01-01", tz="UTC")
    risk = np.array([0.5, 0.5, 0.1, 0.5, 0.5, 0.5, 0.45, 0.5, 0.5, 0.5, 0.1, 0.5, 0.5, 0.5])
    frame = pd.DataFrame({"patient_id": "a", "window_end": t0 + pd.to_timedelta(np.arange(len(risk)) * 5, "min")})
    mask = np.ones(len(risk), dtype=bool)
    sus = T.sustained_risk(frame, risk, mask, 3)
    assert np.isneginf(sus[:2]).all() and sus[2] == 0.1 and sus[5] == 0.5
    codes = np.zeros(len(risk), dtype=int)
    # Two windows never raise; three do; 0.45 stays above the clear line (0.8 × 0.5) so the alert stays open; a
    # fall to 0.1 clears it and the next sustained run raises a second alert.
    assert T.alert_counts(frame, risk, sus, mask, codes, 1, 0.5, 0.4).tolist() == [2.0]
    assert T.alert_counts(frame, risk, T.sustained_risk(frame, risk, mask, 1), mask, codes, 1, 0.5, 0.4).tolist() \
        == [3.0]


def test_set_a_calibration_check_refits_the_site_map_out_of_fold() -> None:
    from scipy.special import expit

    rng = np.random.default_rng(7)
    n = 20_000
    true = rng.normal(-2.5, 1.0, n)
    y = (rng.random(n) < expit(true)).astype(int)
    pid = np.asarray([f"s{i // 20}" for i in range(n)])
    fold = np.asarray([int(p[1:]) % 5 for p in pid])
    shipped = true / 1.3 - 1.0  # compressed and too low, as a ward calibration is on an ICU
    out = T.external_calibration({"y": y, "patient": pid, "fold": fold}, shipped, seed=1)
    assert out["as_shipped"]["calibration_slope"] == pytest.approx(1.3, abs=0.1)
    assert out["as_shipped"]["observed_over_expected"] > 1.5
    after = out["after_site_calibration_out_of_fold"]
    assert after["calibration_slope"] == pytest.approx(1.0, abs=0.05)
    assert after["observed_over_expected"] == pytest.approx(1.0, abs=0.05)
    lo, hi = after["calibration_slope_ci"]
    assert lo < after["calibration_slope"] < hi


def test_what_news2_counts_keeps_its_floor(artifact) -> None:
    scale = np.asarray(artifact["scaler"]["scale"])
    lower = T.floors(scale)
    raw = np.asarray(artifact["uncalibrated"]["coefficients"])
    assert (raw >= lower - 1e-12).all()
    for name in ("rr_outside_normal", "not_alert", "on_oxygen", "hr_outside_normal"):
        j = F.FEATURE_NAMES.index(name)
        assert lower[j] == pytest.approx(T.NEWS2_FLOOR * T.NEWS2_POINTS_PER_UNIT[name] * scale[j])
        assert lower[j] > 0
    assert artifact["floors"]["log_odds_per_news2_point"] == T.NEWS2_FLOOR
