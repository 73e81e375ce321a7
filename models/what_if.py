"""What-if: rescore a patient's newest window with some vitals changed over their last hour.

The changed windows go through the same ``models.features.build`` and ``Twin.score`` as the service's
cycle, so a what-if answer is exactly the score the twin would give those vitals.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, Final

import numpy as np
import pandas as pd

from models import features as F
from models.schema import PLAUSIBLE_RANGES
from models.twin import Twin, TwinScore

#: what-if keys → the window column they override (applied to the patient's last hour of windows).
WHAT_IF_COLUMNS: Final[dict[str, str]] = {
    "hr": "hr_mean", "spo2": "spo2_mean", "rr": "rr_mean", "sbp": "sbp", "dbp": "dbp", "temp": "temp",
    "acvpu": "acvpu", "o2": "o2",
}
WHAT_IF_SPAN: Final[pd.Timedelta] = pd.Timedelta(hours=1)


def what_if(twin: Twin, windows: pd.DataFrame, patient_id: str, changes: Mapping[str, float]
            ) -> tuple[TwinScore, TwinScore, dict[str, Any]]:
    """Rescore the patient's newest window with some vitals overridden over their last hour of windows.

    ``windows``: carried-forward windows (at least ``models.features.HISTORY`` of them for full features).
    ``changes``: keys among hr, spo2, rr, sbp, dbp, temp, acvpu (code 0..4 = A,C,V,P,U), o2 (L/min);
    each value replaces that vital in every window of the last hour (so its last-hour mean becomes the
    value and its last-hour trend flat). Returns ``(before, after, changed)`` where ``changed`` is
    ``{"vitals": {key: value}, "windows": n_overridden, "features": {name: {"before", "after",
    "points_before", "points_after"}}}`` for the features whose value moved.
    Raises ``KeyError`` for an unknown patient and ``ValueError`` for an unknown key or an implausible value.
    """
    if not changes:
        raise ValueError("changes: give at least one vital to change")
    applied: dict[str, float] = {}
    for key, value in changes.items():
        if key not in WHAT_IF_COLUMNS:
            raise ValueError(f"{key}: not a vital that what-if can change ({', '.join(WHAT_IF_COLUMNS)})")
        if isinstance(value, bool) or not isinstance(value, int | float | np.integer | np.floating):
            raise ValueError(f"{key}: expected a number, got {value!r}")
        lo, hi = PLAUSIBLE_RANGES[key]
        if math.isnan(float(value)) or not lo <= float(value) <= hi:
            raise ValueError(f"{key}: {value!r} is outside the plausible range {lo:g}–{hi:g}")
        applied[key] = float(value)
    mine = windows[windows["patient_id"] == patient_id]
    if mine.empty:
        raise KeyError(patient_id)
    starts = pd.to_datetime(mine["start"], utc=True)
    last = starts.max()
    before_feats = F.build(mine)
    before_feats = before_feats[before_feats["window_end"] == before_feats["window_end"].max()]
    modified = mine.copy()
    span = (starts > last - WHAT_IF_SPAN).to_numpy()
    for key, value in applied.items():
        modified.loc[span, WHAT_IF_COLUMNS[key]] = value
        if key == "hr":
            modified.loc[span, "hr_count"] = modified.loc[span, "hr_count"].clip(lower=1)
    after_feats = F.build(modified)
    after_feats = after_feats[after_feats["window_end"] == after_feats["window_end"].max()]
    before = twin.score(before_feats)[0]
    after = twin.score(after_feats)[0]
    pb = {c.feature: c for c in before.contributions}
    pa = {c.feature: c for c in after.contributions}
    moved = {}
    for name in twin.feature_names:
        b, a = pb[name].value, pa[name].value
        if b != a and not (b is not None and a is not None and abs(b - a) < 1e-9):
            moved[name] = {"before": b, "after": a, "points_before": pb[name].points, "points_after": pa[name].points}
    return before, after, {"vitals": applied, "windows": int(span.sum()), "features": moved}


__all__ = ["WHAT_IF_COLUMNS", "WHAT_IF_SPAN", "what_if"]
