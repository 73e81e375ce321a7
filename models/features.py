"""The one feature module: carried-forward 5-minute windows → one feature row per window end.

Training (``models.train``) and serving (the five-minute cycle) both call :func:`build`; nothing
else computes features.

Input
    ``models.windows.carry_forward`` output (``WINDOW_COLUMNS``): each patient on the 5-minute grid.
    Gaps in a patient's grid are tolerated (the missing windows count as missing data).
Output
    One row per input window: ``patient_id``, ``window_end`` (= ``start`` + 5 min), then the
    ``FEATURES`` names in order. NaN where a feature cannot be computed (the twin imputes the
    training mean, i.e. a zero contribution, and says "not measured").

Definitions (``k`` windows "ending at" a window end ``t`` are the windows whose start lies in
``[t - k·5 min, t)``; a statistic needs the minimum number of non-missing windows given below):

- ``*_mean_1h`` / ``*_std_1h``: mean and sample standard deviation (ddof=1) of the window values over
  the last hour (12 windows); at least 3 / 4 windows with data.
- ``*_std_4h``: the same over 4 hours (48 windows, at least 12 with data): slower volatility.
- ``*_trend_1h``: least-squares slope over the last hour, per hour (at least 6 windows with data).
- ``*_to_*``: distance from the latest value to a deterioration threshold (``models.schema``), signed
  so that positive means "still on the safe side". The latest value of HR / SpO2 / RR is the newest
  window mean within the last 15 minutes; SBP and temperature are the window values (already
  carried forward up to one hour by ``models.windows``).
- ``*_min_4h``: minutes, over the last 4 hours, spent in a range clinicians watch (e.g. SpO2 < 95 %).
- ``approach_*``: how fast the vital is closing on a threshold, as (rate towards it) / (distance left),
  per hour, 0 when moving away; i.e. 1 / (hours to the threshold at the current 1-hour trend).
  Capped at 4 /h (15 minutes away); 4 /h as well when the threshold is already crossed and moving on.
- ``shock_index``: latest HR / latest SBP.
- ``*_vs_baseline``: last-hour mean minus the patient's baseline (mean over the baseline period).
  The baseline period is the patient's first 4 hours of windows within the look-back (``HISTORY``,
  12 h before the window end); available once 5 hours of history exist (NaN before).
- ``mahalanobis_baseline``: the last-hour means of HR, SpO2, RR and SBP jointly, as a Mahalanobis
  distance from the baseline windows (mean and covariance of complete baseline windows, at least 12,
  with a variance floor per vital so a flat baseline does not explode the distance).
- ``bp_age_h``: hours since the last *new* blood-pressure reading: the newest window whose SBP differs
  from the previous window's (or follows a missing one). An identical repeat reading cannot be told
  from a carried value, so this may overstate the gap by one NIBP cycle. Capped at the history.
- ``*_missing_min_1h``: minutes of the last hour without any clean reading of the vital.

Every statistic uses only windows within ``HISTORY`` before the window end, so the service, which
fetches ``HISTORY`` of windows, computes the same features as training on whole stays.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

import numpy as np
import pandas as pd

from models.schema import HR_HIGH_BPM, HR_LOW_BPM, SBP_LOW_MMHG, SPO2_LOW_PCT, TEMP_HIGH_C
from models.windows import WINDOW, WINDOW_COLUMNS

PER_HOUR: Final[int] = 12  # windows per hour
HISTORY: Final[pd.Timedelta] = pd.Timedelta(hours=12)
BASELINE: Final[pd.Timedelta] = pd.Timedelta(hours=4)
_LOOKBACK_N: Final[int] = int(HISTORY / WINDOW)
_BASELINE_N: Final[int] = int(BASELINE / WINDOW)
_APPROACH_CAP: Final[float] = 4.0
#: Variance floor per vital for the baseline covariance: (2 bpm)², (1 %)², (1 /min)², (5 mmHg)².
_VAR_FLOOR: Final[dict[str, float]] = {"hr": 4.0, "spo2": 1.0, "rr": 1.0, "sbp": 25.0}


@dataclass(frozen=True)
class Feature:
    """One model input: ``sentence`` is a ``str.format`` template rendered by :func:`sentence`.

    Template fields: ``{value}``, ``{abs}`` (absolute value), ``{updown}`` ("rising"/"falling"),
    ``{abovebelow}`` ("above"/"below"), and any other feature's name (its value in the same row).
    """

    name: str
    unit: str
    description: str
    sentence: str


_SOURCE: Final[dict[str, str]] = {"hr": "hr_mean", "spo2": "spo2_mean", "rr": "rr_mean", "sbp": "sbp", "temp": "temp"}
_LABEL: Final[dict[str, tuple[str, str, str]]] = {  # name, unit, format
    "hr": ("Heart rate", "bpm", ".0f"),
    "spo2": ("SpO2", "%", ".0f"),
    "rr": ("Respiratory rate", "/min", ".0f"),
    "sbp": ("Systolic BP", "mmHg", ".0f"),
    "temp": ("Temperature", "°C", ".1f"),
}


def _stat_features() -> list[Feature]:
    out: list[Feature] = []
    for v in ("hr", "spo2", "rr", "sbp"):
        label, unit, fmt = _LABEL[v]
        out += [
            Feature(f"{v}_mean_1h", unit, f"mean {label.lower()} over the last hour",
                    f"{label} has averaged {{value:{fmt}}} {unit} over the last hour"),
            Feature(f"{v}_std_1h", unit, f"variability (SD) of {label.lower()} over the last hour",
                    f"{label} has varied by ±{{value:.1f}} {unit} (SD) over the last hour"),
            Feature(f"{v}_trend_1h", f"{unit}/h", f"trend of {label.lower()} over the last hour",
                    f"{label} {{updown}}: {{value:+{fmt}}} {unit} over the last hour"),
        ]
    return out


_THRESHOLD_FEATURES: Final[tuple[Feature, ...]] = (
    Feature("hr_to_120", "bpm", "latest heart rate's distance below 120 bpm (tachycardia threshold)",
            "Heart rate is {abs:.0f} bpm {belowabove} the 120 bpm alarm line"),
    Feature("hr_to_50", "bpm", "latest heart rate's distance above 50 bpm (bradycardia threshold)",
            "Heart rate is {abs:.0f} bpm {abovebelow} the 50 bpm alarm line"),
    Feature("sbp_to_90", "mmHg", "latest systolic BP's distance above 90 mmHg",
            "Systolic BP is {abs:.0f} mmHg {abovebelow} the 90 mmHg alarm line"),
    Feature("spo2_to_90", "%", "latest SpO2's distance above 90 %",
            "SpO2 is {abs:.0f} points {abovebelow} the 90 % alarm line"),
    Feature("temp_to_39", "°C", "latest temperature's distance below 39 °C",
            "Temperature is {abs:.1f} °C {belowabove} the 39 °C alarm line"),
)

FEATURES: Final[tuple[Feature, ...]] = (*_stat_features(), *_THRESHOLD_FEATURES)
FEATURE_NAMES: Final[tuple[str, ...]] = tuple(f.name for f in FEATURES)
_BY_NAME: Final[dict[str, Feature]] = {f.name: f for f in FEATURES}


# --------------------------------------------------------------------------------------------
# Rolling sums over arbitrary [lo, hi) row ranges within a patient, via per-patient cumulative sums.
# Cumulating within each patient only keeps one patient's features independent of the batch.


class _Ranges:
    def __init__(self, codes: np.ndarray, group_start: np.ndarray) -> None:
        self.codes = codes
        self.gs = group_start
        self.idx = np.arange(len(codes))

    def cumsum(self, values: np.ndarray) -> np.ndarray:
        return pd.Series(values).groupby(self.codes, sort=False).cumsum().to_numpy()

    def range_sum(self, cum: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
        """Σ values[lo:hi] per row (lo ≥ group start, hi ≤ row + 1); 0 when empty."""
        if len(cum) == 0:
            return np.zeros(0)
        top = np.where(hi > lo, cum[np.maximum(hi - 1, 0)], 0.0)
        below = np.where((lo > self.gs) & (hi > lo), cum[np.maximum(lo - 1, 0)], 0.0)
        return top - below

    def trailing(self, k: int) -> tuple[np.ndarray, np.ndarray]:
        return np.maximum(self.gs, self.idx - k + 1), self.idx + 1


def _trailing_stats(r: _Ranges, x: np.ndarray, t: np.ndarray, k: int) -> dict[str, np.ndarray]:
    """Count, mean, SD and slope (per window step) of x over the trailing k windows."""
    m = ~np.isnan(x)
    xv = np.where(m, x, 0.0)
    tv = np.where(m, t, 0.0)
    lo, hi = r.trailing(k)
    n = r.range_sum(r.cumsum(m.astype(float)), lo, hi)
    s1 = r.range_sum(r.cumsum(xv), lo, hi)
    s2 = r.range_sum(r.cumsum(xv * xv), lo, hi)
    st = r.range_sum(r.cumsum(tv), lo, hi)
    stt = r.range_sum(r.cumsum(tv * tv), lo, hi)
    stx = r.range_sum(r.cumsum(tv * xv), lo, hi)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = s1 / n
        var = np.maximum(s2 - s1 * s1 / n, 0.0) / (n - 1)
        den = n * stt - st * st
        slope = (n * stx - st * s1) / den
    return {"n": n, "mean": mean, "std": np.sqrt(var), "slope": slope}


def _prepare(windows: pd.DataFrame) -> tuple[pd.DataFrame, np.ndarray]:
    """Sort, check, and put each patient on a gap-free grid; returns (grid frame, mask of input rows)."""
    missing = set(WINDOW_COLUMNS) - set(windows.columns)
    if missing:
        raise ValueError(f"windows lack columns {sorted(missing)}")
    frame = windows.loc[:, list(WINDOW_COLUMNS)].copy()
    frame["start"] = pd.to_datetime(frame["start"], utc=True).astype("datetime64[ns, UTC]")
    frame = frame.sort_values(["patient_id", "start"], kind="mergesort").reset_index(drop=True)
    if frame.duplicated(["patient_id", "start"]).any():
        raise ValueError("windows hold duplicate (patient_id, start) rows")
    same = frame["patient_id"].eq(frame["patient_id"].shift())
    step = frame["start"].diff()
    if bool((same & (step != WINDOW)).any()):
        parts = []
        for pid, g in frame.groupby("patient_id", sort=True):
            grid = pd.date_range(g["start"].iloc[0], g["start"].iloc[-1], freq=WINDOW, tz="UTC")
            filled = g.set_index("start").reindex(grid)
            filled.index.name = "start"
            filled["_orig"] = filled["patient_id"].notna()
            filled["patient_id"] = pid
            parts.append(filled.reset_index())
        frame = pd.concat(parts, ignore_index=True)
        keep = frame.pop("_orig").to_numpy(bool)
        frame = frame[list(WINDOW_COLUMNS)]
    else:
        keep = np.ones(len(frame), dtype=bool)
    return frame, keep


def _latest(frame: pd.DataFrame, column: str, limit: int) -> np.ndarray:
    return frame.groupby("patient_id", sort=False)[column].ffill(limit=limit).to_numpy(float)


def build(windows: pd.DataFrame) -> pd.DataFrame:
    """Carried-forward windows → one row per (patient_id, window_end), columns ``FEATURES`` in order.

    Pure and deterministic: the same windows give the same bytes; a patient's features do not depend
    on the other patients in the frame. Rows come sorted by (patient_id, window_end).
    """
    frame, keep = _prepare(windows)
    out = _compute(frame)
    out = out.loc[keep].reset_index(drop=True)
    return out[["patient_id", "window_end", *FEATURE_NAMES]]


def _compute(frame: pd.DataFrame) -> pd.DataFrame:
    codes = pd.factorize(frame["patient_id"], sort=False)[0]
    pos = frame.groupby("patient_id", sort=False).cumcount().to_numpy()
    idx = np.arange(len(frame))
    r = _Ranges(codes, idx - pos)
    t = pos.astype(float)
    cols: dict[str, np.ndarray] = {}

    for v in ("hr", "spo2", "rr", "sbp"):
        x = frame[_SOURCE[v]].to_numpy(float)
        s = _trailing_stats(r, x, t, PER_HOUR)
        cols[f"{v}_mean_1h"] = np.where(s["n"] >= 3, s["mean"], np.nan)
        cols[f"{v}_std_1h"] = np.where(s["n"] >= 4, s["std"], np.nan)
        cols[f"{v}_trend_1h"] = np.where(s["n"] >= 6, s["slope"] * PER_HOUR, np.nan)

    latest = {
        "hr": _latest(frame, "hr_mean", 2),
        "spo2": _latest(frame, "spo2_mean", 2),
        "rr": _latest(frame, "rr_mean", 2),
        "sbp": frame["sbp"].to_numpy(float),
        "temp": frame["temp"].to_numpy(float),
    }
    cols["hr_to_120"] = HR_HIGH_BPM - latest["hr"]
    cols["hr_to_50"] = latest["hr"] - HR_LOW_BPM
    cols["sbp_to_90"] = latest["sbp"] - SBP_LOW_MMHG
    cols["spo2_to_90"] = latest["spo2"] - SPO2_LOW_PCT
    cols["temp_to_39"] = TEMP_HIGH_C - latest["temp"]

    out = pd.DataFrame(cols)
    out.insert(0, "window_end", (frame["start"] + WINDOW).to_numpy())
    out.insert(0, "patient_id", frame["patient_id"].to_numpy())
    out["window_end"] = pd.to_datetime(out["window_end"], utc=True).astype("datetime64[ns, UTC]")
    return out


# --------------------------------------------------------------------------------------------
# Sentences


def feature(name: str) -> Feature:
    return _BY_NAME[name]


def sentence(name: str, row: Mapping[str, object]) -> str:
    """Render the feature's sentence with the patient's numbers; "not measured" when NaN."""
    f = _BY_NAME[name]
    value = _num(row.get(name))
    if value is None:
        return f"{f.description[0].upper()}{f.description[1:]}: not measured"
    fields: dict[str, object] = {k: (_num(v) if _num(v) is not None else math.nan) for k, v in row.items()
                                 if isinstance(k, str)}
    fields.update(value=value, abs=abs(value), updown="rising" if value > 0 else "falling" if value < 0 else "steady",
                  abovebelow="above" if value >= 0 else "below", belowabove="below" if value >= 0 else "above")
    try:
        return f.sentence.format(**fields)
    except (KeyError, ValueError):
        return f"{f.description[0].upper()}{f.description[1:]}: {value:.1f} {f.unit}".rstrip()


def _num(v: object) -> float | None:
    if v is None:
        return None
    try:
        x = float(v)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return None if math.isnan(x) else x


__all__ = [
    "BASELINE", "FEATURES", "FEATURE_NAMES", "HISTORY", "PER_HOUR", "Feature", "build", "feature", "sentence",
]
