"""Alerts: list, acknowledge, resolve, and the WebSocket stream (replays from a sequence number)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Depends, Query, WebSocket
from pydantic import BaseModel, Field

from app.alerts.hub import CLOSE_BAD_REQUEST, parse_since
from app.api.auth import Caller, admission_of, admit_websocket, requires
from app.api.deps import ServiceDep
from app.api.schemas import AlertKind, AlertOut, AlertState, TransitionOut
from models.schema import PATIENT_ID_PATTERN

router = APIRouter(tags=["alerts"])
CLINICIAN = [Depends(requires("clinician"))]


@router.get("/v1/alerts", dependencies=CLINICIAN, response_model=list[AlertOut], summary="Alerts, newest first")
async def list_alerts(
    wt: ServiceDep,
    state: AlertState | None = None,
    kind: Annotated[AlertKind | None, Query(description="twin, news2 or criteria")] = None,
    patient_id: Annotated[str | None, Query(pattern=PATIENT_ID_PATTERN.pattern)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
) -> list[AlertOut]:
    alerts = await wt.alerts(patient_id=patient_id, state=state, kind=kind, limit=limit)
    return [AlertOut(**a.to_dict()) for a in alerts]


class ActionIn(BaseModel):
    """Who took the action at the screen (the key names the board, not the person) and an optional note."""

    model_config = {"extra": "forbid"}
    by: Annotated[str | None, Field(min_length=1, max_length=80, pattern=r"^[^\x00-\x1f\x7f]*\S[^\x00-\x1f\x7f]*$",
                                    description="the nurse's name or badge, recorded beside the key's name",
                                    examples=["S. Patel (badge 4411)"])] = None
    note: Annotated[str | None, Field(max_length=500, description="optional free text")] = None


#: The body is optional (no body: the key's name alone), documented as the object, not "object or null".
Action = Annotated[ActionIn, Body()]
NOBODY = ActionIn()


@router.post("/v1/alerts/{alert_id}/acknowledge", dependencies=CLINICIAN, response_model=AlertOut,
             summary="A nurse takes the alert (recorded as `<by> via <key's name>`, or the key's name)")
async def acknowledge(wt: ServiceDep, alert_id: str, who: Caller, body: Action = NOBODY) -> AlertOut:
    alert = await wt.acknowledge(alert_id, who.name, body.by and body.by.strip(), body.note or None)
    return AlertOut(**alert.to_dict())


@router.post("/v1/alerts/{alert_id}/resolve", dependencies=CLINICIAN, response_model=AlertOut,
             summary="Close the alert (recorded as resolved by `<by> via <key's name>`, or the key's name)")
async def resolve(wt: ServiceDep, alert_id: str, who: Caller, body: Action = NOBODY) -> AlertOut:
    alert = await wt.resolve(alert_id, who.name, body.by and body.by.strip(), body.note or None)
    return AlertOut(**alert.to_dict())


@router.get("/v1/alerts/{alert_id}/transitions", dependencies=CLINICIAN, response_model=list[TransitionOut],
            summary="Every transition of one alert, oldest first, with its time and actor")
async def transitions(wt: ServiceDep, alert_id: str) -> list[TransitionOut]:
    return [TransitionOut(**t) for t in await wt.transitions(alert_id)]


@router.websocket("/v1/ws/alerts")
async def alerts_socket(websocket: WebSocket, wt: ServiceDep, since: str | None = None, ward: bool = False,
                        batch: bool = False) -> None:
    """Every alert event as JSON ``{"type": "event", "seq", "event", "alert"}``; the client acknowledges receipt
    with ``{"type": "ack", "seq": N}``. ``?since=SEQ`` first replays every later event in pages, each followed by
    ``{"type": "replay", "through", "more"}``; ``?ward=1`` adds ``{"type": "ward", ...}`` after each cycle;
    ``?batch=1`` lets live events ready together share one ``{"type": "events", "events": [...]}`` frame
    (protocol: ``app.alerts.hub``)."""
    who = await admit_websocket(websocket)  # checks Origin and the principal; accepts the socket on success
    if who is None:
        return
    try:
        cursor = parse_since(since)
    except ValueError as exc:
        await websocket.close(code=CLOSE_BAD_REQUEST, reason=str(exc))
        return
    await wt.hub.serve(websocket, cursor, ward=ward, batch=batch, key_id=who.key_id,  # closed if it is revoked
                       still_admitted=admission_of(websocket))
