"""Deterioration events and the 6-hour prediction label, derived from the windows themselves.

Event rule (on artefact-free window aggregates: ``models.windows`` drops flagged readings)
    A window is *abnormal* for a criterion when
    ``hr_mean > 120`` (tachycardia), ``hr_mean < 50`` (bradycardia), ``sbp < 90`` (hypotension),
    ``spo2_mean < 90`` (desaturation) or ``temp > 39`` (fever) — thresholds from ``models.schema``.
    A run of consecutive abnormal windows for one criterion is an event when it is *sustained*:
    it lasts at least ``SUSTAIN`` (15 min, three windows) and, for the last-value vitals SBP and
    temperature (carried forward between readings), it holds at least two distinct readings
    (a window whose value differs from the previous window's), so a single low cuff reading carried
    for 15 minutes does not count. A missing window breaks a run: missing is never abnormal.
    Qualifying runs of any criterion that are less than ``MERGE_GAP`` (1 h) apart are one event;
    its ``onset`` is the start of its first abnormal window, ``end`` the end of its last, ``kind``
    the criterion that started it.

Label rule (per window end ``t``, the moment a score is made from data before ``t``)
    ``label = 1`` when an event onset ``o`` satisfies ``t <= o < t + HORIZON`` (6 h).
    ``eligible`` (a prediction point) unless: an event is ongoing or just ended
    (``onset < t <= end + REFRACTORY``, 1 h), or the patient has less than ``MIN_HISTORY`` (1 h) of
    windows, or the label is a censored negative (``t + HORIZON`` beyond the patient's last window).
"""

from __future__ import annotations

from typing import Final

import numpy as np
import pandas as pd

from models.schema import HR_HIGH_BPM, HR_LOW_BPM, SBP_LOW_MMHG, SPO2_LOW_PCT, TEMP_HIGH_C, VITAL_UNITS
from models.windows import WINDOW

HORIZON: Final[pd.Timedelta] = pd.Timedelta(hours=6)
SUSTAIN: Final[pd.Timedelta] = pd.Timedelta(minutes=15)
MERGE_GAP: Final[pd.Timedelta] = pd.Timedelta(hours=1)
REFRACTORY: Final[pd.Timedelta] = pd.Timedelta(hours=1)
MIN_HISTORY: Final[pd.Timedelta] = pd.Timedelta(hours=1)

#: criterion → (window column, comparison, threshold, needs two distinct readings)
CRITERIA: Final[dict[str, tuple[str, str, float, bool]]] = {
    "hr_high": ("hr_mean", ">", HR_HIGH_BPM, False),
    "hr_low": ("hr_mean", "<", HR_LOW_BPM, False),
    "sbp_low": ("sbp", "<", SBP_LOW_MMHG, True),
    "spo2_low": ("spo2_mean", "<", SPO2_LOW_PCT, False),
    "temp_high": ("temp", ">", TEMP_HIGH_C, True),
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
    """A criterion in words, e.g. ``"heart rate above 120 bpm"``, built from ``CRITERIA`` when called, so
    the sentence always states the threshold the event rule uses. ``KeyError`` for an unknown kind."""
    column, op, threshold, _ = CRITERIA[kind]
    name, unit = _CRITERION_WORDS[column]
    return f"{name} {'above' if op == '>' else 'below'} {threshold:g} {unit}"


def _sorted(windows: pd.DataFrame) -> pd.DataFrame:
    frame = windows.copy()
    frame["start"] = pd.to_datetime(frame["start"], utc=True).astype("datetime64[ns, UTC]")
    return frame.sort_values(["patient_id", "start"], kind="mergesort").reset_index(drop=True)


def events(windows: pd.DataFrame) -> pd.DataFrame:
    """Sustained deterioration events: ``patient_id, kind, onset, end`` sorted by patient and onset."""
    frame = _sorted(windows)
    if frame.empty:
        return _empty_events()
    pid = frame["patient_id"].to_numpy()
    start = frame["start"]
    start_ns = start.to_numpy(dtype="datetime64[ns]")  # UTC, naive: object Timestamps would be slow
    new_patient = np.r_[True, pid[1:] != pid[:-1]]
    contiguous = np.r_[False, (start.diff().to_numpy()[1:] == np.timedelta64(WINDOW))] & ~new_patient
    runs: list[pd.DataFrame] = []
    min_len = int(SUSTAIN / WINDOW)
    for kind, (column, op, threshold, two_readings) in CRITERIA.items():
        x = frame[column].to_numpy(float)
        with np.errstate(invalid="ignore"):
            bad = x > threshold if op == ">" else x < threshold
        bad &= ~np.isnan(x)
        prev_bad = np.r_[False, bad[:-1]] & contiguous
        run_start = bad & ~prev_bad
        run_id = np.cumsum(run_start)
        if not bad.any():
            continue
        prev_x = np.r_[np.nan, x[:-1]]
        fresh = bad & (run_start | (x != prev_x))
        table = pd.DataFrame({"run": run_id[bad], "start": start_ns[bad], "fresh": fresh[bad],
                              "patient_id": pid[bad]})
        g = table.groupby("run", sort=True)
        agg = pd.DataFrame({"patient_id": g["patient_id"].first(), "onset": g["start"].min(),
                            "last": g["start"].max(), "n": g.size(), "fresh": g["fresh"].sum()})
        ok = agg["n"] >= min_len
        if two_readings:
            ok &= agg["fresh"] >= 2
        agg = agg[ok]
        runs.append(pd.DataFrame({"patient_id": agg["patient_id"], "kind": kind, "onset": agg["onset"],
                                  "end": agg["last"] + WINDOW}))
    if not runs:
        return _empty_events()
    order = {k: i for i, k in enumerate(CRITERIA)}
    allruns = pd.concat(runs, ignore_index=True)
    allruns["_k"] = allruns["kind"].map(order)
    allruns = allruns.sort_values(["patient_id", "onset", "_k"], kind="mergesort")
    merged: list[tuple[str, str, pd.Timestamp, pd.Timestamp]] = []
    for row in allruns.itertuples(index=False):
        if merged and merged[-1][0] == row.patient_id and row.onset - merged[-1][3] < MERGE_GAP:
            p, k, o, e = merged[-1]
            merged[-1] = (p, k, o, max(e, row.end))
        else:
            merged.append((row.patient_id, row.kind, row.onset, row.end))
    out = pd.DataFrame(merged, columns=list(EVENT_COLUMNS))
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


__all__ = ["CRITERIA", "HORIZON", "MERGE_GAP", "MIN_HISTORY", "REFRACTORY", "SUSTAIN", "criterion_text", "events",
           "label"]
