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
    assert "| direction |" in card


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


def test_alert_threshold_is_recorded_with_its_target_and_interval(artifact) -> None:
    point = artifact["operating_points"]["alert"]
    assert point["target"] == T.ALERT_TARGET and 0 < point["threshold"] < 1
    lo, hi = point["threshold_ci"]
    assert lo <= hi and point["bootstrap"]["draws"] == T.THRESHOLD_BOOTSTRAP
    assert point["twin_sensitivity"] >= point["news2_5_sensitivity"]  # the target is met on development patients
    assert round(point["threshold"] * 200) == point["threshold"] * 200  # on the 0.005 grid
    assert artifact["operating_points"]["match_news2_5"] == point
    assert Twin.from_dict(artifact).alert_threshold == point["threshold"]
