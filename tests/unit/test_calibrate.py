"""lab.calibrate: a site's logistic recalibration refits slope and intercept, never the weights."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from scipy.special import expit

from lab import calibrate as C
from models.twin import DEFAULT_ARTIFACT, Twin
from tests.support.synthetic_windows import synthetic_windows


def _shipped() -> dict:
    return json.loads(DEFAULT_ARTIFACT.read_text(encoding="utf-8"))


def _miscalibrated(n: int = 20_000, seed: int = 1) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Outcomes drawn from a true logit; the 'twin' logit is compressed (slope 1.6 needed) and shifted."""
    rng = np.random.default_rng(seed)
    true = rng.normal(-3.0, 1.2, n)
    y = (rng.random(n) < expit(true)).astype(float)
    served = (true + 0.8) / 1.6
    return y, served, np.asarray([f"p{i // 10}" for i in range(n)])


def test_a_miscalibrated_set_recovers_slope_one_and_weights_stay_byte_identical() -> None:
    y, served, pid = _miscalibrated()
    before = C.calibration_report(y, served, pid, n_boot=50)
    assert before["calibration_slope"] == pytest.approx(1.6, abs=0.15)
    assert before["calibration_slope_ci"][0] > 1.2  # the interval sees the miscalibration
    artifact = _shipped()
    new = C.recalibrate(artifact, y, served, pid, source="site.csv", n_boot=50)
    after = new["site_calibration"]["after"]
    assert after["calibration_slope"] == pytest.approx(1.0, abs=1e-6)
    assert after["observed_over_expected"] == pytest.approx(1.0, abs=0.02)
    lo, hi = after["calibration_slope_ci"]
    assert lo < 1.0 < hi
    for key in ("coefficients", "intercept", "scaler", "feature_names", "directions", "uncalibrated", "calibration"):
        assert json.dumps(new[key], sort_keys=True) == json.dumps(artifact[key], sort_keys=True), key
    assert new["version"] != artifact["version"] and new["version"].startswith(artifact["version"] + "+site.")


def test_the_twin_serves_the_site_map_exactly_and_the_same_windows_alert() -> None:
    y, served, pid = _miscalibrated(5_000, seed=2)
    artifact = _shipped()
    new = C.recalibrate(artifact, y, served, pid, n_boot=5)
    slope, shift = new["site_calibration"]["slope"], new["site_calibration"]["intercept"]
    w, _ = synthetic_windows(4, 12, seed=3, frac_deteriorating=0.5)
    from models import features as F

    rows = F.build(w)
    old_twin, new_twin = Twin.from_dict(artifact), Twin.from_dict(new)
    np.testing.assert_allclose(new_twin.logit(rows), slope * old_twin.logit(rows) + shift, rtol=1e-12, atol=1e-12)
    for s in new_twin.score(rows.iloc[:50]):
        assert abs(s.intercept + sum(c.points for c in s.contributions) - s.logit) < 1e-9
    t_old, t_new = old_twin.alert_threshold, new_twin.alert_threshold
    assert new["operating_points"]["alert"]["threshold_before_site_calibration"] == t_old
    grid = np.linspace(-8, 3, 2001)
    assert ((expit(slope * grid + shift) >= t_new) == (expit(grid) >= t_old - 1e-15)).mean() > 0.999
    # Recalibrating again on the site-served logits composes the maps: one more refit changes nothing.
    again = C.recalibrate(new, y, slope * served + shift, pid, n_boot=5)
    assert again["site_calibration"]["slope"] == pytest.approx(slope, rel=1e-6)
    assert again["site_calibration"]["intercept"] == pytest.approx(shift, abs=1e-6)


def test_a_slope_that_is_not_positive_is_refused() -> None:
    y, served, _ = _miscalibrated(5_000, seed=4)
    with pytest.raises(C.ScoresFileError, match="right direction"):
        C.recalibrate(_shipped(), y, -served, None, n_boot=5)


def test_the_command_writes_the_artifact_and_names_what_is_wrong(tmp_path, capsys) -> None:
    y, served, pid = _miscalibrated(4_000, seed=5)
    scores = tmp_path / "scores.csv"
    pd.DataFrame({"patient_id": pid, "risk": expit(served), "outcome": y.astype(int)}).to_csv(scores, index=False)
    out = tmp_path / "site" / "twin.json"
    assert C.calibrate(scores=scores, out=out, artifact=None, bootstrap=5) == 0
    text = capsys.readouterr().out
    assert "weights unchanged" in text and "slope" in text
    new = json.loads(out.read_text(encoding="utf-8"))
    assert Twin.from_dict(new).version == new["version"]
    assert new["site_calibration"]["fitted"]["slope"] == pytest.approx(1.6, abs=0.2)
    bad = tmp_path / "bad.csv"
    pd.DataFrame({"risk": [0.1, 0.2], "died": [0, 1]}).to_csv(bad, index=False)
    assert C.calibrate(scores=bad, out=tmp_path / "x.json", artifact=None, bootstrap=5) == 2
    assert "'outcome'" in capsys.readouterr().out and not (tmp_path / "x.json").exists()
    worse = tmp_path / "worse.csv"
    pd.DataFrame({"risk": [0.1, 1.5, 0.2], "outcome": [0, 1, 1]}).to_csv(worse, index=False)
    assert C.calibrate(scores=worse, out=tmp_path / "y.json", artifact=None, bootstrap=5) == 2
    assert "row 3, column risk" in capsys.readouterr().out
