"""POST /v1/readings (JSON) and POST /v1/write (InfluxDB line protocol): validate item by item, store the valid
ones, name every bad one."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any, Literal

import orjson
from fastapi import APIRouter, Depends, Query, Request, Response
from pydantic import BaseModel

from app.api.auth import requires
from app.api.compression import decoded_body
from app.api.deps import ServiceDep
from app.api.device_writes import store
from app.api.schemas import IngestResult, ReadingsBatch
from app.errors import InvalidRequestError
from app.ingest import validate_batch
from app.ingest_decoder import decode_batch
from app.ingest_lines import PRECISIONS, reading_lines, validate_lines
from models.schema import ACVPU_CODES, PLAUSIBLE_RANGES, VITALS

router = APIRouter(tags=["readings"], dependencies=[Depends(requires("device", audited=False))])


def inline_schema(model: type[BaseModel]) -> dict[str, Any]:
    """The model's JSON schema with its ``$defs`` resolved in place (the route reads the raw body for speed,
    validating item by item, so the schema is documented rather than declared as a parameter)."""
    schema = model.model_json_schema()
    defs = schema.pop("$defs", {})

    def resolve(node: Any) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith("#/$defs/"):
                return resolve(defs[ref.removeprefix("#/$defs/")])
            return {k: resolve(v) for k, v in node.items()}
        if isinstance(node, list):
            return [resolve(v) for v in node]
        return node

    return resolve(schema)


def batch_schema() -> dict[str, Any]:
    """``ReadingsBatch``'s schema with each item's rules as ingest applies them: one branch per vital with its
    plausible range (``models.schema.PLAUSIBLE_RANGES``; acvpu also a letter, either case), no other fields."""
    schema = inline_schema(ReadingsBatch)
    item = schema["properties"]["readings"]["items"]
    branches = []
    for vital in VITALS:
        lo, hi = PLAUSIBLE_RANGES[vital]
        number: dict[str, Any] = {"type": "number", "minimum": lo, "maximum": hi}
        if vital == "acvpu":
            letters = [*ACVPU_CODES, *(c.lower() for c in ACVPU_CODES)]
            value: dict[str, Any] = {"anyOf": [{**number, "multipleOf": 1}, {"type": "string", "enum": letters}]}
        else:
            value = number
        branches.append({"properties": {"vital": {"const": vital}, "value": value}})
    item["properties"]["value"] = {"description": item["properties"]["value"]["description"]}  # the branches type it
    item["oneOf"] = branches
    item["additionalProperties"] = False
    return schema


@router.post(
    "/v1/readings",
    response_model=IngestResult,
    summary="Ingest a batch of readings (≤ 10,000)",
    description=(
        "Valid items are stored durably before the answer; re-sending is idempotent on (patient_id, vital, ts, "
        "source). `source` is `monitor` (default) or `charted` (a nurse's value; a whole NEWS2 set goes to "
        "`POST /v1/observations`). "
        "If any item is bad the answer is **422** listing every bad item (`loc` = body, readings, index, field) "
        "with `accepted` = how many of the batch's good items were stored anyway."
    ),
    openapi_extra={"requestBody": {"required": True, "content": {"application/json": {
        "schema": batch_schema()}}}},
)
async def post_readings(request: Request, wt: ServiceDep) -> IngestResult:
    raw = decoded_body(request, await request.body(), wt.settings.max_body_bytes)
    skew, age = timedelta(seconds=wt.settings.max_future_skew_s), timedelta(days=wt.settings.reading_horizon_days)
    try:
        readings = decode_batch(raw, wt.now(), skew, age, wt.settings.max_batch_readings)
    except UnicodeDecodeError:  # invalid UTF-8 inside a string: the full path names where (issue 21: was a 500)
        readings = None
    if readings is not None:  # the typed fast path: every item valid (app/ingest_decoder.py)
        return IngestResult(accepted=await store(request, wt, readings))
    try:
        raw.decode()
    except UnicodeDecodeError as exc:  # JSON is UTF-8 (RFC 8259): say where it is not
        raise InvalidRequestError(["body"], f"body is not valid JSON: not UTF-8 ({exc.reason} at byte {exc.start})",
                                  "json_invalid") from None
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidRequestError(["body"], f"body is not valid JSON: {exc}", "json_invalid") from None
    items = body.get("readings") if isinstance(body, dict) else None
    if not isinstance(items, list):
        raise InvalidRequestError(["body", "readings"], "body must be an object with a 'readings' list", "missing")
    if len(items) > wt.settings.max_batch_readings:
        raise InvalidRequestError(
            ["body", "readings"], f"at most {wt.settings.max_batch_readings} readings per batch, got {len(items)}",
            "too_long",
        )
    result = validate_batch(items, wt.now(), skew, age)
    return IngestResult(accepted=await store(request, wt, result.readings, result.errors))


@router.post(
    "/v1/write",
    status_code=204,
    response_class=Response,
    summary="Ingest readings as InfluxDB line protocol (≤ 10,000 lines)",
    description=(
        "For gateways and Telegraf that speak InfluxDB line protocol (v1 `/write`): one line per reading, "
        "`vitals,patient_id=<id>[,source=charted],vital=<vital> value=<number>[,quality=\"<flag>\"] [<timestamp>]` "
        "(no `source` tag: the monitor's), the timestamp in "
        "`precision` (default `ns`; none: the service's clock). `Content-Type: text/plain`, optionally "
        "`Content-Encoding: gzip`. The rules of `POST /v1/readings` apply line by line: **204** when every line is "
        "stored; otherwise **422** listing every bad line (`loc` = body, lines, 0-based line index, field) with "
        "`accepted` = how many good lines were stored anyway."
    ),
    responses={204: {"description": "Every line stored"}},
    openapi_extra={"requestBody": {"required": True, "content": {"text/plain": {
        "schema": {"type": "string"}, "example": 'vitals,patient_id=bed-01,vital=hr value=88 1764237600000000000'}}}},
)
async def post_write(
    request: Request, wt: ServiceDep,
    precision: Annotated[Literal[tuple(PRECISIONS)], Query(  # type: ignore[valid-type]
        description="the timestamps' unit, as InfluxDB 1.x names it")] = "ns",
) -> Response:
    raw = decoded_body(request, await request.body(), wt.settings.max_body_bytes)
    try:
        text = raw.decode()
    except UnicodeDecodeError as exc:
        raise InvalidRequestError(["body"], f"the body is not UTF-8 text: {exc.reason} at byte {exc.start}",
                                  "unicode") from None
    lines = reading_lines(text)
    if len(lines) > wt.settings.max_batch_readings:
        raise InvalidRequestError(
            ["body", "lines"], f"at most {wt.settings.max_batch_readings} lines per request, got {len(lines)}",
            "too_long")
    result = validate_lines(lines, precision, wt.now(), timedelta(seconds=wt.settings.max_future_skew_s),
                            timedelta(days=wt.settings.reading_horizon_days))
    await store(request, wt, result.readings, result.errors)
    return Response(status_code=204)
