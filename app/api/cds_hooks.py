"""CDS Hooks 2.0: ``GET /cds-services`` (discovery) and ``POST /cds-services/wardtwin-deterioration``
(``patient-view``), answering a card made by ``app.interop.cds_hooks``. Roles ehr and clinician, the one API key
step (an EHR configures the key as the service's bearer credential)."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Depends, Request
from pydantic import BaseModel, ConfigDict, Field

from app.alerts.store import OPEN_STATES
from app.api.auth import requires
from app.api.deps import ServiceDep
from app.api.fhir import public_base
from app.domain import Score
from app.errors import PatientNotFoundError
from app.interop import cds_hooks, fhir
from app.service import WardTwin
from app.urgency import LEVELS, BedUrgency, is_stale, last_data_at, level
from models.windows import WINDOW

router = APIRouter(tags=["cds-hooks"], dependencies=[Depends(requires("clinician", "ehr"))])


class HookContext(BaseModel):
    model_config = ConfigDict(extra="allow")
    patientId: str = Field(max_length=200, description="the patient in view (wardtwin's id, or its FHIR id)")
    userId: str | None = Field(None, max_length=200)


class HookRequest(BaseModel):
    """A CDS Hooks 2.0 call (other fields of the specification, e.g. fhirServer and prefetch, are accepted and not
    used: the service answers from its own data)."""

    model_config = ConfigDict(extra="allow")
    hook: Literal["patient-view"]
    hookInstance: str = Field(max_length=200)
    context: HookContext


class Link(BaseModel):
    label: str
    url: str
    type: Literal["absolute", "smart"]


class Card(BaseModel):
    uuid: str
    summary: str = Field(max_length=cds_hooks.MAX_SUMMARY)
    detail: str
    indicator: Literal["info", "warning", "critical"]
    source: dict[str, Any]
    links: list[Link]


class Cards(BaseModel):
    cards: list[Card]


@router.get("/cds-services", operation_id="cds_hooks_discovery", summary="CDS Hooks discovery")
async def discovery() -> dict[str, Any]:
    return cds_hooks.discovery()


async def _band(wt: WardTwin, patient_id: str, score: Score) -> tuple[str, bool, list[str]]:
    """The bed's clinical-response level as the board ranks it, whether its data is stale, its open alerts."""
    alerts = [a for a in await wt.alerts(patient_id=patient_id, state=None, kind=None, limit=100)
              if a.state in OPEN_STATES]
    now, cadence = wt.now(), timedelta(minutes=wt.settings.board_stale_after_min)
    windows = await wt.stored_windows(patient_id, now - cadence - WINDOW, now + WINDOW)
    measures = windows.drop(columns=["patient_id", "start", "hr_count"], errors="ignore")
    held = (windows["hr_count"].fillna(0) > 0) | measures.notna().any(axis=1) if len(windows) else []
    starts = [ts.to_pydatetime() for ts in windows["start"][held]] if len(windows) else []
    recent = await wt.store.readings([patient_id], now - 2 * WINDOW, now + WINDOW)  # the board's exact last time
    last = recent["ts"].max().to_pydatetime() if len(recent) else last_data_at(starts, WINDOW)
    stale = is_stale(last, now, cadence)
    bed = BedUrgency(patient_id, score.news2.band if score.news2 else None, score.risk, None,
                     tuple((a.kind, (getattr(a, "news2", None) or {}).get("band")) for a in alerts), stale)
    return LEVELS[level(bed)], stale, [f"{a.kind} ({a.state})" for a in alerts]


@router.post("/cds-services/wardtwin-deterioration", operation_id="cds_hooks_patient_view",
             response_model=Cards, summary="patient-view: the patient's deterioration card")
async def patient_view(request: Request, wt: ServiceDep, call: Annotated[HookRequest, Body()]) -> Cards:
    patient_id = fhir.patient_id_of(call.context.patientId.removeprefix("Patient/"))
    if patient_id is None:
        return Cards(cards=[])
    request.scope.setdefault("state", {})["audit_target"] = f"patient:{patient_id}"
    try:
        score = await wt.latest_score(patient_id)
    except PatientNotFoundError:
        return Cards(cards=[])  # not on a monitored ward (or not scored yet): nothing to say
    band, stale, open_alerts = await _band(wt, patient_id, score)
    board_url = f"{public_base(request)}/patients/{patient_id}"
    return Cards(cards=[Card(**cds_hooks.card(score, band, stale, open_alerts, board_url))])
