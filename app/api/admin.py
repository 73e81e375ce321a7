"""Admin routes: API keys (create, list, revoke) and the audit trail (read only; nothing edits it). Key times are
wall-clock times, like the audit's (the service clock may be simulated)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Request
from pydantic import BaseModel, Field

from app.api.auth import requires
from app.api.deps import AccessDep, ServiceDep
from app.errors import InvalidRequestError, KeyConflictError
from app.security.keys import MAX_SCOPE_PATTERNS, SCOPE_PATTERN, LastAdminKeyError, Role

router = APIRouter(tags=["admin"], dependencies=[Depends(requires("admin"))])

KEY_ID_PATTERN = r"^[0-9a-f]{12}$"
NAME_PATTERN = r"^[\w .@'()/-]+$"


class KeyIn(BaseModel):
    model_config = {"extra": "forbid", "strict": True}

    name: str = Field(min_length=1, max_length=64, pattern=NAME_PATTERN,
                      description="who holds the key, as audit records and acknowledgements show it")
    role: Role
    scope: list[Annotated[str, Field(pattern=SCOPE_PATTERN)]] | None = Field(
        default=None, min_length=1, max_length=MAX_SCOPE_PATTERNS,
        description="device keys only: the patient ids this key may write, as prefixes or globs (`bed-0*`, "
                    "`ward7-*`, `bed-1?`); readings for any other patient are refused item by item (issue 21). "
                    "Absent: every patient")


class KeyOut(BaseModel):
    id: str
    name: str
    role: Role
    created_at: str
    revoked_at: str | None = None
    scope: list[str] | None = None


class NewKeyOut(KeyOut):
    token: str = Field(description="the key itself: shown once, only its SHA-256 is stored")


class AuditOut(BaseModel):
    seq: int
    at: str
    key_id: str | None
    key_name: str | None
    role: str | None
    action: str = Field(description="method and route, e.g. GET /v1/patients/{patient_id}/risk")
    target: str | None = Field(description="the patient, alert or key acted on")
    status: int | None
    remote: str | None = Field(description="the client's address")


@router.post("/v1/keys", response_model=NewKeyOut, status_code=201, summary="Create an API key (token shown once)")
async def create_key(request: Request, access: AccessDep, body: KeyIn) -> NewKeyOut:
    keys = access.keys
    try:
        key, token = await asyncio.to_thread(keys.create, body.name, body.role, datetime.now(UTC), body.scope)
    except ValueError as exc:
        raise InvalidRequestError(["body", "scope"], str(exc), "scope") from None
    request.state.audit_target = f"key:{key.id}"
    return NewKeyOut(**key.__dict__, token=token)


@router.get("/v1/keys", response_model=list[KeyOut], summary="Every key (never the tokens)")
async def list_keys(access: AccessDep) -> list[KeyOut]:
    return [KeyOut(**k.__dict__) for k in await asyncio.to_thread(access.keys.list)]


@router.post("/v1/keys/{key_id}/revoke", response_model=KeyOut, summary="Revoke a key (at once)")
async def revoke_key(access: AccessDep, wt: ServiceDep,
                     key_id: Annotated[str, Path(pattern=KEY_ID_PATTERN)]) -> KeyOut:
    """The next request with the key is refused; its open alert WebSockets are closed now (issue 21)."""
    try:
        key = await asyncio.to_thread(access.keys.revoke, key_id, datetime.now(UTC), keep_an_admin=access.keep_an_admin)
    except LastAdminKeyError as exc:
        raise KeyConflictError(str(exc)) from None
    wt.hub.revoke_key(key.id)
    return KeyOut(**key.__dict__)


@router.get("/v1/audit", response_model=list[AuditOut], summary="The audit trail, oldest first")
async def get_audit(
    access: AccessDep,
    key_name: Annotated[str | None, Query(max_length=64)] = None,
    target: Annotated[str | None, Query(max_length=80, description="e.g. patient:bed-01, alert:…, key:…")] = None,
    after: Annotated[int, Query(ge=0, le=2**62, description="entries after this sequence number")] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
) -> list[AuditOut]:
    entries = await asyncio.to_thread(access.audit.query, key_name=key_name, target=target,
                                      after=after, limit=limit)
    return [AuditOut(**e.__dict__) for e in entries]
