"""POST /v1/readings: validate a batch item by item, store the valid ones, name every bad one."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import orjson
from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel

from app.api.auth import requires
from app.api.deps import service
from app.api.schemas import IngestResult, ReadingsBatch
from app.errors import InvalidRequestError, ReadingRejectedError
from app.ingest import validate_batch
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
        "Valid items are stored durably before the answer; re-sending is idempotent on (patient_id, vital, ts). "
        "If any item is bad the answer is **422** listing every bad item (`loc` = body, readings, index, field) "
        "with `accepted` = how many of the batch's good items were stored anyway."
    ),
    openapi_extra={"requestBody": {"required": True, "content": {"application/json": {
        "schema": batch_schema()}}}},
)
async def post_readings(request: Request) -> IngestResult:
    wt = service(request)
    try:
        body = orjson.loads(await request.body())
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
    result = validate_batch(items, wt.clock.now(), timedelta(seconds=wt.settings.max_future_skew_s),
                            timedelta(days=wt.settings.reading_horizon_days))
    if result.readings:
        await wt.store.write_readings(result.readings)
    if result.errors:
        raise ReadingRejectedError(result.errors, accepted=len(result.readings))
    return IngestResult(accepted=len(result.readings))


