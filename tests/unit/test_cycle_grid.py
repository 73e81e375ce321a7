"""The cycle's ward grid (issue 14) scores exactly as the pandas reference: same features, same scores byte for byte.

The reference, ``models.scoring.score_ward``, reads 24 h of stored windows and builds features for every window of
the look-back; the served path keeps the newest windows as dense arrays, moves them on each cycle with only the
windows the store re-aggregated, and computes the newest window's features for all patients at once. Random wards,
random gaps, late windows (changed, added and deleted inside the span), jumps past the span and past-window cycles.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.pipeline.cycle import Cycle
from app.pipeline.ward_grid import SPAN, WardGrid, carry
from app.storage.codec import score_to_json
from models import features
from models.challenger import Challenger
from models.scoring import score_ward
from models.twin import Twin
from models.windows import MAX_CARRY_FORWARD, WINDOW, WINDOW_COLUMNS, carry_forward, empty_windows, normalise

T0 = datetime(2026, 3, 2, 0, 0, tzinfo=UTC)
TWIN = Twin.load()
CHALLENGER = Challenger.load()


class FrameStore:
    """Stored windows and their re-aggregation marks in memory: the part of a VitalStore the cycle reads."""

    name = "frame"

    def __init__(self) -> None:
        self.frame = empty_windows()
        self.pending: set[pd.Timestamp] = set()
        self.saved: list = []

    def put(self, rows: pd.DataFrame, deleted: list[tuple[str, pd.Timestamp]] = ()) -> None:
        """Store (replace) windows and delete others, marking their starts as a store's ingest does."""
        keys = set(zip(rows["patient_id"], rows["start"], strict=True)) | set(deleted)
        old = self.frame[[k not in keys for k in zip(self.frame["patient_id"], self.frame["start"], strict=True)]]
        self.frame = normalise(pd.concat([old, rows], ignore_index=True)).sort_values(
            ["patient_id", "start"], kind="mergesort").reset_index(drop=True)
        self.pending |= {k[1] for k in keys}

    async def materialize_pending(self, end: datetime) -> list[datetime]:
        starts = sorted(p for p in self.pending if p < pd.Timestamp(end))
        self.pending -= set(starts)
        return [s.to_pydatetime() for s in starts]

    async def patient_ids(self) -> list[str]:
        return sorted(set(self.frame["patient_id"]))

    async def windows(self, ids, start: datetime, end: datetime) -> pd.DataFrame:
        f = self.frame
        inside = (f["start"] >= pd.Timestamp(start)) & (f["start"] < pd.Timestamp(end))
        out = f[inside if ids is None else f["patient_id"].isin(list(ids)) & inside]
        return out.reset_index(drop=True)

    async def save_scores(self, scores) -> None:
        self.saved = list(scores)


def ward(seed: int, patients: int, windows: int, missing: float) -> pd.DataFrame:
    """Stored windows of ``patients`` over ``windows`` windows from T0: random values in plausible ranges (some
    past the deterioration lines), random gaps."""
    rng = np.random.default_rng(seed)
    n = patients * windows
    p = np.repeat(np.arange(patients), windows)
    drift = np.repeat(rng.normal(0, 1, patients), windows) * np.tile(np.linspace(0, 1, windows), patients)

    def vital(mu: float, sd: float, lo: float, hi: float, every: float = 1.0) -> np.ndarray:
        x = np.clip(rng.normal(mu, sd, n) + drift * 3 * sd, lo, hi)
        x[(rng.random(n) < missing) | (rng.random(n) > every)] = np.nan
        return x

    hr = vital(90, 18, 30, 190)
    frame = pd.DataFrame({
        "patient_id": [f"p{i}" for i in p],
        "start": pd.Timestamp(T0) + np.tile(np.arange(windows), patients) * WINDOW,
        "hr_mean": hr, "hr_std": np.where(np.isnan(hr), np.nan, rng.gamma(2, 1.5, n)),
        "hr_count": np.where(np.isnan(hr), 0, rng.integers(1, 300, n)),
        "spo2_mean": vital(94, 4, 70, 100), "rr_mean": vital(18, 5, 5, 45), "sbp": vital(115, 22, 60, 220, 1 / 3),
        "dbp": vital(70, 10, 30, 130, 1 / 3), "temp": vital(37.3, 0.8, 34, 41, 0.5),
        "acvpu": np.where(rng.random(n) < 0.06, rng.integers(0, 5, n), np.nan).astype(float),
        "o2": np.where(rng.random(n) < 0.06, rng.integers(0, 6, n), np.nan).astype(float),
    })
    data = frame[["hr_mean", "spo2_mean", "rr_mean", "sbp", "dbp", "temp", "acvpu", "o2"]].notna().any(axis=1)
    return normalise(frame[data | (frame["hr_count"] > 0)][list(WINDOW_COLUMNS)])


def reference(store: FrameStore, cycle: Cycle, window_end: datetime) -> list:
    f = store.frame
    lo = pd.Timestamp(window_end) - features.HISTORY - MAX_CARRY_FORWARD
    stored = f[(f["start"] >= lo) & (f["start"] < pd.Timestamp(window_end))].reset_index(drop=True)
    return score_ward(stored, window_end, TWIN, scored_at=window_end, stale_after=cycle.stale_after,
                      challenger=cycle.challenger, disagreement=cycle.disagreement)


@settings(deadline=None, max_examples=12, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**31), patients=st.integers(1, 4), missing=st.sampled_from([0.0, 0.2, 0.6]),
       steps=st.lists(st.sampled_from([1, 1, 1, 2, 3, SPAN + 5, -4]), min_size=3, max_size=7),
       late=st.lists(st.tuples(st.integers(0, 3), st.integers(1, SPAN + 20), st.booleans()), max_size=4))
def test_the_grid_scores_as_the_reference_byte_for_byte(seed, patients, missing, steps, late):
    asyncio.run(_check(seed, patients, missing, steps, late))


async def _check(seed: int, patients: int, missing: float, steps: list[int], late: list[tuple[int, int, bool]]) -> None:
    total = 320 + sum(abs(s) for s in steps)
    everything = ward(seed, patients, total, missing)
    store = FrameStore()
    cycle = Cycle(store, TWIN, challenger=CHALLENGER)
    end = pd.Timestamp(T0) + 300 * WINDOW
    store.put(everything[everything["start"] < end])
    compared = 0
    for i, step in enumerate(steps):
        newest = max(end, store.frame["start"].max() + WINDOW)
        end = end + step * WINDOW
        store.put(everything[(everything["start"] >= newest) & (everything["start"] < end)])
        for p, back, delete in late[i % max(len(late), 1):][:1]:  # a late window: changed, or deleted
            start = end - back * WINDOW
            pid = f"p{p % patients}"
            if delete:
                store.put(empty_windows(), [(pid, start)])
            else:
                row = everything[everything["start"] == start].head(1).assign(patient_id=pid, hr_mean=131.0)
                store.put(row)
        result = await cycle.run(end.to_pydatetime())
        expected = reference(store, cycle, end.to_pydatetime())
        assert result.scored == len(expected)
        assert [score_to_json(s) for s in store.saved] == [score_to_json(s) for s in expected]
        assert store.saved == expected
        compared += len(expected)
    assert compared > 0


def test_the_newest_features_equal_the_reference_features():
    stored = ward(5, 6, SPAN + 150, 0.3)
    end = pd.Timestamp(T0) + (SPAN + 150) * WINDOW
    grid = WardGrid(end.to_pydatetime())
    grid.replace(stored, grid.start, end.to_pydatetime())
    carried = grid.carried()
    newest = features.build_newest(carried)
    reference_grid = carry_forward(stored[stored["start"] >= end - features.HISTORY - MAX_CARRY_FORWARD],
                                   end - features.HISTORY, end)
    built = features.build(reference_grid)
    last = built[built["window_end"] == end].set_index("patient_id").loc[grid.ids]
    for name in features.FEATURE_NAMES:
        assert np.array_equal(newest[name].view(np.uint64), last[name].to_numpy(float).view(np.uint64)), name


def test_carry_stops_at_its_limit_and_never_invents_a_first_value():
    x = np.array([[np.nan, 1.0, np.nan, np.nan, np.nan, 2.0, np.nan]])
    out = carry(x, 2)
    assert np.array_equal(out, [[np.nan, 1.0, 1.0, 1.0, np.nan, 2.0, 2.0]], equal_nan=True)


def test_a_grid_only_moves_forward_and_drops_silent_patients():
    grid = WardGrid(T0)
    rows = ward(1, 2, 10, 0.0)
    rows = rows.assign(start=rows["start"] - 10 * WINDOW)
    grid.replace(rows, grid.start, T0)
    assert sorted(grid.ids) == ["p0", "p1"]
    with pytest.raises(ValueError, match="forward"):
        grid.advance(T0 - WINDOW)
    grid.advance(T0 + (SPAN - 10) * WINDOW)  # the oldest windows fall off; the newest stay
    grid.prune()
    assert sorted(grid.ids) == ["p0", "p1"]
    grid.advance(T0 + SPAN * WINDOW)  # now all have
    grid.prune()
    assert grid.ids == [] and grid.end == pd.Timestamp(T0 + SPAN * WINDOW)
