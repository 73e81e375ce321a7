"""Tiny synthetic carried-forward windows for the model unit tests (no simulator needed)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from models.windows import WINDOW_COLUMNS, normalise

T0 = pd.Timestamp("2024-03-01 00:00", tz="UTC")


def synthetic_windows(n_patients: int = 40, hours: float = 24.0, seed: int = 0, frac_deteriorating: float = 0.4,
                      prefix: str = "p") -> tuple[pd.DataFrame, pd.DataFrame]:
    """Windows (WINDOW_COLUMNS) and a patients table; deteriorating patients drift towards shock/hypoxia."""
    rng = np.random.default_rng(seed)
    n = int(hours * 12)
    frames, patients = [], []
    for i in range(n_patients):
        pid = f"{prefix}{i:04d}"
        t = np.arange(n) / 12.0
        hr0, sp0, rr0, sb0, te0 = rng.normal(78, 8), rng.normal(97, 1), rng.normal(15, 2), rng.normal(125, 12), 36.8
        drift = np.zeros(n)
        if rng.random() < frac_deteriorating:
            onset = rng.uniform(min(4.0, hours / 3), max(hours - 4, hours / 2))
            drift = np.clip((t - onset) / 4.0, 0, None)
        hr = hr0 + 45 * drift + rng.normal(0, 2.5, n)
        spo2 = np.clip(sp0 - 8 * drift + rng.normal(0, 0.6, n), 50, 100)
        rr = rr0 + 8 * drift + rng.normal(0, 1.0, n)
        sbp = sb0 - 40 * drift + rng.normal(0, 4, n)
        sbp = np.repeat(sbp[::3], 3)[:n]  # NIBP every 15 minutes, carried forward
        temp = te0 + 1.5 * drift + rng.normal(0, 0.1, n)
        spo2[rng.random(n) < 0.03] = np.nan  # probe-off windows
        frames.append(pd.DataFrame({
            "patient_id": pid, "start": T0 + pd.to_timedelta(np.arange(n) * 5, unit="min"),
            "hr_mean": hr, "hr_std": np.abs(rng.normal(3, 1, n)), "hr_count": 300, "spo2_mean": spo2, "rr_mean": rr,
            "sbp": sbp, "dbp": sbp * 0.6, "temp": np.round(temp, 1), "acvpu": (drift > 1.2).astype(float),
            "o2": np.where(drift > 1.0, 2.0, 0.0),
        }))
        patients.append({"patient_id": pid, "age": int(rng.integers(20, 95)), "sex": "F" if i % 2 else "M",
                         "archetype": "deteriorating" if drift.any() else "stable"})
    return normalise(pd.concat(frames, ignore_index=True)[list(WINDOW_COLUMNS)]), pd.DataFrame(patients)


def flat_windows(n: int = 60, pid: str = "a", **over: object) -> pd.DataFrame:
    """``n`` windows of one patient at normal values from ``T0``; ``over`` sets columns (a value or an array)."""
    base = {"hr_mean": 80.0, "hr_std": 2.0, "hr_count": 300, "spo2_mean": 97.0, "rr_mean": 16.0, "sbp": 120.0,
            "dbp": 70.0, "temp": 37.0, "acvpu": 0.0, "o2": 0.0}
    frame = pd.DataFrame({"patient_id": pid, "start": T0 + pd.to_timedelta(np.arange(n) * 5, unit="min"), **base})
    for k, v in over.items():
        frame[k] = v
    return frame
