"""The arithmetic the alert-burden summary and Pareto table rest on (``lab.alert_policies``): warned, warned by
chance, intervals from one set of patient-bootstrap replicates, missed events."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from lab import alert_policies as AP

T0 = datetime(2026, 1, 5, tzinfo=UTC)
H = timedelta(hours=1)


def test_warned_means_open_somewhere_in_the_six_hours_to_thirty_minutes_before_onset() -> None:
    onset = T0 + 10 * H
    assert AP.lead_h([(onset - 2 * H, None)], onset) == pytest.approx(2.0)
    assert AP.lead_h([(onset - 8 * H, onset - 5 * H)], onset) == pytest.approx(6.0)  # open at onset − 6 h: capped
    assert AP.lead_h([(onset - 8 * H, onset - 6 * H)], onset) is None  # resolved as the look-back starts
    assert AP.lead_h([(onset - timedelta(minutes=29), None)], onset) is None  # less than 30 min ahead
    assert AP.lead_h([(onset - timedelta(minutes=30), None)], onset) == pytest.approx(0.5)
    assert AP.lead_h([], onset) is None


def _patients() -> list[AP.Patient]:
    return [AP.Patient("e1", T0, T0 + 24 * H, T0 + 10 * H), AP.Patient("e2", T0, T0 + 12 * H, T0 + 4 * H),
            AP.Patient("f1", T0, T0 + 24 * H, None), AP.Patient("f2", T0, T0 + 24 * H, None)]


def test_pseudo_onsets_are_deterministic_event_free_only_and_at_real_onsets_times_since_admission() -> None:
    patients = _patients()
    first, again = AP.pseudo_onsets(patients, 7), AP.pseudo_onsets(patients, 7)
    assert first == again and set(first) == {"f1", "f2"}
    assert all(len(v) == AP.PSEUDO_ONSETS for v in first.values())
    offsets = {t - T0 for v in first.values() for t in v}
    assert offsets <= {10 * H, 4 * H} and len(offsets) == 2
    assert AP.pseudo_onsets(patients, 8) != first
    # no event in the run: uniform over the monitored span
    free = [AP.Patient("f", T0, T0 + 6 * H, None)]
    assert all(T0 <= t <= T0 + 6 * H for t in AP.pseudo_onsets(free, 1)["f"])


def test_chance_is_the_share_of_pseudo_onsets_warned_by_the_same_rule() -> None:
    patients = _patients()
    pseudo = {"f1": [T0 + 10 * H, T0 + 4 * H, T0 + 10 * H, T0 + 10 * H], "f2": [T0 + 4 * H]}
    spans = {"f1": [(T0 + 7 * H, T0 + 9 * H)],  # warns the pseudo-onsets at 10 h only
             "e1": [(T0 + 5 * H, None)], "e2": [(T0 + 3 * H + timedelta(minutes=45), None)]}  # e2: 15 min ahead
    c = AP.columns(patients, spans, pseudo)
    assert c.alerts.tolist() == [1, 1, 1, 0]
    assert c.warned.tolist() == [True, False, False, False]
    assert c.chance.tolist() == [0.0, 0.0, 0.75, 0.0]
    est = AP.Estimator(patients, n_boot=200, seed=1)
    e = est.estimates(c)
    assert e["per100d"]["value"] == pytest.approx(100 * 3 / 3.5)
    assert e["warned"]["value"] == 0.5 and e["chance"]["value"] == pytest.approx(0.375)
    assert e["warned_minus_chance"]["value"] == pytest.approx(0.125)
    lo, hi = e["per100d"]["ci95"]
    assert lo <= e["per100d"]["value"] <= hi
    nothing = AP.columns(patients, {}, pseudo)
    diff = est.difference(c, nothing, "warned_minus_chance")
    assert diff["value"] == pytest.approx(0.125) and diff["ci95"] is not None
    assert AP.missed(patients, c, nothing) == ["e1"] and AP.missed(patients, nothing, c) == []


def test_the_replicates_resample_patients_and_are_shared_by_every_policy() -> None:
    est = AP.Estimator(_patients(), n_boot=50, seed=3)
    assert est.idx.shape == (50, 4) and est.idx.min() >= 0 and est.idx.max() <= 3
    assert np.array_equal(est.idx, AP.Estimator(_patients(), n_boot=50, seed=3).idx)
