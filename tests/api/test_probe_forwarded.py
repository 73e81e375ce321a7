"""Issue 21, finding 9 (in part): ``X-Forwarded-For`` from loopback was trusted (uvicorn's default), so any local
process could forge the audit's "from". The server options (``app.api.serving``) honour forwarded headers only
from ``Settings.trusted_proxies``, and bound the request head."""

from __future__ import annotations

from typing import Any

import uvicorn

from app.api.serving import MAX_HEAD_BYTES, uvicorn_options
from app.settings import Settings


async def client_seen(options: dict[str, Any], peer: str = "127.0.0.1") -> str:
    """The client address the service sees for a request from ``peer`` that claims to forward for 6.6.6.6."""
    seen: list[str] = []

    async def app(scope, receive, send) -> None:
        seen.append(scope["client"][0])

    config = uvicorn.Config(app, **options)
    config.load()
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET", "scheme": "http",
             "path": "/healthz", "raw_path": b"/healthz", "query_string": b"", "root_path": "",
             "headers": [(b"host", b"wardtwin"), (b"x-forwarded-for", b"6.6.6.6")], "client": (peer, 50000),
             "server": ("127.0.0.1", 8000)}
    await config.loaded_app(scope, None, None)
    return seen[0]


async def test_uvicorns_default_trusts_loopback_which_is_why_the_options_are_needed() -> None:
    assert await client_seen({}) == "6.6.6.6"  # what `wardtwin serve` ran with on today's main


async def test_forwarded_headers_are_ignored_unless_a_proxy_is_configured(tmp_path) -> None:
    options = uvicorn_options(Settings(data_dir=tmp_path))
    assert await client_seen(options) == "127.0.0.1"
    assert options["h11_max_incomplete_event_size"] == MAX_HEAD_BYTES


async def test_a_configured_proxy_is_believed_and_no_one_else(tmp_path) -> None:
    options = uvicorn_options(Settings(data_dir=tmp_path, trusted_proxies=["10.0.0.5"]))
    assert await client_seen(options, peer="10.0.0.5") == "6.6.6.6"
    assert await client_seen(options, peer="127.0.0.1") == "127.0.0.1"
