"""Request and response schemas of the public API (the OpenAPI document at /docs is built from these)."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, create_model, model_validator

from app.alerts.store import KINDS, STATES
from models import news2
from models.schema import (
    ACVPU_CODES,
    PATIENT_ID_PATTERN,
    PLAUSIBLE_RANGES,
    QUALITY_OK,
    QUALITY_PATTERN,
    SOURCES,
    VITALS,
)


class ReadingIn(BaseModel):
    """One reading. Validation is done by ``app.ingest`` item by item; this model documents the contract."""

    patient_id: str = Field(pattern=PATIENT_ID_PATTERN.pattern, examples=["bed-01"])
    vital: Literal[VITALS] = Field(examples=["hr"])  # type: ignore[valid-type]
    value: float | Literal[ACVPU_CODES] = Field(  # type: ignore[valid-type]
        examples=[82],
        description=f"number in the vital's unit; acvpu may be a letter {'/'.join(ACVPU_CODES)} "
        f"or its code 0–{len(ACVPU_CODES) - 1}",
    )
    ts: datetime = Field(description="ISO 8601 with a timezone offset", examples=["2026-11-24T10:00:00Z"])
    quality: str = Field(QUALITY_OK, pattern=QUALITY_PATTERN.pattern, description="'ok' or the device's artefact flag")
    source: Literal[SOURCES] = Field("monitor", description="monitor (a device's stream) or charted (a nurse's "  # type: ignore[valid-type]
                                     "observation; POST /v1/observations charts a whole NEWS2 set)")


class ReadingsBatch(BaseModel):
    readings: list[ReadingIn] = Field(max_length=10_000)


class IngestResult(BaseModel):
    accepted: int


class ContributionOut(BaseModel):
    feature: str
    value: float | None
    points: float = Field(description="push on the logit: coefficient × standardised value")
    sentence: str


class News2Out(BaseModel):
    """NEWS2 with the RCP 2017 chart-4 row for it: ``models.news2.News2Summary`` as the API shows it (scores
    stored before the chart-4 fields existed are read by ``News2Summary.from_stored``, which derives them)."""

    points: dict[str, int]
    total: int
    band: Literal["low", "low-medium", "medium", "high"]
    partial: bool
    single_parameter_3: bool = Field(description="a 3 in any single parameter (the chart's single-parameter trigger)")
    urgency: str = Field(description="routine, ward-based, urgent ward-based, urgent or emergency")
    response: str = Field(description="the RCP 2017 clinical response for this result (chart 4)")
    monitoring: str = Field(description="minimum observation frequency: every 12 h, every 4–6 h, every hour or "
                                        "continuous monitoring")
    observe_within_min: int = Field(description="the longest wait to the next observation set, in minutes "
                                                "(0: continuous)")

    @classmethod
    def of(cls, summary: news2.News2Summary) -> News2Out:
        return cls.model_validate(summary.to_dict())


class RiskOut(BaseModel):
    patient_id: str
    window_end: datetime
    risk: float = Field(description="calibrated probability of deterioration within 6 hours")
    logit: float
    intercept: float
    news2: News2Out | dict = Field(description="NEWS2 of the scored window; {} for a score stored before NEWS2")
    contributions: list[ContributionOut]
    explanation: list[str] = Field(description="sentences of the contributions that move the score, by impact")
    model_version: str
    challenger_risk: float | None = None
    flags: list[str] = []
    scored_at: datetime | None = None


class PatientSummary(BaseModel):
    patient_id: str
    risk: float | None
    window_end: datetime | None
    news2_total: int | None
    news2_band: str | None
    top_reason: str | None
    alert_id: str | None = None
    alert_state: str | None = None
    flags: list[str] = Field([], description="e.g. criteria_met:sbp_low, challenger_disagrees")


class WindowOut(BaseModel):
    start: datetime
    hr_mean: float | None
    hr_std: float | None
    hr_count: int
    spo2_mean: float | None
    rr_mean: float | None
    sbp: float | None
    dbp: float | None
    temp: float | None
    acvpu: float | None
    o2: float | None


AlertState = Literal[STATES]  # type: ignore[valid-type]
AlertKind = Literal[KINDS]  # type: ignore[valid-type]


class AlertOut(BaseModel):
    id: str
    patient_id: str
    window_end: datetime
    raised_at: datetime
    risk: float
    reasons: list[str]
    state: AlertState
    updated_at: datetime
    delivered_at: datetime | None = None
    acknowledged_by: str | None = None
    acknowledged_at: datetime | None = None
    escalated_at: datetime | None = None
    resolved_at: datetime | None = None
    resolved_reason: str | None = None
    kind: AlertKind = Field(description="twin: sustained twin risk; news2: a charted set at the RCP 2017 NEWS2 "
                                        "triggers; obs_due: the monitor suggested NEWS2 at a trigger persistently, "
                                        "observations due; criteria: a deterioration criterion met now")
    delivery_pending: bool = Field(False, description="open, unacknowledged and not yet confirmed by any "
                                                      "subscriber (WebSocket ack or webhook 2xx)")
    news2: dict | None = Field(None, description="NEWS2 of the score that raised it: total, band, response")
    last_notified_at: datetime | None = None
    renotifications: int = 0


class TransitionOut(BaseModel):
    from_state: AlertState | None = Field(description="None for the raise")
    to_state: AlertState
    event: str = Field(description="raised, delivered, escalated, renotified, acknowledged, resolved, or "
                                   "corroborated (another rule held and was recorded on this alert instead of raising "
                                   "a second one; no notification)")
    at: datetime
    actor: str = Field(description="engine, the key's name (`<nurse> via <key's name>` when the nurse is named), "
                                   "websocket:<client> or webhook:<endpoint>")
    note: str | None = Field(None, description="the nurse's note on an acknowledgement or resolution; for "
                                               "corroborated, the rule recorded")


def ranged(vital: str) -> Any:
    """A number within the vital's plausible range (``models.schema.PLAUSIBLE_RANGES``): the range ingest and NEWS2
    enforce, stated in the schema."""
    lo, hi = PLAUSIBLE_RANGES[vital]
    return Annotated[float, Field(ge=lo, le=hi)]


RrValue, SpO2Value, SbpValue, HrValue, TempValue = (ranged(v) for v in ("rr", "spo2", "sbp", "hr", "temp"))


class News2In(BaseModel):
    model_config = {"extra": "forbid", "strict": True}  # numbers are numbers, booleans booleans ("yes" is 422)

    rr: RrValue | None = None
    spo2: SpO2Value | None = None
    spo2_scale: Literal[1, 2] = 1
    on_oxygen: bool | None = None
    sbp: SbpValue | None = None
    hr: HrValue | None = None
    acvpu: Literal[ACVPU_CODES] | None = None  # type: ignore[valid-type]
    temp: TempValue | None = None


def _change(vital: str) -> tuple[Any, Any]:
    """An optional change: absent, never ``null``, in the schema (a ``null`` is read as absent, and a body with
    nothing else is refused by ``_at_least_one``)."""
    lo, hi = PLAUSIBLE_RANGES[vital]
    if vital == "acvpu":  # a letter, or its code as a whole number (2.0 is 2, as ingest takes it)
        code = Annotated[float, Field(ge=lo, le=hi, multiple_of=1)]
        return code | Literal[ACVPU_CODES] | None, Field(None, json_schema_extra=_not_null)  # type: ignore[valid-type]
    return ranged(vital) | None, Field(None, json_schema_extra=_not_null)


def _not_null(schema: dict[str, Any]) -> None:
    schema["anyOf"] = [branch for branch in schema.get("anyOf", []) if branch != {"type": "null"}]


class _ChangesBase(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, json_schema_extra={"minProperties": 1})

    @model_validator(mode="after")
    def _at_least_one(self) -> _ChangesBase:
        if not self.model_dump(exclude_none=True):
            raise ValueError("give at least one vital to change")
        return self


#: One optional field per vital, with the plausible range ingest enforces (``models.schema.PLAUSIBLE_RANGES``).
WhatIfChanges = create_model("WhatIfChanges", __base__=_ChangesBase, **{v: _change(v) for v in VITALS})


class WhatIfIn(BaseModel):
    """Each change obeys the ingest rules (same ranges; ``app.ingest.check_value`` is applied too): what-if accepts
    exactly what ``POST /v1/readings`` accepts for that vital."""

    model_config = {"extra": "forbid", "strict": True}

    changes: WhatIfChanges = Field(examples=[{"spo2": 96}],  # type: ignore[valid-type]
                                   description="vital → value in its unit (acvpu: a letter or its code 0–4)")


class CycleOut(BaseModel):
    window_end: datetime
    patients: int
    scored: int
    alerts_raised: int
    took_ms: float
    alerts_evaluated: bool = Field(True, description="false: a past window end; its scores were written and no "
                                                     "alert changed (only the newest window end drives alerts)")
    fleet: dict[str, Any] | None = Field(None, description="on a fleet instance (WARDTWIN_CONTROL_DB=postgresql://…): "
                                         "its id and each window end it scored here, with the buckets it claimed "
                                         "and the patients scored per bucket (catch-up of a taken-over bucket "
                                         "first); absent on a single instance")


def _iso_only(value: object) -> object:
    """A query date-time must be ISO 8601 text: a bare number (``0.5``) would otherwise be read as Unix time."""
    if isinstance(value, str) and re.fullmatch(r"\s*[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?\s*", value):
        raise ValueError("must be an ISO 8601 date-time with an offset (e.g. 2026-03-02T12:00:00Z), not a number")
    return value


#: A date-time query parameter: ISO 8601 only (offset checked by the route, range by the route).
IsoDatetime = Annotated[datetime, BeforeValidator(_iso_only)]
