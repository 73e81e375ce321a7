"""Issue 21, finding 7: bodies were buffered before authentication (50 unauthenticated 4 MiB bodies trickling in
held +203 MB). Now a request that may carry a body and has no valid key is answered 401 before one byte of its
body is read, and the connection is closed; an admitted request's body is read as before."""

from __future__ import annotations

import json

import pytest

from tests.support.api import EVERY_ROLE_KEY, T0, reading

CHUNK = b"x" * 65_536


async def drive(app, headers: list[tuple[bytes, bytes]], path: str = "/v1/readings") -> tuple[int, int, dict]:
    """One request straight into the ASGI app whose body would be 4 MiB; returns (status, body chunks the app
    asked for, response headers)."""
    asked = 0
    sent: list[dict] = []

    async def receive() -> dict:
        nonlocal asked
        asked += 1
        return {"type": "http.request", "body": CHUNK, "more_body": asked < 64}

    async def send(message: dict) -> None:
        sent.append(message)

    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST", "scheme": "http",
             "path": path, "raw_path": path.encode(), "query_string": b"", "root_path": "",
             "headers": [(b"host", b"testserver"), (b"content-type", b"application/json"), *headers],
             "client": ("127.0.0.1", 50000), "server": ("testserver", 80)}
    await app(scope, receive, send)
    start = next(m for m in sent if m["type"] == "http.response.start")
    return start["status"], asked, {k.decode(): v.decode() for k, v in start["headers"]}


@pytest.mark.parametrize("headers", [
    pytest.param([], id="no-key"),
    pytest.param([(b"authorization", b"Bearer not-a-key-at-all-0123456789")], id="unknown-key"),
    pytest.param([(b"authorization", b"Basic dXNlcjpwYXNz")], id="other-scheme"),
])
@pytest.mark.parametrize("path", ["/v1/readings", "/v1/write", "/v1/keys", "/v1/no-such-route"])
def test_an_unauthenticated_body_is_refused_unread(client, headers, path):
    status, asked, response_headers = client.portal.call(drive, client.app, headers, path)
    assert status == 401 and asked == 0  # today's main: the edge read all 64 chunks (4 MiB) first
    assert response_headers["connection"] == "close" and response_headers["www-authenticate"] == "Bearer"


def test_an_admitted_body_is_still_read(client):
    body = json.dumps({"readings": [reading("unread-1", "hr", 80, T0)]}).encode()
    response = client.post("/v1/readings", content=body, headers={"content-type": "application/json",
                                                                   "authorization": f"Bearer {EVERY_ROLE_KEY}"})
    assert response.status_code == 200 and response.json() == {"accepted": 1}
    status, asked, _ = client.portal.call(drive, client.app, [(b"authorization", f"Bearer {EVERY_ROLE_KEY}".encode())])
    assert asked == 64 and status == 422  # admitted: the whole body read, then judged (not JSON)
