"""Maps domain errors to HTTP once; the most specific class in the exception's MRO wins."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from app.errors import (
    AlertConflictError,
    AlertNotFoundError,
    InvalidRequestError,
    PatientNotFoundError,
    ReadingRejectedError,
    StoreUnavailableError,
    WardTwinError,
)

STATUS: dict[type[WardTwinError], int] = {
    PatientNotFoundError: 404,
    AlertNotFoundError: 404,
    ReadingRejectedError: 422,
    InvalidRequestError: 422,
    AlertConflictError: 409,
    StoreUnavailableError: 503,
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
    return JSONResponse(body, status_code=status)


def register(app: FastAPI) -> None:
    app.add_exception_handler(WardTwinError, handle)
