"""The OpenAPI document made honest about errors: every status a route can answer is documented with its body.

FastAPI documents the success and the validation 422; the edge adds the rest once, by rule, so a new route gets
them too: 401/403/429 where a key is required, 413/415 where a body is read, 404 where a path names a resource,
409 where an alert changes state, 503 where the store is reached. Error bodies are ``Error``
(``{"detail", "code"}``), validation bodies FastAPI's ``HTTPValidationError`` (ingest's 422 adds ``accepted``
and ``rejected``)."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

ERROR = {"$ref": "#/components/schemas/Error"}
_ERROR_SCHEMA = {
    "title": "Error", "type": "object", "required": ["detail", "code"],
    "properties": {"detail": {"type": "string", "description": "what went wrong, for a person"},
                   "code": {"type": "string", "description": "a stable code, for a program",
                            "examples": ["unauthenticated", "forbidden", "patient_not_found"]}},
}
_REJECTED_SCHEMA = {
    "title": "ReadingsRejected", "type": "object", "required": ["detail"],
    "properties": {"detail": {"type": "array", "items": {"$ref": "#/components/schemas/ValidationError"}},
                   "accepted": {"type": "integer", "minimum": 0, "description": "good items stored anyway"},
                   "rejected": {"type": "integer", "minimum": 0, "description": "items refused"}},
}
_VALIDATION = {"$ref": "#/components/schemas/HTTPValidationError"}


def _response(description: str, schema: dict[str, Any], headers: dict[str, Any] | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"description": description, "content": {"application/json": {"schema": schema}}}
    if headers:
        out["headers"] = headers
    return out


#: The ingest routes: their 422 names the bad items and counts the good ones stored.
INGEST_PATHS = ("/v1/readings", "/v1/write")


def _errors_for(method: str, path: str, op: dict[str, Any]) -> dict[str, dict[str, Any]]:
    errors: dict[str, dict[str, Any]] = {}
    if op.get("security"):
        errors["401"] = _response("No valid API key (missing, unknown or revoked)", ERROR,
                                  {"WWW-Authenticate": {"schema": {"type": "string"}}})
        errors["403"] = _response("The key's role may not do this", ERROR)
        errors["429"] = _response("Too many requests for this key", ERROR,
                                  {"Retry-After": {"schema": {"type": "integer"}, "description": "seconds"}})
        errors["503"] = _response("The store is unavailable", ERROR)
    if method in ("post", "put", "patch", "delete"):
        errors["413"] = _response("The body is larger than the service accepts", ERROR)
        errors["415"] = _response("The body is not JSON (nor, on /v1/write, text/plain line protocol)"
                                  if path == "/v1/write" else "The body is not JSON", ERROR)
    if "{" in path:
        errors["404"] = _response("No such resource", ERROR)
    if path.startswith("/v1/alerts/") or path.startswith("/v1/webhooks/"):
        errors["409"] = _response("The resource's state does not allow this", ERROR)
    if op.get("parameters") or "requestBody" in op:
        errors["422"] = _response("Invalid request: every problem with its location", _VALIDATION)
    if path in INGEST_PATHS:
        errors["422"] = _response("Some items are invalid (named by index and field); the good ones were stored",
                                  {"anyOf": [{"$ref": "#/components/schemas/ReadingsRejected"}, _VALIDATION]})
    return errors


def document_errors(app: FastAPI) -> None:
    """Replace ``app.openapi`` with one that adds the error responses (built once, then cached)."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(title=app.title, version=app.version, summary=app.summary, routes=app.routes)
            components = schema.setdefault("components", {}).setdefault("schemas", {})
            components["Error"] = _ERROR_SCHEMA
            components["ReadingsRejected"] = _REJECTED_SCHEMA
            components.setdefault("HTTPValidationError", {
                "title": "HTTPValidationError", "type": "object",
                "properties": {"detail": {"type": "array", "items": {"$ref": "#/components/schemas/ValidationError"}}}})
            components.setdefault("ValidationError", {
                "title": "ValidationError", "type": "object", "required": ["loc", "msg", "type"],
                "properties": {"loc": {"type": "array", "items": {"anyOf": [{"type": "string"}, {"type": "integer"}]}},
                               "msg": {"type": "string"}, "type": {"type": "string"}}})
            for path, operations in schema.get("paths", {}).items():
                for method, op in operations.items():
                    for status, response in _errors_for(method, path, op).items():
                        if path in INGEST_PATHS or status not in op["responses"]:
                            op["responses"][status] = response
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
