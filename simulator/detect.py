"""The event onset: the first *sustained* threshold crossing on clean 5-minute window aggregates.

This mirrors ``models.labels.events`` (the rule the twin is trained on) on one patient's raw
arrays, fast enough to run inside generation: windows are aligned to 5 minutes UTC; HR and SpO2
are window means of clean readings, SBP and temperature the window's last clean reading carried
forward up to 1 h (``models.windows.CARRY_FORWARD_LIMITS``). A criterion (HR > 120, HR < 50,
SBP < 90, SpO2 < 90, temperature > 39) is sustained when it holds in ≥ 3 consecutive windows (15 min)
and, for SBP and temperature, on ≥ 2 distinct readings. The onset is the start of the first window
of the earliest sustained run. ``tests/unit/test_simulator*.py`` checks the two agree.
"""

from __future__ import annotations

from typing import Final

import numpy as np

from models.labels import CRITERIA as LABEL_CRITERIA
from models.labels import SUSTAIN
from models.schema import VITALS
from models.windows import CARRY_FORWARD_LIMITS, WINDOW

WINDOW_MS: Final[int] = int(WINDOW / np.timedelta64(1, "ms"))
SUSTAIN_WINDOWS: Final[int] = int(SUSTAIN / WINDOW)
_V = {v: i for i, v in enumerate(VITALS)}
_COLUMN_VITAL: Final[dict[str, str]] = {"hr_mean": "hr", "sbp": "sbp", "spo2_mean": "spo2", "temp": "temp"}
#: criterion → (vital, comparison, threshold, last-value vital needing two distinct readings): the
#: label rule's own table (``models.labels.CRITERIA``), keyed by raw vital instead of window column.
CRITERIA: Final[dict[str, tuple[str, str, float, bool]]] = {
    kind: (_COLUMN_VITAL[column], op, threshold, two_readings)
    for kind, (column, op, threshold, two_readings) in LABEL_CRITERIA.items()
}


def _mean(bins: np.ndarray, values: np.ndarray, n: int) -> np.ndarray:
    count = np.bincount(bins, minlength=n)
    total = np.bincount(bins, weights=values, minlength=n)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, total / np.maximum(count, 1), np.nan)


def _last_carried(bins: np.ndarray, ts: np.ndarray, values: np.ndarray, n: int, limit: int) -> np.ndarray:
    out = np.full(n, np.nan)
    if len(bins) == 0:
        return out
    order = np.argsort(ts, kind="stable")
    b, v = bins[order], values[order]
    last = np.r_[b[1:] != b[:-1], True]
    out[b[last]] = v[last]
    have = np.where(~np.isnan(out), np.arange(n), -1)
    src = np.maximum.accumulate(have)
    ok = (src >= 0) & (np.arange(n) - src <= limit)
    return np.where(ok, out[np.maximum(src, 0)], np.nan)


def window_aggregates(ts_ms: np.ndarray, vital: np.ndarray, value: np.ndarray) -> tuple[int, dict[str, np.ndarray]]:
    """Clean readings (unique per vital and ts) → (first window start ms, per-vital window series).

    HR, SpO2 and RR are window means (``hr_mean``, ``spo2_mean``, ``rr_mean``), SBP and temperature the
    last reading carried forward, as in ``models.windows``.
    """
    if len(ts_ms) == 0:
        return 0, {}
    wb = ts_ms // WINDOW_MS
    first = int(wb.min())
    bins = (wb - first).astype(np.int64)
    n = int(bins.max()) + 1
    series: dict[str, np.ndarray] = {}
    for v in ("hr", "spo2", "rr"):
        m = vital == _V[v]
        series[v] = _mean(bins[m], value[m], n)
    for v in ("sbp", "temp"):
        m = vital == _V[v]
        limit = int(CARRY_FORWARD_LIMITS[v] / WINDOW)
        series[v] = _last_carried(bins[m], ts_ms[m], value[m], n, limit)
    return first * WINDOW_MS, series


def first_onset(ts_ms: np.ndarray, vital: np.ndarray, value: np.ndarray) -> tuple[int, str] | None:
    """(onset window start, epoch ms; criterion) of the first sustained crossing, or None.

    Pass clean readings only (quality ok), without duplicates.
    """
    origin, series = window_aggregates(ts_ms, vital, value)
    best: tuple[int, int, str] | None = None
    for rank, (name, (v, op, thr, two)) in enumerate(CRITERIA.items()):
        x = series.get(v)
        if x is None:
            continue
        with np.errstate(invalid="ignore"):
            bad = (x > thr) if op == ">" else (x < thr)
        if not bad.any():
            continue
        starts = np.flatnonzero(bad & ~np.r_[False, bad[:-1]])
        ends = np.flatnonzero(bad & ~np.r_[bad[1:], False]) + 1
        fresh = bad & np.r_[True, x[1:] != x[:-1]]
        for a, b in zip(starts, ends, strict=True):
            if b - a < SUSTAIN_WINDOWS:
                continue
            if two and 1 + int(fresh[a + 1:b].sum()) < 2:
                continue
            if best is None or (a, rank) < best[:2]:
                best = (int(a), rank, name)
            break
    if best is None:
        return None
    return origin + best[0] * WINDOW_MS, best[2]
