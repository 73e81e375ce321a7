"""models.twin: exact contributions, NaN handling, determinism, artifact checks (what-if: test_what_if.py)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from models import features as F
from models.twin import DEFAULT_ARTIFACT, SIGNIFICANT_POINTS, Twin
from tests.support.synthetic_windows import synthetic_windows


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
    one["spo2_below_normal"] = np.nan
    c = next(c for c in twin.score(one)[0].contributions if c.feature == "spo2_below_normal")
    assert c.value is None and c.points == 0.0 and c.sentence.endswith("not measured")


def test_scores_are_byte_identical_across_runs(rows) -> None:
    a = [repr(s) for s in Twin.load().score(rows)]
    b = [repr(s) for s in Twin.load().score(rows.copy())]
    assert a == b


def test_every_shipped_coefficient_has_its_declared_sign(twin: Twin) -> None:
    data = json.loads(DEFAULT_ARTIFACT.read_text(encoding="utf-8"))
    assert data["directions"] == [F.DIRECTIONS[n] for n in data["feature_names"]]
    assert data["calibration"]["a"] > 0  # Platt keeps the signs
    for name, coef in twin.coefficients.items():
        direction = F.DIRECTIONS[name]
        assert direction * coef >= 0, (name, direction, coef)
        if direction == 0:
            assert F.feature(name).reason, name
    wrong = dict(data)
    wrong["coefficients"] = [-abs(c) - 0.1 if d > 0 else c for c, d in zip(data["coefficients"], data["directions"],
                                                                           strict=True)]
    with pytest.raises(ValueError, match="declared directions"):
        Twin.from_dict(wrong)


def test_sentence_wording_follows_the_sign_of_the_contribution(twin: Twin, rows) -> None:
    seen = {"up": 0, "down": 0}
    # The same signs with ten times the weights, so that below-average values also get sentences.
    loud = Twin.from_dict({**twin.artifact, "coefficients": [10 * c for c in twin.artifact["coefficients"]]})
    for s in [*twin.score(rows), *loud.score(rows)]:
        for c in s.contributions:
            if not c.sentence or c.value is None:
                continue
            zero = F.feature(c.feature).sentence_zero
            if c.points > 0:
                seen["up"] += 1
                assert "lowers the risk" not in c.sentence and c.sentence != zero, c
            elif c.points < 0:
                seen["down"] += 1
                assert c.sentence.endswith(("lowers the risk", "(lowers the risk)")), c
    assert seen["up"] and seen["down"]


def test_feature_mismatch_is_refused() -> None:
    data = json.loads(DEFAULT_ARTIFACT.read_text(encoding="utf-8"))
    data["feature_names"] = data["feature_names"][::-1]
    with pytest.raises(ValueError, match="features do not match"):
        Twin.from_dict(data)
    data = json.loads(DEFAULT_ARTIFACT.read_text(encoding="utf-8"))
    data["format"] = "pickle"
    with pytest.raises(ValueError, match="format"):
        Twin.from_dict(data)


def test_alert_thresholds_come_from_the_artifact_unless_a_site_overrides(twin: Twin) -> None:
    from models.twin import CLEAR_FRACTION

    point = twin.artifact["operating_points"]["alert"]
    assert point["threshold"] is not None and point["target"] and len(point["threshold_ci"]) == 2
    assert twin.alert_thresholds() == (point["threshold"], pytest.approx(CLEAR_FRACTION * point["threshold"]))
    assert twin.alert_thresholds(0.5) == (0.5, pytest.approx(0.4))
    assert twin.alert_thresholds(0.5, 0.45) == (0.5, 0.45)
    with pytest.raises(ValueError, match="exceeds"):
        twin.alert_thresholds(0.3, 0.4)
    old = {**twin.artifact, "operating_points": {}}
    assert Twin.from_dict(old).alert_thresholds()[0] == 0.7  # artifacts before v3 record no threshold


def test_a_rows_logit_does_not_depend_on_the_batch(twin: Twin, rows) -> None:
    batch = twin.logit(rows)
    alone = np.array([twin.logit(rows.iloc[[i]])[0] for i in range(len(rows))])
    np.testing.assert_array_equal(batch, alone)  # bit-identical: the cycle (many patients) = what-if (one)
