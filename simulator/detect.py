"""The event onset: the first *sustained* threshold crossing on clean 5-minute window aggregates.

This applies ``models.labels`` (the rule the twin is trained on: its ``CRITERIA`` and its one implementation
of the sustain rule, ``sustained_runs``) to one patient's raw arrays, fast enough to run inside generation:
windows are aligned to 5 minutes UTC; HR and SpO2 are window means of clean readings, SBP and temperature the
window's last clean reading carried forward up to 1 h (``models.windows.CARRY_FORWARD_LIMITS``). The onset is
the start of the first window beyond the threshold of the earliest sustained run (ties: ``CRITERIA`` order).
``tests/unit/test_simulator*.py`` checks that the two agree on whole simulated patients.
"""

from __future__ import annotations

from typing import Final

import numpy as np

from models.labels import CRITERIA as LABEL_CRITERIA
from models.labels import sustained_runs
from models.schema import VITALS
from models.windows import CARRY_FORWARD_LIMITS, WINDOW
from simulator.devices import Q_OK, S_CHARTED

WINDOW_MS: Final[int] = int(WINDOW / np.timedelta64(1, "ms"))
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


def _last_carried(bins: np.ndarray, ts: np.ndarray, values: np.ndarray, n: int, limit: int,
                  charted: np.ndarray | None = None) -> np.ndarray:
    out = np.full(n, np.nan)
    if len(bins) == 0:
        return out
    rank = np.zeros(len(ts), dtype=np.int8) if charted is None else charted.astype(np.int8)
    order = np.lexsort((ts, rank, bins))  # per window: monitor readings by time, then charted ones by time
    b, v = bins[order], values[order]
    last = np.r_[b[1:] != b[:-1], True]
    out[b[last]] = v[last]
    have = np.where(~np.isnan(out), np.arange(n), -1)
    src = np.maximum.accumulate(have)
    ok = (src >= 0) & (np.arange(n) - src <= limit)
    return np.where(ok, out[np.maximum(src, 0)], np.nan)


def window_aggregates(ts_ms: np.ndarray, vital: np.ndarray, value: np.ndarray,
                      charted: np.ndarray | None = None) -> tuple[int, dict[str, np.ndarray]]:
    """Clean readings (unique per vital, ts and source) → (first window start ms, per-vital window series).

    HR, SpO2 and RR are window means (``hr_mean``, ``spo2_mean``, ``rr_mean``) of monitor and charted readings
    together, SBP and temperature the last reading carried forward — a charted value in the window winning over
    the monitor's (``charted``: a boolean mask, absent = all monitor) — as in ``models.windows``.
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
        series[v] = _last_carried(bins[m], ts_ms[m], value[m], n, limit, None if charted is None else charted[m])
    return first * WINDOW_MS, series


def clean_unique(ts_ms: np.ndarray, vital: np.ndarray, value: np.ndarray, quality: np.ndarray,
                 source: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Artefact-free readings, once per (ts, vital, source) as ``models.windows.clean_readings`` keeps them:
    ``(ts_ms, vital, value, charted mask)``."""
    ok = quality == Q_OK
    ts, vit, val, src = ts_ms[ok], vital[ok], value[ok], source[ok]
    _, first = np.unique((ts * 32 + vit) * 2 + src, return_index=True)
    return ts[first], vit[first], val[first], src[first] == S_CHARTED


def first_onset(ts_ms: np.ndarray, vital: np.ndarray, value: np.ndarray,
                charted: np.ndarray | None = None) -> tuple[int, str] | None:
    """(onset window start, epoch ms; criterion) of the first sustained crossing, or None.

    Pass clean readings only (quality ok), without duplicates (``clean_unique``).
    """
    origin, series = window_aggregates(ts_ms, vital, value, charted)
    best: tuple[int, int, str] | None = None
    for rank, (name, (v, op, thr, last_value)) in enumerate(CRITERIA.items()):
        x = series.get(v)
        if x is None:
            continue
        runs = sustained_runs(x, op, thr, last_value)
        if runs and (best is None or (runs[0][0], rank) < best[:2]):
            best = (runs[0][0], rank, name)
    if best is None:
        return None
    return origin + best[0] * WINDOW_MS, best[2]
