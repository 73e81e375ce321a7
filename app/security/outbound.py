"""Where the service may send requests: the one guard for outbound URLs (webhook targets) (issue 21, finding 2).

A URL is checked twice:

- at registration (:meth:`OutboundPolicy.check_url`, a 422 naming the field): http(s) only, no credentials in it, at
  most ``MAX_URL_LENGTH`` characters with a host of at most ``MAX_HOST_LENGTH``, a host that is a plain DNS name or an
  IP literal (numeric spellings such as ``0x7f000001``, ``2130706433`` or ``0177.0.0.1`` are refused: resolvers read
  them as addresses), an IP literal that is allowed, and not one of the service's own back ends;
- on every connection (:class:`GuardedTransport`, an httpx transport wrapping the real one): the host is resolved,
  every address it resolves to is checked, and the request is sent to that checked address (the ``Host`` header and
  TLS server name keep the original name), so DNS rebinding between check and connect cannot move it.

Denied unless allow-listed (``Settings.webhook_allow_hosts``: host names or IP literals; ``webhook_allow_cidrs``):
loopback, link-local, private, shared (CGNAT), multicast, unspecified, reserved and other non-global addresses, the
cloud metadata addresses (169.254.169.254, fd00:ec2::254), IPv4-mapped and 6to4 IPv6 forms of any of them, and
names under ``localhost``. The service's own back ends (the InfluxDB URL's address and port) are refused even when
allow-listed: a webhook never has a reason to reach them.
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
import socket
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import httpx

if TYPE_CHECKING:
    from app.settings import Settings

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
#: Resolves (host, port) to the addresses a connection could reach.
Resolver = Callable[[str, int], Awaitable[Sequence[str]]]

MAX_URL_LENGTH = 2048
#: RFC 1035: a name is at most 253 characters, each label at most 63.
MAX_HOST_LENGTH = 253
METADATA = frozenset({ipaddress.ip_address("169.254.169.254"), ipaddress.ip_address("fd00:ec2::254")})
_LABEL = re.compile(r"^(?!-)[a-z0-9_-]{1,63}(?<!-)$")
#: A label that some resolver reads as (part of) a number: decimal, octal or hexadecimal.
_NUMERIC = re.compile(r"^(0x[0-9a-f]*|[0-9]+)$")
_DEFAULT_PORT = {"http": 80, "https": 443}


class OutboundRefused(ValueError):
    """A URL or an address the outbound policy refuses; the message says why."""


def why_denied(address: IPAddress) -> str | None:
    """Why ``address`` may not be reached without an allow-list entry, or None when it is a public address."""
    if address.version == 6:  # an IPv4 address inside IPv6 (::ffff:a.b.c.d, 6to4 2002:…) is judged as that address
        embedded = address.ipv4_mapped or address.sixtofour  # type: ignore[union-attr]
        if embedded is not None:
            address = embedded
    if address in METADATA:
        return "a cloud metadata address"
    for attribute, name in (("is_loopback", "loopback"), ("is_link_local", "link-local"),
                            ("is_multicast", "multicast"), ("is_unspecified", "unspecified"),
                            ("is_private", "private"), ("is_reserved", "reserved")):
        if getattr(address, attribute):
            return f"a {name} address"
    if not address.is_global:
        return "not a globally routable address"
    return None


def _ip(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None


def _host_of(value: str) -> str:
    return value.strip().lower().rstrip(".").strip("[]")


@dataclass(frozen=True)
class OutboundPolicy:
    allow_hosts: frozenset[str] = frozenset()
    allow_networks: tuple[IPNetwork, ...] = ()
    #: (host, port) of the service's own back ends: refused whatever the allow-list says.
    backends: frozenset[tuple[str, int]] = field(default_factory=frozenset)

    @classmethod
    def from_settings(cls, settings: Settings) -> OutboundPolicy:
        hosts = {_host_of(h) for h in settings.webhook_allow_hosts}
        networks = [ipaddress.ip_network(n) for n in settings.webhook_allow_cidrs]
        backends = set()
        if settings.influx_url is not None:
            influx = urlsplit(str(settings.influx_url))
            backends.add((_host_of(influx.hostname or ""), influx.port or _DEFAULT_PORT.get(influx.scheme, 80)))
        return cls(frozenset(hosts), tuple(networks), frozenset(backends))

    def _allowed(self, host: str, address: IPAddress | None) -> bool:
        if host in self.allow_hosts:
            return True
        return address is not None and (str(address) in self.allow_hosts
                                        or any(address in net for net in self.allow_networks))

    def check_url(self, url: str) -> tuple[str, int]:
        """The URL's (host, port) when it may be registered; :class:`OutboundRefused` saying why otherwise."""
        if len(url) > MAX_URL_LENGTH:
            raise OutboundRefused(f"the URL is {len(url)} characters long; at most {MAX_URL_LENGTH}")
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError as exc:
            raise OutboundRefused(f"the URL cannot be parsed: {exc}") from None
        if parts.scheme not in _DEFAULT_PORT:
            raise OutboundRefused("only http and https URLs are allowed")
        if "@" in parts.netloc:
            raise OutboundRefused("credentials in the URL are not allowed (use the signing secret)")
        host = _host_of(parts.hostname or "")
        if not host:
            raise OutboundRefused("the URL has no host")
        if len(host) > MAX_HOST_LENGTH:
            raise OutboundRefused(f"the host is {len(host)} characters long; at most {MAX_HOST_LENGTH}")
        port = port or _DEFAULT_PORT[parts.scheme]
        address = _ip(host)
        if address is None:
            labels = host.split(".")
            if not all(_LABEL.match(label) for label in labels):
                raise OutboundRefused("the host must be a DNS name (letters, digits, hyphens) or an IP address")
            if _NUMERIC.match(labels[-1]):
                raise OutboundRefused(f"the host {host[:64]!r} is a numeric spelling of an address; "
                                      "write IPv4 addresses as four decimal numbers")
            if labels[-1] == "localhost" and not self._allowed(host, None):
                raise OutboundRefused("names under localhost are loopback addresses")
        self._check_backend(host, port)
        if address is not None:
            self.check_address(host, address, port)
        return host, port

    def _check_backend(self, host: str, port: int) -> None:
        if (host, port) in self.backends:
            raise OutboundRefused("the URL is one of the service's own back ends")

    def check_address(self, host: str, address: IPAddress, port: int, backends: Iterable[IPAddress] = ()) -> None:
        """Refuse a connection to ``address`` (which ``host`` resolved to) unless the policy allows it."""
        if any(address == b for b in backends):
            raise OutboundRefused(f"{address} port {port} is one of the service's own back ends")
        reason = why_denied(address)
        if reason is not None and not self._allowed(host, address):
            raise OutboundRefused(f"{host[:64]} resolves to {address}, {reason} (not in webhook_allow_hosts or "
                                  "webhook_allow_cidrs)")


async def system_resolver(host: str, port: int) -> list[str]:
    """Every address ``host`` resolves to (as a TCP connection would look it up)."""
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


class GuardedTransport(httpx.AsyncBaseTransport):
    """An httpx transport that resolves, checks and pins every request's address before the real transport
    connects (see the module docstring). A refusal is an ``httpx.ConnectError`` saying why: the delivery fails
    and is retried or dead-lettered like any unreachable endpoint, and is never marked delivered."""

    def __init__(self, policy: OutboundPolicy, inner: httpx.AsyncBaseTransport | None = None,
                 resolve: Resolver = system_resolver) -> None:
        self.policy = policy
        self._own = inner is None  # ours: a fresh one after each close (the worker may be started again)
        self.inner = inner or httpx.AsyncHTTPTransport()
        self.resolve = resolve

    async def _addresses(self, host: str, port: int) -> list[IPAddress]:
        literal = _ip(host)
        if literal is not None:
            return [literal]
        try:
            found = await self.resolve(host, port)
        except OSError as exc:
            raise OutboundRefused(f"{host[:64]} does not resolve: {exc}") from None
        addresses = [a for a in (_ip(str(x).split("%")[0]) for x in found) if a is not None]
        if not addresses:
            raise OutboundRefused(f"{host[:64]} resolves to no address")
        return addresses

    async def _backend_addresses(self, port: int) -> list[IPAddress]:
        found: list[IPAddress] = []
        for host, backend_port in self.policy.backends:
            if backend_port == port:
                try:
                    found += await self._addresses(host, port)
                except OutboundRefused:
                    continue
        return found

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        try:
            host, port = self.policy.check_url(str(request.url))
            addresses = await self._addresses(host, port)
            backends = await self._backend_addresses(port)
            for address in addresses:  # every address the name resolves to: an attacker's DNS may mix them
                self.policy.check_address(host, address, port, backends)
        except OutboundRefused as exc:
            raise httpx.ConnectError(f"refused by the outbound policy: {exc}", request=request) from None
        if _ip(host) is None:  # pin the checked address; Host and the TLS server name keep the name
            request.url = request.url.copy_with(host=str(addresses[0]))
            request.extensions = {**request.extensions, "sni_hostname": host}
        return await self.inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self.inner.aclose()
        if self._own:
            self.inner = httpx.AsyncHTTPTransport()
