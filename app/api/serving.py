"""How the service's HTTP server (uvicorn) is run: the options that are a security decision (issue 21, findings 7
and 9), read from ``Settings`` in one place for ``wardtwin serve`` and ``wardtwin demo``.

- ``X-Forwarded-For`` / ``X-Forwarded-Proto`` are honoured only from ``Settings.trusted_proxies`` (uvicorn's own
  default trusts any client on 127.0.0.1, so a local process could forge the audit's "from"); none configured: the
  headers are ignored and the peer address is the client.
- Slow and large clients (H22, slowloris) without a front proxy: the protocol is ``app.api.http_protocol``'s
  ``HeadGuard`` (uvicorn's httptools protocol, which ignores ``h11_max_incomplete_event_size``): a request head must
  be complete within ``Settings.http_header_timeout_s`` (408 and closed) and at most 16 KiB (431 and closed), so an
  unauthenticated connection holds no more than that, for no longer, before its 401; idle keep-alive connections
  close after ``timeout_keep_alive``; a response left unread past ``Settings.http_write_timeout_s`` resets the
  connection. An admitted request's slow body is timed out where it is read (``Settings.http_body_timeout_s``,
  ``app.api.edge``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from app.api.http_protocol import head_guard

if TYPE_CHECKING:
    from app.settings import Settings

#: Largest request head (request target and header lines) held before answering 431 (``HeadGuard``; also passed as
#: ``h11_max_incomplete_event_size``, which only uvicorn's h11 protocol reads).
MAX_HEAD_BYTES = 16 * 1024
#: Seconds an idle keep-alive connection is kept open.
KEEP_ALIVE_S = 5


def uvicorn_options(settings: Settings) -> dict[str, Any]:
    """Keyword arguments for ``uvicorn.run`` / ``uvicorn.Config``."""
    options: dict[str, Any] = {"proxy_headers": bool(settings.trusted_proxies),
                               "http": head_guard(settings.http_header_timeout_s, MAX_HEAD_BYTES,
                                                  settings.http_write_timeout_s),
                               "h11_max_incomplete_event_size": MAX_HEAD_BYTES,
                               "timeout_keep_alive": KEEP_ALIVE_S, "server_header": False}
    if settings.trusted_proxies:
        options["forwarded_allow_ips"] = list(settings.trusted_proxies)
    return options
