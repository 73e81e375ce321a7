"""models.twin: exact contributions, NaN handling, determinism, artifact checks."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
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
    one["spo2_below_96_1h"] = np.nan
    c = next(c for c in twin.score(one)[0].contributions if c.feature == "spo2_below_96_1h")
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


#: The NEWS2 zero-point band of each vital (inclusive) and the normal value a what-if brings it to.
NORMAL_BAND = {"hr": (51.0, 90.0, 75.0), "spo2": (96.0, 100.0, 97.0), "rr": (12.0, 20.0, 16.0),
               "sbp": (111.0, 219.0, 125.0), "temp": (36.1, 38.0, 37.0), "acvpu": (0.0, 0.0, 0.0),
               "o2": (0.0, 0.0, 0.0)}


def _normalising_changes(windows: pd.DataFrame) -> dict[str, float]:
    """Every vital whose last-hour value lies outside its normal band → its normal value (the others stay)."""
    from models.twin import WHAT_IF_COLUMNS

    starts = pd.to_datetime(windows["start"], utc=True)
    last_hour = windows[starts > starts.max() - pd.Timedelta(hours=1)]
    changes = {}
    for key, (lo, hi, normal) in NORMAL_BAND.items():
        values = last_hour[WHAT_IF_COLUMNS[key]].dropna()
        if len(values) and not (lo <= float(values.mean()) <= hi and lo <= float(values.iloc[-1]) <= hi):
            changes[key] = normal
    return changes


def test_bringing_every_vital_to_normal_never_raises_the_risk(twin: Twin) -> None:
    """On a sample of simulated patients (the evaluation seed, not the training one), at several moments of
    their stay, a what-if that brings every abnormal vital back to normal lowers the risk or leaves it.

    (Vitals already inside their band stay: setting a patient whose own baseline SpO2 is 99 % to 97 % is a
    fall from *their* baseline, which the twin rightly reads as a small rise in risk.)"""
    from models import windows as W
    from models.twin import what_if

    cohort = pytest.importorskip("simulator.cohort")
    mix = {"stable": 0.2, "sepsis": 0.2, "respiratory_failure": 0.2, "haemorrhage": 0.2, "bradyarrhythmia": 0.2}
    checked, lowered = 0, 0
    for record in cohort.iter_cohort(12, 24, 2024, archetype_mix=mix):
        w = W.build(record.readings)
        pid = str(w["patient_id"].iloc[0])
        starts = pd.to_datetime(w["start"], utc=True)
        for hours in range(4, 25, 2):
            upto = w[starts < starts.min() + pd.Timedelta(hours=hours)]
            changes = _normalising_changes(upto)
            if not changes:
                continue
            before, after, _ = what_if(twin, upto, pid, changes)
            assert after.risk <= before.risk + 1e-12, (pid, hours, changes, before.risk, after.risk)
            checked += 1
            lowered += after.risk < before.risk
    assert checked >= 20 and lowered >= checked // 2


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
    assert changed["features"]["spo2_below_96_1h"]["after"] == pytest.approx(11.0)
    assert changed["features"]["hr_above_90_1h"]["after"] == pytest.approx(35.0)
    assert "sbp_below_110" not in changed["features"]
    assert after.risk > before.risk
    for s in (before, after):
        assert abs(s.intercept + sum(c.points for c in s.contributions) - s.logit) < 1e-9
    with pytest.raises(ValueError, match="pulse"):
        what_if(twin, w, "p0001", {"pulse": 80})
    with pytest.raises(ValueError, match="spo2"):
        what_if(twin, w, "p0001", {"spo2": 120})
    with pytest.raises(KeyError):
        what_if(twin, w, "nobody", {"hr": 80})
