"""Issue 21, finding 11: the WebSocket's Origin check compared the Origin with ``Host``, so a DNS-rebinding page
(``http://evil.example:8000`` resolving to the service) passed it. The own origin now counts only for hosts that
cannot be rebound (IP literals, ``localhost``, dotless names); a DNS name must be configured
(``Settings.ws_allowed_origins``)."""

from __future__ import annotations

from pathlib import Path

import pytest
from starlette.websockets import WebSocketDisconnect

from app.api.auth import origin_allowed
from tests.support.api import serve


@pytest.mark.parametrize("origin, host, allowed, expected", [
    ("http://evil.example:8000", "evil.example:8000", (), False),  # DNS rebinding: today's main True
    ("http://wardtwin.hospital.example", "wardtwin.hospital.example", (), False),  # a name must be listed
    ("https://wardtwin.hospital.example", "wardtwin.hospital.example", ("https://WardTwin.hospital.example/",), True),
    ("http://127.0.0.1:8000", "127.0.0.1:8000", (), True),
    ("http://[::1]:8000", "[::1]:8000", (), True),
    ("http://localhost:8000", "localhost:8000", (), True),
    ("http://wardtwin:8000", "wardtwin:8000", (), True),
    ("http://127.0.0.1:9000", "127.0.0.1:8000", (), False),  # another port is another origin
    ("http://127.0.0.1:8000", None, (), False),
    ("https://board.example", "127.0.0.1:8000", ("https://board.example",), True),
    ("null", "127.0.0.1:8000", (), False),
])
def test_origin_allowed(origin: str, host: str | None, allowed: tuple[str, ...], expected: bool) -> None:
    assert origin_allowed(origin, host, allowed) is expected


def test_a_rebound_name_cannot_open_the_alert_stream(tmp_path: Path) -> None:
    with serve(tmp_path) as client:
        with pytest.raises(WebSocketDisconnect) as refused, \
                client.websocket_connect("ws://evil.example:8000/v1/ws/alerts",  # the Host header is evil's
                                         headers={"Origin": "http://evil.example:8000"}):
            pass
        assert refused.value.code == 1008  # today's main: accepted (Origin equals Host)
        with client.websocket_connect("ws://127.0.0.1:8000/v1/ws/alerts",
                                      headers={"Origin": "http://127.0.0.1:8000"}) as ws:
            ws.send_text("ping")


def test_a_configured_public_origin_opens_it(tmp_path: Path) -> None:
    with serve(tmp_path, ws_allowed_origins=["https://wardtwin.hospital.example"]) as client, \
            client.websocket_connect("wss://wardtwin.hospital.example/v1/ws/alerts",
                                     headers={"Origin": "https://wardtwin.hospital.example"}) as ws:
        ws.send_text("ping")
