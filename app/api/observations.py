"""POST /v1/observations: a nurse's charted NEWS2 observation set, stored and escalated at once.

The set is validated whole (``app.ingest_observations``: a set is atomic, any bad field refuses it with a 422 naming
each), stored as readings with source ``charted``, scored with the one NEWS2 of ``models.news2``, and the RCP 2017
escalation applied within the request (``WardTwin.observe``): the answer carries the set's NEWS2 and the patient's
open ``news2`` alert, already in the outbox (so the WebSocket and webhooks deliver it as any alert).

GET /v1/patients/{patient_id}/observations reads the charted sets back (the patient view marks them on its charts).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated, Any, Literal

import orjson
from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, Field

from app.alerts.rules import GRADES, Raise, Regrade, Resolve
from app.alerts.store import Alert
from app.api.auth import Caller, requires
from app.api.deps import ServiceDep
from app.api.device_writes import audit_write
from app.api.patients import READ, PatientId
from app.api.patients import _range as time_range
from app.api.schemas import IsoDatetime, News2Out
from app.errors import InvalidRequestError, ReadingRejectedError, WardTwinError
from app.ingest_observations import BY_MAX, O2_UNSTATED_L_MIN, parse_observation
from app.service import Ingested, charted_sets
from models.schema import ACVPU_CODES, PATIENT_ID_PATTERN, PLAUSIBLE_RANGES

router = APIRouter(tags=["observations"])
#: Charting a set: a nurse at the board (clinician) or an e-obs gateway (device).
CHART = [Depends(requires("clinician", "device"))]


class ObservationRejectedError(InvalidRequestError):
    """A charted set with bad fields (every one named; nothing stored): 422."""

    code = "observation_rejected"

    def __init__(self, detail: list[dict[str, Any]]) -> None:
        WardTwinError.__init__(self, f"{len(detail)} problem(s) in the observation set")
        self.detail = detail


def _range(vital: str) -> dict[str, float]:
    lo, hi = PLAUSIBLE_RANGES[vital]
    return {"ge": lo, "le": hi}


class ObservationIn(BaseModel):
    """One charted observation set (documents the contract; ``app.ingest_observations`` validates it whole)."""

    model_config = {"extra": "forbid"}

    patient_id: str = Field(pattern=PATIENT_ID_PATTERN.pattern, examples=["bed-01"])
    ts: datetime | None = Field(None, description="when it was charted: ISO 8601 with an offset (absent: now), "
                                                  "within the reading horizon", examples=["2026-11-24T10:00:00Z"])
    rr: float | None = Field(None, description="respiration rate /min (counted)", **_range("rr"))
    spo2: float | None = Field(None, description="SpO2 %", **_range("spo2"))
    spo2_scale: Literal[1, 2] = Field(1, description="2 only for confirmed hypercapnic respiratory failure")
    o2: bool | Annotated[float, Field(**_range("o2"))] | None = Field(
        None, description="on supplemental oxygen: false/0 = air, a number = flow L/min, true = oxygen at an unstated "
                          f"flow (stored as {O2_UNSTATED_L_MIN:g} L/min)")
    sbp: float | None = Field(None, description="systolic BP mmHg", **_range("sbp"))
    hr: float | None = Field(None, description="pulse /min", **_range("hr"))
    acvpu: Literal[ACVPU_CODES] | None = Field(None, description="consciousness")  # type: ignore[valid-type]
    temp: float | None = Field(None, description="temperature °C", **_range("temp"))
    by: str | None = Field(None, max_length=BY_MAX, description="who charted (free text; absent: the key's name)")


class ObservationNews2Out(News2Out):
    missing: list[str] = Field(description="parameters not observed (each scored 0; the set is then partial)")


class ObservationAlertOut(BaseModel):
    id: str
    kind: Literal["news2"]
    state: str
    grade: int = Field(description="1 urgent ward-based response, 2 key threshold (urgent), 3 emergency")
    escalation: str
    response: str = Field(description="the RCP 2017 clinical response (chart 4)")
    monitoring: str
    reasons: list[str]
    raised_at: str
    event: Literal["raised", "escalated", "unchanged"] = Field(
        description="what this set did to it: raised it, escalated it to a higher grade, or left it open")


class ObservationOut(BaseModel):
    patient_id: str
    ts: str
    by: str
    stored: int = Field(description="readings stored (source charted)")
    news2: ObservationNews2Out
    alert: ObservationAlertOut | None = Field(description="the patient's open news2 alert after this set")
    resolved: list[str] = Field(description="alerts this set resolved (a news2 below every trigger, an obs_due)")


def _alert_out(alert: Alert, event: str) -> ObservationAlertOut:
    brief = alert.news2 or {}
    grade = int(brief.get("grade") or 0)
    return ObservationAlertOut(id=alert.id, kind="news2", state=alert.state, grade=grade,
                               escalation=str(brief.get("escalation") or GRADES.get(grade, "")),
                               response=str(brief.get("response", "")), monitoring=str(brief.get("monitoring", "")),
                               reasons=alert.reasons, raised_at=alert.raised_at, event=event)  # type: ignore[arg-type]


@router.post(
    "/v1/observations",
    dependencies=CHART,
    status_code=201,
    response_model=ObservationOut,
    summary="Chart a NEWS2 observation set: stored, scored and escalated at once",
    description=(
        "A nurse's (or an e-obs gateway's) observation set. Every vital is optional, at least one required; a set "
        "missing any NEWS2 parameter is scored as **partial** (unobserved parameters score 0). The set is atomic: "
        "any bad field is a **422** naming each (`loc` = body, field) and nothing is stored. Stored as readings "
        "with source `charted`; NEWS2 ≥ 5, ≥ 7 or a 3 in any single parameter raises (or escalates) the patient's "
        "`news2` alert within this request, graded by the RCP 2017 response; a set below every trigger resolves it; "
        "any set resolves an open `obs_due`."
    ),
    openapi_extra={"requestBody": {"required": True, "content": {"application/json": {
        "schema": ObservationIn.model_json_schema()}}}},
)
async def post_observation(request: Request, wt: ServiceDep, caller: Caller) -> ObservationOut:
    raw = await request.body()
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidRequestError(["body"], f"body is not valid JSON: {exc}", "json_invalid") from None
    parsed = parse_observation(body, wt.now(), timedelta(seconds=wt.settings.max_future_skew_s),
                               timedelta(days=wt.settings.reading_horizon_days))
    if isinstance(parsed, list):
        raise ObservationRejectedError(parsed)
    try:
        observed = await wt.observe(parsed, caller.name, caller)
    except ReadingRejectedError:  # out of the key's scope, or a second value (issue 21, finding 4)
        audit_write(request, Ingested([], []))
        raise
    audit_write(request, Ingested(list(parsed.readings), []))  # the request's one audit row names what it stored
    steps = observed.changes.steps
    alert = None
    if observed.alert is not None:
        event = ("raised" if any(isinstance(s, Raise) for s in steps) else
                 "escalated" if any(isinstance(s, Regrade) for s in steps) else "unchanged")
        alert = _alert_out(observed.alert, event)
    summary = observed.chart.news2
    return ObservationOut(
        patient_id=parsed.patient_id, ts=parsed.ts.isoformat(), by=observed.chart.by, stored=len(parsed.readings),
        news2=ObservationNews2Out.model_validate({**summary.to_dict(), "missing": list(parsed.missing)}),
        alert=alert, resolved=[s.alert_id for s in steps if isinstance(s, Resolve)],
    )


class ChartedSetOut(BaseModel):
    """One charted set read back: the readings stored with source ``charted`` at one time."""

    ts: str = Field(description="when it was charted (ISO 8601, UTC)")
    values: dict[str, float | str] = Field(
        description="each charted vital's value: `acvpu` as its letter (A, C, V, P, U), `o2` as L/min (0 = air), "
                    "the others in their units", examples=[{"rr": 25, "spo2": 94, "acvpu": "A"}])


class ChartedSetsOut(BaseModel):
    patient_id: str
    since: str
    until: str
    sets: list[ChartedSetOut] = Field(description="the charted sets of the range, oldest first")


@router.get(
    "/v1/patients/{patient_id}/observations",
    dependencies=READ,
    response_model=ChartedSetsOut,
    summary="A patient's charted observation sets over a time range, oldest first",
    description=(
        "The observation sets charted for one patient (`POST /v1/observations`, or readings sent with source "
        "`charted`) in `[since, until]`, each the values stored at one time. Monitor readings are not included. "
        "Who charted is not stored with the readings, so it is not answered (see the news2 alert's transitions). "
        "`since`/`until` as the other patient reads (at most 31 days); 404 for an unknown patient. Role "
        "clinician or ehr."),
)
async def get_observations(
    wt: ServiceDep, patient_id: PatientId,
    since: Annotated[IsoDatetime | None, Query(description="ISO 8601 with offset; default until − 24 h")] = None,
    until: Annotated[IsoDatetime | None, Query(description="ISO 8601 with offset; default now")] = None,
) -> ChartedSetsOut:
    since, until = time_range(since, until, timedelta(hours=24), wt.now(), timedelta(days=31))
    sets = await charted_sets(wt, patient_id, since, until)
    return ChartedSetsOut(patient_id=patient_id, since=since.isoformat(), until=until.isoformat(),
                          sets=[ChartedSetOut(ts=s.ts.isoformat(), values=s.values) for s in sets])
