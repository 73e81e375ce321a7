"""Maps errors to HTTP once, as RFC 9457 problem details (``application/problem+json``); the most specific class in
the exception's MRO wins.

Every error of the JSON API has one shape (``/fhir`` answers OperationOutcome and ``/v1/hl7`` an HL7 ACK instead)::

    {"type": "https://wardtwin.dev/problems/reading-rejected",   the problem type (about:blank: just the status)
     "title": "Readings rejected",                                the type's summary, the same every time
     "status": 422,
     "detail": "2 of 5 readings rejected, 3 stored; readings[1].value: heart rate 400 ...",   for a person
     "code": "reading_rejected",                                  the domain code (``WardTwinError.code``)
     "errors": [{"loc": ["body", "readings", 1, "value"], "msg": "...", "type": "implausible"}],   item errors
     "accepted": 3, "rejected": 2}                                extra members where a batch is partly kept

The exception handlers here (``register``, once in ``create_app``) and the edge's own early answers (413/415 in
``app.api.edge``, 401 unread in ``app.api.auth``, through ``problem_bytes``) all build it with ``problem``.
"""

from __future__ import annotations

import logging
import math
from http import HTTPStatus
from typing import Any, Final

import orjson
from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from app.errors import (
    AlertConflictError,
    AlertNotFoundError,
    AuthenticationError,
    DeliveryConflictError,
    InvalidRequestError,
    KeyConflictError,
    KeyNotFoundError,
    PatientNotFoundError,
    PayloadTooLargeError,
    PermissionDeniedError,
    RateLimitedError,
    ReadingRejectedError,
    StoreUnavailableError,
    UnsupportedMediaTypeError,
    WardTwinError,
    WebhookNotFoundError,
)

logger = logging.getLogger(__name__)

STATUS: dict[type[WardTwinError], int] = {
    PatientNotFoundError: 404,
    AlertNotFoundError: 404,
    ReadingRejectedError: 422,
    InvalidRequestError: 422,
    AlertConflictError: 409,
    StoreUnavailableError: 503,
    KeyNotFoundError: 404,
    AuthenticationError: 401,
    PermissionDeniedError: 403,
    RateLimitedError: 429,
    PayloadTooLargeError: 413,
    UnsupportedMediaTypeError: 415,
    WebhookNotFoundError: 404,
    DeliveryConflictError: 409,
    KeyConflictError: 409,
    WardTwinError: 500,
}

PROBLEM_MEDIA_TYPE: Final = "application/problem+json"
#: Problem type URIs are this plus the code with dashes (``reading_rejected`` → ``.../reading-rejected``).
PROBLEM_BASE: Final = "https://wardtwin.dev/problems/"
INTERNAL_ERROR: Final = "internal_error"
#: Every problem type the JSON API answers, by code: its title (RFC 9457: the same for every occurrence).
TITLES: Final[dict[str, str]] = {
    PatientNotFoundError.code: "Patient not found",
    AlertNotFoundError.code: "Alert not found",
    ReadingRejectedError.code: "Readings rejected",
    InvalidRequestError.code: "Invalid request",
    AlertConflictError.code: "Alert state conflict",
    StoreUnavailableError.code: "Store unavailable",
    KeyNotFoundError.code: "API key not found",
    AuthenticationError.code: "Authentication required",
    PermissionDeniedError.code: "Permission denied",
    RateLimitedError.code: "Too many requests",
    PayloadTooLargeError.code: "Payload too large",
    UnsupportedMediaTypeError.code: "Unsupported media type",
    WebhookNotFoundError.code: "Webhook not found",
    DeliveryConflictError.code: "Delivery state conflict",
    KeyConflictError.code: "API key state conflict",
    WardTwinError.code: "Service error",
    INTERNAL_ERROR: "Internal error",
}

#: Seconds a client is asked to wait before retrying while a store is unavailable (503).
STORE_RETRY_AFTER_S = 5


def status_for(exc: WardTwinError) -> int:
    for cls in type(exc).__mro__:
        if cls in STATUS:
            return STATUS[cls]
    return 500


def problem_type(code: str) -> str:
    return PROBLEM_BASE + code.replace("_", "-")


def problem(status: int, code: str, detail: str, *, errors: list[dict[str, Any]] | None = None,
            type_: str | None = None, title: str | None = None, **extra: Any) -> dict[str, Any]:
    """One problem details object (the module docstring). ``type_`` defaults to the code's problem type URI."""
    title = title or TITLES.get(code) or code.replace("_", " ").capitalize()  # a code without a title of its own
    body: dict[str, Any] = {"type": type_ or problem_type(code), "title": title, "status": status, "detail": detail,
                            "code": code}
    if errors is not None:
        body["errors"] = errors
    return {**body, **extra}


class ProblemResponse(JSONResponse):
    media_type = PROBLEM_MEDIA_TYPE


def _where(loc: list[Any]) -> str:
    """``["body", "readings", 17, "value"]`` → ``readings[17].value`` (the part of the request named)."""
    out = ""
    named = len(loc) > 1 and loc[0] in ("body", "query", "path", "header") and isinstance(loc[1], str)
    for part in loc[1:] if named else loc:
        out += f"[{part}]" if isinstance(part, int) else f".{part}" if out else str(part)
    return out or "request"


def summarize(errors: list[dict[str, Any]]) -> str:
    """The first item error for a person (``readings[1].value: heart rate 400 is outside 20–300``), and how many
    more there are."""
    if not errors:
        return "the request is invalid"
    first = errors[0]
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    return f"{_where(list(first.get('loc', [])))}: {first.get('msg', '')}{more}"


def _headers(exc: WardTwinError) -> dict[str, str]:
    if isinstance(exc, AuthenticationError):
        return {"WWW-Authenticate": "Bearer"}
    if isinstance(exc, RateLimitedError):
        return {"Retry-After": str(exc.retry_after_s)}
    if isinstance(exc, StoreUnavailableError):  # ride it out: the store is retried (issue 21, finding 10)
        return {"Retry-After": str(STORE_RETRY_AFTER_S)}
    return {}


def problem_of(exc: WardTwinError) -> dict[str, Any]:
    """The problem details of a domain error."""
    status = status_for(exc)
    if isinstance(exc, ReadingRejectedError):
        rejected = len({d["loc"][2] for d in exc.detail if len(d.get("loc", ())) > 2})
        detail = (f"{rejected} of {rejected + exc.accepted} readings rejected, {exc.accepted} stored; "
                  f"{summarize(exc.detail)}")
        return problem(status, exc.code, detail, errors=exc.detail, accepted=exc.accepted, rejected=rejected)
    if isinstance(exc, InvalidRequestError):
        return problem(status, exc.code, summarize(exc.detail), errors=exc.detail)
    return problem(status, exc.code, str(exc))


def problem_bytes(exc: WardTwinError) -> tuple[int, bytes, list[tuple[bytes, bytes]]]:
    """For an answer sent before any route runs (the edge, the authentication step): status, body, and headers
    (Content-Type and the error's own, such as ``WWW-Authenticate``)."""
    headers = [(b"content-type", PROBLEM_MEDIA_TYPE.encode())]
    headers += [(k.lower().encode(), v.encode()) for k, v in _headers(exc).items()]
    return status_for(exc), orjson.dumps(problem_of(exc)), headers


async def handle(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, WardTwinError)
    return ProblemResponse(problem_of(exc), status_code=status_for(exc), headers=_headers(exc))


#: An input echoed in a 422 is cut to this many characters (a 50 MB string is never sent back).
ECHO_LIMIT = 80


def _short(value: object) -> object:
    if isinstance(value, str | bytes) and len(value) > ECHO_LIMIT:
        return f"{value[:ECHO_LIMIT]!s}… ({len(value)} characters)"
    if isinstance(value, dict | list | tuple) and len(repr(value)) > ECHO_LIMIT:
        return f"({type(value).__name__} of {len(value)} items, not echoed)"
    return value


def _json_safe(value: object) -> object:
    """``value`` with what JSON cannot carry spelled out: NaN and ±Infinity (which Python's JSON parser accepts in a
    body) as strings, bytes (a body that is not UTF-8) decoded with replacement characters (issue 21: the 422
    handler failed to encode them, a 500)."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, dict):
        return {str(_json_safe(k)): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    return value


async def handle_validation(request: Request, exc: Exception) -> JSONResponse:
    """FastAPI's validation items as ``errors``, with every echoed ``input`` (and ``ctx`` value) cut short and made
    encodable."""
    assert isinstance(exc, RequestValidationError)
    items = []
    for error in exc.errors():
        item = {k: error[k] for k in ("type", "loc", "msg") if k in error}
        if "input" in error:
            item["input"] = _json_safe(_short(error["input"]))
        if "ctx" in error:
            item["ctx"] = {k: _json_safe(_short(v)) if isinstance(v, str | dict | list) else str(v)
                           for k, v in error["ctx"].items()}
        items.append(item)
    errors = jsonable_encoder(_json_safe(items))
    return ProblemResponse(problem(422, InvalidRequestError.code, summarize(errors), errors=errors), status_code=422)


async def handle_http(request: Request, exc: Exception) -> JSONResponse:
    """Starlette's own answers (an unknown path 404, a wrong method 405 with ``Allow``): ``about:blank`` problems,
    titled by their status. A body FastAPI could not decode (not UTF-8: its 400) is the 422 of a malformed JSON
    body, as FastAPI answers other JSON it cannot parse."""
    assert isinstance(exc, StarletteHTTPException)
    if exc.status_code == 400 and isinstance(exc.__cause__, ValueError):  # FastAPI could not decode the body
        msg = f"the body is not JSON in UTF-8: {exc.__cause__}"[:200]
        errors = [{"loc": ["body"], "msg": msg, "type": "json_invalid"}]
        body = problem(422, InvalidRequestError.code, summarize(errors), errors=errors)
        return ProblemResponse(body, status_code=422)
    phrase = HTTPStatus(exc.status_code).phrase
    detail = exc.detail if isinstance(exc.detail, str) and exc.detail != phrase else \
        f"{request.scope.get('method', 'WS')} {_short(request.url.path)}: {phrase.lower()}"
    body = problem(exc.status_code, phrase.lower().replace(" ", "_").replace("-", "_"), detail, type_="about:blank",
                   title=phrase)
    return ProblemResponse(body, status_code=exc.status_code, headers=exc.headers)


async def handle_unexpected(request: Request, exc: Exception) -> JSONResponse:
    """A bug: logged once here with its traceback; the client gets no trace and no internal path."""
    logger.exception("unhandled error %s %s", request.method, request.url.path)
    return ProblemResponse(problem(500, INTERNAL_ERROR, "internal error"), status_code=500)


def register(app: FastAPI) -> None:
    app.add_exception_handler(WardTwinError, handle)
    app.add_exception_handler(RequestValidationError, handle_validation)
    app.add_exception_handler(StarletteHTTPException, handle_http)
    app.add_exception_handler(Exception, handle_unexpected)
