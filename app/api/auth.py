"""One authentication step per HTTP request and WebSocket connection; routes only check roles.

Shaped like Starlette's ``AuthenticationMiddleware``: ``Authenticate`` (pure ASGI, in front of every route) reads
the credential with the one parser (``bearer_token``: ``Authorization: Bearer <key>``, the scheme in any case),
asks ``Access.authenticate`` once, and leaves the answer in the scope::

    scope["user"]  the Principal, or None
    scope["auth"]  Authentication(principal, presented, error)

A WebSocket that sent no ``Authorization`` header (browsers cannot set one) may send its key as its first message
``{"key": "..."}`` (``message_token``); ``admit_websocket`` reads it after the handshake and asks the same
``Access.authenticate``.

Routes only check: ``requires(*roles)`` is a dependency (and the OpenAPI ``api_key`` security scheme) that answers
401 without a valid key, then spends the key's rate limit once per request (429), then 403 for a role the route
does not allow. Audited routes set ``scope["state"]["audit"]``; ``app.api.edge`` appends the entry once the status
is known (under ``Settings.audit_commit = "before_answer"``, before it sends the answer: ``edge.HELD``). Keys are
never logged.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import logging
from collections.abc import Awaitable, Callable, Iterable
from typing import Annotated, NamedTuple
from urllib.parse import urlsplit

from fastapi import Depends, Request, WebSocket, WebSocketDisconnect
from fastapi.openapi.models import HTTPBearer as HTTPBearerModel
from fastapi.security.base import SecurityBase
from starlette.requests import HTTPConnection
from starlette.types import ASGIApp, Receive, Scope, Send

from app.api.edge import HELD, audit_before_answer
from app.api.errors import problem_bytes
from app.errors import (
    AuthenticationError,
    PermissionDeniedError,
    RateLimitedError,
    StoreUnavailableError,
    WardTwinError,
)
from app.security.access import Access
from app.security.keys import ROLES, Principal

logger = logging.getLogger(__name__)

#: How long a WebSocket without a key header may take to send its ``{"key": ...}`` first message.
WS_AUTH_TIMEOUT_S = 10.0
WS_POLICY_VIOLATION = 1008
SCHEME_NAME = "api_key"
_SCHEME = HTTPBearerModel(description="An API key (`wardtwin keys create`): `Authorization: Bearer wt_…`")


class Authentication(NamedTuple):
    """What the authentication step found: the principal (None: no valid key), whether a credential was presented
    at all, and the error that kept it from being checked (the key store unavailable: a 503 where a key is
    required)."""

    principal: Principal | None
    presented: bool
    error: WardTwinError | None = None


NOBODY = Authentication(None, False)


def bearer_token(headers: Iterable[tuple[bytes, bytes]]) -> str | None:
    """The key of the first ``Authorization`` header in ASGI ``headers``, if it is ``Bearer <key>`` (the scheme in
    any case, the key stripped), else None."""
    for name, value in headers:
        if name == b"authorization":  # ASGI header names are lower-case
            scheme, _, key = value.decode("latin-1").partition(" ")
            key = key.strip()
            return key if key and scheme.lower() == "bearer" else None
    return None


def message_token(text: str) -> str | None:
    """The key of a WebSocket's first message ``{"key": "..."}``, else None."""
    with contextlib.suppress(json.JSONDecodeError):
        first = json.loads(text)
        if isinstance(first, dict) and isinstance(first.get("key"), str):
            return first["key"]
    return None


class Authenticate:
    """The authentication step (pure ASGI): every HTTP request and WebSocket handshake, once."""

    def __init__(self, app: ASGIApp, *, access: Access) -> None:
        self.app, self.access = app, access

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket"):
            token = bearer_token(scope["headers"])
            auth = NOBODY
            if token is not None:
                try:
                    auth = Authentication(await self.access.authenticate(token), True)
                except WardTwinError as exc:  # raised again by the check of a route that needs a key
                    auth = Authentication(None, True, exc)
            scope["auth"], scope["user"] = auth, auth.principal
            if scope["type"] == "http" and scope["method"] in BODY_METHODS and auth.principal is None:
                if auth.error is None:
                    audit_refusal(self.access, scope, token)
                await refuse_unread(auth.error or AuthenticationError(
                    "a valid API key is required: Authorization: Bearer <key>"), send)
                return
        await self.app(scope, receive, send)


#: Methods whose request may carry a body: refused unread without a valid key (issue 21, finding 7: 50 unauthenticated
#: 4 MiB bodies trickled in held 203 MB). Every such route needs a key; only ``/healthz`` is public, and it is a GET.
BODY_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


async def refuse_unread(exc: WardTwinError, send: Send) -> None:
    """Answer ``exc`` (401, or 503 when the key store is down) without reading the body, and close the connection
    (the unread body must not be parsed as the next request)."""
    status, body, headers = problem_bytes(exc)  # problem+json, with WWW-Authenticate or Retry-After
    headers += [(b"content-length", str(len(body)).encode()), (b"connection", b"close"),
                (b"x-content-type-options", b"nosniff"), (b"cache-control", b"no-store")]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def audit_refusal(access: Access, scope: Scope, token: str | None) -> None:
    """Audit a 401 (issue 21, finding 9): the request, the client's address and the presented key's prefix hash,
    never the key; capped per address and minute (``app.security.audit_refusals``)."""
    route = scope.get("route")
    action = f"{scope.get('method', 'WS')} {getattr(route, 'path', scope['path'])}"
    client = scope.get("client")
    access.audit_writer.refused(access.wall_clock.now(), action, token, client[0] if client else None)


def access_of(connection: HTTPConnection) -> Access:
    return connection.app.state.access


class Requires(SecurityBase):
    """A dependency admitting a key with any of ``roles`` (see ``requires``); also the route's OpenAPI security
    requirement (``api_key``, HTTP bearer)."""

    def __init__(self, roles: frozenset[str], audited: bool) -> None:
        self.model = _SCHEME
        self.scheme_name = SCHEME_NAME
        self.roles, self.audited = roles, audited

    async def __call__(self, request: Request) -> Principal:
        return self.check(request.scope)

    def check(self, scope: Scope) -> Principal:
        """401, then the rate limit (spent once per request, by its first check), then 403."""
        auth: Authentication = scope.get("auth", NOBODY)
        who = auth.principal
        state = scope.setdefault("state", {})
        if not state.get("admitted"):
            if auth.error is not None:
                raise auth.error
            if who is None:
                audit_refusal(scope["app"].state.access, scope, bearer_token(scope["headers"]))
                raise AuthenticationError("a valid API key is required: Authorization: Bearer <key>")
            state["admitted"] = True
            if self.audited:
                state["audit"] = state[HELD] = True
            retry_after = scope["app"].state.access.limiter.take(who.key_id)
            if retry_after is not None:
                raise RateLimitedError(retry_after)
        assert who is not None  # admitted
        if not who.roles & self.roles:
            needs = " or ".join(sorted(self.roles))
            raise PermissionDeniedError(f"a {who.role} key may not do this (needs {needs})")
        if self.audited:
            access = scope["app"].state.access
            if access.audit_writer.failing:  # fail closed (issue 21, finding 9): no read that cannot be audited
                access.audit_writer.probe(access.wall_clock.now())
                # before_answer: the edge withholds this answer unless its own row (after the probe) commits
                if not audit_before_answer(scope):
                    raise StoreUnavailableError("the audit trail cannot be written; audited requests are refused")
        return who


def requires(*roles: str, audited: bool = True) -> Requires:
    """A dependency admitting a key with any of ``roles``: ``dependencies=[Depends(requires("admin"))]``.
    ``audited=False`` for the high-volume device writes, which are not reads of a patient and carry no
    decision."""
    unknown = set(roles) - set(ROLES)
    if unknown or not roles:
        raise ValueError(f"roles must be among {ROLES}, got {roles}")
    return Requires(frozenset(roles), audited)


async def principal(request: Request) -> Principal:
    """The authenticated principal of this request (after a ``requires`` dependency admitted it)."""
    who = request.scope.get("user")
    assert who is not None, "Caller used on a route without requires()"
    return who


Caller = Annotated[Principal, Depends(principal)]


def origin_allowed(origin: str, host: str | None, allowed: tuple[str, ...]) -> bool:
    """An origin configured (``Settings.ws_allowed_origins``: list the service's public origin there when browsers
    reach it by a DNS name), or the service's own origin (same host and port as the ``Host`` header) when that host
    cannot be rebound: an IP literal, ``localhost`` or a dotless intranet name. A dotted name whose origin equals
    ``Host`` is not enough: under DNS rebinding an attacker's page at ``http://evil.example:8000`` sends exactly
    that pair (issue 21, finding 11)."""
    if origin.rstrip("/").lower() in {o.rstrip("/").lower() for o in allowed}:
        return True
    if host is None or urlsplit(origin).netloc.lower() != host.lower():
        return False
    name = (urlsplit(origin).hostname or "").rstrip(".")
    return _unrebindable(name)


def _unrebindable(name: str) -> bool:
    """An IP literal, ``localhost`` (and its subdomains, which resolve to loopback: RFC 6761) or a dotless name."""
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return name == "localhost" or name.endswith(".localhost") or ("." not in name and name != "")
    return True


async def admit_websocket(websocket: WebSocket, roles: tuple[str, ...] = ("clinician",)) -> Principal | None:
    """Check the ``Origin``, accept, and check the principal the authentication step found, or the key of the
    first message when the handshake presented none. Returns the principal with the socket accepted, or None
    with the socket closed (1008): the handler then just returns. The key is never logged."""
    access = access_of(websocket)
    origin = websocket.headers.get("origin")
    if origin is not None and not origin_allowed(origin, websocket.headers.get("host"), access.ws_origins):
        logger.warning("websocket refused: origin not allowed")
        await websocket.close(code=WS_POLICY_VIOLATION)  # before accept: the handshake is answered 403
        return None
    await websocket.accept()
    auth: Authentication = websocket.scope.get("auth", NOBODY)
    if auth.error is not None:
        raise auth.error
    who = auth.principal
    token = bearer_token(websocket.scope["headers"])
    if not auth.presented:
        token = None
        with contextlib.suppress(asyncio.TimeoutError, WebSocketDisconnect, RuntimeError):
            token = message_token(await asyncio.wait_for(websocket.receive_text(), WS_AUTH_TIMEOUT_S))
        who = await access.authenticate(token)
        websocket.scope["auth"], websocket.scope["user"] = Authentication(who, token is not None), who
    reason = "a valid API key is required" if who is None else \
        None if who.roles & set(roles) else f"a {who.role} key may not open this stream"
    if reason is not None:
        if who is None:
            audit_refusal(access, websocket.scope, token)
        with contextlib.suppress(RuntimeError):
            await websocket.close(code=WS_POLICY_VIOLATION, reason=reason)
        return None
    client = websocket.client.host if websocket.client else None
    await access.record(who, f"WS {websocket.url.path}", None, 101, client)
    websocket.scope.setdefault("state", {})[_STILL_ADMITTED] = _admission(access, token)
    return who


_STILL_ADMITTED = "wardtwin.still_admitted"


def _admission(access: Access, token: str | None) -> Callable[[], Awaitable[bool]]:
    async def still_admitted() -> bool:
        """Whether the socket's key is still valid (a revocation from any process is seen: the key cache checks
        ``access.db``'s commit marker). A key store that cannot be read keeps the socket: alerts keep flowing."""
        try:
            return await access.authenticate(token) is not None
        except WardTwinError:
            return True

    return still_admitted


def admission_of(websocket: WebSocket) -> Callable[[], Awaitable[bool]] | None:
    """The re-check of an admitted WebSocket's key (``admit_websocket``), for the hub to ask before it sends and
    when it is sent an ack (issue 21, finding 6)."""
    return websocket.scope.get("state", {}).get(_STILL_ADMITTED)
