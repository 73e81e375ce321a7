"""POST /v1/readings: validate a batch item by item, store the valid ones, name every bad one."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import orjson
from fastapi import APIRouter, Request
from pydantic import BaseModel

from app.api.deps import service
from app.api.schemas import IngestResult, ReadingsBatch
from app.errors import InvalidRequestError, ReadingRejectedError
from app.ingest import validate_batch

router = APIRouter(tags=["readings"])


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
        "schema": inline_schema(ReadingsBatch)}}}},
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
    result = validate_batch(items, wt.clock.now(), timedelta(seconds=wt.settings.max_future_skew_s))
    if result.readings:
        await wt.store.write_readings(result.readings)
    if result.errors:
        raise ReadingRejectedError(result.errors, accepted=len(result.readings))
    return IngestResult(accepted=len(result.readings))


