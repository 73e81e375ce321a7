"""The FHIR R4 read API under ``/fhir`` (``application/fhir+json``; roles ehr and clinician).

The mapping is ``app.interop.fhir``'s; this module reads through the service's use cases, pages searches and
answers every error as an OperationOutcome (``FhirRoute``: the authentication check, parameter validation and
domain errors of these routes included). Searches are newest first, ``_count`` per page, with a ``next`` link that
pins the searched range (so windows arriving meanwhile do not shift the pages).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Coroutine, Sequence
from datetime import datetime, timedelta
from typing import Annotated, Any, Final
from urllib.parse import urlencode

import pandas as pd
from fastapi import APIRouter, Depends, Path, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from pydantic import StringConstraints

from app.api.auth import requires
from app.api.deps import ServiceDep
from app.api.errors import status_for
from app.domain import Score
from app.errors import (
    AuthenticationError,
    InvalidRequestError,
    PatientNotFoundError,
    RateLimitedError,
    WardTwinError,
)
from app.interop import fhir
from app.service import WardTwin
from models.windows import WINDOW

logger = logging.getLogger(__name__)

DEFAULT_COUNT: Final = 50
MAX_COUNT: Final = 1000
DEFAULT_SPAN: Final = timedelta(hours=24)
MAX_SPAN: Final = timedelta(days=31)
_TICK: Final = timedelta(milliseconds=1)
_FHIR_ID = r"^[A-Za-z0-9\-.]{1,64}$"
_SUBJECT = re.compile(r"^(?:Patient/)?([A-Za-z0-9\-.]{1,64})$")


class FhirNotFoundError(Exception):
    """No such resource (answered 404 OperationOutcome by ``FhirRoute``)."""


class FhirResponse(JSONResponse):
    media_type = fhir.MEDIA_TYPE


def _outcome(status: int, diagnostics: str, expression: Sequence[str] = (),
             headers: dict[str, str] | None = None) -> FhirResponse:
    return FhirResponse(fhir.operation_outcome(status, diagnostics, expression), status_code=status, headers=headers)


def _expression(loc: Sequence[Any]) -> str:
    return ".".join(str(p) for p in loc)


class FhirRoute(APIRoute):
    """A route whose every error (401/403/429 from ``requires``, a bad parameter, a domain error) is answered as an
    OperationOutcome in ``application/fhir+json``; a bad search parameter is a 400, as FHIR servers answer it."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def guarded(request: Request) -> Response:
            try:
                return await handler(request)
            except FhirNotFoundError as exc:
                return _outcome(404, str(exc))
            except InvalidRequestError as exc:
                detail = exc.detail
                return _outcome(400, "; ".join(d["msg"] for d in detail), [_expression(d["loc"]) for d in detail])
            except WardTwinError as exc:
                headers = {}
                if isinstance(exc, AuthenticationError):
                    headers["WWW-Authenticate"] = "Bearer"
                elif isinstance(exc, RateLimitedError):
                    headers["Retry-After"] = str(exc.retry_after_s)
                return _outcome(status_for(exc), str(exc), headers=headers)
            except RequestValidationError as exc:
                errors = exc.errors()
                return _outcome(400, "; ".join(f"{_expression(e['loc'])}: {e['msg']}" for e in errors),
                                [_expression(e["loc"]) for e in errors])
            except Exception:
                logger.exception("unhandled error %s %s", request.method, request.url.path)
                return _outcome(500, "internal error")

        return guarded


def _schema(description: str) -> dict[str, Any]:
    return {"description": description, "content": {fhir.MEDIA_TYPE: {"schema": {
        "type": "object", "required": ["resourceType"], "properties": {"resourceType": {"type": "string"}}}}}}


#: Every status these routes answer, each an OperationOutcome but the 200.
RESPONSES: Final[dict[int | str, dict[str, Any]]] = {
    200: _schema("The resource (or a searchset Bundle)"),
    400: _schema("OperationOutcome: a bad search parameter, named"),
    401: {**_schema("OperationOutcome: no valid API key"),
          "headers": {"WWW-Authenticate": {"schema": {"type": "string"}}}},
    403: _schema("OperationOutcome: the key's role may not read patients (needs ehr or clinician)"),
    404: _schema("OperationOutcome: no such resource"),
    429: {**_schema("OperationOutcome: too many requests for this key"),
          "headers": {"Retry-After": {"schema": {"type": "integer"}}}},
    503: _schema("OperationOutcome: the store is unavailable"),
}
router = APIRouter(tags=["fhir"], route_class=FhirRoute, responses=RESPONSES,
                   dependencies=[Depends(requires("clinician", "ehr"))])

Count = Annotated[int, Query(alias="_count", ge=0, le=MAX_COUNT, description="page size")]
Offset = Annotated[int, Query(alias="_offset", ge=0, le=10_000_000,
                              description="where the page starts (set by the server in next links)")]
Subject = Annotated[str, Query(pattern=r"^(?:Patient/)?[A-Za-z0-9\-.]{1,64}$",
                               description="Patient/{id}: the patient whose resources are searched")]
DateValue = Annotated[str, StringConstraints(
    pattern=r"^(?:eq|gt|lt|ge|le)?\d{4}(?:-\d{2}(?:-\d{2}(?:T\d{2}:\d{2}(?::\d{2}(?:\.\d{1,6})?)?"
            r"(?:Z|[+-]\d{2}:\d{2}))?)?)?$")]
Dates = Annotated[list[DateValue] | None, Query(
    description="[eq|ge|gt|le|lt]YYYY[-MM[-DD[Thh:mm[:ss]±hh:mm]]], repeatable (ANDed); default the 24 h before "
                "now, at most 31 days")]


def public_base(request: Request) -> str:
    """``Settings.public_base_url`` when configured, else the request's own base URL (its ``Host``)."""
    configured = request.app.state.wardtwin.settings.public_base_url
    return (configured or str(request.base_url)).rstrip("/")


def _base(request: Request) -> str:
    return public_base(request) + "/fhir"


def _subject(raw: str) -> str:
    match = _SUBJECT.match(raw)
    patient_id = fhir.patient_id_of(match.group(1)) if match else None
    if patient_id is None:
        raise InvalidRequestError(["query", "subject"], f"subject {raw[:80]!r} is not Patient/{{id}}", "value_error")
    return patient_id


def _range(dates: list[str] | None, now: datetime) -> tuple[datetime, datetime, bool]:
    """The inclusive ``[lo, hi]`` searched and whether a bound was defaulted (then next links pin it)."""
    try:
        lo, hi = fhir.date_bounds(dates or [])
    except ValueError as exc:
        raise InvalidRequestError(["query", "date"], str(exc), "value_error") from None
    defaulted = lo is None or hi is None
    hi = hi if hi is not None else now
    lo = lo if lo is not None else hi - DEFAULT_SPAN
    if hi - lo > MAX_SPAN:
        raise InvalidRequestError(["query", "date"], f"the date range may span at most {MAX_SPAN.days} days, got "
                                                     f"{fhir.instant(lo)} to {fhir.instant(hi)}", "value_error")
    return lo, hi, defaulted


def _links(request: Request, offset: int, count: int, total: int, pinned: tuple[datetime, datetime] | None
           ) -> dict[str, str]:
    here = public_base(request) + request.url.path
    links = {"self": f"{here}?{request.url.query}" if request.url.query else here}
    if count and offset + count < total:
        params = [(k, v) for k, v in request.query_params.multi_items()
                  if k != "_offset" and not (pinned and k == "date")]
        if pinned:
            params += [("date", f"ge{fhir.instant(pinned[0])}"), ("date", f"le{fhir.instant(pinned[1])}")]
        params.append(("_offset", str(offset + count)))
        links["next"] = f"{here}?{urlencode(params)}"
    return links


def _audit(request: Request, patient_id: str) -> None:
    request.scope.setdefault("state", {})["audit_target"] = f"patient:{patient_id}"


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    return frame.to_dict("records") if len(frame) else []


def _start(row: dict[str, Any]) -> datetime:
    return pd.Timestamp(row["start"]).to_pydatetime()


@router.get("/fhir/metadata", operation_id="fhir_capabilities", response_class=FhirResponse,
            summary="FHIR CapabilityStatement (incl. the RiskAssessment probability convention: 0–1)")
async def capabilities(request: Request, wt: ServiceDep) -> FhirResponse:
    return FhirResponse(fhir.capability_statement(_base(request), request.app.version, wt.now(), MAX_COUNT, MAX_SPAN,
                                                  DEFAULT_SPAN))


@router.get("/fhir/Patient/{patient_fhir_id}", operation_id="fhir_read_patient", response_class=FhirResponse,
            summary="FHIR Patient (minimal: id and identifier)")
async def read_patient(request: Request, wt: ServiceDep,
                       patient_fhir_id: Annotated[str, Path(pattern=_FHIR_ID)]) -> FhirResponse:
    patient_id = fhir.patient_id_of(patient_fhir_id)
    if patient_id is None:
        raise PatientNotFoundError(patient_fhir_id)
    _audit(request, patient_id)
    await wt.require_patient(patient_id)
    return FhirResponse(fhir.patient(patient_id))


def _kinds(codes: list[str] | None) -> set[str]:
    """The Observation kinds ``code`` tokens select (all without one): ``system|code``, ``code`` or ``system|``."""
    if not codes:
        return set(fhir.OBSERVATION_KINDS)
    kinds: set[str] = set()
    for token in (t for raw in codes for t in raw.split(",")):
        system, bar, code = token.partition("|")
        if not bar:
            system, code = "", token
        kinds |= {kind for (s, c), kind in fhir.CODE_INDEX.items()
                  if (not bar or s == system) and (c == code or (bar and not code))}
    return kinds


@router.get("/fhir/Observation", operation_id="fhir_search_observation", response_class=FhirResponse,
            summary="Search vital-signs and NEWS2 Observations of a patient (searchset Bundle, newest first)")
async def search_observations(
    request: Request, wt: ServiceDep, subject: Subject,
    code: Annotated[list[Annotated[str, StringConstraints(pattern=r"^[^\s]{1,200}$")]] | None, Query(description=(
        "system|code (comma: any of): http://loinc.org|8867-4, 9279-1, 2708-6, 59408-5, 8310-5, 85354-9; "
        "http://snomed.info/sct|1104051000000101"))] = None,
    date: Dates = None, count: Count = DEFAULT_COUNT, offset: Offset = 0,
) -> FhirResponse:
    patient_id = _subject(subject)
    _audit(request, patient_id)
    lo, hi, defaulted = _range(date, wt.now())
    kinds = _kinds(code)
    matches: list[tuple[datetime, int, Callable[[], dict[str, Any] | None]]] = []
    outcome = None
    try:
        if kinds - {"news2"}:
            for row in _records(await wt.stored_windows(patient_id, lo - WINDOW, hi + _TICK)):
                start = _start(row)
                if start + WINDOW < lo or start > hi:
                    continue
                for kind in fhir.present_kinds(row):
                    if kind in kinds:
                        matches.append((start, fhir.OBSERVATION_KINDS.index(kind),
                                        lambda row=row, kind=kind: fhir.vital_observation(patient_id, row, kind)))
        if "news2" in kinds:
            for score in await wt.risk_history(patient_id, lo, hi):
                if score.news2 is not None:
                    matches.append((score.window_end, len(fhir.OBSERVATION_KINDS),
                                    lambda score=score: fhir.news2_observation(score)))
    except PatientNotFoundError as exc:
        outcome = fhir.operation_outcome(404, str(exc), ["Observation.subject"], severity="warning")
    matches.sort(key=lambda m: (-m[0].timestamp(), m[1]))
    page = [r for _, _, build in matches[offset:offset + count] if (r := build()) is not None]
    return FhirResponse(fhir.bundle(_base(request), page, len(matches),
                                    _links(request, offset, count, len(matches), (lo, hi) if defaulted else None),
                                    outcome))


async def _basis(wt: WardTwin, patient_id: str, scores: Sequence[Score]) -> dict[datetime, list[str]]:
    """window end → the ids of the Observations each score was made from."""
    if not scores:
        return {}
    ends = [s.window_end for s in scores]
    windows = _records(await wt.stored_windows(patient_id, min(ends) - WINDOW, max(ends)))
    present = {_start(row) + WINDOW: fhir.present_kinds(row) for row in windows}
    return {s.window_end: fhir.risk_basis(s, present.get(s.window_end, [])) for s in scores}


@router.get("/fhir/RiskAssessment", operation_id="fhir_search_risk_assessment", response_class=FhirResponse,
            summary="Search a patient's 6-hour risk assessments (probabilityDecimal in 0–1)")
async def search_risk(
    request: Request, wt: ServiceDep, subject: Subject, date: Dates = None,
    sort: Annotated[str, Query(alias="_sort", pattern="^-?date$", description="-date (newest first) or date")]
    = "-date",
    count: Count = DEFAULT_COUNT, offset: Offset = 0,
) -> FhirResponse:
    patient_id = _subject(subject)
    _audit(request, patient_id)
    lo, hi, defaulted = _range(date, wt.now())
    outcome, scores = None, []
    try:
        scores = [s for s in await wt.risk_history(patient_id, lo, hi) if lo <= s.window_end <= hi]
    except PatientNotFoundError as exc:
        outcome = fhir.operation_outcome(404, str(exc), ["RiskAssessment.subject"], severity="warning")
    scores.sort(key=lambda s: s.window_end, reverse=sort == "-date")
    page = scores[offset:offset + count]
    basis = await _basis(wt, patient_id, page)
    entries = [fhir.risk_assessment(s, basis[s.window_end]) for s in page]
    return FhirResponse(fhir.bundle(_base(request), entries, len(scores),
                                    _links(request, offset, count, len(scores), (lo, hi) if defaulted else None),
                                    outcome))


async def _resolve(wt: WardTwin, rid: str, kinds: Sequence[str]) -> tuple[fhir.ParsedId, str]:
    """The parsed id and its patient; 404 (``PatientNotFoundError``) for an id that names nothing known."""
    parsed = fhir.parse_resource_id(rid, kinds)
    if parsed is not None:
        direct = fhir.patient_id_of(parsed.subject)
        if direct is not None:
            try:
                await wt.require_patient(direct)
                return parsed, direct
            except PatientNotFoundError:
                pass
        if re.fullmatch(r"h[0-9a-f]{40}", parsed.subject):  # a long patient id, hashed into the resource id
            found = fhir.resolve_subject(parsed.subject, await wt.store.patient_ids())
            if found is not None:
                return parsed, found
    raise FhirNotFoundError(f"no resource {rid!r}")


async def _score_at(wt: WardTwin, patient_id: str, at: datetime, rid: str) -> Score:
    found = [s for s in await wt.risk_history(patient_id, at, at) if s.window_end == at]
    if not found:
        raise FhirNotFoundError(f"no resource {rid!r}")
    return found[0]


@router.get("/fhir/Observation/{observation_id}", operation_id="fhir_read_observation",
            response_class=FhirResponse, summary="One vital-signs or NEWS2 Observation")
async def read_observation(request: Request, wt: ServiceDep,
                           observation_id: Annotated[str, Path(pattern=_FHIR_ID)]) -> FhirResponse:
    parsed, patient_id = await _resolve(wt, observation_id, fhir.OBSERVATION_KINDS)
    _audit(request, patient_id)
    if parsed.kind == "news2":
        resource = fhir.news2_observation(await _score_at(wt, patient_id, parsed.at, observation_id))
    else:
        rows = _records(await wt.stored_windows(patient_id, parsed.at, parsed.at + _TICK))
        resource = fhir.vital_observation(patient_id, rows[0], parsed.kind) if rows else None
    if resource is None or resource["id"] != observation_id:
        raise FhirNotFoundError(f"no resource {observation_id!r}")
    return FhirResponse(resource)


@router.get("/fhir/RiskAssessment/{risk_id}", operation_id="fhir_read_risk_assessment",
            response_class=FhirResponse, summary="One 6-hour risk assessment")
async def read_risk(request: Request, wt: ServiceDep,
                    risk_id: Annotated[str, Path(pattern=_FHIR_ID)]) -> FhirResponse:
    parsed, patient_id = await _resolve(wt, risk_id, (fhir.RISK_KIND,))
    _audit(request, patient_id)
    score = await _score_at(wt, patient_id, parsed.at, risk_id)
    resource = fhir.risk_assessment(score, (await _basis(wt, patient_id, [score]))[score.window_end])
    if resource["id"] != risk_id:
        raise FhirNotFoundError(f"no resource {risk_id!r}")
    return FhirResponse(resource)


@router.get("/fhir/{unsupported:path}", include_in_schema=False, response_class=FhirResponse)
async def unsupported(unsupported: str) -> FhirResponse:
    return _outcome(404, f"{unsupported[:80]!r} is not supported here: see /fhir/metadata")
