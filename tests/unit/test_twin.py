"""models.twin: exact contributions, NaN handling, determinism, artifact checks."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from models import features as F
from models.twin import DEFAULT_ARTIFACT, SIGNIFICANT_POINTS, Twin
from tests.unit.test_train_synth import synthetic_windows


@pytest.fixture(scope="module")
def twin() -> Twin:
    return Twin.load()


@pytest.fixture(scope="module")
def rows():
    w, _ = synthetic_windows(8, 12, seed=11, frac_deteriorating=0.5)
    return F.build(w)


def test_shipped_artifact_is_json_and_matches_features(twin: Twin) -> None:
    data = json.loads(DEFAULT_ARTIFACT.read_text(encoding="utf-8"))
    assert data["feature_names"] == list(F.FEATURE_NAMES) == list(twin.feature_names)
    assert twin.version == data["version"] and twin.card["intended_use"]


def test_contributions_add_up_to_the_logit_and_are_sorted(twin: Twin, rows) -> None:
    scores = twin.score(rows)
    assert len(scores) == len(rows)
    for s in scores:
        assert len(s.contributions) == len(twin.feature_names)
        assert abs(s.intercept + sum(c.points for c in s.contributions) - s.logit) < 1e-9
        assert s.risk == pytest.approx(1 / (1 + math.exp(-s.logit)), abs=1e-12)
        mags = [abs(c.points) for c in s.contributions]
        assert mags == sorted(mags, reverse=True)
        for c in s.contributions:
            if c.value is not None and abs(c.points) >= SIGNIFICANT_POINTS:
                assert c.sentence and "{" not in c.sentence
            elif c.value is not None:
                assert c.sentence == ""
    np.testing.assert_allclose(twin.logit(rows), [s.logit for s in scores], atol=1e-12)


def test_missing_feature_scores_zero_and_says_not_measured(twin: Twin, rows) -> None:
    one = rows.iloc[[len(rows) - 1]].copy()
    one["spo2_mean_1h"] = np.nan
    c = next(c for c in twin.score(one)[0].contributions if c.feature == "spo2_mean_1h")
    assert c.value is None and c.points == 0.0 and c.sentence.endswith("not measured")


def test_scores_are_byte_identical_across_runs(rows) -> None:
    a = [repr(s) for s in Twin.load().score(rows)]
    b = [repr(s) for s in Twin.load().score(rows.copy())]
    assert a == b


def test_feature_mismatch_is_refused() -> None:
    data = json.loads(DEFAULT_ARTIFACT.read_text(encoding="utf-8"))
    data["feature_names"] = data["feature_names"][::-1]
    with pytest.raises(ValueError, match="features do not match"):
        Twin.from_dict(data)
    data = json.loads(DEFAULT_ARTIFACT.read_text(encoding="utf-8"))
    data["format"] = "pickle"
    with pytest.raises(ValueError, match="format"):
        Twin.from_dict(data)


def test_what_if_overrides_the_last_hour_and_rescores(twin: Twin) -> None:
    from models.twin import what_if

    w, _ = synthetic_windows(3, 10, seed=12, frac_deteriorating=0.0)
    before, after, changed = what_if(twin, w, "p0001", {"spo2": 85.0, "hr": 125})
    assert before.patient_id == after.patient_id == "p0001" and before.window_end == after.window_end
    assert changed["vitals"] == {"spo2": 85.0, "hr": 125.0} and changed["windows"] == 12
    assert changed["features"]["spo2_mean_1h"]["after"] == pytest.approx(85.0)
    assert changed["features"]["hr_to_120"]["after"] == pytest.approx(-5.0)
    assert "sbp_mean_1h" not in changed["features"]
    assert after.risk > before.risk
    for s in (before, after):
        assert abs(s.intercept + sum(c.points for c in s.contributions) - s.logit) < 1e-9
    with pytest.raises(ValueError, match="pulse"):
        what_if(twin, w, "p0001", {"pulse": 80})
    with pytest.raises(ValueError, match="spo2"):
        what_if(twin, w, "p0001", {"spo2": 120})
    with pytest.raises(KeyError):
        what_if(twin, w, "nobody", {"hr": 80})
