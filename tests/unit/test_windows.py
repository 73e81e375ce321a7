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


def reference_carry_forward(windows, start, end):
    """The definition, one patient at a time (the vectorised version must equal it)."""
    frames = []
    for patient_id, group in windows.groupby("patient_id", sort=True):
        group = group.sort_values("start")
        first = group["start"].iloc[0] if start is None else min(W.align(start), group["start"].iloc[0])
        last = group["start"].iloc[-1] + W.WINDOW if end is None else W.align(end)
        grid = pd.date_range(first, last, freq=W.WINDOW, inclusive="left", tz="UTC")
        filled = group.set_index("start").reindex(grid)
        filled.index.name = "start"
        for column, limit in W.CARRY_FORWARD_LIMITS.items():
            at = pd.Series(grid, index=grid)
            age = at - at.where(filled[column].notna()).ffill()
            filled[column] = filled[column].ffill().where(age <= limit)
        filled["patient_id"] = patient_id
        filled["hr_count"] = filled["hr_count"].fillna(0)
        frames.append(filled.reset_index())
    out = pd.concat(frames, ignore_index=True)
    if start is not None:
        out = out[out["start"] >= W.align(start)]
    return W.normalise(out[list(W.WINDOW_COLUMNS)].reset_index(drop=True))


@given(st.integers(0, 10_000))
def test_vectorised_carry_forward_equals_the_per_patient_definition(seed):
    rng = np.random.default_rng(seed)
    rows = []
    for p in range(int(rng.integers(1, 5))):
        offsets = np.sort(rng.choice(300, int(rng.integers(1, 40)), replace=False))
        for k in offsets:
            rows.append({"patient_id": f"p{p}", "start": T0 + W.WINDOW * int(k),
                         "hr_mean": rng.normal(80, 5) if rng.random() < 0.7 else np.nan, "hr_std": np.nan,
                         "hr_count": int(rng.integers(0, 300)), "spo2_mean": np.nan, "rr_mean": rng.normal(16, 2),
                         "sbp": rng.normal(120, 9) if rng.random() < 0.2 else np.nan, "dbp": np.nan,
                         "temp": rng.normal(37, 0.3) if rng.random() < 0.1 else np.nan,
                         "acvpu": 0.0 if rng.random() < 0.05 else np.nan, "o2": np.nan})
    windows = W.normalise(pd.DataFrame(rows))
    for lo, hi in [(None, None), (T0 + pd.Timedelta(hours=5), T0 + pd.Timedelta(hours=20)),
                   (T0 - pd.Timedelta(hours=1), T0 + pd.Timedelta(hours=30))]:
        pd.testing.assert_frame_equal(W.carry_forward(windows, lo, hi), reference_carry_forward(windows, lo, hi))
