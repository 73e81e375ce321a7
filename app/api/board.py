"""``GET /v1/board``: everything the ward board at ``/`` draws, in the order a charge nurse should look.

One read: every known bed with its NEWS2 (band, RCP response), twin risk and its change over the last hour, the
top reason in words, the open alerts, the time since its newest data and whether that is past its cadence, and the
last hours of its windows (HR, RR, SpO2, SBP, temperature; missing stays missing). The order comes from
``app.urgency.order``; the browser only renders it.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

import numpy as np
import pandas as pd
from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, Field

from app.alerts.store import Alert
from app.api.auth import requires
from app.api.deps import ServiceDep
from app.readmodel import top_reason
from app.service import WardSnapshot
from app.urgency import LEVELS, BedUrgency, is_stale, last_data_at, level, order
from models import labels
from models.scoring import Score
from models.windows import WINDOW

router = APIRouter(tags=["board"])
#: The vitals the board draws, window column → the name the board uses.
SPARK = {"hr_mean": "hr", "rr_mean": "rr", "spo2_mean": "spo2", "sbp": "sbp", "temp": "temp"}


class Vitals(BaseModel):
    """Window starts (ms since the epoch, UTC) and one value per start for each vital; null where no reading."""

    t: list[int]
    hr: list[float | None]
    rr: list[float | None]
    spo2: list[float | None]
    sbp: list[float | None]
    temp: list[float | None]


class BedAlert(BaseModel):
    id: str
    kind: str
    state: str
    raised_at: datetime


class Bed(BaseModel):
    patient_id: str
    rank: int = Field(description="1: the most urgent bed (app.urgency)")
    level: str = Field(description="escalation level: the clinical-response band the bed sorts by")
    level_why: str = Field(description="what set the level, in words")
    news2: dict[str, Any] | None = Field(description="NEWS2 of the newest monitor window: total, band, partial, "
                                                     "urgency, response, monitoring")
    charted_news2: dict[str, Any] | None = Field(None, description="NEWS2 of the charted set behind the open "
                                                                   "``news2`` alert, if one is open")
    risk: float | None
    risk_change_1h: float | None = Field(description="risk now minus the risk scored an hour before")
    window_end: datetime | None
    top_reason: str | None
    last_data_at: datetime | None = Field(description="the newest reading's time (at window granularity when older "
                                                      "than two windows: the end of the newest window holding one)")
    silent_s: float | None = Field(description="seconds since last_data_at, by the service clock")
    stale: bool = Field(description="no data past the expected cadence: scores are not current")
    alerts: list[BedAlert]
    vitals: Vitals


class Threshold(BaseModel):
    vital: str
    op: str
    value: float
    text: str


def thresholds() -> list[Threshold]:
    return [Threshold(vital=SPARK[column], op=op, value=value, text=labels.criterion_text(kind))
            for kind, (column, op, value, _) in labels.CRITERIA.items() if column in SPARK]


class StoreState(BaseModel):
    ok: bool
    error: str | None = Field(None, description="why the vital store could not be read")


class BoardOut(BaseModel):
    now: datetime = Field(description="the service clock")
    clock_speed: float = Field(description="simulated seconds per real second (1: real time)")
    time_zone: str = Field(description="the ward's IANA time zone: times are shown in it")
    stale_after_s: float
    hours: float
    twin_alert_threshold: float
    levels: list[str] = list(LEVELS)
    event_thresholds: list[Threshold] = Field(description="the deterioration criteria's thresholds "
                                                          "(models.labels), drawn on the patient view's charts")
    beds: list[Bed]
    store: StoreState = Field(default_factory=lambda: StoreState(ok=True),
                              description="whether the vital store could be read for this board; when not, the "
                                          "beds show the last scores and open alerts, without vitals")


def _series(windows: pd.DataFrame) -> tuple[dict[str, Vitals], dict[str, datetime]]:
    """Per patient: the window series, and the end of its newest window holding any reading. Vectorised over the
    ward's frame (one pass, then list slices): pandas per patient cost more than the rest of the read."""
    if windows.empty:
        return {}, {}
    frame = windows.sort_values(["patient_id", "start"], kind="mergesort")
    ids = frame["patient_id"].to_numpy()
    starts_ms = frame["start"].to_numpy(dtype="datetime64[ms]").astype("int64")
    measures = frame[[c for c in frame.columns if c not in ("patient_id", "start", "hr_count")]]
    has_data = (frame["hr_count"].fillna(0).to_numpy() > 0) | measures.notna().to_numpy().any(axis=1)
    columns = {name: np.round(frame[col].to_numpy(dtype=float, na_value=np.nan), 2) for col, name in SPARK.items()}
    lists = {name: np.where(np.isnan(a), None, a).tolist() for name, a in columns.items()}
    t = starts_ms.tolist()
    cuts = np.flatnonzero(ids[1:] != ids[:-1]) + 1
    bounds = zip(np.r_[0, cuts].tolist(), np.r_[cuts, len(ids)].tolist(), strict=True)
    series, newest = {}, {}
    for lo, hi in bounds:
        pid = str(ids[lo])
        series[pid] = Vitals(t=t[lo:hi], **{name: values[lo:hi] for name, values in lists.items()})
        seen = np.flatnonzero(has_data[lo:hi])
        at = last_data_at([datetime.fromtimestamp(int(starts_ms[lo + seen[-1]]) / 1000, tz=UTC)] if len(seen) else [],
                          WINDOW)
        if at is not None:
            newest[pid] = at
    return series, newest


_NO_VITALS = Vitals(t=[], hr=[], rr=[], spo2=[], sbp=[], temp=[])


def _why(bed: BedUrgency, score: Score | None) -> str:
    lvl = LEVELS[level(bed)]
    if score is not None and score.news2 is not None and score.news2.band == lvl:
        return f"NEWS2 {score.news2.total} ({lvl})"
    kinds = [kind for kind, band in bed.open_alerts if (kind == "news2" and band == lvl) or kind == "obs_due"]
    if kinds:
        return "open " + " and ".join("observations-due" if k == "obs_due" else "NEWS2" for k in kinds) + " alert"
    if bed.stale:
        return "no current data"
    return f"NEWS2 {score.news2.total} ({lvl})" if score is not None and score.news2 is not None else "not scored"


def board(snap: WardSnapshot, stale_after: timedelta, hours: float, speed: float, time_zone: str,
          threshold: float) -> BoardOut:
    series, newest_window = _series(snap.windows)
    alerts: dict[str, list[Alert]] = {}
    for alert in snap.open_alerts:
        alerts.setdefault(alert.patient_id, []).append(alert)
    beds: dict[str, Bed] = {}
    urgencies = []
    for pid, score in snap.latest.items():
        vitals = series.get(pid, _NO_VITALS)
        last_at = snap.last_reading_at.get(pid) or newest_window.get(pid)
        stale = is_stale(last_at, snap.now, stale_after)
        before = snap.hour_before.get(pid)
        change = score.risk - before.risk if score is not None and before is not None else None
        mine = sorted(alerts.get(pid, []), key=lambda a: a.raised_at)
        urgency = BedUrgency(pid, score.news2.band if score and score.news2 else None,
                             score.risk if score else None, change,
                             tuple((a.kind, (a.news2 or {}).get("band")) for a in mine), stale)
        urgencies.append(urgency)
        beds[pid] = Bed(
            patient_id=pid, rank=0, level=LEVELS[level(urgency)], level_why=_why(urgency, score),
            news2=score.news2.to_dict() if score and score.news2 else None,
            charted_news2=next((a.news2 for a in reversed(mine) if a.kind == "news2" and a.news2), None),
            risk=score.risk if score else None, risk_change_1h=change,
            window_end=score.window_end if score else None, top_reason=top_reason(score) if score else None,
            last_data_at=last_at, silent_s=(snap.now - last_at).total_seconds() if last_at else None, stale=stale,
            alerts=[BedAlert(id=a.id, kind=a.kind, state=a.state, raised_at=a.raised_at) for a in mine],
            vitals=vitals)
    ranked = [beds[u.patient_id].model_copy(update={"rank": i}) for i, u in enumerate(order(urgencies), 1)]
    return BoardOut(now=snap.now, clock_speed=speed, time_zone=time_zone,
                    stale_after_s=stale_after.total_seconds(), hours=hours, twin_alert_threshold=threshold,
                    event_thresholds=thresholds(), beds=ranked,
                    store=StoreState(ok=snap.store_error is None, error=snap.store_error))


@router.get("/v1/board", dependencies=[Depends(requires("clinician"))], response_model=BoardOut,
            summary="The ward board: every bed, most urgent first, with its last hours of vitals")
async def get_board(
    wt: ServiceDep,
    hours: Annotated[float, Query(gt=0, le=24, description="hours of windows per bed (default 4)")] = 4.0,
) -> BoardOut:
    snap = await wt.ward_snapshot(timedelta(hours=hours))
    return board(snap, timedelta(minutes=wt.settings.board_stale_after_min), hours,
                 float(getattr(wt.clock, "speed", 1.0)), wt.settings.ward_time_zone, wt.engine.policy.threshold)
