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
    #: Used instead of ``sentence`` when the value is exactly 0 (e.g. "not moving towards 120 bpm").
    sentence_zero: str = ""


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


#: minutes-in-range features: name → wording; conditions in _RANGES.
_RANGE_TEXT: Final[dict[str, str]] = {
    "spo2_below_95_min_4h": "SpO2 below 95 %",
    "hr_above_100_min_4h": "heart rate above 100 bpm",
    "sbp_below_100_min_4h": "systolic BP below 100 mmHg",
    "rr_above_20_min_4h": "respiratory rate above 20 /min",
    "temp_above_38_min_4h": "temperature above 38 °C",
}
_RANGES: Final[dict[str, tuple[str, str, float]]] = {
    "spo2_below_95_min_4h": ("spo2_mean", "<", 95.0),
    "hr_above_100_min_4h": ("hr_mean", ">", 100.0),
    "sbp_below_100_min_4h": ("sbp", "<", 100.0),
    "rr_above_20_min_4h": ("rr_mean", ">", 20.0),
    "temp_above_38_min_4h": ("temp", ">", 38.0),
}
_APPROACH_TEXT: Final[dict[str, tuple[str, str, str]]] = {
    "approach_hr_120": ("Heart rate", "120", "bpm"),
    "approach_hr_50": ("Heart rate", "50", "bpm"),
    "approach_sbp_90": ("Systolic BP", "90", "mmHg"),
    "approach_spo2_90": ("SpO2", "90", "%"),
    "approach_temp_39": ("Temperature", "39", "°C"),
}

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



def _more_features() -> list[Feature]:
    out: list[Feature] = [
        Feature("temp_trend_1h", "°C/h", "trend of temperature over the last hour",
                "Temperature {updown}: {value:+.1f} °C over the last hour"),
    ]
    for v in ("hr", "spo2", "rr", "sbp"):
        label, unit, _ = _LABEL[v]
        out.append(Feature(f"{v}_std_4h", unit, f"variability (SD) of {label.lower()} over the last 4 hours",
                           f"{label} has varied by ±{{value:.1f}} {unit} (SD) over the last 4 hours"))
    for name, text in _RANGE_TEXT.items():
        out.append(Feature(name, "min", f"minutes of the last 4 hours with {text}",
                           f"{text[0].upper()}{text[1:]} for {{value:.0f}} of the last 240 minutes",
                           f"No time with {text} in the last 4 hours"))
    for name, (label, line, unit) in _APPROACH_TEXT.items():
        out.append(Feature(name, "/h", f"how fast {label.lower()} is closing on {line} {unit} "
                                       "(1 / hours to get there at the last hour's pace)",
                           f"{label} heading for {line} {unit}: at the last hour's pace it gets there in {{inv:.1f}} h",
                           f"{label} is not moving towards {line} {unit}"))
    out += [
        Feature("shock_index", "", "shock index: latest heart rate / latest systolic BP",
                "Shock index (heart rate / systolic BP) is {value:.2f}"),
        Feature("hr_vs_baseline", "bpm", "last-hour mean heart rate minus this patient's baseline",
                "Heart rate has averaged {hr_mean_1h:.0f} bpm over the last hour, {abs:.0f} bpm {abovebelow} this "
                "patient's baseline"),
        Feature("spo2_vs_baseline", "%", "last-hour mean SpO2 minus this patient's baseline",
                "SpO2 has averaged {spo2_mean_1h:.0f} % over the last hour, {abs:.0f} points {abovebelow} this "
                "patient's baseline"),
        Feature("rr_vs_baseline", "/min", "last-hour mean respiratory rate minus this patient's baseline",
                "Respiratory rate has averaged {rr_mean_1h:.0f} /min over the last hour, {abs:.0f} /min {abovebelow} "
                "this patient's baseline"),
        Feature("sbp_vs_baseline", "mmHg", "last-hour mean systolic BP minus this patient's baseline",
                "Systolic BP has averaged {sbp_mean_1h:.0f} mmHg over the last hour, {abs:.0f} mmHg {abovebelow} "
                "this patient's baseline"),
        Feature("mahalanobis_baseline", "SD", "heart rate, SpO2, respiratory rate and systolic BP jointly: "
                "Mahalanobis distance of the last hour from this patient's baseline",
                "Heart rate, SpO2, breathing and BP together sit {value:.1f} SD away from this patient's own "
                "baseline"),
        Feature("bp_age_h", "h", "hours since the last new blood-pressure reading (capped at 4 h)",
                "No new blood pressure for {value:.1f} h", "Blood pressure taken in the last 5 minutes"),
        Feature("hr_missing_min_1h", "min", "minutes of the last hour without a clean heart-rate reading",
                "No clean heart-rate signal for {value:.0f} of the last 60 minutes",
                "Heart rate recorded throughout the last hour"),
        Feature("spo2_missing_min_1h", "min", "minutes of the last hour without a clean SpO2 reading "
                "(probe off, poor signal)", "No clean SpO2 signal for {value:.0f} of the last 60 minutes",
                "SpO2 recorded throughout the last hour"),
        Feature("not_alert", "", "last charted consciousness is not Alert (new confusion, voice, pain, unresponsive)",
                "Not fully alert on the last ACVPU check (new confusion or worse)", "Alert on the last ACVPU check"),
        Feature("o2_l_min", "L/min", "supplemental oxygen flow last charted", "On {value:.0f} L/min of oxygen",
                "Breathing room air"),
    ]
    return out


FEATURES: Final[tuple[Feature, ...]] = (*_stat_features(), *_THRESHOLD_FEATURES, *_more_features())
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
    _extended(frame, r, t, cols, latest)

    out = pd.DataFrame({name: cols[name] for name in FEATURE_NAMES})
    out.insert(0, "window_end", (frame["start"] + WINDOW).to_numpy())
    out.insert(0, "patient_id", frame["patient_id"].to_numpy())
    out["window_end"] = pd.to_datetime(out["window_end"], utc=True).astype("datetime64[ns, UTC]")
    return out


def _extended(frame: pd.DataFrame, r: _Ranges, t: np.ndarray, cols: dict[str, np.ndarray],
              latest: dict[str, np.ndarray]) -> None:
    """Issue-6 features: 4-hour volatility, time in ranges, approach rates, baseline, missingness."""
    temp = _trailing_stats(r, frame["temp"].to_numpy(float), t, PER_HOUR)
    cols["temp_trend_1h"] = np.where(temp["n"] >= 6, temp["slope"] * PER_HOUR, np.nan)
    k4 = 4 * PER_HOUR
    for v in ("hr", "spo2", "rr", "sbp"):
        s = _trailing_stats(r, frame[_SOURCE[v]].to_numpy(float), t, k4)
        cols[f"{v}_std_4h"] = np.where(s["n"] >= 12, s["std"], np.nan)
    lo4, hi4 = r.trailing(k4)
    for name, (column, op, bound) in _RANGES.items():
        x = frame[column].to_numpy(float)
        with np.errstate(invalid="ignore"):
            hit = (x < bound) if op == "<" else (x > bound)
        seen = r.range_sum(r.cumsum((~np.isnan(x)).astype(float)), lo4, hi4)
        minutes = 5.0 * r.range_sum(r.cumsum(hit.astype(float)), lo4, hi4)
        cols[name] = np.where(seen > 0, minutes, np.nan)

    def approach(rate: np.ndarray, distance: np.ndarray) -> np.ndarray:
        with np.errstate(invalid="ignore", divide="ignore"):
            raw = np.where(distance > 0, rate / distance, np.inf)
            val = np.where(rate > 0, np.minimum(raw, _APPROACH_CAP), 0.0)
        return np.where(np.isnan(rate) | np.isnan(distance), np.nan, val)

    cols["approach_hr_120"] = approach(cols["hr_trend_1h"], cols["hr_to_120"])
    cols["approach_hr_50"] = approach(-cols["hr_trend_1h"], cols["hr_to_50"])
    cols["approach_sbp_90"] = approach(-cols["sbp_trend_1h"], cols["sbp_to_90"])
    cols["approach_spo2_90"] = approach(-cols["spo2_trend_1h"], cols["spo2_to_90"])
    cols["approach_temp_39"] = approach(cols["temp_trend_1h"], cols["temp_to_39"])
    with np.errstate(invalid="ignore", divide="ignore"):
        cols["shock_index"] = latest["hr"] / latest["sbp"]

    # Baseline: the first BASELINE of windows within the look-back, once BASELINE + 1 h of history exist.
    n = len(frame)
    s0 = np.maximum(r.gs, r.idx - _LOOKBACK_N + 1)
    b_lo, b_hi = s0, np.minimum(s0 + _BASELINE_N, r.idx + 1)
    ready = (r.idx - s0 + 1) >= _BASELINE_N + PER_HOUR
    vitals = ("hr", "spo2", "rr", "sbp")
    xs = {v: frame[_SOURCE[v]].to_numpy(float) for v in vitals}
    for v in vitals:
        m = ~np.isnan(xs[v])
        cnt = r.range_sum(r.cumsum(m.astype(float)), b_lo, b_hi)
        tot = r.range_sum(r.cumsum(np.where(m, xs[v], 0.0)), b_lo, b_hi)
        with np.errstate(invalid="ignore", divide="ignore"):
            base = np.where(ready & (cnt >= PER_HOUR), tot / cnt, np.nan)
        cols[f"{v}_vs_baseline"] = cols[f"{v}_mean_1h"] - base
    complete = np.all([~np.isnan(xs[v]) for v in vitals], axis=0)
    zc = {v: np.where(complete, xs[v], 0.0) for v in vitals}
    nb = r.range_sum(r.cumsum(complete.astype(float)), b_lo, b_hi)
    sums = np.stack([r.range_sum(r.cumsum(zc[v]), b_lo, b_hi) for v in vitals], axis=1)
    cross = np.empty((n, 4, 4))
    for a, va in enumerate(vitals):
        for b in range(a, 4):
            cross[:, a, b] = cross[:, b, a] = r.range_sum(r.cumsum(zc[va] * zc[vitals[b]]), b_lo, b_hi)
    current = np.stack([cols[f"{v}_mean_1h"] for v in vitals], axis=1)
    ok = ready & (nb >= PER_HOUR) & ~np.isnan(current).any(axis=1)
    dist = np.full(n, np.nan)
    if ok.any():
        nn = nb[ok][:, None, None]
        mu = sums[ok] / nb[ok][:, None]
        cov = (cross[ok] - nn * mu[:, :, None] * mu[:, None, :]) / (nn - 1)
        cov = cov + np.diag([_VAR_FLOOR[v] for v in vitals])[None, :, :]
        delta = current[ok] - mu
        sol = np.linalg.solve(cov, delta[:, :, None])[:, :, 0]
        dist[ok] = np.sqrt(np.maximum(np.einsum("ij,ij->i", delta, sol), 0.0))
    cols["mahalanobis_baseline"] = dist

    # Missingness.
    sbp = frame["sbp"].to_numpy(float)
    first = r.idx == r.gs
    prev = np.r_[np.nan, sbp[:-1]]
    fresh = ~np.isnan(sbp) & (first | np.isnan(prev) | (sbp != prev))
    last_fresh = pd.Series(np.where(fresh, r.idx, np.nan)).groupby(r.codes, sort=False).ffill().to_numpy()
    since = np.where(np.isnan(last_fresh), r.idx - r.gs + 1, r.idx - last_fresh)
    cols["bp_age_h"] = np.minimum(since * 5.0 / 60.0, 4.0)
    lo1, hi1 = r.trailing(PER_HOUR)
    for v, column in (("hr", "hr_mean"), ("spo2", "spo2_mean")):
        miss = np.isnan(frame[column].to_numpy(float)).astype(float)
        cols[f"{v}_missing_min_1h"] = 5.0 * r.range_sum(r.cumsum(miss), lo1, hi1)
    acvpu = frame["acvpu"].to_numpy(float)
    with np.errstate(invalid="ignore"):
        cols["not_alert"] = np.where(np.isnan(acvpu), np.nan, (acvpu >= 0.5).astype(float))
    cols["o2_l_min"] = frame["o2"].to_numpy(float)


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


def render(name: str, fields: Mapping[str, float]) -> str:
    f = _BY_NAME[name]
    value = fields.get(name, math.nan)
    if value is None or math.isnan(value):
        return f"{f.description[0].upper()}{f.description[1:]}: not measured"
    if value == 0 and f.sentence_zero:
        return f.sentence_zero
    extra = {"value": value, "abs": abs(value), "inv": 1.0 / value if value else math.inf,
             "updown": "rising" if value > 0 else "falling" if value < 0 else "steady",
             "abovebelow": "above" if value >= 0 else "below", "belowabove": "below" if value >= 0 else "above"}
    try:
        return f.sentence.format(**{**fields, **extra})
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
    "BASELINE", "FEATURES", "FEATURE_NAMES", "HISTORY", "PER_HOUR", "Feature", "build", "feature", "render", "sentence",
    "sentence_fields",
]
