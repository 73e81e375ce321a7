"""The pandas reference of the 5-minute windows: alignment, aggregates, de-duplication, carry-forward."""

import numpy as np
import pandas as pd
from hypothesis import given
from hypothesis import strategies as st

from models import windows as W

T0 = pd.Timestamp("2026-01-05T00:00:00Z")


def frame(rows):
    return pd.DataFrame(rows, columns=["patient_id", "ts", "vital", "value", "quality"])


def test_aggregates_follow_the_definition():
    rows = [("p", T0 + pd.Timedelta(seconds=s), "hr", v, "ok") for s, v in [(0, 70), (1, 80), (299, 90)]]
    rows += [("p", T0 + pd.Timedelta(seconds=2), "hr", 250, "motion")]  # artefact: stored, not aggregated
    rows += [("p", T0 + pd.Timedelta(seconds=s), "sbp", v, "ok") for s, v in [(10, 120), (200, 110)]]
    rows += [("p", T0 + pd.Timedelta(seconds=s), "spo2", v, "ok") for s, v in [(5, 95), (35, 97)]]
    rows += [("p", T0 + pd.Timedelta(seconds=300), "hr", 100, "ok")]  # next window
    out = W.aggregate(frame(rows))
    first = out.iloc[0]
    assert first["start"] == T0 and first["hr_count"] == 3
    assert first["hr_mean"] == 80 and np.isclose(first["hr_std"], 10.0)
    assert first["sbp"] == 110 and first["spo2_mean"] == 96
    assert np.isnan(out.iloc[1]["hr_std"]) and out.iloc[1]["start"] == T0 + W.WINDOW


def test_duplicates_last_copy_wins_and_order_does_not_matter():
    rows = [("p", T0 + pd.Timedelta(seconds=s), "hr", 60 + s, "ok") for s in range(60)]
    shuffled = frame(rows).sample(frac=1, random_state=1)
    with_dupes = pd.concat([shuffled, frame(rows[:10])])
    pd.testing.assert_frame_equal(W.aggregate(with_dupes), W.aggregate(frame(rows)))
    corrected = pd.concat([frame(rows), frame([("p", T0, "hr", 200, "ok")])])
    assert W.aggregate(corrected).iloc[0]["hr_mean"] == (sum(60 + s for s in range(1, 60)) + 200) / 60


def test_carry_forward_stops_at_the_limit_and_never_invents():
    rows = [("p", T0 + pd.Timedelta(minutes=1), "sbp", 120, "ok"), ("p", T0 + pd.Timedelta(minutes=2), "hr", 80, "ok")]
    grid = W.carry_forward(W.aggregate(frame(rows)), T0, T0 + pd.Timedelta(hours=3))
    assert len(grid) == 36
    limit_windows = int(W.CARRY_FORWARD_LIMITS["sbp"] / W.WINDOW)
    assert grid["sbp"].iloc[: limit_windows + 1].eq(120).all()
    assert grid["sbp"].iloc[limit_windows + 1 :].isna().all()
    assert grid["hr_mean"].iloc[1:].isna().all() and (grid["hr_count"].iloc[1:] == 0).all()


@given(st.datetimes(min_value=pd.Timestamp("2000-01-01").to_pydatetime(),
                    max_value=pd.Timestamp("2100-01-01").to_pydatetime()))
def test_align_floors_to_five_minutes(naive):
    ts = pd.Timestamp(naive, tz="UTC")
    start = W.align(ts)
    assert start <= ts < start + W.WINDOW
    assert start.minute % 5 == 0 and start.second == 0 and start.microsecond == 0 and start.nanosecond == 0
