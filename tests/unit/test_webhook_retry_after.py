"""A receiver's ``Retry-After`` (429 or 503) defers the next webhook attempt, up to the backoff's cap."""

from __future__ import annotations

from datetime import UTC, datetime
from email.utils import format_datetime

import httpx
import pytest

from app.alerts.webhooks import Delivery, WebhookWorker, retry_after_s

NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC).timestamp()


@pytest.mark.parametrize(("value", "expected"), [
    ("120", 120.0),
    (" 7 ", 7.0),
    (format_datetime(datetime.fromtimestamp(NOW + 90, UTC), usegmt=True), 90.0),
    (format_datetime(datetime.fromtimestamp(NOW - 90, UTC), usegmt=True), 0.0),  # already past: no extra wait
    ("-5", None),
    ("soon", None),
    ("", None),
    (None, None),
])
def test_retry_after_is_read_as_seconds_or_an_http_date(value, expected):
    assert retry_after_s(value, NOW) == expected


class Recorder:
    """The part of WebhookStore a failed attempt touches."""

    def __init__(self) -> None:
        self.failed_with: tuple | None = None

    async def failed(self, delivery_id, status, error, next_attempt_at) -> None:
        self.failed_with = (delivery_id, status, next_attempt_at)


def delivery() -> Delivery:
    return Delivery("msg_ep1_1", "ep1", 1, "a1", "alert.raised", "pending", 0, NOW, None, None, "", None, None)


async def attempt(response: httpx.Response, backoff_max_s: float = 600.0) -> tuple:
    store = Recorder()
    worker = WebhookWorker(store, None, max_attempts=5, backoff_base_s=4, backoff_max_s=backoff_max_s,  # type: ignore[arg-type]
                           timeout_s=1, wall=lambda: NOW, jitter=lambda: 1.0,
                           transport=httpx.MockTransport(lambda request: response))
    await worker.start()
    try:
        await worker._send(delivery(), "http://receiver/hook", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "{}")
    finally:
        await worker.stop()
    assert store.failed_with is not None
    return store.failed_with


@pytest.mark.parametrize("status", [429, 503])
async def test_a_longer_retry_after_defers_the_next_attempt(status):
    _, got_status, next_at = await attempt(httpx.Response(status, headers={"Retry-After": "120"}))
    assert got_status == status and next_at == NOW + 120


async def test_a_shorter_retry_after_keeps_the_backoff():
    _, _, next_at = await attempt(httpx.Response(503, headers={"Retry-After": "1"}))
    assert next_at == NOW + 4  # the first backoff (base 4 s, full jitter)


async def test_retry_after_never_waits_past_the_backoff_cap():
    _, _, next_at = await attempt(httpx.Response(429, headers={"Retry-After": "86400"}), backoff_max_s=600)
    assert next_at == NOW + 600


async def test_retry_after_on_other_statuses_is_ignored():
    _, _, next_at = await attempt(httpx.Response(500, headers={"Retry-After": "120"}))
    assert next_at == NOW + 4
