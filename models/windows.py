"""Aligned 5-minute windows: the pandas reference of the aggregation every store must reproduce.

Definition (per patient, per window ``[start, start + 5 min)``, ``start`` aligned to 5 minutes UTC),
computed on readings whose ``quality`` is ``"ok"`` after de-duplication on
``(patient_id, vital, ts, source)`` (the last delivered copy wins, as an InfluxDB point overwrite does; readings
without a ``source`` column are the monitor's). Monitor and charted readings are aggregated together; for the
last-value columns a charted value in the window wins over the monitor's (a nurse's validated observation):

==========  ===================================================================
hr_mean     mean of heart-rate readings (bpm)
hr_std      sample standard deviation (ddof=1) of heart rate; NaN with < 2 readings
hr_count    number of heart-rate readings
spo2_mean   mean SpO2 (%)
rr_mean     mean respiratory rate (/min)
sbp, dbp    last reading in the window (mmHg)
temp        last reading in the window (°C)
acvpu, o2   last charted value in the window
==========  ===================================================================

``aggregate`` produces only windows that hold at least one clean reading and never carries a
value forward; this is what a store's push-down must equal. ``carry_forward`` then puts each
patient on the full 5-minute grid and carries the last-reading columns forward within
``CARRY_FORWARD_LIMITS``; beyond the limit, missing stays missing (NaN), never invented.
"""

from __future__ import annotations

from datetime import datetime
from typing import Final

import numpy as np
import pandas as pd

from models.schema import (
    QUALITY_OK,
    READING_COLUMNS,
    SOURCE_CHARTED,
    SOURCE_COLUMN,
    SOURCE_MONITOR,
    WINDOW_MINUTES,
)

WINDOW: Final[pd.Timedelta] = pd.Timedelta(minutes=WINDOW_MINUTES)

WINDOW_COLUMNS: Final[tuple[str, ...]] = (
    "patient_id", "start", "hr_mean", "hr_std", "hr_count", "spo2_mean", "rr_mean",
    "sbp", "dbp", "temp", "acvpu", "o2",
)
#: The per-window measurements (every column but the key ``patient_id``, ``start``).
MEASURE_COLUMNS: Final[tuple[str, ...]] = tuple(c for c in WINDOW_COLUMNS if c not in ("patient_id", "start"))
#: Columns aggregated as a mean / std / count, and columns taken as the window's last reading.
MEAN_VITALS: Final[dict[str, str]] = {"hr": "hr_mean", "spo2": "spo2_mean", "rr": "rr_mean"}
LAST_VITALS: Final[tuple[str, ...]] = ("sbp", "dbp", "temp", "acvpu", "o2")

#: How long a last reading stays valid after the window it was taken in. NIBP is cycled every
#: 15 minutes and temperature every 5, so one hour means three missed cycles; ACVPU and oxygen
#: are charted by nurses at NEWS2 intervals (up to 12 h on a low score).
CARRY_FORWARD_LIMITS: Final[dict[str, pd.Timedelta]] = {
    "sbp": pd.Timedelta(hours=1),
    "dbp": pd.Timedelta(hours=1),
    "temp": pd.Timedelta(hours=1),
    "acvpu": pd.Timedelta(hours=12),
    "o2": pd.Timedelta(hours=12),
}
MAX_CARRY_FORWARD: Final[pd.Timedelta] = max(CARRY_FORWARD_LIMITS.values())


def align(ts: datetime | pd.Timestamp) -> pd.Timestamp:
    """Floor a timezone-aware time to the start of its 5-minute window (UTC)."""
    stamp = pd.Timestamp(ts)
    if stamp.tzinfo is None:
        raise ValueError("timestamps must be timezone-aware")
    return stamp.tz_convert("UTC").floor(WINDOW)


def empty_windows() -> pd.DataFrame:
    frame = pd.DataFrame({c: pd.Series(dtype="float64") for c in WINDOW_COLUMNS})
    frame["patient_id"] = pd.Series(dtype="object")
    frame["start"] = pd.Series(dtype="datetime64[ns, UTC]")
    frame["hr_count"] = pd.Series(dtype="int64")
    return frame[list(WINDOW_COLUMNS)]


def clean_readings(readings: pd.DataFrame) -> pd.DataFrame:
    """De-duplicate on (patient_id, vital, ts, source) keeping the last copy, then keep clean readings. The frame
    gains ``source`` (``"monitor"`` where the input had none)."""
    missing = set(READING_COLUMNS) - set(readings.columns)
    if missing:
        raise ValueError(f"readings lack columns {sorted(missing)}")
    frame = readings.loc[:, list(READING_COLUMNS)].copy()
    frame[SOURCE_COLUMN] = readings[SOURCE_COLUMN].to_numpy() if SOURCE_COLUMN in readings else SOURCE_MONITOR
    frame["ts"] = pd.to_datetime(frame["ts"], utc=True)
    frame = frame.drop_duplicates(subset=["patient_id", "vital", "ts", SOURCE_COLUMN], keep="last")
    return frame[frame["quality"] == QUALITY_OK]


def aggregate(readings: pd.DataFrame) -> pd.DataFrame:
    """Raw per-window aggregates (no carry-forward); one row per (patient_id, start) with data."""
    frame = clean_readings(readings)
    if frame.empty:
        return empty_windows()
    frame = frame.assign(start=frame["ts"].dt.floor(WINDOW), value=frame["value"].astype("float64"))
    keys = ["patient_id", "start"]
    parts: list[pd.DataFrame] = []

    hr = frame[frame["vital"] == "hr"].groupby(keys)["value"]
    parts.append(pd.DataFrame({"hr_mean": hr.mean(), "hr_std": hr.std(ddof=1), "hr_count": hr.size()}))
    for vital, column in MEAN_VITALS.items():
        if vital != "hr":
            parts.append(frame[frame["vital"] == vital].groupby(keys)["value"].mean().rename(column).to_frame())
    last = frame[frame["vital"].isin(LAST_VITALS)]
    last = last.assign(charted=last[SOURCE_COLUMN] == SOURCE_CHARTED).sort_values(["charted", "ts"], kind="mergesort")
    last = last.groupby([*keys, "vital"])["value"].last().unstack("vital")
    parts.append(last.reindex(columns=list(LAST_VITALS)))

    out = pd.concat(parts, axis=1).reset_index()
    out["hr_count"] = out["hr_count"].fillna(0).astype("int64")
    out = out[list(WINDOW_COLUMNS)].sort_values(keys, kind="mergesort").reset_index(drop=True)
    return normalise(out)


def carry_forward(windows: pd.DataFrame, start: datetime | None = None, end: datetime | None = None) -> pd.DataFrame:
    """Put each patient on the full 5-minute grid ``[start, end)`` and carry last readings forward.

    ``windows`` should reach back ``MAX_CARRY_FORWARD`` before ``start`` so a value taken before
    ``start`` can still be carried into it. Windows without any reading get ``hr_count`` 0 and NaN
    means. Without ``start``/``end`` each patient's grid spans its own first to last window.
    """
    if windows.empty:
        return empty_windows()
    lo = align(start) if start is not None else None
    hi = align(end) if end is not None else None
    frame = normalise(windows)
    by_patient = frame.groupby("patient_id", sort=True)["start"]
    first, last = by_patient.min(), by_patient.max()
    grid_start = first if lo is None else first.clip(upper=lo)
    grid_end = last + WINDOW if hi is None else pd.Series(hi, index=last.index)
    counts = ((grid_end - grid_start) // WINDOW).clip(lower=0).to_numpy(dtype="int64")
    offsets = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
    step = np.timedelta64(WINDOW.value, "ns")
    starts = np.repeat(grid_start.to_numpy(dtype="datetime64[ns]"), counts) + offsets * step
    grid = pd.DataFrame({
        "patient_id": np.repeat(first.index.to_numpy(dtype=object), counts),
        "start": pd.DatetimeIndex(starts).tz_localize("UTC"),
    })
    filled = grid.merge(frame, on=["patient_id", "start"], how="left", sort=False)
    patient = filled["patient_id"]
    for column, limit in CARRY_FORWARD_LIMITS.items():
        observed_at = filled["start"].where(filled[column].notna()).groupby(patient, sort=False).ffill()
        carried = filled[column].groupby(patient, sort=False).ffill()
        filled[column] = carried.where(filled["start"] - observed_at <= limit)
    filled["hr_count"] = filled["hr_count"].fillna(0)
    if lo is not None:
        filled = filled[filled["start"] >= lo]
    return normalise(filled[list(WINDOW_COLUMNS)].reset_index(drop=True))


def normalise(windows: pd.DataFrame) -> pd.DataFrame:
    """Fix the window dtypes (every store returns exactly these): float values, ns UTC starts."""
    out = windows.astype({c: "float64" for c in WINDOW_COLUMNS if c not in ("patient_id", "start", "hr_count")})
    out["start"] = pd.to_datetime(out["start"], utc=True).astype("datetime64[ns, UTC]")
    out["hr_count"] = out["hr_count"].astype("int64")
    out["patient_id"] = out["patient_id"].astype(object)
    return out


def build(readings: pd.DataFrame, start: datetime | None = None, end: datetime | None = None) -> pd.DataFrame:
    """Readings → carried-forward windows on the 5-minute grid: the one path training and serving share."""
    return carry_forward(aggregate(readings), start, end)


def window_end(start: pd.Series | pd.Timestamp) -> pd.Series | pd.Timestamp:
    return start + WINDOW


__all__ = [
    "CARRY_FORWARD_LIMITS", "MAX_CARRY_FORWARD", "MEASURE_COLUMNS", "WINDOW", "WINDOW_COLUMNS", "aggregate", "align",
    "build", "carry_forward", "clean_readings", "empty_windows", "normalise", "window_end",
]
