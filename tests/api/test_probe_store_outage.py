"""Issue 21, finding 10 (in part): the demo's driver died with its store. While InfluxDB was down the cycle answered
503, the driver's ``raise_for_status`` ended the feed and the demo shut down (its posted readings waiting in the spool
for a next start nobody made). The driver now rides a store outage out, and a 503 carries ``Retry-After``.

The driver's requests go to an ``httpx.MockTransport`` that answers like a service whose store is down for a while;
the retry wait is made instant (no sleeping)."""

from __future__ import annotations

import httpx
import pytest
from tenacity import wait_none

from app.errors import StoreUnavailableError
from lab import demo


class StoreDownFor:
    """A service whose store is down for its first ``n`` requests of each kind (503, or the connection refused)."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.calls: dict[str, int] = {}

    def __call__(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        self.calls[path] = self.calls.get(path, 0) + 1
        if self.calls[path] <= self.n:
            if self.calls[path] % 3 == 0:
                raise httpx.ConnectError("connection refused", request=request)
            return httpx.Response(503, json={"type": "https://wardtwin.dev/problems/store-unavailable", "status": 503,
                                                    "title": "Store unavailable", "detail": "vital store unavailable",
                                                    "code": "store_unavailable"},
                                  headers={"Retry-After": "5"})
        return httpx.Response(200, json={"accepted": 1})


@pytest.fixture(autouse=True)
def instant_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(demo, "RETRY_WAIT", wait_none())


async def test_the_driver_rides_out_a_store_outage_longer_than_eight_attempts() -> None:
    service = StoreDownFor(20)  # today's main: RuntimeError after 8 attempts, and the demo exits
    async with httpx.AsyncClient(transport=httpx.MockTransport(service), base_url="http://demo") as client:
        await demo.post_readings(client, [{"patient_id": "bed-1", "vital": "hr", "value": 80,
                                           "ts": "2026-03-02T12:00:00+00:00"}])
        response = await demo.riding_out("history cycle")(client.post, "/v1/cycle")
    assert response.status_code == 200
    assert service.calls == {"/v1/readings": 21, "/v1/cycle": 21}


async def test_a_422_is_not_retried() -> None:
    calls = []

    def refuse(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        return httpx.Response(422, json={"status": 422, "code": "invalid_request", "errors": []})

    async with httpx.AsyncClient(transport=httpx.MockTransport(refuse), base_url="http://demo") as client:
        assert (await demo.riding_out("cycle")(client.post, "/v1/cycle")).status_code == 422
    assert len(calls) == 1


def test_a_503_for_an_unavailable_store_says_when_to_retry(client) -> None:
    async def failing_cycle(window_end, scored_at=None):
        raise StoreUnavailableError("vital store unavailable: connection refused")

    client.app.state.wardtwin.cycle.run = failing_cycle  # type: ignore[method-assign]
    response = client.post("/v1/cycle", params={"window_end": "2026-03-02T12:00:00+00:00"})
    assert response.status_code == 503 and response.headers["retry-after"] == "5"
    assert response.json()["code"] == "store_unavailable"
