"""Webhook endpoints for nurse-call systems (admin): register, list, delete, dead letters, redeliver.

Deliveries are signed per the Standard Webhooks specification (``app.alerts.webhooks``)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Path, Query, Response
from pydantic import AnyHttpUrl, BaseModel, Field, UrlConstraints

from app.alerts.webhooks import EVENT_TYPES
from app.api.auth import requires
from app.api.deps import ServiceDep
from app.errors import InvalidRequestError
from app.security.outbound import MAX_URL_LENGTH, OutboundPolicy, OutboundRefused

router = APIRouter(tags=["webhooks"], dependencies=[Depends(requires("admin"))])

EventType = Literal["alert.raised", "alert.escalated", "alert.renotified", "alert.acknowledged", "alert.resolved"]
assert set(EventType.__args__) == set(EVENT_TYPES.values())  # type: ignore[attr-defined]
ID_PATTERN = r"^[A-Za-z0-9_]{1,64}$"
#: 'whsec_' + base64 of 24–64 bytes, in the schema so a client (and Schemathesis) knows what is accepted.
SECRET_PATTERN = (r"^whsec_(?:(?:[A-Za-z0-9+/]{4}){8,20}(?:[A-Za-z0-9+/]{3}=|[A-Za-z0-9+/]{2}==)?"
                  r"|(?:[A-Za-z0-9+/]{4}){21}(?:[A-Za-z0-9+/]{2}==)?)$")


class WebhookIn(BaseModel):
    url: Annotated[AnyHttpUrl, UrlConstraints(max_length=MAX_URL_LENGTH)] = Field(
        description="http(s) URL the signed POSTs go to: no credentials in it; loopback, private, link-local and "
                    "metadata addresses only when the operator allow-lists them", examples=["https://nursecall.example/hook"])
    secret: str = Field(min_length=30, max_length=100, pattern=SECRET_PATTERN,
                        description="Standard Webhooks secret: 'whsec_' + base64 of 24–64 random bytes",
                        examples=["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"])
    events: list[EventType] = Field(min_length=1, max_length=5, description="event types to receive")


class WebhookOut(BaseModel):
    id: str
    url: str
    events: list[str]
    created_at: datetime
    pending: int = 0
    delivered: int = 0
    dead: int = 0


class DeliveryOut(BaseModel):
    id: str = Field(description="the webhook-id header: the same on every attempt")
    endpoint_id: str
    seq: int
    alert_id: str
    event_type: str
    status: str
    attempts: int
    last_status: int | None
    last_error: str | None
    created_at: datetime
    delivered_at: datetime | None
    dead_at: datetime | None


@router.post("/v1/webhooks", status_code=201, response_model=WebhookOut, summary="Register a webhook endpoint")
async def create_webhook(wt: ServiceDep, body: WebhookIn) -> WebhookOut:
    """The URL passes the outbound guard (``app.security.outbound``: checked again after DNS on every delivery)."""
    try:
        OutboundPolicy.from_settings(wt.settings).check_url(str(body.url))
    except OutboundRefused as exc:
        raise InvalidRequestError(["body", "url"], str(exc), "url_refused") from None
    endpoint = await wt.webhooks.create(str(body.url), body.secret, sorted(set(body.events)))
    if wt.webhook_worker is not None:
        wt.webhook_worker.wake()
    return WebhookOut(id=endpoint.id, url=endpoint.url, events=endpoint.events, created_at=endpoint.created_at)


@router.get("/v1/webhooks", response_model=list[WebhookOut], summary="Registered endpoints (secrets not shown)")
async def list_webhooks(wt: ServiceDep) -> list[WebhookOut]:
    counts = await wt.webhooks.counts()
    return [WebhookOut(id=e.id, url=e.url, events=e.events, created_at=e.created_at,
                       **{k: counts.get(e.id, {}).get(k, 0) for k in ("pending", "delivered", "dead")})
            for e in await wt.webhooks.endpoints()]


@router.get("/v1/webhooks/dead-letters", response_model=list[DeliveryOut],
            summary="Deliveries that ran out of retries")
async def dead_letters(wt: ServiceDep, limit: Annotated[int, Query(ge=1, le=1000)] = 500) -> list[DeliveryOut]:
    return [DeliveryOut(**d.to_dict()) for d in await wt.webhooks.list("dead", limit)]


@router.post("/v1/webhooks/dead-letters/{delivery_id}/redeliver", status_code=202, response_model=DeliveryOut,
             summary="Queue a dead letter again (same webhook-id, fresh retry budget)")
async def redeliver(wt: ServiceDep, delivery_id: Annotated[str, Path(pattern=ID_PATTERN)]) -> DeliveryOut:
    delivery = await wt.webhooks.redeliver(delivery_id)
    if wt.webhook_worker is not None:
        wt.webhook_worker.wake()
    return DeliveryOut(**delivery.to_dict())


@router.delete("/v1/webhooks/{endpoint_id}", status_code=204, summary="Stop delivering to an endpoint")
async def delete_webhook(wt: ServiceDep, endpoint_id: Annotated[str, Path(pattern=ID_PATTERN)]) -> Response:
    await wt.webhooks.delete(endpoint_id)
    return Response(status_code=204)
