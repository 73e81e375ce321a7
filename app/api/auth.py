"""Authentication and authorisation at the edge: ``requires(*roles)`` for routes, ``authenticate_websocket``.

A request carries ``Authorization: Bearer <key>``. The key's principal is checked against the route's roles
(401 without a valid key, 403 for a role the route does not allow), then rate-limited per key (429). The
principal is left in ``request.state.principal``; audited routes also set ``request.state.audit``, and
``app.api.edge`` appends the entry once the status is known. Keys are never logged.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Annotated
from urllib.parse import urlsplit

from fastapi import Depends, Request, Security, WebSocket, WebSocketDisconnect
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from fastapi.security.utils import get_authorization_scheme_param

from app.errors import AuthenticationError, PermissionDeniedError, RateLimitedError
from app.security.access import Access
from app.security.keys import ROLES, Principal

logger = logging.getLogger(__name__)

bearer = HTTPBearer(auto_error=False, scheme_name="api_key",
                    description="An API key (`wardtwin keys create`): `Authorization: Bearer wt_…`")
#: How long a WebSocket without a key header may take to send its ``{"key": ...}`` first message.
WS_AUTH_TIMEOUT_S = 10.0
WS_POLICY_VIOLATION = 1008


def bearer_token(authorization: str | None) -> str | None:
    """The key in an ``Authorization`` header value, read exactly as ``bearer`` (``HTTPBearer``) reads it."""
    scheme, credentials = get_authorization_scheme_param(authorization)
    if not (authorization and scheme and credentials) or scheme.lower() != "bearer":
        return None
    return credentials


def access_of(request: Request | WebSocket) -> Access:
    return request.app.state.access


def requires(*roles: str, audited: bool = True) -> Callable[..., Awaitable[Principal]]:
    """A dependency admitting a key with any of ``roles``: ``dependencies=[Depends(requires("admin"))]``, or a
    parameter ``who: Annotated[Principal, Depends(requires("clinician"))]``. ``audited=False`` for the
    high-volume device writes, which are not reads of a patient and carry no decision."""
    unknown = set(roles) - set(ROLES)
    if unknown or not roles:
        raise ValueError(f"roles must be among {ROLES}, got {roles}")
    allowed = frozenset(roles)

    async def dependency(request: Request,
                         credentials: Annotated[HTTPAuthorizationCredentials | None, Security(bearer)]) -> Principal:
        principal: Principal | None = getattr(request.state, "principal", None)
        if principal is None:  # the first requires() of this request authenticates and spends the rate limit
            access = access_of(request)
            principal = await access.authenticate(credentials.credentials if credentials else None)
            if principal is None:
                raise AuthenticationError("a valid API key is required: Authorization: Bearer <key>")
            request.state.principal = principal
            if audited:
                request.state.audit = True
            retry_after = access.limiter.take(principal.key_id)
            if retry_after is not None:
                raise RateLimitedError(retry_after)
        if not principal.roles & allowed:
            needs = " or ".join(sorted(allowed))
            raise PermissionDeniedError(f"a {principal.role} key may not do this (needs {needs})")
        return principal

    dependency.roles = allowed  # type: ignore[attr-defined]  # read by the route table test
    return dependency


def principal(request: Request) -> Principal:
    """The authenticated principal of this request (after a ``requires`` dependency)."""
    return request.state.principal


Caller = Annotated[Principal, Depends(principal)]


def origin_allowed(origin: str, host: str | None, allowed: tuple[str, ...]) -> bool:
    """The service's own origin (same host and port as the ``Host`` header) or one configured."""
    if origin.rstrip("/") in {o.rstrip("/") for o in allowed}:
        return True
    return host is not None and urlsplit(origin).netloc.lower() == host.lower()


async def authenticate_websocket(websocket: WebSocket, roles: tuple[str, ...] = ("clinician",)) -> Principal | None:
    """Check the ``Origin``, accept, and authenticate: ``Authorization: Bearer`` on the handshake, or a first
    message ``{"key": "..."}`` (browsers cannot set headers). Returns the principal with the socket accepted, or
    None with the socket closed (1008): the handler then just returns. The key is never logged."""
    access = access_of(websocket)
    origin = websocket.headers.get("origin")
    if origin is not None and not origin_allowed(origin, websocket.headers.get("host"), access.ws_origins):
        logger.warning("websocket refused: origin not allowed")
        await websocket.close(code=WS_POLICY_VIOLATION)  # before accept: the handshake is answered 403
        return None
    header = websocket.headers.get("authorization", "")
    token = header[7:].strip() if header[:7].lower() == "bearer " else None
    await websocket.accept()
    if token is None:
        with contextlib.suppress(asyncio.TimeoutError, WebSocketDisconnect, json.JSONDecodeError, RuntimeError):
            first = json.loads(await asyncio.wait_for(websocket.receive_text(), WS_AUTH_TIMEOUT_S))
            token = first.get("key") if isinstance(first, dict) and isinstance(first.get("key"), str) else None
    who = await access.authenticate(token)
    reason = "a valid API key is required" if who is None else \
        None if who.roles & set(roles) else f"a {who.role} key may not open this stream"
    if reason is not None:
        with contextlib.suppress(RuntimeError):
            await websocket.close(code=WS_POLICY_VIOLATION, reason=reason)
        return None
    client = websocket.client.host if websocket.client else None
    await access.record(who, f"WS {websocket.url.path}", None, 101, client)
    return who
