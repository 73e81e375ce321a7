"""The score of a ward at a window end: the one reference, the one freshness rule, the flags a score carries.

:func:`score_ward` is the pure reference for what the service's cycle stores: from stored 5-minute windows (a
``models.windows.WINDOW_COLUMNS`` frame reaching back ``features.HISTORY + windows.MAX_CARRY_FORWARD`` before the
window end), carry forward, build the features, keep the *fresh* patients, score each with the twin, put NEWS2
(:class:`models.news2.News2Summary`) beside it, flag a deterioration criterion met now and, in shadow, the
challenger's disagreement. The service's cycle computes the same scores, byte for byte, on its dense ward grid
(``app.pipeline.ward_grid``; ``tests/unit/test_cycle_grid.py`` ties the two); the evaluation and the tests use this.

Freshness (:func:`seen`, :func:`is_fresh`): a patient is scored at ``W`` only when some window starting at or after
``W - stale_after`` (``STALE_AFTER``, the service's ``Settings.stale_after_min``) has a heart rate, an SpO2 or a
respiratory rate. Blood pressure, temperature, consciousness and oxygen alone do not keep a patient on the board:
they are charted, carried forward for hours, and would score a discharged bed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final

import numpy as np
import pandas as pd

from models import features, labels
from models.challenger import Challenger
from models.news2 import News2Summary, summaries
from models.twin import Twin, TwinContribution, TwinScore
from models.windows import WINDOW, carry_forward

#: How long after its newest heart rate, SpO2 or respiratory rate a patient is still scored.
STALE_AFTER: Final[timedelta] = timedelta(minutes=60)
#: Challenger and twin risks this far apart flag a score ``challenger_disagrees``.
DISAGREEMENT: Final[float] = 0.3
#: Flag prefix on a score whose patient meets a deterioration criterion *now* (a sustained event per
#: ``models.labels`` is running at the window end): ``criteria_met:<kind>``. The twin predicts deterioration within
#: 6 h and was not trained on such windows, so its risk there is not the message: this flag is.
CRITERIA_MET: Final[str] = "criteria_met"
CHALLENGER_DISAGREES: Final[str] = "challenger_disagrees"


@dataclass(frozen=True)
class Score:
    """The twin's calibrated risk for one patient at one window end, with NEWS2 beside it (None: stored before
    NEWS2 was), the challenger's risk in shadow and the flags (``CRITERIA_MET``, ``CHALLENGER_DISAGREES``)."""

    patient_id: str
    window_end: datetime
    risk: float
    logit: float
    intercept: float
    contributions: tuple[TwinContribution, ...]
    model_version: str
    news2: News2Summary | None = None
    challenger_risk: float | None = None
    flags: tuple[str, ...] = ()
    scored_at: datetime | None = None


# -- freshness ----------------------------------------------------------------------------------------------------
def seen(hr_count: Any, spo2_mean: Any, rr_mean: Any) -> Any:
    """Windows that show the patient monitored (a heart rate, SpO2 or respiratory rate): element-wise, on arrays
    or Series of window columns."""
    return (hr_count > 0) | ~np.isnan(spo2_mean) | ~np.isnan(rr_mean)


def is_fresh(last_seen_start: Any, window_end: Any, stale_after: timedelta = STALE_AFTER) -> Any:
    """Whether a patient last :func:`seen` in the window starting at ``last_seen_start`` is scored at
    ``window_end`` (element-wise on arrays or Series; a never-seen NaT is not fresh)."""
    return last_seen_start >= window_end - pd.Timedelta(stale_after)


def fresh_patients(grid: pd.DataFrame, window_end: datetime, stale_after: timedelta = STALE_AFTER) -> set[str]:
    """The patients of a carried-forward window grid that are fresh at ``window_end``."""
    last_seen = grid[seen(grid["hr_count"], grid["spo2_mean"], grid["rr_mean"])].groupby("patient_id")["start"].max()
    return set(last_seen[is_fresh(last_seen, pd.Timestamp(window_end), stale_after)].index)


# -- flags and records --------------------------------------------------------------------------------------------
def ongoing_events(grid: pd.DataFrame, window_end: datetime) -> dict[str, str]:
    """patient_id → the kind of the deterioration event (``models.labels.events``) still running at ``window_end``."""
    running = labels.events(grid)
    running = running[running["end"] == pd.Timestamp(window_end)]
    return dict(zip(running["patient_id"], running["kind"], strict=True))


def to_score(twin_score: TwinScore, news2: News2Summary | None, model_version: str, scored_at: datetime,
             challenger_risk: float | None = None, flags: tuple[str, ...] = ()) -> Score:
    """A stored score: the twin's, with the NEWS2 summary of its window beside it."""
    return Score(
        patient_id=twin_score.patient_id,
        window_end=pd.Timestamp(twin_score.window_end).to_pydatetime(),
        risk=float(twin_score.risk),
        logit=float(twin_score.logit),
        intercept=float(twin_score.intercept),
        contributions=twin_score.contributions,  # already plain floats, None when not measured (Twin.score)
        model_version=model_version,
        news2=news2,
        challenger_risk=challenger_risk,
        flags=flags,
        scored_at=scored_at,
    )


def score_rows(latest: pd.DataFrame, news2: Sequence[News2Summary], deteriorating: dict[str, str], twin: Twin,
               scored_at: datetime, *, challenger: Challenger | None = None,
               disagreement: float = DISAGREEMENT) -> list[Score]:
    """The twin's score of each feature row of ``latest``, with the challenger's risk in shadow, the flags
    (criteria met now, challenger disagreeing) and the NEWS2 summary of the row's window (``news2``, same order).
    The last step of :func:`score_ward` and of the service's cycle."""
    shadow = challenger.risk(latest) if challenger is not None and len(latest) else None
    scores = []
    for i, ts in enumerate(twin.score(latest)):
        challenger_risk = float(shadow[i]) if shadow is not None else None
        flags: list[str] = []
        if ts.patient_id in deteriorating:
            flags.append(f"{CRITERIA_MET}:{deteriorating[ts.patient_id]}")
        if challenger_risk is not None and abs(challenger_risk - ts.risk) >= disagreement:
            flags.append(CHALLENGER_DISAGREES)
        scores.append(to_score(ts, news2[i], twin.version, scored_at, challenger_risk, tuple(flags)))
    return scores


# -- the reference ------------------------------------------------------------------------------------------------
def score_ward(windows: pd.DataFrame, window_end: datetime, twin: Twin, *, scored_at: datetime,
               stale_after: timedelta = STALE_AFTER, challenger: Challenger | None = None,
               disagreement: float = DISAGREEMENT) -> list[Score]:
    """Score the window ending at ``window_end`` of every fresh patient in ``windows`` (stored windows before
    ``window_end``), in patient order. Pure: the same windows give the same scores."""
    grid = carry_forward(windows, window_end - features.HISTORY, window_end)
    if grid.empty:
        return []
    built = features.build(grid)
    latest = built[built["window_end"] == pd.Timestamp(window_end)]
    last_rows = grid[grid["start"] == pd.Timestamp(window_end) - WINDOW].set_index("patient_id")
    latest = latest[latest["patient_id"].isin(fresh_patients(grid, window_end, stale_after))].reset_index(drop=True)
    news2 = summaries(last_rows.loc[list(latest["patient_id"])].reset_index())
    return score_rows(latest, news2, ongoing_events(grid, window_end), twin, scored_at, challenger=challenger,
                      disagreement=disagreement)


__all__ = ["CHALLENGER_DISAGREES", "CRITERIA_MET", "DISAGREEMENT", "STALE_AFTER", "Score", "fresh_patients",
           "is_fresh", "ongoing_events", "score_rows", "score_ward", "seen", "to_score"]
