"""Maps domain errors to HTTP once; the most specific class in the exception's MRO wins."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from app.errors import (
    AlertConflictError,
    AlertNotFoundError,
    AuthenticationError,
    DeliveryConflictError,
    InvalidRequestError,
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
    WardTwinError: 500,
}


def status_for(exc: WardTwinError) -> int:
    for cls in type(exc).__mro__:
        if cls in STATUS:
            return STATUS[cls]
    return 500


async def handle(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, WardTwinError)
    status = status_for(exc)
    if isinstance(exc, ReadingRejectedError):
        rejected = len({d["loc"][2] for d in exc.detail})
        body = {"detail": exc.detail, "accepted": exc.accepted, "rejected": rejected}
    elif isinstance(exc, InvalidRequestError):
        body = {"detail": exc.detail}
    else:
        body = {"detail": str(exc), "code": exc.code}
    headers = {}
    if isinstance(exc, AuthenticationError):
        headers["WWW-Authenticate"] = "Bearer"
    elif isinstance(exc, RateLimitedError):
        headers["Retry-After"] = str(exc.retry_after_s)
    return JSONResponse(body, status_code=status, headers=headers)


#: An input echoed in a 422 is cut to this many characters (a 50 MB string is never sent back).
ECHO_LIMIT = 80


def _short(value: object) -> object:
    if isinstance(value, str | bytes) and len(value) > ECHO_LIMIT:
        return f"{value[:ECHO_LIMIT]!s}… ({len(value)} characters)"
    if isinstance(value, dict | list | tuple) and len(repr(value)) > ECHO_LIMIT:
        return f"({type(value).__name__} of {len(value)} items, not echoed)"
    return value


async def handle_validation(request: Request, exc: Exception) -> JSONResponse:
    """FastAPI's 422 shape, with every echoed ``input`` (and ``ctx`` value) cut short."""
    assert isinstance(exc, RequestValidationError)
    detail = []
    for error in exc.errors():
        item = {k: error[k] for k in ("type", "loc", "msg") if k in error}
        if "input" in error:
            item["input"] = _short(error["input"])
        if "ctx" in error:
            item["ctx"] = {k: _short(v) if isinstance(v, str | dict | list) else str(v)
                           for k, v in error["ctx"].items()}
        detail.append(item)
    return JSONResponse({"detail": jsonable_encoder(detail)}, status_code=422)


async def handle_unexpected(request: Request, exc: Exception) -> JSONResponse:
    """A bug: logged once here with its traceback; the client gets no trace and no internal path."""
    logger.exception("unhandled error %s %s", request.method, request.url.path)
    return JSONResponse({"detail": "internal error", "code": "internal_error"}, status_code=500)


def register(app: FastAPI) -> None:
    app.add_exception_handler(WardTwinError, handle)
    app.add_exception_handler(RequestValidationError, handle_validation)
    app.add_exception_handler(Exception, handle_unexpected)
