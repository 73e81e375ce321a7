"""The one feature module: carried-forward 5-minute windows → one feature row per window end.

Training (``lab.train``) and serving (the five-minute cycle) both call :func:`build`; nothing
else computes features.

Input
    ``models.windows.carry_forward`` output (``WINDOW_COLUMNS``): each patient on the 5-minute grid.
    Gaps in a patient's grid are tolerated (the missing windows count as missing data).
Output
    One row per input window: ``patient_id``, ``window_end`` (= ``start`` + 5 min), then the
    ``FEATURES`` names in order. NaN where a feature cannot be computed (the twin imputes the
    training mean, i.e. a zero contribution, and says "not measured").

Definitions (``k`` windows "ending at" a window end ``t`` are the windows whose start lies in
``[t - k·5 min, t)``; a statistic needs the minimum number of non-missing windows given below).
Every feature is "more is worse": its declared ``direction`` is +1 with a one-line clinical reason,
and training constrains its coefficient to be >= 0.

- Levels, two-sided (twin v4, issue 20): ``*_outside_normal`` (``spo2_below_normal``) is how far the vital lies
  outside its NEWS2 zero-point band, in NEWS2 points: the distance beyond the band's edge divided by the width of
  the first scoring band on that side (``LEVELS``), 0 inside the band. So heart rate 118 bpm reads (118 − 90.5) / 20
  = 1.4 and 55 bpm reads 0, while 45 bpm reads (50.5 − 45) / 5 = 1.1 and 38 bpm 2.5: bradycardia counts by its
  own NEWS2 scale (where the chart jumps from 1 to 3 points the width is the span of that rise), and one coefficient
  per vital weighs both sides. Heart rate, SpO2 and respiratory rate: the
  last-hour mean (12 windows, at least 3 with data) on a monitored patient, else (charted cadence) the newest value
  within ``LEVEL_CARRY``; SBP and temperature: the window value (already carried ≤ 1 h by ``models.windows``).
  ``shock_index_above_0_7``: latest HR / latest SBP above 0.7 (latest HR: the newest window mean within 15 min).
- ``*_rise_1h`` / ``*_fall_1h``: the least-squares slope over the last hour, per hour (at least 6
  windows), in the harmful direction only (0 when moving the other way).
- ``approach_*``: how fast the vital is closing on an event line, as (rate towards it) / (distance
  left), per hour, 0 when moving away; i.e. 1 / (hours to the line at the current 1-hour trend).
  Capped at 4 /h (15 minutes away); 4 /h as well when the line is already crossed and moving on.
- ``*_std_1h``: sample standard deviation (ddof=1) over the last hour; at least 4 windows.
- ``*_normal_min_4h``: minutes, over the last 4 hours, with the vital outside its NEWS2 zero-point band (both
  sides; SpO2 below it): a sustained abnormality, not a single reading.
- ``*_rise_vs_baseline`` / ``*_drop_vs_baseline``: last-hour mean minus the patient's baseline (mean
  over the baseline period; for HR, RR and SpO2 no better than a typical value, ``_BASELINE_REFERENCE``), harmful
  direction only. The baseline period is the patient's first
  4 hours of windows within the look-back (``HISTORY``, 12 h before the window end); available once
  5 hours of history exist (NaN before).
- ``*_missing_min_1h``: minutes of the last hour without any clean reading of the vital.
- ``not_alert``: last charted ACVPU is not Alert; ``o2_l_min``: last charted oxygen flow.
- ``on_oxygen``: 1 when the last charted oxygen flow (≤ 12 h, ``models.windows``) is above 0 (NEWS2 scores it 2).

Left out on purpose (issue 20): the one-sided level hinges (HR above 90 / below 60 bpm …), which let a steady 55 bpm
weigh more than 118 bpm when the label rewarded it, and the NEWS2 points of the latest values with their total
(step copies of the two-sided levels: the sign-constrained fit floored whichever partial effect came out negative).
Left out on purpose (issue 6): signed distances to the thresholds next to last-hour means (collinear,
the two HR distances exactly so), signed trends and baseline differences (ambiguous direction), the
4-hour SDs and the Mahalanobis distance from baseline (rise when a patient returns to normal), and the
age of the last BP reading (a marker of how worried the nurse is, not of physiology).

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
from models.windows import MEASURE_COLUMNS, WINDOW, WINDOW_COLUMNS

PER_HOUR: Final[int] = 12  # windows per hour
HISTORY: Final[pd.Timedelta] = pd.Timedelta(hours=12)
BASELINE: Final[pd.Timedelta] = pd.Timedelta(hours=4)
_LOOKBACK_N: Final[int] = int(HISTORY / WINDOW)
_BASELINE_N: Final[int] = int(BASELINE / WINDOW)
_APPROACH_CAP: Final[float] = 4.0
#: How long the latest heart rate, SpO2 and respiratory rate stay valid for the NEWS2-points level features
#: (as ``models.windows.CARRY_FORWARD_LIMITS`` for SBP and temperature).
LEVEL_CARRY: Final[pd.Timedelta] = pd.Timedelta(hours=1)
_LEVEL_CARRY_N: Final[int] = int(LEVEL_CARRY / WINDOW)


@dataclass(frozen=True)
class Feature:
    """One model input: ``sentence`` is a ``str.format`` template rendered by :func:`sentence`.

    Template fields: ``{value}``, ``{abs}`` (absolute value), ``{level}`` (for a hinge feature, the
    vital itself: ``anchor + side · value``), ``{inv}`` (1 / value), and any other feature's name.

    ``direction`` is the clinically expected direction of the risk: ``+1`` the risk rises with the
    feature, ``-1`` it falls, ``0`` unconstrained (only where truly ambiguous). Training constrains the
    coefficient's sign to it; ``reason`` says why in one line (shown in the model card).
    """

    name: str
    unit: str
    description: str
    sentence: str
    #: Used instead of ``sentence`` when the value is exactly 0 (e.g. "not moving towards 120 bpm").
    sentence_zero: str = ""
    direction: int = 1
    reason: str = ""
    #: Hinge features: value = max(0, side · (vital − anchor)); ``{level}`` renders the vital back.
    anchor: float | None = None
    side: int = 1


_SOURCE: Final[dict[str, str]] = {"hr": "hr_mean", "spo2": "spo2_mean", "rr": "rr_mean", "sbp": "sbp", "temp": "temp"}

#: Level features: hinges at the edge of the NEWS2 zero-point band, flat (0) inside it, so a value
#: inside the normal range never moves the score and "better than normal" never reads as risk.
#: name → (vital, source, anchor, side, unit, level format, wording of the vital, zero sentence, reason)
_HINGES: Final[tuple[tuple[str, str, str, float, int, str, str, str, str, str], ...]] = (
    ("shock_index_above_0_7", "si", "latest", 0.7, 1, "", ".2f", "Shock index (heart rate / systolic BP) is "
     "{level:.2f}, above the normal 0.7", "Shock index (heart rate / systolic BP) is 0.7 or less",
     "a shock index above 0.7 flags hypovolaemia or shock before the blood pressure falls"),
)


@dataclass(frozen=True)
class Level:
    """A two-sided level: NEWS2 points' worth outside the zero-point band ``[low, high]``.

    ``low_width`` / ``high_width``: how far beyond the edge one NEWS2 point lies, below / above (the first scoring
    band's width, or less where the chart jumps by 2 points; None: that side is not abnormal, e.g. a high SpO2).
    The edges sit half a unit of the chart's resolution outside the band's last normal value, so a charted integer
    at the band's first scoring value reads about 1 / width, not 0.
    """

    name: str
    vital: str
    low: float | None
    low_width: float | None
    high: float | None
    high_width: float | None
    band: str
    reason: str

    def of(self, x: np.ndarray) -> np.ndarray:
        out = np.zeros(len(x))
        with np.errstate(invalid="ignore"):
            if self.low is not None and self.low_width:
                out = np.maximum(out, (self.low - x) / self.low_width)
            if self.high is not None and self.high_width:
                out = np.maximum(out, (x - self.high) / self.high_width)
        return np.where(np.isnan(x), np.nan, out)


#: The two-sided levels (module docstring): edges and first-band widths from the RCP 2017 NEWS2 chart.
LEVELS: Final[tuple[Level, ...]] = (
    Level("hr_outside_normal", "hr", 50.5, 5.0, 90.5, 20.0, "51–90 bpm",
          "tachycardia and bradycardia alike: NEWS2 scores 91–110 bpm 1, 111–130 2, 131+ 3; 41–50 bpm 1, ≤ 40 3"),
    Level("rr_outside_normal", "rr", 11.5, 1.5, 20.5, 2.0, "12–20 /min",
          "tachypnoea is often the earliest sign (21–24 /min scores 2, 25+ 3); bradypnoea (opioids, CO2 narcosis) "
          "scores 1 at 9–11 and 3 at 8 or less"),
    Level("spo2_below_normal", "spo2", 95.5, 2.0, None, None, "96 % or more",
          "hypoxaemia: NEWS2 (scale 1) scores 94–95 % 1, 92–93 % 2, 91 % or less 3"),
    Level("sbp_outside_normal", "sbp", 110.5, 10.0, 219.5, 10.0, "111–219 mmHg",
          "hypotension (101–110 mmHg scores 1, 91–100 2, ≤ 90 3) and severe hypertension (220+ scores 3)"),
    Level("temp_outside_normal", "temp", 36.05, 0.5, 38.05, 1.0, "36.1–38.0 °C",
          "fever (38.1–39.0 °C scores 1, 39.1+ 2) and hypothermia (35.1–36.0 °C 1, 35.0 or less 3)"),
)
_LEVEL_UNIT: Final[str] = "NEWS2 pts"


#: One-sided last-hour trends, in the harmful direction only: name → (vital, sign, sentence, zero, reason).
_TRENDS: Final[tuple[tuple[str, str, int, str, str, str], ...]] = (
    ("hr_rise_1h", "hr", 1, "Heart rate rising: +{value:.0f} bpm over the last hour",
     "Heart rate not rising over the last hour", "a rising heart rate precedes sepsis, bleeding and tachyarrhythmia"),
    ("spo2_fall_1h", "spo2", -1, "SpO2 falling: down {value:.1f} points over the last hour",
     "SpO2 not falling over the last hour", "falling saturation precedes respiratory failure"),
    ("rr_rise_1h", "rr", 1, "Respiratory rate rising: +{value:.0f} /min over the last hour",
     "Respiratory rate not rising over the last hour",
     "a rising breathing rate is an early sign of respiratory failure, sepsis and acidosis"),
    ("sbp_fall_1h", "sbp", -1, "Systolic BP falling: down {value:.0f} mmHg over the last hour",
     "Systolic BP not falling over the last hour", "a falling blood pressure precedes haemorrhagic and septic shock"),
    ("temp_rise_1h", "temp", 1, "Temperature rising: +{value:.1f} °C over the last hour",
     "Temperature not rising over the last hour", "a climbing temperature precedes fever"),
)
_TREND_UNIT: Final[dict[str, str]] = {"hr": "bpm/h", "spo2": "%/h", "rr": "/min/h", "sbp": "mmHg/h", "temp": "°C/h"}
_LOWER: Final[dict[str, str]] = {"hr": "heart rate", "spo2": "SpO2", "rr": "respiratory rate", "sbp": "systolic BP",
                                 "temp": "temperature"}
_LABEL: Final[dict[str, tuple[str, str]]] = {  # name, unit
    "hr": ("Heart rate", "bpm"), "spo2": ("SpO2", "%"), "rr": ("Respiratory rate", "/min"),
    "sbp": ("Systolic BP", "mmHg"), "temp": ("Temperature", "°C"),
}

#: minutes-outside-the-band features: name → (level, window column, wording).
_RANGES: Final[dict[str, tuple[str, str, str]]] = {
    "hr_outside_normal_min_4h": ("hr_outside_normal", "hr_mean", "heart rate outside 51–90 bpm"),
    "rr_outside_normal_min_4h": ("rr_outside_normal", "rr_mean", "respiratory rate outside 12–20 /min"),
    "spo2_below_normal_min_4h": ("spo2_below_normal", "spo2_mean", "SpO2 below 96 %"),
    "sbp_outside_normal_min_4h": ("sbp_outside_normal", "sbp", "systolic BP outside 111–219 mmHg"),
    "temp_outside_normal_min_4h": ("temp_outside_normal", "temp", "temperature outside 36.1–38.0 °C"),
}
_APPROACH_TEXT: Final[dict[str, tuple[str, str, str]]] = {
    "approach_hr_120": ("Heart rate", "120", "bpm"),
    "approach_hr_50": ("Heart rate", "50", "bpm"),
    "approach_sbp_90": ("Systolic BP", "90", "mmHg"),
    "approach_spo2_90": ("SpO2", "90", "%"),
    "approach_temp_39": ("Temperature", "39", "°C"),
}
#: One-sided change from the patient's own baseline: name → (vital, sign, wording, reason).
_BASELINE: Final[tuple[tuple[str, str, int, str, str], ...]] = (
    ("hr_rise_vs_baseline", "hr", 1, "Heart rate has averaged {value:.0f} bpm above this patient's own baseline over "
     "the last hour", "a rise from the patient's own normal heart rate, even inside population ranges"),
    ("spo2_drop_vs_baseline", "spo2", -1, "SpO2 has averaged {value:.1f} points below this patient's own baseline over "
     "the last hour", "a fall from the patient's own normal saturation, even inside population ranges"),
    ("rr_rise_vs_baseline", "rr", 1, "Respiratory rate has averaged {value:.0f} /min above this patient's own "
     "baseline over the last hour", "a rise from the patient's own normal breathing rate"),
    ("sbp_drop_vs_baseline", "sbp", -1, "Systolic BP has averaged {value:.0f} mmHg below this patient's own baseline "
     "over the last hour", "a fall from the patient's own normal blood pressure (relative hypotension)"),
)


#: A change from baseline counts only beyond a typical adult value as well: a heart rate or respiratory rate rise
#: above max(baseline, 75 bpm / 16 /min), an SpO2 fall below min(baseline, 97 %). So a patient whose own baseline
#: is bradypnoeic (say 10 /min) and who recovers to 16 /min is not read as "rising". SBP keeps the patient's own
#: baseline (relative hypotension in a hypertensive patient).
_BASELINE_REFERENCE: Final[dict[str, float]] = {"hr": 75.0, "rr": 16.0, "spo2": 97.0}


def _level_features() -> list[Feature]:
    out: list[Feature] = []
    for lv in LEVELS:
        label = _LABEL[lv.vital][0]
        where = "latest" if lv.vital in ("sbp", "temp") else "last-hour mean (charted: newest within 1 h)"
        side = "below" if lv.high is None else "outside"
        out.append(Feature(lv.name, _LEVEL_UNIT, f"how far the {where} {_LOWER[lv.vital]} lies {side} the NEWS2 "
                           f"normal band ({lv.band}), in NEWS2 points (0 inside the band; both sides count)",
                           f"{label} {side} its normal band ({lv.band}): worth {{value:.1f}} NEWS2 points",
                           f"{label} in its normal band ({lv.band})", 1, lv.reason))
    for name, v, source, anchor, side, unit, _, text, zero, reason in _HINGES:
        what = "shock index (latest heart rate / latest systolic BP)" if v == "si" else \
            f"{'last-hour mean' if source == 'mean_1h' else 'latest'} {_LOWER[v]}"
        how = "exceeds" if side > 0 else "is below"
        out.append(Feature(name, unit, f"how far the {what} {how} {anchor:g} {unit}".rstrip() + " (0 inside the "
                           "normal band)", text, zero, 1, reason, anchor, side))
    return out


def _dynamic_features() -> list[Feature]:
    out: list[Feature] = []
    for name, v, sign, text, zero, reason in _TRENDS:
        label = _LOWER[v]
        out.append(Feature(name, _TREND_UNIT[v], f"how fast the {label} {'rose' if sign > 0 else 'fell'} over the "
                           "last hour (least-squares slope; 0 when moving the other way)", text, zero, 1, reason))
    for name, (label, line, unit) in _APPROACH_TEXT.items():
        out.append(Feature(name, "/h", f"how fast the {_LOWER[name.split('_')[1]]} is closing on {line} {unit} "
                                       "(1 / hours to get there at the last hour's pace)",
                           f"{label} heading for {line} {unit}: at the last hour's pace it gets there in {{inv:.1f}} h",
                           f"{label} is not moving towards {line} {unit}", 1,
                           f"closing on the {line} {unit} event line: the sooner it is crossed, the higher the risk"))
    for v in ("hr", "spo2", "rr", "sbp"):
        label, unit = _LABEL[v]
        out.append(Feature(f"{v}_std_1h", unit, f"variability (SD) of {_LOWER[v]} over "
                           "the last hour", f"{label} has varied by ±{{value:.1f}} {unit} (SD) over the last hour", "",
                           1,
                           "short-term instability (swinging values) precedes decompensation"))
    for name, (_, _, text) in _RANGES.items():
        out.append(Feature(name, "min", f"minutes of the last 4 hours with {text} (NEWS2 normal band)",
                           f"{text[0].upper()}{text[1:]} for {{value:.0f}} of the last 240 minutes",
                           f"No time with {text} in the last 4 hours", 1,
                           "time spent in an abnormal range: a sustained abnormality, not a single reading"))
    for name, v, _, text, reason in _BASELINE:
        label = _LABEL[v][0]
        word = "rise" if name.split("_")[1] == "rise" else "fall"
        out.append(Feature(name, _LABEL[v][1], f"{word} of the last-hour mean {_LOWER[v]} "
                           "from this patient's own baseline (first 4 h of the look-back; 0 when it moved the other "
                           "way)", text, f"{label} not {'above' if word == 'rise' else 'below'} this patient's own "
                           "baseline", 1, reason))
    return out


def _care_features() -> list[Feature]:
    gap = "a gap in monitoring must never make a patient look safer (probe-off often accompanies restlessness)"
    return [
        Feature("hr_missing_min_1h", "min", "minutes of the last hour without a clean heart-rate reading",
                "No clean heart-rate signal for {value:.0f} of the last 60 minutes",
                "Heart rate recorded throughout the last hour", 1, gap),
        Feature("spo2_missing_min_1h", "min", "minutes of the last hour without a clean SpO2 reading "
                "(probe off, poor signal)", "No clean SpO2 signal for {value:.0f} of the last 60 minutes",
                "SpO2 recorded throughout the last hour", 1, gap),
        Feature("not_alert", "", "last charted consciousness is not Alert (new confusion, voice, pain, unresponsive)",
                "Not fully alert on the last ACVPU check (new confusion or worse)", "Alert on the last ACVPU check", 1,
                "new confusion or worse is a red flag (NEWS2 scores it 3 on its own)"),
        Feature("o2_l_min", "L/min", "supplemental oxygen flow last charted", "On {value:.0f} L/min of oxygen",
                "Breathing room air", 1, "needing supplemental oxygen signals respiratory compromise (NEWS2 scores 2)"),
    ]


def _now_features() -> list[Feature]:
    return [Feature("on_oxygen", "", "on supplemental oxygen at the last charting (flow above 0, within 12 h)",
                    "On supplemental oxygen (oxygen need)", "Breathing room air", 1,
                    "needing oxygen at all is a sign of respiratory compromise (NEWS2 scores it 2)")]


FEATURES: Final[tuple[Feature, ...]] = (*_level_features(), *_dynamic_features(), *_care_features(),
                                        *_now_features())
#: The level features ("how sick is the patient now"), working at both cadences: the two-sided levels and oxygen.
NOW_FEATURES: Final[tuple[str, ...]] = (*(lv.name for lv in LEVELS), *(f.name for f in _now_features()))
FEATURE_NAMES: Final[tuple[str, ...]] = tuple(f.name for f in FEATURES)
_BY_NAME: Final[dict[str, Feature]] = {f.name: f for f in FEATURES}
#: name → clinically expected sign of its coefficient (+1 / -1 / 0 = unconstrained).
DIRECTIONS: Final[dict[str, int]] = {f.name: f.direction for f in FEATURES}


# --------------------------------------------------------------------------------------------
# Sums over [lo, hi) row ranges within a patient, added newest row first. The order of the additions
# depends only on the rows inside the range, never on how much history precedes it, so the service
# (HISTORY of windows) and training (whole stays) get bit-identical features. (Differences of
# cumulative sums would differ in the last bit with the length of the prefix.)


class _Ranges:
    """Row ranges for the target rows ``idx`` (indices into the full arrays), each within its patient's rows
    from ``group_start`` on; statistics are computed for the targets only."""

    def __init__(self, group_start: np.ndarray, idx: np.ndarray) -> None:
        self.gs = group_start
        self.idx = idx

    def window_sum(self, values: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
        """Σ values[lo:hi] per target (lo ≥ group start, hi ≤ row + 1), newest first; 0 when empty."""
        length = np.maximum(hi - lo, 0)
        out = np.zeros(len(lo))
        for j in range(int(length.max()) if len(lo) else 0):
            inside = j < length
            out += np.where(inside, values[np.where(inside, hi - 1 - j, 0)], 0.0)
        return out

    def trailing(self, k: int) -> tuple[np.ndarray, np.ndarray]:
        return np.maximum(self.gs, self.idx - k + 1), self.idx + 1

    def latest(self, values: np.ndarray, limit: int) -> np.ndarray:
        """The newest non-missing value among the target row and up to ``limit`` rows before it (within the
        patient): a forward fill with ``limit``, read at the targets."""
        out = np.full(len(self.idx), np.nan)
        for j in range(limit + 1):
            at = self.idx - j
            take = np.isnan(out) & (at >= self.gs)
            out = np.where(take, values[np.where(take, at, 0)], out)
        return out


def _trailing_stats(r: _Ranges, x: np.ndarray, k: int) -> dict[str, np.ndarray]:
    """Count, mean, SD and slope (per window step) of x over the trailing k windows.

    Time runs 0, -1, -2, ... back from the row itself, so the sums depend only on the window's values.
    """
    m = ~np.isnan(x)
    xv = np.where(m, x, 0.0)
    lo, hi = r.trailing(k)
    length = hi - lo
    n = np.zeros(len(lo))
    s1, s2, st, stt, stx = (np.zeros(len(lo)) for _ in range(5))
    for j in range(k):
        inside = j < length
        at = np.where(inside, hi - 1 - j, 0)
        ok = inside & m[at]
        v = np.where(ok, xv[at], 0.0)
        tj = -float(j)
        n += ok
        s1 += v
        s2 += v * v
        st += np.where(ok, tj, 0.0)
        stt += np.where(ok, tj * tj, 0.0)
        stx += tj * v
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


def build(windows: pd.DataFrame) -> pd.DataFrame:
    """Carried-forward windows → one row per (patient_id, window_end), columns ``FEATURES`` in order.

    Pure and deterministic: the same windows give the same bytes; a patient's features do not depend
    on the other patients in the frame. Rows come sorted by (patient_id, window_end).
    """
    frame, keep = _prepare(windows)
    pos = frame.groupby("patient_id", sort=False).cumcount().to_numpy()
    rows = np.flatnonzero(keep)
    group_start = (np.arange(len(frame)) - pos)[rows]
    values = {c: frame[c].to_numpy(float) for c in MEASURE_COLUMNS}
    cols = _compute(values, group_start, rows)
    out = pd.DataFrame({name: cols[name] for name in FEATURE_NAMES})
    out.insert(0, "window_end", (frame["start"] + WINDOW).to_numpy()[rows])
    out.insert(0, "patient_id", frame["patient_id"].to_numpy()[rows])
    out["window_end"] = pd.to_datetime(out["window_end"], utc=True).astype("datetime64[ns, UTC]")
    return out


def build_newest(grid: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Features of the newest window of each patient, from dense carried-forward windows.

    ``grid`` maps each ``WINDOW_COLUMNS`` value column to a (patients × windows) array: every patient on the
    same gap-free grid of windows, oldest first, ending at the window end being scored. Returns feature name →
    one value per patient, equal bit for bit to :func:`build`'s row for that window end (the same
    arithmetic, evaluated at the newest row only): what the five-minute cycle computes for a whole ward at once.
    """
    shape = next(iter(grid.values())).shape
    patients, n = shape
    rows = np.arange(patients) * n + (n - 1)
    values = {c: np.ascontiguousarray(grid[c], dtype=float).reshape(-1) for c in MEASURE_COLUMNS}
    return _compute(values, rows - (n - 1), rows)


def _hinge(x: np.ndarray, anchor: float, side: int) -> np.ndarray:
    with np.errstate(invalid="ignore"):
        return np.where(np.isnan(x), np.nan, np.maximum(side * (x - anchor), 0.0))


def _compute(frame: Mapping[str, np.ndarray], group_start: np.ndarray, rows: np.ndarray) -> dict[str, np.ndarray]:
    """Feature name → values at ``rows`` (indices into the column arrays of ``frame``, one patient's rows
    contiguous from ``group_start``, oldest first, gap-free)."""
    r = _Ranges(group_start, rows)
    cols: dict[str, np.ndarray] = {}

    mean1h: dict[str, np.ndarray] = {}
    trend: dict[str, np.ndarray] = {}
    for v in ("hr", "spo2", "rr", "sbp", "temp"):
        s = _trailing_stats(r, frame[_SOURCE[v]], PER_HOUR)
        mean1h[v] = np.where(s["n"] >= 3, s["mean"], np.nan)
        slope = s["slope"] * PER_HOUR
        slope = np.where(np.abs(slope) < 1e-9, 0.0, slope)  # a flat stretch is flat, not ±1e-15 "moving on"
        trend[v] = np.where(s["n"] >= 6, slope, np.nan)
        if v != "temp":
            cols[f"{v}_std_1h"] = np.where(s["n"] >= 4, s["std"], np.nan)

    latest = {
        "hr": r.latest(frame["hr_mean"], 2),
        "spo2": r.latest(frame["spo2_mean"], 2),
        "rr": r.latest(frame["rr_mean"], 2),
        "sbp": frame["sbp"][rows],
        "temp": frame["temp"][rows],
    }
    with np.errstate(invalid="ignore", divide="ignore"):
        latest["si"] = latest["hr"] / latest["sbp"]
    for name, v, source, anchor, side, *_ in _HINGES:
        x = mean1h[v] if source == "mean_1h" else latest[v]
        cols[name] = _hinge(x, anchor, side)
    # Two-sided levels: the last-hour mean where a monitor gives one, else the newest value within LEVEL_CARRY.
    level_of: dict[str, np.ndarray] = {"sbp": latest["sbp"], "temp": latest["temp"]}
    for v, column in (("hr", "hr_mean"), ("spo2", "spo2_mean"), ("rr", "rr_mean")):
        level_of[v] = np.where(np.isnan(mean1h[v]), r.latest(frame[column], _LEVEL_CARRY_N), mean1h[v])
    for lv in LEVELS:
        cols[lv.name] = lv.of(level_of[lv.vital])
    for name, v, sign, *_ in _TRENDS:
        cols[name] = _hinge(trend[v], 0.0, sign)

    def approach(rate: np.ndarray, distance: np.ndarray) -> np.ndarray:
        with np.errstate(invalid="ignore", divide="ignore"):
            raw = np.where(distance > 0, rate / distance, np.inf)
            val = np.where(rate > 0, np.minimum(raw, _APPROACH_CAP), 0.0)
        return np.where(np.isnan(rate) | np.isnan(distance), np.nan, val)

    cols["approach_hr_120"] = approach(trend["hr"], HR_HIGH_BPM - latest["hr"])
    cols["approach_hr_50"] = approach(-trend["hr"], latest["hr"] - HR_LOW_BPM)
    cols["approach_sbp_90"] = approach(-trend["sbp"], latest["sbp"] - SBP_LOW_MMHG)
    cols["approach_spo2_90"] = approach(-trend["spo2"], latest["spo2"] - SPO2_LOW_PCT)
    cols["approach_temp_39"] = approach(trend["temp"], TEMP_HIGH_C - latest["temp"])

    k4 = 4 * PER_HOUR
    lo4, hi4 = r.trailing(k4)
    by_level = {lv.name: lv for lv in LEVELS}
    for name, (level, column, _) in _RANGES.items():
        x = frame[column]
        with np.errstate(invalid="ignore"):
            hit = by_level[level].of(x) > 0
        seen = r.window_sum(((~np.isnan(x)).astype(float)), lo4, hi4)
        minutes = 5.0 * r.window_sum((hit.astype(float)), lo4, hi4)
        cols[name] = np.where(seen > 0, minutes, np.nan)

    # Baseline: the first BASELINE of windows within the look-back, once BASELINE + 1 h of history exist.
    s0 = np.maximum(r.gs, r.idx - _LOOKBACK_N + 1)
    b_lo, b_hi = s0, np.minimum(s0 + _BASELINE_N, r.idx + 1)
    ready = (r.idx - s0 + 1) >= _BASELINE_N + PER_HOUR
    for name, v, sign, *_ in _BASELINE:
        x = frame[_SOURCE[v]]
        m = ~np.isnan(x)
        cnt = r.window_sum((m.astype(float)), b_lo, b_hi)
        tot = r.window_sum((np.where(m, x, 0.0)), b_lo, b_hi)
        with np.errstate(invalid="ignore", divide="ignore"):
            base = np.where(ready & (cnt >= PER_HOUR), tot / cnt, np.nan)
        ref = _BASELINE_REFERENCE.get(v)
        if ref is not None:  # returning towards a typical value never reads as a harmful change
            base = np.where(np.isnan(base), np.nan, np.maximum(base, ref) if sign > 0 else np.minimum(base, ref))
        cols[name] = _hinge(mean1h[v] - base, 0.0, sign)

    # Missingness and nurse charting.
    lo1, hi1 = r.trailing(PER_HOUR)
    for v, column in (("hr", "hr_mean"), ("spo2", "spo2_mean")):
        miss = np.isnan(frame[column]).astype(float)
        cols[f"{v}_missing_min_1h"] = 5.0 * r.window_sum((miss), lo1, hi1)
    acvpu = frame["acvpu"][rows]
    with np.errstate(invalid="ignore"):
        cols["not_alert"] = np.where(np.isnan(acvpu), np.nan, (acvpu >= 0.5).astype(float))
    cols["o2_l_min"] = frame["o2"][rows]

    o2 = frame["o2"][rows]
    with np.errstate(invalid="ignore"):
        cols["on_oxygen"] = np.where(np.isnan(o2), np.nan, (o2 > 0).astype(float))
    return cols


# --------------------------------------------------------------------------------------------
# Sentences


def feature(name: str) -> Feature:
    return _BY_NAME[name]


def sentence(name: str, row: Mapping[str, object]) -> str:
    """Render the feature's sentence with the patient's numbers; "not measured" when NaN."""
    return render(name, sentence_fields(row))


def sentence_fields(row: Mapping[str, object]) -> dict[str, float]:
    """The row's numbers as template fields (NaN for missing); compute once, render many."""
    out: dict[str, float] = {}
    for k, v in row.items():
        if isinstance(k, str):
            x = _num(v)
            out[k] = math.nan if x is None else x
    return out


def render(name: str, fields: Mapping[str, float], points: float | None = None, typical: float | None = None) -> str:
    """The feature's sentence with the patient's numbers.

    With ``points`` (the contribution to the logit) the wording follows its sign: a contribution that
    lowers the risk says so (``typical``, the training mean the contribution is measured from, names the
    comparison), so a lowering contribution never reads like a warning.
    """
    f = _BY_NAME[name]
    value = fields.get(name, math.nan)
    if value is None or math.isnan(value):
        return f"{f.description[0].upper()}{f.description[1:]}: not measured"
    if value == 0 and f.sentence_zero:
        text = f.sentence_zero
    else:
        extra = {"value": value, "abs": abs(value), "inv": 1.0 / value if value else math.inf,
                 "level": (f.anchor + f.side * value) if f.anchor is not None else value}
        try:
            text = f.sentence.format(**{**fields, **extra})
        except (KeyError, ValueError):
            text = f"{f.description[0].upper()}{f.description[1:]}: {value:.1f} {f.unit}".rstrip()
    if points is not None and points < 0:
        if (value == 0 and f.sentence_zero) or typical is None:
            return f"{text} (lowers the risk)"
        more = "more" if value > typical else "less"
        return f"{text}: {more} than a typical ward patient ({typical:.3g}{' ' + f.unit if f.unit else ''}), " \
               "which lowers the risk"
    return text


def _num(v: object) -> float | None:
    if v is None:
        return None
    try:
        x = float(v)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return None if math.isnan(x) else x


__all__ = [
    "BASELINE", "DIRECTIONS", "FEATURES", "FEATURE_NAMES", "HISTORY", "LEVELS", "LEVEL_CARRY", "NOW_FEATURES",
    "PER_HOUR", "Feature", "Level", "build", "build_newest", "feature", "render", "sentence", "sentence_fields",
]
