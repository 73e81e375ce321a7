"""Request and response schemas of the public API (the OpenAPI document at /docs is built from these)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field, computed_field

from app.alerts.store import KINDS, STATES
from models import news2
from models.schema import ACVPU_CODES, PATIENT_ID_PATTERN, QUALITY_OK, QUALITY_PATTERN, VITALS


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
    """NEWS2 with the RCP 2017 chart-4 row for it (derived from ``total`` and ``points``, so scores stored
    before these fields existed answer them too)."""

    points: dict[str, int]
    total: int
    band: Literal["low", "low-medium", "medium", "high"]
    partial: bool

    @computed_field(description="a 3 in any single parameter (the chart's single-parameter trigger)")
    @property
    def single_parameter_3(self) -> bool:
        return news2.has_single_parameter_3(self.points)

    @computed_field(description="routine, ward-based, urgent ward-based, urgent or emergency")
    @property
    def urgency(self) -> str:
        return self._row.urgency

    @computed_field(description="the RCP 2017 clinical response for this result (chart 4)")
    @property
    def response(self) -> str:
        return self._row.response

    @computed_field(description="minimum observation frequency: every 12 h, every 4–6 h, every hour or "
                                "continuous monitoring")
    @property
    def monitoring(self) -> str:
        return self._row.monitoring

    @computed_field(description="the longest wait to the next observation set, in minutes (0: continuous)")
    @property
    def observe_within_min(self) -> int:
        return self._row.observe_within_min

    @property
    def _row(self) -> news2.ClinicalResponse:
        return news2.clinical_response(self.total, self.single_parameter_3)


class RiskOut(BaseModel):
    patient_id: str
    window_end: datetime
    risk: float = Field(description="calibrated probability of deterioration within 6 hours")
    logit: float
    intercept: float
    news2: News2Out | dict
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
    kind: AlertKind = Field(description="twin: the twin's risk; news2: the RCP 2017 NEWS2 triggers; "
                                        "criteria: a deterioration criterion met now")


class AcknowledgeIn(BaseModel):
    by: str = Field(min_length=1, max_length=64, description="who acknowledged (name or staff id)")


class News2In(BaseModel):
    model_config = {"extra": "forbid"}

    rr: float | None = None
    spo2: float | None = None
    spo2_scale: Literal[1, 2] = 1
    on_oxygen: bool | None = None
    sbp: float | None = None
    hr: float | None = None
    acvpu: Literal[ACVPU_CODES] | None = None  # type: ignore[valid-type]
    temp: float | None = None


class WhatIfIn(BaseModel):
    model_config = {"extra": "forbid"}

    changes: dict[Literal[VITALS], float] = Field(  # type: ignore[valid-type]
        min_length=1, examples=[{"spo2": 96}]
    )


class CycleOut(BaseModel):
    window_end: datetime
    patients: int
    scored: int
    alerts_raised: int
    took_ms: float
