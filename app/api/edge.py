"""The hardened edge, one ASGI middleware in front of every route: request-size limit (413), JSON-only bodies
(415), security headers on every answer, and the audit entry of an audited request once its status is known.

Bodies are buffered up to ``max_body_bytes`` (a declared ``Content-Length`` above it is refused unread), so an
oversized body is never parsed and never echoed; a body that pauses longer than ``Settings.http_body_timeout_s``
between chunks is answered 408 (H22). Authentication runs before the edge (``app.api.auth``): a request
that may carry a body and has no valid key is refused there, its body unread (issue 21).

The audit entry is handed to the group commit once the answer is sent (``Settings.audit_commit`` ``after_answer``),
or, under ``before_answer`` (the default), recorded when the route starts its answer: the answer's start waits for
the row's commit, and a failed commit sends a 503 instead of the route's answer (its body is dropped). The row
records the route's status, which is then the status sent; a withheld answer's row is the one that failed, so the
trail has no row for it: the next ``AUDIT unwritable`` row's ``lost:N`` counts it (``app.security.audit_writer``).
Only the requests ``requires`` audits are held (``HELD``); a device write's row always follows its answer.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re
from base64 import b64encode
from pathlib import Path

import orjson
from starlette.datastructures import Headers
from starlette.routing import Match, Mount
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.api.errors import problem, problem_bytes
from app.errors import PayloadTooLargeError, StoreUnavailableError, UnsupportedMediaTypeError, WardTwinError
from app.security.access import Access
from app.security.keys import Principal

logger = logging.getLogger(__name__)

_JSON = re.compile(r"^application/(?:[\w.+-]+\+)?json\s*(?:;.*)?$", re.IGNORECASE)
#: Routes that also take ``text/plain`` (InfluxDB line protocol). Still no cross-site risk: a browser's "simple"
#: cross-origin post cannot carry the ``Authorization`` header every such route requires.
#: ``/v1/hl7`` also takes HL7 v2's ER7 media types.
_TEXT = re.compile(r"^(?:text/plain|application/hl7-v2|x-application/hl7-v2\+er7)\s*(?:;.*)?$", re.IGNORECASE)
TEXT_PATHS = frozenset({"/v1/write", "/v1/hl7"})
_TARGETS = ("patient_id", "alert_id", "key_id", "webhook_id")
#: Swagger UI and ReDoc load their scripts from the package (``app/static/vendor``) and start them inline.
_DOCS_CSP = ("default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
             "img-src 'self' data:; font-src 'self'; worker-src blob:; frame-ancestors 'none'; base-uri 'none'; "
             "form-action 'none'")


def board_csp(static_dir: Path) -> str:
    """The board's CSP: its own inline scripts by hash (read at start-up), nothing from elsewhere."""
    index = static_dir / "index.html"
    scripts = re.findall(r"<script>(.*?)</script>", index.read_text(), re.DOTALL) if index.is_file() else []
    hashes = " ".join(f"'sha256-{b64encode(hashlib.sha256(s.encode()).digest()).decode()}'" for s in scripts)
    return (f"default-src 'self'; script-src 'self' {hashes}; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
            "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'")


#: Query parameters that carry a credential in some client or other (the board's one-time ``/?key=``, OAuth's
#: ``access_token``, ``api_key`` conventions), any case: their values never reach a log line (issue 21, finding 11).
_KEY_IN_QUERY = re.compile(
    r"([?&;](?:key|api[_-]?key|apikey|access[_-]?token|token|auth|authorization|password|secret)=)[^&;\s\"']*",
    re.IGNORECASE)
#: uvicorn's loggers whose lines carry a request's path with its query: the access log (HTTP) and the error log
#: (``"WebSocket /v1/ws/alerts?token=..." [accepted]``, and its 403s).
_LOGGERS_WITH_PATHS = ("uvicorn.access", "uvicorn.error")


def redact_query_keys(text: str) -> str:
    return _KEY_IN_QUERY.sub(r"\1[redacted]", text)


class RedactKeys(logging.Filter):
    """Removes the value of every credential-like query parameter (``_KEY_IN_QUERY``) from log lines."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(redact_query_keys(a) if isinstance(a, str) else a for a in record.args)
        if isinstance(record.msg, str) and "=" in record.msg:
            record.msg = redact_query_keys(record.msg)
        return True


def redact_keys_in_access_logs() -> None:
    """Install ``RedactKeys`` on uvicorn's loggers (once). Filters survive uvicorn's ``dictConfig`` of them."""
    for name in _LOGGERS_WITH_PATHS:
        logger_ = logging.getLogger(name)
        if not any(isinstance(f, RedactKeys) for f in logger_.filters):
            logger_.addFilter(RedactKeys())


def _error(exc: WardTwinError, status: int) -> tuple[int, bytes]:
    """The problem details (``application/problem+json``) of an early refusal."""
    return status, problem_bytes(exc)[1]


#: What a withheld answer sends instead (``before_answer``, its audit row not committed): 503 with ``Retry-After``.
_WITHHELD = problem_bytes(StoreUnavailableError("the audit trail cannot be written; the answer is withheld"))
_WITHHELD_HEADERS = [*_WITHHELD[2], (b"content-length", str(len(_WITHHELD[1])).encode())]


def audit_before_answer(scope: Scope) -> bool:
    """Whether the app serving ``scope`` holds each audited answer until its audit row commits
    (``Settings.audit_commit``)."""
    return scope["app"].state.wardtwin.settings.audit_commit == "before_answer"


#: Set in a request's state by ``requires`` (reads, decisions, key changes: the routes the breaker refuses): the
#: answers ``before_answer`` holds. A device write's row (``app.api.device_writes``) is never held: readings are
#: not refused for the audit (hazard H27).
HELD = "audit_held"


class BoardMount(Mount):
    """The board's static files at ``/``, except under ``/v1/`` and ``/healthz``: there the API's router answers
    (a wrong method on an API path is a 405 with ``Allow``, an unknown API path a JSON 404)."""

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        path = scope.get("path", "")
        if path.startswith("/v1/") or path == "/healthz":
            return Match.NONE, {}
        return super().matches(scope)


class Edge:
    def __init__(self, app: ASGIApp, *, access: Access, max_body_bytes: int, csp: str) -> None:
        self.app, self.access = app, access
        self.max_body, self.csp = max_body_bytes, csp
        self._extra = self._security_headers(csp)
        self._docs_extra = self._security_headers(_DOCS_CSP)
        self._extra_names = frozenset(name for name, _ in self._extra)  # the same names in both

    @staticmethod
    def _security_headers(csp: str) -> list[tuple[bytes, bytes]]:
        return [(b"content-security-policy", csp.encode()), (b"x-frame-options", b"DENY"),
                (b"x-content-type-options", b"nosniff"), (b"referrer-policy", b"no-referrer"),
                (b"cache-control", b"no-store")]

    def _headers(self, path: str) -> list[tuple[bytes, bytes]]:
        return self._docs_extra if path in ("/docs", "/redoc") else self._extra

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        extra = self._headers(scope["path"])
        status_seen: list[int] = []
        held: list[bool] = []  # before_answer: whether the row committed, once the answer started

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                status_seen.append(message["status"])
                state = scope.get("state")
                if state and state.get(HELD) and audit_before_answer(scope):
                    held.append(await self._committed(scope, message["status"]))
                    if not held[0]:  # withheld: a 503 now, the route's body dropped below
                        message = {"type": "http.response.start", "status": _WITHHELD[0],
                                   "headers": _WITHHELD_HEADERS}
                headers = message.get("headers", [])
                names = {k.lower() for k, _ in headers}
                message["headers"] = [*headers, *extra] if names.isdisjoint(self._extra_names) else \
                    [*headers, *(h for h in extra if h[0] not in names)]
                await send(message)
                if held and not held[0]:
                    await send({"type": "http.response.body", "body": _WITHHELD[1]})
            elif not held or held[0]:
                await send(message)

        refusal = None
        if scope["method"] in ("POST", "PUT", "PATCH", "DELETE"):
            refusal, receive = await self._check_body(Headers(scope=scope), receive, scope["path"] in TEXT_PATHS,
                                                      scope["app"].state.wardtwin.settings.http_body_timeout_s)
        if refusal is not None:
            await self._refuse(refusal, send_with_headers)
        else:
            await self.app(scope, receive, send_with_headers)
        if not held:  # recorded before the answer already (before_answer)
            self._audit(scope, status_seen[0] if status_seen else None)

    async def _check_body(self, headers: Headers, receive: Receive, text_ok: bool,
                          timeout_s: float) -> tuple[tuple[int, bytes] | None, Receive]:
        """Reads the whole body (the one place it is read); ``timeout_s``: the longest pause before each chunk
        (``Settings.http_body_timeout_s``, H22), else a 408 and the connection closed (the rest is never waited for)."""
        declared = headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_body:
            return _error(PayloadTooLargeError(f"the body is larger than {self.max_body} bytes"), 413), receive
        chunks, size, more = [], 0, True
        while more:
            try:
                async with asyncio.timeout(timeout_s):
                    message = await receive()
            except TimeoutError:
                detail = f"the request body paused for longer than {timeout_s:g} s"
                return (408, orjson.dumps(problem(408, "request_timeout", detail))), receive
            if message["type"] != "http.request":
                return None, receive  # the client went away; let the app see the disconnect
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body:
                return _error(PayloadTooLargeError(f"the body is larger than {self.max_body} bytes"), 413), receive
            chunks.append(chunk)
            more = message.get("more_body", False)
        body = b"".join(chunks)
        content_type = headers.get("content-type", "")
        if body and not _JSON.match(content_type) and not (text_ok and _TEXT.match(content_type)):
            return _error(UnsupportedMediaTypeError("the body must be JSON (Content-Type: application/json)"),
                          415), receive
        sent = False

        async def replay() -> Message:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        return None, replay

    @staticmethod
    async def _refuse(refusal: tuple[int, bytes], send: Send) -> None:
        status, body = refusal
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", b"application/problem+json"),
                                (b"content-length", str(len(body)).encode()), (b"connection", b"close")]})
        await send({"type": "http.response.body", "body": body})

    def _audit(self, scope: Scope, status: int | None) -> None:
        """Hands the entry over without waiting for its commit (``AuditWriter``): the answer is already sent."""
        state = scope.get("state") or {}
        if state.get("audit"):
            self.access.submit(*_entry(scope, status))

    async def _committed(self, scope: Scope, status: int) -> bool:
        """Records the entry and waits for its batch's commit (``before_answer``): False if the commit failed (the
        writer logged it and set ``failing``)."""
        try:
            await self.access.record(*_entry(scope, status))
        except Exception:  # any failure of the commit: this answer cannot be audited
            return False
        return True


def _entry(scope: Scope, status: int | None) -> tuple[Principal | None, str, str | None, int | None, str | None]:
    """An audited request's entry: who, the route, what it concerns, ``status`` and the client's address."""
    state = scope.get("state") or {}
    route = scope.get("route")
    action = f"{scope['method']} {getattr(route, 'path', scope['path'])}"
    params = scope.get("path_params") or {}
    target = state.get("audit_target") or next(
        (f"{name.removesuffix('_id')}:{params[name]}" for name in _TARGETS if name in params), None)
    client = scope.get("client")
    return scope.get("user"), action, target, status, client[0] if client else None
