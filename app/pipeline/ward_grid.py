"""The ward's newest windows held in memory as dense arrays, so a cycle reads only what changed.

A :class:`WardGrid` keeps, for every patient with a stored window in its span, the stored (not carried)
5-minute windows of the newest ``SPAN`` windows as one (patients × ``SPAN``) float array per window column.
Each cycle moves it on to the new window end and overwrites, for every patient, the windows the store
re-aggregated since (the newest ones and any late ones still inside the span), read back from the store. The
cycle's cost is then linear in patients and flat in history length: it never reads further back than ``SPAN``.

``SPAN`` is the features' look-back (``models.features.HISTORY``) plus the longest carry-forward used at
every row of it (SBP, DBP and temperature, 1 h). ACVPU and oxygen are carried up to 12 h but the features read
them at the newest row only, which the span still reaches (``_CARRIED_AT_NEWEST_ONLY``), so the carried grid
equals ``models.windows.carry_forward`` on a 24-hour read wherever the cycle looks at it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from typing import Final

import numpy as np
import pandas as pd

from models import features, labels
from models.scoring import is_fresh, seen
from models.windows import CARRY_FORWARD_LIMITS, MEASURE_COLUMNS, WINDOW, WINDOW_COLUMNS

#: Windows of the features' look-back (the carried grid the features and the criteria see).
LOOKBACK: Final[int] = int(features.HISTORY / WINDOW)
_CARRIED_AT_NEWEST_ONLY: Final[frozenset[str]] = frozenset({"acvpu", "o2"})
_ROW_CARRY: Final[int] = max(int(CARRY_FORWARD_LIMITS[c] / WINDOW) for c in CARRY_FORWARD_LIMITS
                             if c not in _CARRIED_AT_NEWEST_ONLY)
SPAN: Final[int] = LOOKBACK + _ROW_CARRY
assert all(int(CARRY_FORWARD_LIMITS[c] / WINDOW) <= SPAN - 1 for c in _CARRIED_AT_NEWEST_ONLY)
_STEP_MS: Final[int] = int(WINDOW.total_seconds() * 1000)


class WardGrid:
    """Stored windows of ``[end - SPAN windows, end)`` for every patient that has one, as dense arrays."""

    def __init__(self, end: datetime) -> None:
        self.end = pd.Timestamp(end)
        self.ids: list[str] = []
        self._row: dict[str, int] = {}
        self.cols: dict[str, np.ndarray] = {c: self._empty(0, c) for c in MEASURE_COLUMNS}

    @property
    def start(self) -> pd.Timestamp:
        return self.end - SPAN * WINDOW

    @staticmethod
    def _empty(patients: int, column: str) -> np.ndarray:
        return np.zeros((patients, SPAN)) if column == "hr_count" else np.full((patients, SPAN), np.nan)

    def advance(self, end: datetime) -> None:
        """Move the span on to ``end`` (not before the current end); windows that fall off are dropped."""
        steps = int((pd.Timestamp(end) - self.end) / WINDOW)
        if steps < 0:
            raise ValueError("a WardGrid only moves forward")
        if steps:
            for c, a in self.cols.items():
                keep = max(SPAN - steps, 0)
                moved = self._empty(len(a), c)
                if keep:
                    moved[:, :keep] = a[:, SPAN - keep:]
                self.cols[c] = moved
            self.end = pd.Timestamp(end)

    def replace(self, stored: pd.DataFrame, lo: datetime, hi: datetime) -> None:
        """Make windows ``[lo, hi)`` (clipped to the span) those of ``stored`` for every patient: a window the
        store no longer has becomes empty; patients new to the grid get a row."""
        first = max(0, int((pd.Timestamp(lo) - self.start) / WINDOW))
        last = min(SPAN, int((pd.Timestamp(hi) - self.start) / WINDOW))
        if last <= first:
            return
        for c, a in self.cols.items():
            a[:, first:last] = 0.0 if c == "hr_count" else np.nan
        if stored.empty:
            return
        starts_ms = stored["start"].to_numpy(dtype="datetime64[ms]").astype("int64")
        slot = (starts_ms - int(self.start.value // 1_000_000)) // _STEP_MS
        inside = (slot >= first) & (slot < last)
        pids = stored["patient_id"].to_numpy(dtype=object)[inside]
        self._add_patients(pd.unique(pids))
        rows = np.fromiter((self._row[p] for p in pids), dtype=np.int64, count=len(pids))
        slot = slot[inside]
        for c, a in self.cols.items():
            a[rows, slot] = stored[c].to_numpy(dtype=float)[inside]

    def _add_patients(self, pids: Iterable[str]) -> None:
        new = [p for p in pids if p not in self._row]
        if not new:
            return
        for p in new:
            self._row[p] = len(self.ids)
            self.ids.append(p)
        for c, a in self.cols.items():
            self.cols[c] = np.vstack([a, self._empty(len(new), c)])

    def prune(self) -> None:
        """Drop patients without any stored window in the span (discharged, or silent for ``SPAN``)."""
        has = (self.cols["hr_count"] > 0).any(axis=1)
        for c in MEASURE_COLUMNS:
            if c != "hr_count":
                has |= ~np.isnan(self.cols[c]).all(axis=1)
        if has.all():
            return
        self.ids = [p for p, h in zip(self.ids, has, strict=True) if h]
        self._row = {p: i for i, p in enumerate(self.ids)}
        self.cols = {c: a[has] for c, a in self.cols.items()}

    def carried(self) -> dict[str, np.ndarray]:
        """The features' look-back (the newest ``LOOKBACK`` windows) with last readings carried forward within
        ``CARRY_FORWARD_LIMITS``, as ``models.windows.carry_forward`` does; (patients × ``LOOKBACK``) arrays."""
        out: dict[str, np.ndarray] = {}
        for c, a in self.cols.items():
            limit = CARRY_FORWARD_LIMITS.get(c)
            out[c] = a if limit is None else carry(a, int(limit / WINDOW))
            out[c] = out[c][:, SPAN - LOOKBACK:]
        return out


def carry(values: np.ndarray, limit: int) -> np.ndarray:
    """Carry each row's last non-missing value forward along the row for at most ``limit`` steps."""
    at = np.arange(values.shape[1])
    last = np.maximum.accumulate(np.where(np.isnan(values), -1, at), axis=1)
    carried = np.take_along_axis(values, np.maximum(last, 0), axis=1)
    return np.where((last >= 0) & (at - last <= limit), carried, np.nan)


def fresh(grid: dict[str, np.ndarray], window_end: datetime, stale_after: timedelta) -> np.ndarray:
    """Patients fresh at the window end (``models.scoring``'s rule: :func:`~models.scoring.seen` in a window that
    :func:`~models.scoring.is_fresh` keeps), within the look-back."""
    has_data = seen(grid["hr_count"], grid["spo2_mean"], grid["rr_mean"])
    n = has_data.shape[1]
    starts = pd.Timestamp(window_end) - (n - np.arange(n)) * WINDOW
    recent = np.asarray(is_fresh(starts, pd.Timestamp(window_end), stale_after))
    return (has_data & recent).any(axis=1)


def may_meet_criteria(grid: dict[str, np.ndarray]) -> np.ndarray:
    """Patients whose newest window crosses a deterioration line (the only ones an event can be running for)."""
    out = np.zeros(len(next(iter(grid.values()))), dtype=bool)
    for column, op, threshold, _ in labels.CRITERIA.values():
        x = grid[column][:, -1]
        with np.errstate(invalid="ignore"):
            out |= (x > threshold) if op == ">" else (x < threshold)
    return out


def as_frame(grid: dict[str, np.ndarray], ids: Sequence[str], rows: np.ndarray, window_end: datetime) -> pd.DataFrame:
    """The look-back of the patients at ``rows`` as a ``WINDOW_COLUMNS`` frame (for the pandas references)."""
    n = grid["hr_count"].shape[1]
    starts = pd.date_range(end=pd.Timestamp(window_end) - WINDOW, periods=n, freq=WINDOW)
    frame = pd.DataFrame({
        "patient_id": np.repeat(np.asarray(ids, dtype=object)[rows], n),
        "start": np.tile(starts.to_numpy(), len(rows)),
        **{c: grid[c][rows].reshape(-1) for c in MEASURE_COLUMNS},
    })
    frame["start"] = pd.to_datetime(frame["start"], utc=True)
    frame["hr_count"] = frame["hr_count"].astype("int64")
    return frame[list(WINDOW_COLUMNS)]
