"""The one way the write routes store readings: through the service's ingest use case with the request's key (its
scope applies there, ``app.write_guard``), and one audit row per request (issue 21, finding 4).

Device writes are not audited entry by entry (``requires("device", audited=False)``: thousands a minute); each
request instead leaves one row when its answer is sent (``app.api.edge``): the key, the route, the status and as
target ``write:<readings stored> readings;<patients> patients;<first 5 patient ids>``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from starlette.requests import HTTPConnection

from app.domain import Reading
from app.errors import ReadingRejectedError
from app.service import Ingested, WardTwin
from app.write_guard import audit_summary


def audit_write(connection: HTTPConnection, ingested: Ingested) -> None:
    """Mark this request for one aggregate audit row (written by the edge with the final status)."""
    state = connection.scope.setdefault("state", {})
    state["audit"] = True
    state["audit_target"] = audit_summary(ingested.stored)


async def ingest(connection: HTTPConnection, wt: WardTwin, readings: Sequence[Reading]) -> Ingested:
    """Store ``readings`` as the request's key may (scope, first value kept); audit the request once."""
    ingested = await wt.ingest(readings, connection.scope.get("user"))
    audit_write(connection, ingested)
    return ingested


async def store(connection: HTTPConnection, wt: WardTwin, readings: Sequence[Reading],
                errors: Sequence[dict[str, Any]] = ()) -> int:
    """``ingest``, then 422 naming every bad item (validation ``errors`` and refused ones) with how many were
    stored; else how many were stored."""
    ingested = await ingest(connection, wt, readings)
    if errors or ingested.refused:
        raise ReadingRejectedError([*errors, *ingested.refused], accepted=ingested.accepted)
    return ingested.accepted
