"""Deterioration events and the 6-hour prediction label, derived from the windows themselves.

Event rule (on artefact-free window aggregates: ``models.windows`` drops flagged readings)
    An event is a deterioration a ward would respond to at once: a single vital sign at the edge where
    NEWS2 scores it 3 (RCP 2017 chart 1) or a medical emergency team would be called (MET calling criteria:
    Lee et al., Anaesth Intensive Care 1995; the MERIT trial, Hillman et al., Lancet 2005), held for half an hour.

    ========== ===================== =================================================================
    criterion  window value          why this edge
    ========== ===================== =================================================================
    hr_high    ``hr_mean > 130``     NEWS2 3 points (≥ 131 /min)
    hr_low     ``hr_mean < 40``      NEWS2 3 points (≤ 40 /min); MET (MERIT) "HR < 40"
    sbp_low    ``sbp < 90``          NEWS2 3 points (≤ 90 mmHg); MET (MERIT) "SBP < 90"
    spo2_low   ``spo2_mean < 88``    below every prescribed target range (BTS 2017: 94–98 %, or 88–92 % for
                                     hypercapnic COPD), so it needs no SpO2 scale; MET (Lee 1995) "SpO2 < 90 %
                                     on oxygen"
    temp_high  ``temp > 40``         hyperpyrexia; fever alone (38–40 °C) prompts a sepsis screen, not an
                                     emergency call, and NEWS2 never scores it 3
    ========== ===================== =================================================================

    *Sustained*: a span of consecutive 5-minute windows — 30 min (``SUSTAIN``, 6 windows) for the monitor's
    means (HR, SpO2), 45 min (``SUSTAIN_LAST_VALUE``, 9 windows) for the last-value vitals SBP and temperature —
    with at most one window missing and at least two thirds of its windows beyond the threshold (4 of 6, 6 of
    9: the span's median is beyond it, so one window back inside does not break it and one window outside does
    not make it). For SBP and temperature the span must also hold ``MIN_FRESH`` (3) fresh readings beyond the
    threshold (a window whose value differs from the previous window's): three consecutive cuff cycles, since
    one or two low cuff readings in a sleeping patient are repeated, not escalated. Overlapping or touching
    sustained spans of one criterion are one run; its ``onset`` is the start of its first window beyond the
    threshold, its ``end`` the end of its last. Runs of any criterion less than ``MERGE_GAP`` (1 h) apart are
    one event; ``kind`` is the criterion that started it. Nothing here reads who the patient is (no archetype,
    no diagnosis).

    Limits: the rule sees vital signs only (no laboratory values, no new confusion, no clinician's judgement);
    a NEWS2 "3" edge makes NEWS2 look good on this label, which is why the twin is judged against NEWS2 charted
    at the RCP frequency, and why RR is left out (the impedance monitor's RR is too noisy to define an event,
    and a nurse-counted RR is charted hours apart). Real outcome labels (unplanned ICU admission, cardiac
    arrest, death) are what PhysioNet set A checks.

Label rule (per window end ``t``, the moment a score is made from data before ``t``)
    ``label = 1`` when an event onset ``o`` satisfies ``t <= o < t + HORIZON`` (6 h).
    ``eligible`` (a prediction point) unless: an event is ongoing or just ended
    (``onset < t <= end + REFRACTORY``, 1 h), or the patient has less than ``MIN_HISTORY`` (1 h) of
    windows, or the label is a censored negative (``t + HORIZON`` beyond the patient's last window).

Changed in issue 20 (was: HR > 120 or < 50, SpO2 < 90, temperature > 39, every window for 15 minutes): on
the simulated general ward, stable and fever patients crossed that rule 0.17 times per patient-day — mostly one
or two low cuff readings, a sleeping heart rate in the 40s, SpO2 at 89 % or a fever of 39.2 °C — and the twin
learned those as risk. Now 0.020 (``wardtwin simulate report``: ``reports/simulator/report.json``, ``ward_mix``).
"""

from __future__ import annotations

from typing import Final

import numpy as np
import pandas as pd

from models.schema import VITAL_UNITS
from models.windows import WINDOW

HORIZON: Final[pd.Timedelta] = pd.Timedelta(hours=6)
SUSTAIN: Final[pd.Timedelta] = pd.Timedelta(minutes=30)
#: last-value vitals (the NIBP cuff cycles every 15 min): three consecutive readings, 45 minutes
SUSTAIN_LAST_VALUE: Final[pd.Timedelta] = pd.Timedelta(minutes=45)
SPAN_WINDOWS: Final[int] = int(SUSTAIN / WINDOW)
SPAN_WINDOWS_LAST_VALUE: Final[int] = int(SUSTAIN_LAST_VALUE / WINDOW)
MIN_FRESH: Final[int] = 3  # fresh readings beyond the threshold in a span, for last-value vitals
MERGE_GAP: Final[pd.Timedelta] = pd.Timedelta(hours=1)
REFRACTORY: Final[pd.Timedelta] = pd.Timedelta(hours=1)
MIN_HISTORY: Final[pd.Timedelta] = pd.Timedelta(hours=1)

HR_HIGH: Final[float] = 130.0
HR_LOW: Final[float] = 40.0
SBP_LOW: Final[float] = 90.0
SPO2_LOW: Final[float] = 88.0
TEMP_HIGH: Final[float] = 40.0

#: criterion → (window column, comparison, threshold, last-value vital needing fresh readings)
CRITERIA: Final[dict[str, tuple[str, str, float, bool]]] = {
    "hr_high": ("hr_mean", ">", HR_HIGH, False),
    "hr_low": ("hr_mean", "<", HR_LOW, False),
    "sbp_low": ("sbp", "<", SBP_LOW, True),
    "spo2_low": ("spo2_mean", "<", SPO2_LOW, False),
    "temp_high": ("temp", ">", TEMP_HIGH, True),
}
EVENT_COLUMNS: Final[tuple[str, ...]] = ("patient_id", "kind", "onset", "end")

#: window column → (what a sentence calls it, unit): the words for :func:`criterion_text`.
_CRITERION_WORDS: Final[dict[str, tuple[str, str]]] = {
    "hr_mean": ("heart rate", VITAL_UNITS["hr"]),
    "sbp": ("systolic BP", VITAL_UNITS["sbp"]),
    "spo2_mean": ("SpO2", VITAL_UNITS["spo2"]),
    "temp": ("temperature", VITAL_UNITS["temp"]),
}


def criterion_text(kind: str) -> str:
    """A criterion in words, e.g. ``"heart rate above 130 bpm"``, built from ``CRITERIA`` when called, so
    the sentence always states the threshold the event rule uses. ``KeyError`` for an unknown kind."""
    column, op, threshold, _ = CRITERIA[kind]
    name, unit = _CRITERION_WORDS[column]
    return f"{name} {'above' if op == '>' else 'below'} {threshold:g} {unit}"


def sustained_runs(x: np.ndarray, op: str, threshold: float, last_value: bool) -> list[tuple[int, int]]:
    """Sustained runs of one criterion on one patient's consecutive windows ``x`` (NaN = missing):
    ``(first window beyond, last window beyond + 1)`` per run, in order. The one implementation of the
    sustain rule: ``events`` and the simulator's ``detect`` both call it."""
    x = np.asarray(x, dtype=float)
    k = SPAN_WINDOWS_LAST_VALUE if last_value else SPAN_WINDOWS
    if len(x) < k:
        return []
    observed = np.isfinite(x)
    with np.errstate(invalid="ignore"):
        beyond = ((x > threshold) if op == ">" else (x < threshold)) & observed
    fresh = beyond & np.r_[True, x[1:] != x[:-1]]

    def in_span(flags: np.ndarray) -> np.ndarray:
        c = np.r_[0, np.cumsum(flags)]
        return c[k:] - c[:-k]

    ok = (in_span(observed) >= k - 1) & (3 * in_span(beyond) >= 2 * k)  # two thirds beyond: the median is
    if last_value:
        ok &= in_span(fresh) >= MIN_FRESH
    runs: list[tuple[int, int]] = []
    first = prev = -1
    for i in np.flatnonzero(ok).tolist():
        if prev >= 0 and i > prev + k:  # neither overlapping nor touching the previous span: a new run
            runs.append(_trim(beyond, first, prev + k))
            first = -1
        if first < 0:
            first = i
        prev = i
    if first >= 0:
        runs.append(_trim(beyond, first, prev + k))
    return runs


def _trim(beyond: np.ndarray, lo: int, hi: int) -> tuple[int, int]:
    idx = np.flatnonzero(beyond[lo:hi])
    return lo + int(idx[0]), lo + int(idx[-1]) + 1


def _sorted(windows: pd.DataFrame) -> pd.DataFrame:
    frame = windows.copy()
    frame["start"] = pd.to_datetime(frame["start"], utc=True).astype("datetime64[ns, UTC]")
    return frame.sort_values(["patient_id", "start"], kind="mergesort").reset_index(drop=True)


def events(windows: pd.DataFrame) -> pd.DataFrame:
    """Sustained deterioration events: ``patient_id, kind, onset, end`` sorted by patient and onset."""
    frame = _sorted(windows)
    if frame.empty:
        return _empty_events()
    start_ns = frame["start"].to_numpy(dtype="datetime64[ns]")  # UTC, naive: object Timestamps would be slow
    step = np.timedelta64(WINDOW)
    pid = frame["patient_id"].to_numpy()
    bounds = np.flatnonzero(np.r_[True, pid[1:] != pid[:-1], True])
    columns = {column: frame[column].to_numpy(float) for column, *_ in CRITERIA.values()}
    rows: list[tuple[int, object, str, np.datetime64, np.datetime64, int]] = []
    for g, (a, b) in enumerate(zip(bounds[:-1].tolist(), bounds[1:].tolist(), strict=True)):
        origin = start_ns[a]
        slot = ((start_ns[a:b] - origin) // step).astype(np.int64)  # position on the patient's 5-minute grid
        n = int(slot[-1]) + 1
        for rank, (kind, (column, op, threshold, last_value)) in enumerate(CRITERIA.items()):
            grid = np.full(n, np.nan)
            grid[slot] = columns[column][a:b]
            for lo, hi in sustained_runs(grid, op, threshold, last_value):
                rows.append((g, pid[a], kind, origin + lo * step, origin + hi * step, rank))
    if not rows:
        return _empty_events()
    rows.sort(key=lambda r: (r[0], r[3], r[5]))
    merged: list[list] = []
    gap = np.timedelta64(MERGE_GAP)
    for _, p, kind, onset, end, _ in rows:
        if merged and merged[-1][0] == p and onset - merged[-1][3] < gap:
            merged[-1][3] = max(merged[-1][3], end)
        else:
            merged.append([p, kind, onset, end])
    out = pd.DataFrame(merged, columns=list(EVENT_COLUMNS))
    out["onset"] = pd.to_datetime(out["onset"], utc=True)
    out["end"] = pd.to_datetime(out["end"], utc=True)
    return _typed(out)


def _empty_events() -> pd.DataFrame:
    return _typed(pd.DataFrame({c: [] for c in EVENT_COLUMNS}))


def _typed(frame: pd.DataFrame) -> pd.DataFrame:
    frame = frame.astype({"patient_id": object, "kind": object})
    for c in ("onset", "end"):
        frame[c] = pd.to_datetime(frame[c], utc=True).astype("datetime64[ns, UTC]")
    return frame.reset_index(drop=True)


def label(windows: pd.DataFrame, event_table: pd.DataFrame | None = None) -> pd.DataFrame:
    """Per window: ``patient_id, window_end, label (0/1), eligible (bool), onset`` (next onset within 6 h, else NaT),
    and ``in_event`` (an event ongoing or ended less than ``REFRACTORY`` ago: the patient is not "monitored").

    Rows follow (patient_id, window_end) order, one per input window.
    """
    frame = _sorted(windows)
    ev = events(frame) if event_table is None else _typed(event_table.loc[:, list(EVENT_COLUMNS)])
    out = pd.DataFrame({"patient_id": frame["patient_id"].to_numpy(), "window_end": frame["start"] + WINDOW})
    out["window_end"] = out["window_end"].astype("datetime64[ns, UTC]")
    if out.empty:
        return out.assign(label=pd.Series(dtype="int64"), eligible=pd.Series(dtype=bool),
                          onset=pd.Series(dtype="datetime64[ns, UTC]"), in_event=pd.Series(dtype=bool))
    first = out.groupby("patient_id", sort=False)["window_end"].transform("min") - WINDOW
    last = out.groupby("patient_id", sort=False)["window_end"].transform("max")
    t = out["window_end"]

    key = out.reset_index().sort_values(["window_end", "index"], kind="mergesort")
    key["patient_id"] = key["patient_id"].astype(object)
    evs = ev.sort_values("onset", kind="mergesort")
    evs["patient_id"] = evs["patient_id"].astype(object)
    nxt = pd.merge_asof(key, evs[["patient_id", "onset"]], left_on="window_end", right_on="onset",
                        by="patient_id", direction="forward", allow_exact_matches=True).set_index("index").sort_index()
    prev = pd.merge_asof(key, evs[["patient_id", "onset", "end"]].rename(columns={"onset": "p_onset"}),
                         left_on="window_end", right_on="p_onset", by="patient_id", direction="backward",
                         allow_exact_matches=False).set_index("index").sort_index()

    onset = nxt["onset"]
    positive = onset.notna() & (onset - t < HORIZON)
    ongoing = prev["p_onset"].notna() & (t <= prev["end"] + REFRACTORY)
    censored = ~positive & (t + HORIZON > last)
    young = (t - first) < MIN_HISTORY
    out["label"] = positive.astype("int64").to_numpy()
    out["eligible"] = (~ongoing & ~censored & ~young).to_numpy(bool)
    out["onset"] = onset.where(positive).astype("datetime64[ns, UTC]").to_numpy()
    out["in_event"] = ongoing.to_numpy(bool)
    return out


__all__ = ["CRITERIA", "HORIZON", "HR_HIGH", "HR_LOW", "MERGE_GAP", "MIN_FRESH", "MIN_HISTORY",
           "REFRACTORY", "SBP_LOW", "SPAN_WINDOWS", "SPAN_WINDOWS_LAST_VALUE", "SPO2_LOW", "SUSTAIN",
           "SUSTAIN_LAST_VALUE", "TEMP_HIGH", "criterion_text", "events",
           "label", "sustained_runs"]
