"""Patient reads: the ward board, latest risk with its explanation, history, windows, what-if.

The two hot reads (``GET /v1/patients`` and ``GET /v1/patients/{patient_id}/risk``, polled by every screen and
record system) are ordinary routes of the router, declared and documented like the others, whose handler
(``ViewRoute``) skips FastAPI's dependency solving: their bodies are the read model's bytes (``app.readmodel``),
encoded here once per change (``encode_risk``, ``encode_board``).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Annotated, Any

import pandas as pd
from fastapi import APIRouter, Depends, Path, Query, Request, Response
from fastapi.routing import APIRoute
from pydantic import TypeAdapter
from starlette.types import Receive, Scope, Send

from app.api.auth import Requires, requires
from app.api.deps import ServiceDep
from app.api.paging import DEFAULT_LIMIT, NEXT_LINK, After, Limit, link_next
from app.api.schemas import IsoDatetime, PatientSummary, RiskOut, WhatIfIn, WindowOut
from app.domain import Score
from app.errors import InvalidRequestError
from app.ingest import check_value
from app.readmodel import BoardRow, top_reason
from app.storage.codec import score_to_dict
from models.schema import EARLIEST_READING_AT, PATIENT_ID_PATTERN
from models.windows import WINDOW

router = APIRouter(tags=["patients"])
#: Reading a patient's data: the ward board (clinician) and the record system (ehr).
READ_ROLES = frozenset({"clinician", "ehr"})
READ = [Depends(requires(*sorted(READ_ROLES)))]
BOARD_ROUTE, RISK_ROUTE = "/v1/patients", "/v1/patients/{patient_id}/risk"

PatientId = Annotated[str, Path(pattern=PATIENT_ID_PATTERN.pattern, description="the patient's (pseudonymous) id")]


def risk_out(score: Score) -> RiskOut:
    data = score_to_dict(score)
    ranked = sorted(score.contributions, key=lambda c: abs(c.points), reverse=True)
    data["explanation"] = [c.sentence for c in ranked if c.sentence]
    return RiskOut(**data)


def summary(patient_id: str, score: Score | None, alert: Any) -> PatientSummary:
    """One row of the ward board."""
    news2 = score.news2 if score else None
    return PatientSummary(
        patient_id=patient_id, risk=score.risk if score else None,
        window_end=score.window_end if score else None,
        news2_total=news2.total if news2 else None, news2_band=news2.band if news2 else None,
        top_reason=top_reason(score) if score else None,
        alert_id=alert.id if alert else None, alert_state=alert.state if alert else None,
        flags=list(score.flags) if score else [],
    )


# The read model's encoders (``create_app`` hands them to ``app.readmodel.LatestView``): what FastAPI's fast path
# does with a ``response_model`` (``TypeAdapter.dump_json``), once per change instead of once per request.
_RISK = TypeAdapter(RiskOut)
_BOARD = TypeAdapter(list[PatientSummary])


def encode_risk(score: Score) -> bytes:
    return _RISK.dump_json(risk_out(score))


def encode_board(rows: Sequence[BoardRow]) -> bytes:
    return _BOARD.dump_json([summary(*row) for row in rows])


#: How far past the service clock a range may reach (a client asking "until the end of today" is answered).
_LATEST_AHEAD = timedelta(days=1)


def _aware(value: datetime | None, name: str) -> datetime | None:
    if value is not None and value.tzinfo is None:
        raise InvalidRequestError(["query", name], f"{name} must carry a timezone offset (e.g. Z)", "datetime")
    return value


def _out_of_range(value: datetime | None, name: str, now: datetime) -> list[dict]:
    """The 422 item for a given ``since``/``until`` outside ``[EARLIEST_READING_AT, now + 1 day]``, if any."""
    if value is None:
        return []
    if value < EARLIEST_READING_AT:
        msg = f"{name} {value.isoformat()} is before {EARLIEST_READING_AT.isoformat()}, the earliest reading accepted"
        return [{"loc": ["query", name], "msg": msg, "type": "too_early"}]
    if value > now + _LATEST_AHEAD:
        msg = f"{name} {value.isoformat()} is more than a day after the service's now, {now.isoformat()}"
        return [{"loc": ["query", name], "msg": msg, "type": "future"}]
    return []


def _range(since: datetime | None, until: datetime | None, default: timedelta, now: datetime,
           limit: timedelta) -> tuple[datetime, datetime]:
    """``[since, until]`` from the query: aware, within ``[EARLIEST_READING_AT, now + 1 day]`` (every bad one is
    named), since before until, spanning at most ``limit``."""
    until, since = _aware(until, "until"), _aware(since, "since")
    problems = _out_of_range(since, "since", now) + _out_of_range(until, "until", now)
    if problems:
        error = InvalidRequestError(problems[0]["loc"], problems[0]["msg"], problems[0]["type"])
        error.detail = problems
        raise error
    until = until or now
    since = since or until - default
    if since >= until:
        raise InvalidRequestError(["query", "since"], "since must be before until", "value_error")
    if until - since > limit:
        raise InvalidRequestError(["query", "since"], f"the range may span at most {limit}", "value_error")
    return since, until


def _pattern(field: Any) -> re.Pattern[str] | None:
    """The ``pattern`` a path parameter declares (``Path(pattern=...)``), if any."""
    found = next((m.pattern for m in field.field_info.metadata if getattr(m, "pattern", None)), None)
    return re.compile(found) if found else None


class ViewRoute(APIRoute):
    """A route answered from the read model. Declared like any route (its ``requires`` dependencies, path
    parameters and response model make its OpenAPI entry), but served by a plain ASGI handler that skips FastAPI's
    request handling and dependency solving, which cost more than the answer (``bench/bench_reads.py``): it runs
    the route's ``requires`` checks (as FastAPI would, in order), then sends ``endpoint(service, **path_params)``.
    Errors go to the app's exception handlers as from any route. A path parameter that fails its declared pattern
    goes to FastAPI's own handler, which answers the 422 every route answers."""

    def __init__(self, path: str, endpoint: Callable[..., Any], **kwargs: Any) -> None:
        super().__init__(path, endpoint, **kwargs)
        self._solved = self.app  # FastAPI's handler
        self._checks = [d.dependency for d in self.dependencies if isinstance(d.dependency, Requires)]
        self._patterns = {f.name: p for f in self.dependant.path_params if (p := _pattern(f)) is not None}
        self.app = self._serve

    async def _serve(self, scope: Scope, receive: Receive, send: Send) -> None:
        for check in self._checks:
            check.check(scope)
        params = scope["path_params"]
        for name, pattern in self._patterns.items():
            if pattern.fullmatch(params[name]) is None:
                await self._solved(scope, receive, send)
                return
        response = await self.endpoint(scope["app"].state.wardtwin, **params)
        # what ``Response.__call__`` sends for a response with no background task, without the call
        await send({"type": "http.response.start", "status": response.status_code, "headers": response.raw_headers})
        await send({"type": "http.response.body", "body": response.body})


_CONTENT_TYPE = (b"content-type", b"application/json")


class _Json(Response):
    """``Response(body, media_type="application/json")`` with the same headers, built without ``render`` and
    ``init_headers`` (a hot read builds one per request)."""

    media_type = "application/json"

    def __init__(self, body: bytes) -> None:
        self.status_code, self.background, self.body = 200, None, body
        self.raw_headers = [(b"content-length", str(len(body)).encode("latin-1")), _CONTENT_TYPE]


def _json(body: bytes) -> Response:
    return _Json(body)


async def list_patients(wt: ServiceDep) -> Response:
    """The read model's ward, encoded once per change of the ward."""
    return _json(await wt.board())


async def get_risk(wt: ServiceDep, patient_id: PatientId) -> Response:
    """The read model's latest score, encoded once per score."""
    return _json(await wt.risk(patient_id))


router.add_api_route(BOARD_ROUTE, list_patients, methods=["GET"], dependencies=READ,
                     response_model=list[PatientSummary], summary="The ward, highest risk first",
                     route_class_override=ViewRoute)
router.add_api_route(RISK_ROUTE, get_risk, methods=["GET"], dependencies=READ, response_model=RiskOut,
                     summary="Latest risk with its explanation", route_class_override=ViewRoute)


@router.get("/v1/patients/{patient_id}/risk/history", dependencies=READ, response_model=list[RiskOut],
            summary="Scores over time, oldest first, paged", responses=NEXT_LINK)
async def get_risk_history(
    request: Request, response: Response, wt: ServiceDep, patient_id: PatientId,
    since: Annotated[IsoDatetime | None, Query(description="ISO 8601 with offset; default until − 24 h")] = None,
    until: Annotated[IsoDatetime | None, Query(description="ISO 8601 with offset; default now")] = None,
    limit: Limit = DEFAULT_LIMIT, after: After = None,
) -> list[RiskOut]:
    since, until = _range(since, until, timedelta(hours=24), wt.now(), timedelta(days=31))
    after = _aware(after, "after")
    if after is not None and after >= until:  # past the range: an empty last page
        await wt.require_patient(patient_id)
        scores = []
    else:
        start = since if after is None or after < since else after + _TICK
        scores = await _scores_from(wt, patient_id, start, until, limit + 1)
    if len(scores) > limit:
        scores = scores[:limit]
        link_next(request, response, since=since, until=until, limit=limit, after=scores[-1].window_end)
    return [risk_out(s) for s in scores]


#: The store keeps times to the millisecond: the first instant after a cursor.
_TICK = timedelta(milliseconds=1)


async def _scores_from(wt: ServiceDep, patient_id: str, start: datetime, until: datetime, n: int) -> list[Score]:
    """The first ``n`` scores of ``[start, until]``. A patient has one score per window end, so ``n`` windows' span
    usually holds them; only a sparse history is read on to ``until``."""
    end = min(until, start + WINDOW * n)
    scores = await wt.risk_history(patient_id, start, end)
    if len(scores) < n and end < until:
        scores += await wt.risk_history(patient_id, end + _TICK, until)
    return scores[:n]


def _none_if_nan(value: object) -> object:
    return None if isinstance(value, float) and math.isnan(value) else value


@router.get("/v1/patients/{patient_id}/windows", dependencies=READ, response_model=list[WindowOut],
            summary="5-minute windows as the twin sees them (last readings carried forward within their limit), paged",
            responses=NEXT_LINK)
async def get_windows(
    request: Request, response: Response, wt: ServiceDep, patient_id: PatientId,
    since: Annotated[IsoDatetime | None, Query(description="ISO 8601 with offset; default until − 4 h")] = None,
    until: Annotated[IsoDatetime | None, Query(description="ISO 8601 with offset; default now")] = None,
    limit: Limit = DEFAULT_LIMIT, after: After = None,
) -> list[WindowOut]:
    since, until = _range(since, until, timedelta(hours=4), wt.now(), timedelta(days=7))
    after = _aware(after, "after")
    # windows are keyed by their start, on the grid: [floor(since), ceil(until)), from the one after the cursor
    first, last = _floor(since), _ceil(until)
    if after is not None and after >= first:
        first = _floor(after) + WINDOW if after < last else last
    if first >= last:
        await wt.require_patient(patient_id)
        return []
    end = min(last, first + WINDOW * limit)
    grid = await wt.windows(patient_id, first, end)
    if end < last:
        link_next(request, response, since=since, until=until, limit=limit, after=end - WINDOW)
    return [
        WindowOut(**{k: _none_if_nan(v) for k, v in row.items() if k != "patient_id"})
        for row in grid.to_dict("records")
    ]


def _floor(ts: datetime) -> datetime:
    return pd.Timestamp(ts).floor(WINDOW).to_pydatetime()


def _ceil(ts: datetime) -> datetime:
    return pd.Timestamp(ts).ceil(WINDOW).to_pydatetime()


@router.post("/v1/patients/{patient_id}/what-if", dependencies=[Depends(requires("clinician"))],
             summary="Rescore the latest window with stated vitals changed")
async def post_what_if(wt: ServiceDep, patient_id: PatientId, body: WhatIfIn) -> dict:
    changes = {}
    for vital, raw in body.changes.model_dump(exclude_none=True).items():
        try:
            changes[vital] = check_value(vital, raw)
        except (TypeError, ValueError) as exc:
            raise InvalidRequestError(["body", "changes", vital], str(exc), "implausible") from None
    try:
        answer = await wt.what_if(patient_id, changes)
    except ValueError as exc:
        raise InvalidRequestError(["body", "changes"], str(exc)) from None
    return {
        "patient_id": patient_id,
        "window_end": answer.window_end,
        "before": risk_out(answer.before).model_dump(),
        "after": risk_out(answer.after).model_dump(),
        "changed": answer.changed,
        "risk_change": answer.risk_change,
    }
