"""Windows → the research routes' input: windows with the twin's labels, one row per patient (shared by the admin
API, which reads the store, and the lab's loader ``lab.research.cohort``)."""

from __future__ import annotations

from typing import Any

import pandas as pd

from models import labels as L
from models import windows as W


def labelled(windows: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(windows in (patient, start) order with ``window_end``, ``label`` (a ``models.labels`` deterioration within
    6 h) and ``eligible``; the derived events)."""
    windows = W.normalise(windows).sort_values(["patient_id", "start"], kind="mergesort").reset_index(drop=True)
    events = L.events(windows)
    labels = L.label(windows, events)
    out = windows.copy()
    out["window_end"] = labels["window_end"].to_numpy()
    out["label"] = labels["label"].to_numpy()
    out["eligible"] = labels["eligible"].to_numpy()
    return out, events


def patients_table(rows: list[dict[str, Any]], windows: pd.DataFrame) -> pd.DataFrame:
    """``patient_id, age, sex, ward`` rows → with ``admitted_at`` (the first window); patients without windows go."""
    frame = pd.DataFrame(rows, columns=["patient_id", "age", "sex", "ward"])
    first = windows.groupby("patient_id")["start"].min().to_dict()
    frame["admitted_at"] = pd.to_datetime(frame["patient_id"].map(first), utc=True)
    frame["age"] = pd.to_numeric(frame["age"], errors="coerce").astype(float)
    return frame[frame["admitted_at"].notna()].reset_index(drop=True)


def from_store_windows(windows: pd.DataFrame, ward: str = "store") -> tuple[pd.DataFrame, pd.DataFrame]:
    """(patients, labelled windows) of a store's windows: readings only, so age and sex are unknown, one ward, and
    the outcome is ``deteriorated`` (any ``models.labels`` event)."""
    lab, events = labelled(windows)
    ids = sorted(lab["patient_id"].unique())
    patients = patients_table([{"patient_id": p, "age": None, "sex": None, "ward": ward} for p in ids], lab)
    patients["outcome"] = patients["patient_id"].isin(set(events["patient_id"])).astype(int)
    return patients, lab


__all__ = ["from_store_windows", "labelled", "patients_table"]
