"""The service's access control, wired once by ``create_app``: keys, the demo key, rate limits, audit."""

from __future__ import annotations

import asyncio
import hmac

from app.clock import Clock, SystemClock
from app.security.audit import AuditLog
from app.security.audit_writer import AuditWriter
from app.security.keys import ROLES, KeyStore, Principal
from app.security.ratelimit import RateLimiter
from app.settings import Settings

DEMO_KEY_ID = "demo"


class Access:
    def __init__(self, settings: Settings, wall_clock: Clock | None = None) -> None:
        #: Stamps the audit trail: wall time, not the service clock (which the demo accelerates); injectable for tests.
        self.wall_clock = wall_clock or SystemClock()
        self.keys = KeyStore(settings.access_target)  # access.db, or the PostgreSQL control store (issue 24)
        self.audit = AuditLog(self.keys)
        self.audit_writer = AuditWriter(self.audit)
        self.limiter = RateLimiter(settings.rate_limit_per_s, settings.rate_limit_burst)
        self._demo = settings.demo_key.get_secret_value() if settings.demo_key else None
        self.ws_origins = tuple(settings.ws_allowed_origins)
        #: No demo key (every role, from settings): the last stored admin key is the only way in to manage keys.
        self.keep_an_admin = self._demo is None

    def open(self) -> None:
        self.keys.open()

    def close(self) -> None:
        self.audit_writer.close()  # what is pending is written before the database closes
        self.keys.close()

    async def authenticate(self, token: str | None) -> Principal | None:
        """The principal holding ``token``, or None (missing, unknown, revoked)."""
        if not token:
            return None
        if self._demo and hmac.compare_digest(token.encode(), self._demo.encode()):
            return Principal(DEMO_KEY_ID, "demo", frozenset(ROLES))
        if self.keys.remote:  # PostgreSQL: a round trip to the server, off the event loop
            return await asyncio.to_thread(self.keys.lookup, token)
        # On the event loop's own reader connection: one indexed read (WAL readers never wait for a writer), which
        # costs less than the hop to a worker thread and back that every request paid before.
        return self.keys.lookup(token)

    async def record(self, who: Principal | None, action: str, target: str | None, status: int | None,
                     remote: str | None) -> None:
        """Append to the audit trail, stamped with the wall clock (the service clock may be simulated); returns once
        committed. Concurrent requests share a commit (``AuditWriter``)."""
        await self.audit_writer.record(self.wall_clock.now(), who, action, target, status, remote)

    def submit(self, who: Principal | None, action: str, target: str | None, status: int | None,
               remote: str | None) -> None:
        """Hand an entry to the audit trail, stamped with the wall clock, without waiting for its commit (the edge,
        once an answer is sent; reads of the trail wait for it: ``AuditWriter``)."""
        self.audit_writer.submit(self.wall_clock.now(), who, action, target, status, remote)
