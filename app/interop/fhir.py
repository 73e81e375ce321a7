"""FHIR R4 (4.0.1) resources made from wardtwin's windows and scores: the mapping only (no web, no store).

=================  ==============================================================================================
resource           made from
=================  ==============================================================================================
Patient            the patient id (minimal: id and identifier)
Observation        one per vital per stored 5-minute window (no carry-forward: missing stays missing), per the
                   R4 vital-signs profiles: heart rate 8867-4, respiratory rate 9279-1, SpO2 2708-6 (+ 59408-5),
                   body temperature 8310-5, the BP panel 85354-9 with systolic 8480-6 / diastolic 8462-4
                   components; UCUM units; ``effectivePeriod`` = the window. Heart rate, SpO2 and respiratory rate
                   are the window's means, BP and temperature its last reading (``models.windows``).
Observation        NEWS2 total (SNOMED CT 1104051000000101, category ``survey``) per score, the seven parameter
                   sub-scores as components (wardtwin's own code system: the NHS sub-score SNOMED codes were not
                   verified here, so none are claimed)
RiskAssessment     per score: the twin's probability of deterioration within 6 h
=================  ==============================================================================================

**Probability convention**: ``RiskAssessment.prediction.probabilityDecimal`` is a probability in **0–1** (not a
percentage), as the CapabilityStatement states (``PROBABILITY_CONVENTION``).

Ids: FHIR ids allow ``[A-Za-z0-9-.]{1,64}``, patient ids ``[A-Za-z0-9_-]{1,64}``, so a patient's FHIR id is its id
with ``_`` written ``.`` (one to one). An Observation or RiskAssessment id is ``{kind}.{epoch minutes}.{patient}``;
where that would pass 64 characters the patient part is ``h`` + 40 hex digits of the id's SHA-256
(``resolve_subject`` finds the patient again).
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from app.domain import Score
from models.labels import HORIZON
from models.news2 import PARAMETERS
from models.schema import PATIENT_ID_PATTERN
from models.windows import WINDOW

FHIR_VERSION: Final = "4.0.1"
MEDIA_TYPE: Final = "application/fhir+json"
LOINC: Final = "http://loinc.org"
UCUM: Final = "http://unitsofmeasure.org"
SNOMED: Final = "http://snomed.info/sct"
OBSERVATION_CATEGORY: Final = "http://terminology.hl7.org/CodeSystem/observation-category"
#: wardtwin's own identifiers and codes (stable URNs, the same for every deployment).
PATIENT_ID_SYSTEM: Final = "urn:wardtwin:patient-id"
NEWS2_PARAMETER_SYSTEM: Final = "urn:wardtwin:fhir:news2-parameter"
MODEL_SYSTEM: Final = "urn:wardtwin:fhir:model"
OUTCOME_SYSTEM: Final = "urn:wardtwin:fhir:outcome"
NEWS2_TOTAL: Final = ("1104051000000101",
                      "Royal College of Physicians National Early Warning Score 2 (NEWS2) total score")
PROBABILITY_CONVENTION: Final = (
    "RiskAssessment.prediction.probabilityDecimal is a probability between 0 and 1 (0.25 = 25 %), never a "
    "percentage; whenPeriod is the 6-hour horizon after occurrenceDateTime (the scored window's end).")
OUTCOME_TEXT: Final = ("clinical deterioration within 6 hours: a vital sign sustained at a NEWS2 3-point / "
                       "medical-emergency-team edge (heart rate > 130 or < 40 /min, systolic BP < 90 mmHg, SpO2 "
                       "< 88 %, temperature > 40 °C)")
_FHIR_ID = re.compile(r"^[A-Za-z0-9\-.]{1,64}$")
_NEWS2_NAMES: Final = {"rr": "respiration rate", "spo2": "oxygen saturation", "o2": "air or oxygen",
                       "sbp": "systolic blood pressure", "hr": "pulse", "acvpu": "consciousness",
                       "temp": "temperature"}


@dataclass(frozen=True)
class VitalKind:
    """One vital-signs Observation kind: its window column(s), codes, unit and R4 profile."""

    kind: str
    codes: tuple[tuple[str, str], ...]  # LOINC (code, display), the profile's own first
    text: str
    profile: str
    column: str = ""
    unit: tuple[str, str] = ("", "")  # (human unit, UCUM code)
    statistic: str = "last reading"


MMHG = ("mmHg", "mm[Hg]")
VITAL_KINDS: Final[tuple[VitalKind, ...]] = (
    VitalKind("hr", (("8867-4", "Heart rate"),), "Heart rate", "heartrate", "hr_mean", ("beats/minute", "/min"),
              "mean"),
    VitalKind("rr", (("9279-1", "Respiratory rate"),), "Respiratory rate", "resprate", "rr_mean",
              ("breaths/minute", "/min"), "mean"),
    VitalKind("spo2", (("2708-6", "Oxygen saturation in Arterial blood"),
                       ("59408-5", "Oxygen saturation in Arterial blood by Pulse oximetry")),
              "Oxygen saturation", "oxygensat", "spo2_mean", ("%", "%"), "mean"),
    VitalKind("temp", (("8310-5", "Body temperature"),), "Body temperature", "bodytemp", "temp", ("C", "Cel")),
    VitalKind("bp", (("85354-9", "Blood pressure panel with all children optional"),), "Blood pressure", "bp"),
)
BP_COMPONENTS: Final = (("sbp", "8480-6", "Systolic blood pressure"), ("dbp", "8462-4", "Diastolic blood pressure"))
#: Every Observation kind in the order a window lists them, NEWS2 last.
OBSERVATION_KINDS: Final = (*(k.kind for k in VITAL_KINDS), "news2")
RISK_KIND: Final = "risk"
#: (system, code) → the Observation kind a ``code`` search parameter selects.
CODE_INDEX: Final[dict[tuple[str, str], str]] = {
    **{(LOINC, code): k.kind for k in VITAL_KINDS for code, _ in k.codes},
    (SNOMED, NEWS2_TOTAL[0]): "news2",
}


# -- ids ----------------------------------------------------------------------------------------------------------
def fhir_patient_id(patient_id: str) -> str:
    return patient_id.replace("_", ".")


def patient_id_of(fhir_id: str) -> str | None:
    """The wardtwin patient id of a FHIR Patient id, or None if it cannot be one."""
    patient_id = fhir_id.replace(".", "_")
    return patient_id if PATIENT_ID_PATTERN.fullmatch(patient_id) else None


def _hashed(patient_id: str) -> str:
    return "h" + hashlib.sha256(patient_id.encode()).hexdigest()[:40]


def resource_id(kind: str, patient_id: str, at: datetime) -> str:
    """``{kind}.{epoch minutes}.{patient}`` (the patient hashed where the id would pass 64 characters)."""
    head = f"{kind}.{int(at.timestamp()) // 60}."
    rid = head + fhir_patient_id(patient_id)
    return rid if len(rid) <= 64 else head + _hashed(patient_id)


@dataclass(frozen=True)
class ParsedId:
    kind: str
    at: datetime
    subject: str  # a FHIR patient id, or a hashed one (``resolve_subject``)


def parse_resource_id(rid: str, kinds: Iterable[str]) -> ParsedId | None:
    kind, _, rest = rid.partition(".")
    minutes, _, subject = rest.partition(".")
    if kind not in kinds or not minutes.isdigit() or not subject or not _FHIR_ID.match(rid):
        return None
    return ParsedId(kind, datetime.fromtimestamp(int(minutes) * 60, UTC), subject)


def resolve_subject(subject: str, known: Iterable[str]) -> str | None:
    """The patient id a parsed id's subject part names among ``known`` patient ids: the id itself, else the one
    whose hash it is."""
    direct = patient_id_of(subject)
    ids = set(known)
    if direct in ids:
        return direct
    return next((p for p in ids if _hashed(p) == subject), None)


# -- resources ----------------------------------------------------------------------------------------------------
def instant(at: datetime) -> str:
    return at.astimezone(UTC).isoformat().replace("+00:00", "Z")


def reference(resource_type: str, rid: str) -> dict[str, str]:
    return {"reference": f"{resource_type}/{rid}"}


def patient(patient_id: str) -> dict[str, Any]:
    return {"resourceType": "Patient", "id": fhir_patient_id(patient_id),
            "identifier": [{"system": PATIENT_ID_SYSTEM, "value": patient_id}]}


def _quantity(value: float, unit: tuple[str, str]) -> dict[str, Any]:
    return {"value": round(float(value), 2), "unit": unit[0], "system": UCUM, "code": unit[1]}


def _number(row: Mapping[str, Any], column: str) -> float | None:
    value = row.get(column)
    return float(value) if value is not None and not (isinstance(value, float) and math.isnan(value)) else None


def _vital_signs(kind: VitalKind, rid: str, patient_id: str, start: datetime) -> dict[str, Any]:
    return {
        "resourceType": "Observation", "id": rid,
        "meta": {"profile": [f"http://hl7.org/fhir/StructureDefinition/{kind.profile}"]},
        "status": "final",
        "category": [{"coding": [{"system": OBSERVATION_CATEGORY, "code": "vital-signs", "display": "Vital Signs"}],
                      "text": "Vital Signs"}],
        "code": {"coding": [{"system": LOINC, "code": c, "display": d} for c, d in kind.codes], "text": kind.text},
        "subject": reference("Patient", fhir_patient_id(patient_id)),
        "effectivePeriod": {"start": instant(start), "end": instant(start + WINDOW)},
    }


def present_kinds(row: Mapping[str, Any]) -> list[str]:
    """The vital-signs Observation kinds a stored window holds a value for, in ``VITAL_KINDS`` order."""
    return [k.kind for k in VITAL_KINDS
            if (any(_number(row, v) is not None for v, _, _ in BP_COMPONENTS) if k.kind == "bp"
                else _number(row, k.column) is not None)]


def vital_observation(patient_id: str, row: Mapping[str, Any], kind_name: str) -> dict[str, Any] | None:
    """The ``kind_name`` vital-signs Observation of one stored window (``models.windows`` columns), or None when
    the window holds no value for it."""
    if kind_name not in present_kinds(row):
        return None
    kind = next(k for k in VITAL_KINDS if k.kind == kind_name)
    start = row["start"].to_pydatetime() if hasattr(row["start"], "to_pydatetime") else row["start"]
    resource = _vital_signs(kind, resource_id(kind.kind, patient_id, start), patient_id, start)
    if kind.kind == "bp":
        resource["method"] = {"text": "the last reading of the 5-minute window"}
        resource["component"] = [_bp_component(code, display, _number(row, v)) for v, code, display in BP_COMPONENTS]
        return resource
    resource["valueQuantity"] = _quantity(_number(row, kind.column), kind.unit)  # type: ignore[arg-type]
    if kind.kind == "hr" and _number(row, "hr_count"):
        method = f"mean of {int(row['hr_count'])} readings in the 5-minute window"
    elif kind.statistic == "mean":
        method = "mean of the 5-minute window's readings"
    else:
        method = "the last reading of the 5-minute window"
    resource["method"] = {"text": method}
    return resource


def vital_observations(patient_id: str, row: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Every vital-signs Observation of one stored window; a vital without a value in the window has none."""
    return [r for k in present_kinds(row) if (r := vital_observation(patient_id, row, k)) is not None]


def _bp_component(code: str, display: str, value: float | None) -> dict[str, Any]:
    component: dict[str, Any] = {"code": {"coding": [{"system": LOINC, "code": code, "display": display}],
                                          "text": display}}
    if value is None:
        component["dataAbsentReason"] = {"coding": [{
            "system": "http://terminology.hl7.org/CodeSystem/data-absent-reason", "code": "not-performed",
            "display": "Not Performed"}], "text": "not measured in this window"}
    else:
        component["valueQuantity"] = _quantity(value, MMHG)
    return component


def news2_observation(score: Score) -> dict[str, Any] | None:
    """The NEWS2 total of a score (None: the score carries no NEWS2), its sub-scores as components."""
    news2 = score.news2
    if news2 is None:
        return None
    resource: dict[str, Any] = {
        "resourceType": "Observation", "id": resource_id("news2", score.patient_id, score.window_end),
        "status": "final",
        "category": [{"coding": [{"system": OBSERVATION_CATEGORY, "code": "survey", "display": "Survey"}]}],
        "code": {"coding": [{"system": SNOMED, "code": NEWS2_TOTAL[0], "display": NEWS2_TOTAL[1]}],
                 "text": "NEWS2 total score"},
        "subject": reference("Patient", fhir_patient_id(score.patient_id)),
        "effectiveDateTime": instant(score.window_end),
        "valueInteger": int(news2.total),
        "interpretation": [{"text": f"clinical risk {news2.band}: {news2.response}"}],
        "method": {"text": "RCP 2017 NEWS2 chart 1 on the latest 5-minute window (last readings carried forward "
                           "within their limits)"},
        "component": [{"code": {"coding": [{"system": NEWS2_PARAMETER_SYSTEM, "code": p,
                                            "display": f"NEWS2 {_NEWS2_NAMES.get(p, p)} sub-score"}]},
                       "valueInteger": int(news2.points.get(p, 0))}
                      for p in PARAMETERS],
    }
    if news2.partial:
        resource["note"] = [{"text": "partial set: a parameter not observed scores 0"}]
    return resource


def explanation(score: Score) -> list[str]:
    """The nurse sentences of a score's contributions, most moving first (as ``GET …/risk`` lists them)."""
    ranked = sorted(score.contributions, key=lambda c: abs(c.points), reverse=True)
    return [c.sentence for c in ranked if c.sentence]


def risk_assessment(score: Score, basis: Sequence[str]) -> dict[str, Any]:
    """The twin's score as a RiskAssessment; ``basis``: ids of the Observations it was made from."""
    sentences = explanation(score)
    prediction: dict[str, Any] = {
        "outcome": {"coding": [{"system": OUTCOME_SYSTEM, "code": "deterioration-6h",
                                "display": "clinical deterioration within 6 hours"}], "text": OUTCOME_TEXT},
        "probabilityDecimal": float(score.risk),
        "whenPeriod": {"start": instant(score.window_end), "end": instant(score.window_end + HORIZON)},
    }
    if sentences:
        prediction["rationale"] = " ".join(s if s.endswith(".") else f"{s}." for s in sentences)
    resource: dict[str, Any] = {
        "resourceType": "RiskAssessment", "id": resource_id(RISK_KIND, score.patient_id, score.window_end),
        "status": "final",
        "method": {"coding": [{"system": MODEL_SYSTEM, "code": score.model_version,
                               "display": f"wardtwin twin {score.model_version}"}],
                   "text": f"wardtwin digital twin, model {score.model_version} (calibrated logistic regression)"},
        "subject": reference("Patient", fhir_patient_id(score.patient_id)),
        "occurrenceDateTime": instant(score.window_end),
        "performer": {"display": "wardtwin"},
        "prediction": [prediction],
    }
    if basis:
        resource["basis"] = [reference("Observation", rid) for rid in basis]
    if score.flags:
        resource["note"] = [{"text": f"flags: {', '.join(score.flags)}"}]
    return resource


def risk_basis(score: Score, window_kinds: Iterable[str]) -> list[str]:
    """The Observations a score was made from: the vital signs of its last window that hold a value, and its
    NEWS2."""
    start = score.window_end - WINDOW
    ids = [resource_id(kind, score.patient_id, start) for kind in window_kinds]
    if score.news2 is not None:
        ids.append(resource_id("news2", score.patient_id, score.window_end))
    return ids


# -- search parameters --------------------------------------------------------------------------------------------
_DATE = re.compile(r"^(eq|gt|lt|ge|le)?(\d{4})(?:-(\d{2})(?:-(\d{2})(T.+)?)?)?$")
DATE_PREFIXES: Final = ("eq", "gt", "lt", "ge", "le")
_CLOCK = re.compile(r"^T\d{2}:\d{2}(:\d{2})?(\.\d+)?")  # seconds, fraction: the precision of a dateTime


def date_range(raw: str) -> tuple[str, datetime, datetime]:
    """A ``date`` search value as (prefix, start, end): the instants ``[start, end)`` its precision covers (a year,
    month or day in UTC; a dateTime must carry an offset). ``ValueError`` naming the problem."""
    match = _DATE.match(raw)
    if match is None:
        raise ValueError(f"date {raw[:40]!r} is not [{'|'.join(DATE_PREFIXES)}]YYYY[-MM[-DD[Thh:mm[:ss][offset]]]]")
    prefix, year, month, day, clock = match.groups()
    try:
        if clock:
            start = datetime.fromisoformat(f"{year}-{month}-{day}{clock}")
            if start.tzinfo is None:
                raise ValueError(f"date {raw[:40]!r} needs a UTC offset (e.g. Z)")
            start = start.astimezone(UTC)
            precision = _CLOCK.match(clock)
            step = (timedelta(minutes=1) if precision is None or precision.group(1) is None
                    else timedelta(seconds=1) if precision.group(2) is None else timedelta(milliseconds=1))
            end = start + step
        elif day:
            start = datetime(int(year), int(month), int(day), tzinfo=UTC)
            end = start + timedelta(days=1)
        elif month:
            start = datetime(int(year), int(month), 1, tzinfo=UTC)
            end = datetime(int(year) + (int(month) == 12), int(month) % 12 + 1, 1, tzinfo=UTC)
        else:
            start, end = datetime(int(year), 1, 1, tzinfo=UTC), datetime(int(year) + 1, 1, 1, tzinfo=UTC)
    except (ValueError, OverflowError) as exc:
        raise ValueError(f"date {raw[:40]!r}: {exc}") from None
    return prefix or "eq", start, end


def date_bounds(values: Sequence[str]) -> tuple[datetime | None, datetime | None]:
    """Every ``date`` value ANDed: the inclusive ``(lowest, highest)`` instants a match may touch (None: unbounded
    on that side)."""
    lo: datetime | None = None
    hi: datetime | None = None
    tick = timedelta(milliseconds=1)
    for raw in values:
        if "," in raw:
            raise ValueError(f"date {raw[:40]!r}: alternatives (a comma, OR) are not supported; repeat date to AND")
        prefix, start, end = date_range(raw.strip())
        low = {"eq": start, "ge": start, "gt": end}.get(prefix)
        high = {"eq": end - tick, "le": end - tick, "lt": start - tick}.get(prefix)
        if low is not None:
            lo = low if lo is None else max(lo, low)
        if high is not None:
            hi = high if hi is None else min(hi, high)
    return lo, hi


# -- envelopes ----------------------------------------------------------------------------------------------------
#: HTTP status → OperationOutcome issue type.
ISSUE_TYPES: Final[dict[int, str]] = {400: "invalid", 401: "login", 403: "forbidden", 404: "not-found",
                                      405: "not-supported", 413: "too-long", 415: "not-supported", 422: "processing",
                                      429: "throttled", 503: "transient"}


def operation_outcome(status: int, diagnostics: str, expression: Sequence[str] = (),
                      severity: str = "") -> dict[str, Any]:
    issue: dict[str, Any] = {"severity": severity or ("fatal" if status >= 500 else "error"),
                             "code": ISSUE_TYPES.get(status, "exception"), "diagnostics": diagnostics}
    if expression:
        issue["expression"] = list(expression)
    return {"resourceType": "OperationOutcome", "issue": [issue]}


def bundle(base: str, entries: Sequence[dict[str, Any]], total: int, links: Mapping[str, str],
           outcome: dict[str, Any] | None = None) -> dict[str, Any]:
    """A searchset Bundle: ``entries`` as matches (``fullUrl`` = base/type/id), an optional OperationOutcome entry."""
    items = [{"fullUrl": f"{base}/{r['resourceType']}/{r['id']}", "resource": r, "search": {"mode": "match"}}
             for r in entries]
    if outcome is not None:
        items.append({"resource": outcome, "search": {"mode": "outcome"}})
    return {"resourceType": "Bundle", "type": "searchset", "total": total,
            "link": [{"relation": rel, "url": url} for rel, url in links.items()], "entry": items}


def _search_param(name: str, kind: str, doc: str) -> dict[str, str]:
    return {"name": name, "type": kind, "documentation": doc}


def capability_statement(base: str, version: str, now: datetime, max_count: int, max_span: timedelta,
                         default_span: timedelta) -> dict[str, Any]:
    """What the server supports, the probability convention included."""
    span = (f"date: ge/gt/le/lt/eq with a dateTime (offset required) or a date (UTC); default the {default_span} "
            f"before now, at most {max_span.days} days")
    common = [_search_param("subject", "reference", "Patient/{id} (required)"),
              _search_param("date", "date", span),
              _search_param("_count", "number", f"page size, default 50, at most {max_count}")]
    return {
        "resourceType": "CapabilityStatement", "status": "active", "date": instant(now), "kind": "instance",
        "publisher": "wardtwin",
        "description": "wardtwin: the patient-deterioration twin's vital signs, NEWS2 and 6-hour risk, read-only. "
                       + PROBABILITY_CONVENTION,
        "software": {"name": "wardtwin", "version": version},
        "implementation": {"description": "wardtwin FHIR R4 read API", "url": base},
        "fhirVersion": FHIR_VERSION, "format": [MEDIA_TYPE, "json"],
        "rest": [{
            "mode": "server",
            "documentation": "Read-only. Searches page with _count and answer searchset Bundles with a next link.",
            "security": {"description": "Authorization: Bearer <API key> with the role ehr or clinician "
                                        "(wardtwin keys create)."},
            "resource": [
                {"type": "Patient", "interaction": [{"code": "read"}]},
                {"type": "Observation",
                 "supportedProfile": [f"http://hl7.org/fhir/StructureDefinition/{k.profile}" for k in VITAL_KINDS],
                 "documentation": "Vital signs per 5-minute window (R4 vital-signs profiles; no carry-forward) and "
                                  "NEWS2 totals (SNOMED CT 1104051000000101) with sub-scores as components; newest "
                                  "first.",
                 "interaction": [{"code": "read"}, {"code": "search-type"}],
                 "searchParam": [*common, _search_param(
                     "code", "token", "system|code, comma-separated: LOINC 8867-4, 9279-1, 2708-6, 59408-5, "
                                      "8310-5, 85354-9; SNOMED CT 1104051000000101")]},
                {"type": "RiskAssessment",
                 "documentation": PROBABILITY_CONVENTION + " method = the model version; rationale = the "
                                  "explanation's sentences; basis = the Observations of the scored window.",
                 "interaction": [{"code": "read"}, {"code": "search-type"}],
                 "searchParam": [*common, _search_param("_sort", "string", "-date (default, newest first) or date")]},
            ],
        }],
    }
