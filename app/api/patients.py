"""Patient reads: the ward board, latest risk with its explanation, history, windows, what-if."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from typing import Annotated

import pandas as pd
from fastapi import APIRouter, Depends, Path, Query, Request, Response

from app.alerts.store import Alert
from app.api.auth import requires
from app.api.deps import service
from app.api.latest import LatestView
from app.api.schemas import IsoDatetime, PatientSummary, RiskOut, WhatIfIn, WindowOut
from app.domain import Score
from app.errors import InvalidRequestError, PatientNotFoundError
from app.ingest import check_value
from app.pipeline.criteria import criteria_reasons
from app.pipeline.cycle import news2_summary, to_score
from app.storage.codec import score_to_dict
from models import features
from models.schema import EARLIEST_READING_AT, PATIENT_ID_PATTERN
from models.what_if import what_if
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


def top_reason(score: Score) -> str | None:
    """A criterion met now, else the sentence of the contribution that raises the risk most."""
    criteria = criteria_reasons(score)
    if criteria:
        return criteria[0]
    rising = [c for c in score.contributions if c.sentence and c.points > 0]
    return max(rising, key=lambda c: c.points).sentence if rising else None


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


def latest_view(request: Request) -> LatestView:
    return request.app.state.latest


async def loaded_view(request: Request) -> LatestView:
    """The view, with the store's state in it: loaded at start-up, or now if the store was unreachable then
    (``StoreUnavailableError``, a 503, while it still is)."""
    view = latest_view(request)
    if not view.loaded:
        await service(request).store.load()  # type: ignore[attr-defined]  # an ObservedStore (app.main)
    return view


def summary(patient_id: str, score: Score | None, alert: Alert | None) -> PatientSummary:
    """One row of the ward board."""
    return PatientSummary(
        patient_id=patient_id, risk=score.risk if score else None,
        window_end=score.window_end if score else None,
        news2_total=score.news2.get("total") if score else None,
        news2_band=score.news2.get("band") if score else None, top_reason=top_reason(score) if score else None,
        alert_id=alert.id if alert else None, alert_state=alert.state if alert else None,
        flags=list(score.flags) if score else [],
    )


async def _require_patient(request: Request, patient_id: str) -> None:
    """404 unless the patient has readings: the view knows every patient this service wrote or found in the store
    at start-up; one it does not know is looked up in the store (written by another instance) before the 404."""
    view = await loaded_view(request)
    if view.knows(patient_id):
        return
    if patient_id in await service(request).store.patient_ids():
        view.patients_seen([patient_id])
        return
    raise PatientNotFoundError(patient_id)


async def _latest(request: Request, patient_id: str) -> Score:
    score = (await loaded_view(request)).latest(patient_id)
    if score is None:
        await _require_patient(request, patient_id)
        raise PatientNotFoundError(patient_id)
    return score


def _json(body: bytes) -> Response:
    return Response(body, media_type="application/json")


@router.get(BOARD_ROUTE, dependencies=READ, response_model=list[PatientSummary],
            summary="The ward, highest risk first")
async def list_patients(request: Request) -> Response:
    """Served from the latest-score view (``app.api.latest``), encoded once per change of the ward."""
    return _json(await (await loaded_view(request)).board_body(service(request).alert_store.open_alerts))


@router.get(RISK_ROUTE, dependencies=READ, response_model=RiskOut,
            summary="Latest risk with its explanation")
async def get_risk(request: Request, patient_id: PatientId) -> Response:
    """Served from the latest-score view (``app.api.latest``), encoded once per score."""
    body = (await loaded_view(request)).risk_body(patient_id)
    if body is None:
        await _latest(request, patient_id)  # 404: unknown, or not scored yet
    return _json(body)


def hot_read(view: LatestView, path: str) -> tuple[str, dict[str, str], bytes] | None:
    """The two hot reads' success answer for a ``GET`` of ``path``, without FastAPI: (the route, its path
    parameters, the body that route would send) when the view already holds the body, else None (the request then
    goes through the routes above, which answer everything else: 404, 422, a view not loaded yet).

    Used by ``app.api.edge.Edge``, which first checks the key and ``READ_ROLES`` (as ``requires`` does), spends
    the rate limit, and audits the read as ``list_patients`` and ``get_risk`` are audited; the bodies are the very
    bytes those routes send."""
    if path == BOARD_ROUTE:
        body = view.board_cached()
        return (BOARD_ROUTE, {}, body) if body is not None else None
    if path.startswith("/v1/patients/") and path.endswith("/risk"):
        patient_id = path[len("/v1/patients/"):-len("/risk")]
        if "/" in patient_id or not view.loaded or PATIENT_ID_PATTERN.fullmatch(patient_id) is None:
            return None
        body = view.risk_body(patient_id)
        return (RISK_ROUTE, {"patient_id": patient_id}, body) if body is not None else None
    return None


@router.get("/v1/patients/{patient_id}/risk/history", dependencies=READ, response_model=list[RiskOut],
            summary="Scores over time")
async def get_risk_history(
    request: Request, patient_id: PatientId,
    since: Annotated[IsoDatetime | None, Query(description="ISO 8601 with offset; default until − 24 h")] = None,
    until: Annotated[IsoDatetime | None, Query(description="ISO 8601 with offset; default now")] = None,
) -> list[RiskOut]:
    wt = service(request)
    since, until = _range(since, until, timedelta(hours=24), wt.clock.now(), timedelta(days=31))
    await _require_patient(request, patient_id)
    return [risk_out(s) for s in await wt.store.score_history(patient_id, since, until + timedelta(milliseconds=1))]


def _none_if_nan(value: object) -> object:
    return None if isinstance(value, float) and math.isnan(value) else value


@router.get("/v1/patients/{patient_id}/windows", dependencies=READ, response_model=list[WindowOut],
            summary="5-minute windows as the twin sees them (last readings carried forward within their limit)")
async def get_windows(
    request: Request, patient_id: PatientId,
    since: Annotated[IsoDatetime | None, Query(description="ISO 8601 with offset; default until − 4 h")] = None,
    until: Annotated[IsoDatetime | None, Query(description="ISO 8601 with offset; default now")] = None,
) -> list[WindowOut]:
    wt = service(request)
    since, until = _range(since, until, timedelta(hours=4), wt.clock.now(), timedelta(days=7))
    await _require_patient(request, patient_id)
    start = pd.Timestamp(since).floor(WINDOW).to_pydatetime()
    end = pd.Timestamp(until).ceil(WINDOW).to_pydatetime()
    grid = await wt.cycle.grid([patient_id], end, end - start)
    return [
        WindowOut(**{k: _none_if_nan(v) for k, v in row.items() if k != "patient_id"})
        for row in grid.to_dict("records")
    ]


@router.post("/v1/patients/{patient_id}/what-if", dependencies=[Depends(requires("clinician"))],
             summary="Rescore the latest window with stated vitals changed")
async def post_what_if(request: Request, patient_id: PatientId, body: WhatIfIn) -> dict:
    changes = {}
    for vital, raw in body.changes.model_dump(exclude_none=True).items():
        try:
            changes[vital] = check_value(vital, raw)
        except (TypeError, ValueError) as exc:
            raise InvalidRequestError(["body", "changes", vital], str(exc), "implausible") from None
    wt = service(request)
    latest = await _latest(request, patient_id)
    window_end = latest.window_end
    grid = await wt.cycle.grid([patient_id], window_end, features.HISTORY)
    try:
        before, after, changed = what_if(wt.twin, grid, patient_id, changes)
    except ValueError as exc:
        raise InvalidRequestError(["body", "changes"], str(exc)) from None
    last_row = grid[grid["start"] == pd.Timestamp(window_end) - WINDOW].iloc[-1]
    now = wt.clock.now().astimezone(UTC)
    return {
        "patient_id": patient_id,
        "window_end": window_end,
        "before": risk_out(to_score(before, news2_summary(last_row), wt.twin.version, now)).model_dump(),
        "after": risk_out(to_score(after, news2_summary(last_row), wt.twin.version, now)).model_dump(),
        "changed": changed,
        "risk_change": after.risk - before.risk,
    }
