"""Alerts: list, acknowledge, resolve, and the WebSocket stream (replays from a sequence number)."""

from __future__ import annotations

import contextlib
from typing import Annotated

from fastapi import APIRouter, Query, Request, WebSocket, WebSocketDisconnect

from app.api.deps import service
from app.api.schemas import AcknowledgeIn, AlertKind, AlertOut, AlertState
from models.schema import PATIENT_ID_PATTERN

router = APIRouter(tags=["alerts"])


@router.get("/v1/alerts", response_model=list[AlertOut], summary="Alerts, newest first")
async def list_alerts(
    request: Request,
    state: AlertState | None = None,
    kind: Annotated[AlertKind | None, Query(description="twin, news2 or criteria")] = None,
    patient_id: Annotated[str | None, Query(pattern=PATIENT_ID_PATTERN.pattern)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
) -> list[AlertOut]:
    alerts = await service(request).alert_store.list(patient_id=patient_id, state=state, kind=kind, limit=limit)
    return [AlertOut(**a.to_dict()) for a in alerts]


@router.post("/v1/alerts/{alert_id}/acknowledge", response_model=AlertOut, summary="A nurse takes the alert")
async def acknowledge(request: Request, alert_id: str, body: AcknowledgeIn) -> AlertOut:
    wt = service(request)
    alert = await wt.alert_store.acknowledge(alert_id, body.by, wt.clock.now())
    wt.engine.wake()
    return AlertOut(**alert.to_dict())


@router.post("/v1/alerts/{alert_id}/resolve", response_model=AlertOut, summary="Close the alert")
async def resolve(request: Request, alert_id: str, body: AcknowledgeIn) -> AlertOut:
    wt = service(request)
    alert = await wt.alert_store.resolve(alert_id, wt.clock.now(), f"resolved by {body.by}")
    wt.engine.wake()
    return AlertOut(**alert.to_dict())


@router.websocket("/v1/ws/alerts")
async def alerts_socket(websocket: WebSocket, since: int | None = None) -> None:
    """Every alert event as JSON ``{"seq", "event", "alert"}``. ``?since=SEQ`` first replays later events."""
    wt = websocket.app.state.wardtwin
    await websocket.accept()
    if since is not None:
        for event in await wt.alert_store.events_after(since):
            await websocket.send_json({"seq": event.seq, **event.payload})
    wt.hub.add(websocket)
    wt.engine.wake()
    try:
        while True:
            await websocket.receive_text()  # clients may send pings; we only need to notice the close
    except WebSocketDisconnect:
        pass
    finally:
        wt.hub.remove(websocket)
        with contextlib.suppress(Exception):
            await websocket.close()
