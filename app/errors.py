"""Domain errors, mapped to HTTP status codes once, at the edge (``app/api/errors.py``).

    WardTwinError
    ├── PatientNotFoundError      404
    ├── AlertNotFoundError        404
    ├── ReadingRejectedError      422  (carries FastAPI-shaped ``detail`` items)
    ├── InvalidRequestError       422
    ├── AlertConflictError        409
    ├── WebhookNotFoundError      404  (no such webhook endpoint or delivery)
    ├── DeliveryConflictError     409  (redeliver a delivery that is not dead-lettered)
    ├── StoreUnavailableError     503
    ├── KeyNotFoundError          404
    ├── AuthenticationError       401  (no, unknown or revoked credential)
    ├── PermissionDeniedError     403  (a valid key whose role may not do this)
    ├── RateLimitedError          429  (carries ``retry_after_s``)
    ├── PayloadTooLargeError      413
    └── UnsupportedMediaTypeError 415
"""

from __future__ import annotations

from typing import Any


class WardTwinError(Exception):
    code = "wardtwin_error"


class PatientNotFoundError(WardTwinError):
    code = "patient_not_found"

    def __init__(self, patient_id: str) -> None:
        super().__init__(f"no patient {patient_id!r}")
        self.patient_id = patient_id


class AlertNotFoundError(WardTwinError):
    code = "alert_not_found"


class ReadingRejectedError(WardTwinError):
    code = "reading_rejected"

    def __init__(self, detail: list[dict[str, Any]], accepted: int = 0) -> None:
        super().__init__(f"{len(detail)} reading(s) rejected")
        self.detail = detail
        self.accepted = accepted


class InvalidRequestError(WardTwinError):
    code = "invalid_request"

    def __init__(self, loc: list[str | int], msg: str, type_: str = "value_error") -> None:
        super().__init__(msg)
        self.detail = [{"loc": loc, "msg": msg, "type": type_}]


class AlertConflictError(WardTwinError):
    code = "alert_conflict"


class StoreUnavailableError(WardTwinError):
    code = "store_unavailable"


class KeyNotFoundError(WardTwinError):
    code = "key_not_found"


class AuthenticationError(WardTwinError):
    code = "unauthenticated"


class PermissionDeniedError(WardTwinError):
    code = "forbidden"


class RateLimitedError(WardTwinError):
    code = "rate_limited"

    def __init__(self, retry_after_s: int) -> None:
        super().__init__(f"too many requests for this key; retry after {retry_after_s} s")
        self.retry_after_s = retry_after_s


class PayloadTooLargeError(WardTwinError):
    code = "payload_too_large"


class UnsupportedMediaTypeError(WardTwinError):
    code = "unsupported_media_type"


class WebhookNotFoundError(WardTwinError):
    code = "webhook_not_found"


class DeliveryConflictError(WardTwinError):
    code = "delivery_conflict"


class KeyConflictError(WardTwinError):
    """The key's state does not allow this (the last active admin key cannot be revoked)."""

    code = "key_conflict"
