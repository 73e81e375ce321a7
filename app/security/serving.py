"""How the service's HTTP server (uvicorn) is run: the options that are a security decision (issue 21, findings 7
and 9), read from ``Settings`` in one place for ``wardtwin serve`` and ``wardtwin demo``.

- ``X-Forwarded-For`` / ``X-Forwarded-Proto`` are honoured only from ``Settings.trusted_proxies`` (uvicorn's own
  default trusts any client on 127.0.0.1, so a local process could forge the audit's "from"); none configured: the
  headers are ignored and the peer address is the client.
- Request headers are bounded (``h11_max_incomplete_event_size``, 16 KiB: an unauthenticated connection holds no
  more than that before its 401) and idle keep-alive connections close after ``timeout_keep_alive``. uvicorn has no
  timeout for headers that trickle in (slowloris): a front proxy's header timeout is needed for that (residual, see
  docs/hazard-log.md).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from app.settings import Settings

#: Largest request head (request line and headers) uvicorn buffers before answering 400.
MAX_HEAD_BYTES = 16 * 1024
#: Seconds an idle keep-alive connection is kept open.
KEEP_ALIVE_S = 5


def uvicorn_options(settings: Settings) -> dict[str, Any]:
    """Keyword arguments for ``uvicorn.run`` / ``uvicorn.Config``."""
    options: dict[str, Any] = {"proxy_headers": bool(settings.trusted_proxies),
                               "h11_max_incomplete_event_size": MAX_HEAD_BYTES,
                               "timeout_keep_alive": KEEP_ALIVE_S, "server_header": False}
    if settings.trusted_proxies:
        options["forwarded_allow_ips"] = list(settings.trusted_proxies)
    return options
