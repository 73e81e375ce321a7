"""models.scoring: the one freshness rule, as the reference scores it and as the PhysioNet evaluation applies it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from lab import physionet2012 as P
from lab import physionet_eval as E
from models import scoring
from models import windows as W
from models.twin import Twin

TWIN = Twin.load()
VITALS = ("hr", "spo2", "rr", "sbp", "temp")


def readings(patient_id: str, times: list[tuple[int, str]]) -> pd.DataFrame:
    """One reading per (minute after admission, vital), in normal ranges."""
    normal = {"hr": 80.0, "spo2": 97.0, "rr": 16.0, "sbp": 120.0, "temp": 37.0}
    return pd.DataFrame({"patient_id": patient_id,
                         "ts": [P.ADMISSION_AT + timedelta(minutes=m) for m, _ in times],
                         "vital": [v for _, v in times], "value": [normal[v] for _, v in times], "quality": "ok"})


@settings(max_examples=25, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 6 * 60), st.sampled_from(VITALS)), min_size=1, max_size=12, unique=True))
def test_the_evaluation_scores_an_hour_exactly_when_the_reference_does(times):
    """``lab.physionet_eval`` flags an hour fresh exactly when ``score_ward`` (the service's scoring) scores it:
    only heart rate, SpO2 or respiratory rate within the hour keeps a stay scored; BP and temperature do not."""
    stay = readings("132001", times)
    _, hourly, _ = E.stay_hours(stay, ["132001"])
    fresh = dict(zip(hourly["window_end"], hourly["fresh"], strict=True))
    stored = W.aggregate(stay)
    for hour in range(1, 8):
        end = P.ADMISSION_AT + timedelta(hours=hour)
        scored = scoring.score_ward(stored[stored["start"] < pd.Timestamp(end)], end, TWIN,
                                    scored_at=datetime(2030, 1, 1, tzinfo=UTC), stale_after=E.STALE_AFTER)
        seen = [m for m, v in times if v in ("hr", "spo2", "rr") and
                end - E.STALE_AFTER <= P.ADMISSION_AT + timedelta(minutes=m - m % 5) < end]
        assert bool(scored) == bool(seen) == bool(fresh.get(pd.Timestamp(end), False)), hour


def test_seen_and_is_fresh_work_on_arrays_and_series():
    hr_count, spo2, rr = np.array([0, 3, 0, 0]), np.array([np.nan, np.nan, 95.0, np.nan]), np.full(4, np.nan)
    assert scoring.seen(hr_count, spo2, rr).tolist() == [False, True, True, False]
    end = pd.Timestamp("2026-03-02 12:00", tz="UTC")
    starts = pd.Series([end - timedelta(minutes=65), end - timedelta(minutes=60), pd.NaT])
    assert scoring.is_fresh(starts, end, timedelta(hours=1)).tolist() == [False, True, False]
