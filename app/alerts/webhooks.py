"""Webhook delivery to nurse-call systems: a durable outbox per endpoint, Standard Webhooks signatures, retries.

Registered endpoints (``webhook_endpoints``) each keep a cursor into the alert outbox. The worker copies every new
outbox event an endpoint subscribed to into ``webhook_deliveries`` (one row per endpoint and event, in the alert
database, so a delivery survives a restart or a SIGKILL) and advances the cursor in the same transaction. Each row
is then POSTed, signed per the Standard Webhooks specification:

- ``webhook-id``: the row's id, ``msg_<endpoint>_<seq>``, the same on every retry (the receiver's idempotency key);
- ``webhook-timestamp``: the attempt's time (integer seconds, wall clock);
- ``webhook-signature``: ``v1,`` + base64 HMAC-SHA256 of ``{id}.{timestamp}.{body}`` under the base64-decoded
  ``whsec_`` secret.

A 2xx answer delivers the row and confirms the event (``AlertStore.confirm_delivery``: the alert is delivered).
Anything else (non-2xx, timeout, connection error) schedules the next attempt after an exponential backoff with
jitter, or later if a 429 or 503 answer's ``Retry-After`` asks for more (never past the backoff's cap); after
``max_attempts`` (the retry budget) the row is dead-lettered, and an admin may redeliver it.
A 410 Gone dead-letters at once. Deliveries run in tasks of their own (at most ``per_endpoint`` in flight per
endpoint): a slow or dead receiver delays neither scoring nor the other endpoints. Retry timing uses the wall
clock, not the service's (possibly simulated) clock: it is about real receivers.

Secrets at rest (hazard H18): ``webhook_endpoints.secret`` holds ``fernet:v1:<token>``, sealed by the store's
``SecretBox`` (``app.security.secrets_box``: the key file, rotation, why). The store seals at ``create``, opens only
for ``claim_pending``/``due`` (the signing path), and at ``open`` seals any row still in plain text (rows written
before H18, or by an instance not yet upgraded): idempotent, on every start, in one transaction. A secret no key
opens is handed to the worker as None: that delivery fails (retried, then dead-lettered) naming the key file.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import email.utils
import hashlib
import hmac
import json
import logging
import os
import random
import secrets
import socket
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from functools import cache
from typing import Any

import httpx

from app.alerts.notify import Batch
from app.alerts.store import outbox_after, outbox_head
from app.errors import DeliveryConflictError, InvalidRequestError, WebhookNotFoundError
from app.security.secrets_box import SecretBox, SecretsKeyError
from app.storage.control_db import Connection, ControlDatabase
from app.storage.migrations import Schema, add_column

logger = logging.getLogger(__name__)

#: Outbox event → webhook event type (``delivered`` is the service's own bookkeeping, not sent).
EVENT_TYPES: dict[str, str] = {"raised": "alert.raised", "escalated": "alert.escalated",
                               "renotified": "alert.renotified", "acknowledged": "alert.acknowledged",
                               "resolved": "alert.resolved"}
SECRET_PREFIX = "whsec_"
MAX_REASONS = 5

#: In the alert database beside the alert store's schema, versioned apart (``app/storage/migrations.py``).
SCHEMA = Schema("webhooks", ("""
CREATE TABLE IF NOT EXISTS webhook_endpoints (
    id TEXT PRIMARY KEY, url TEXT NOT NULL, secret TEXT NOT NULL, events TEXT NOT NULL, created_at TEXT NOT NULL,
    cursor INTEGER NOT NULL, deleted_at TEXT);
CREATE TABLE IF NOT EXISTS webhook_deliveries (
    id TEXT PRIMARY KEY, endpoint_id TEXT NOT NULL, seq INTEGER NOT NULL, alert_id TEXT NOT NULL,
    event_type TEXT NOT NULL, body TEXT NOT NULL, status TEXT NOT NULL, attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at REAL NOT NULL, last_status INTEGER, last_error TEXT, created_at TEXT NOT NULL,
    delivered_at TEXT, dead_at TEXT, UNIQUE (endpoint_id, seq));
CREATE INDEX IF NOT EXISTS webhook_deliveries_due ON webhook_deliveries (status, next_attempt_at);
""",
    # issue 24: a delivery is claimed by one worker (of any instance) for the length of its attempt
    add_column("webhook_deliveries", "claimed_by", "TEXT"),
    add_column("webhook_deliveries", "claimed_until", "REAL"),
), postgres=("""
CREATE TABLE webhook_endpoints (
    id TEXT PRIMARY KEY, url TEXT NOT NULL, secret TEXT NOT NULL, events TEXT NOT NULL, created_at TEXT NOT NULL,
    cursor BIGINT NOT NULL, deleted_at TEXT);
CREATE TABLE webhook_deliveries (
    id TEXT PRIMARY KEY, endpoint_id TEXT NOT NULL, seq BIGINT NOT NULL, alert_id TEXT NOT NULL,
    event_type TEXT NOT NULL, body TEXT NOT NULL, status TEXT NOT NULL, attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at DOUBLE PRECISION NOT NULL, last_status INTEGER, last_error TEXT, created_at TEXT NOT NULL,
    delivered_at TEXT, dead_at TEXT, claimed_by TEXT, claimed_until DOUBLE PRECISION, UNIQUE (endpoint_id, seq));
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (status, next_attempt_at);
""",))
#: The advisory lock (PostgreSQL) of the fan-out: one instance at a time copies the outbox and moves the cursors.
LOCK = "wardtwin.webhooks"
STATUSES = ("pending", "delivered", "dead", "cancelled")


# -- signing --------------------------------------------------------------------------------------------------------
def secret_bytes(secret: str) -> bytes:
    """The key of a ``whsec_`` secret (base64 after the prefix, 24–64 bytes). Raises ValueError naming the fault."""
    if not secret.startswith(SECRET_PREFIX):
        raise ValueError("secret must start with 'whsec_' (Standard Webhooks symmetric secret)")
    raw = secret[len(SECRET_PREFIX):]
    try:
        key = base64.b64decode(raw + "=" * (-len(raw) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("secret after 'whsec_' must be base64") from None
    if not 24 <= len(key) <= 64:
        raise ValueError(f"secret must decode to 24–64 bytes, got {len(key)}")
    return key


def sign(secret: str, msg_id: str, timestamp: int, body: str) -> str:
    """The ``webhook-signature`` header value: ``v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">``."""
    digest = hmac.new(secret_bytes(secret), f"{msg_id}.{timestamp}.{body}".encode(), hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def headers(secret: str, msg_id: str, timestamp: int, body: str) -> dict[str, str]:
    return {"webhook-id": msg_id, "webhook-timestamp": str(timestamp),
            "webhook-signature": sign(secret, msg_id, timestamp, body), "content-type": "application/json"}


# -- payloads -------------------------------------------------------------------------------------------------------
def payload(event: str, seq: int, created_at: str, outbox_payload: dict[str, Any]) -> dict[str, Any]:
    """What a nurse-call system acts on: patient, bed, kind, risk, NEWS2 with band and clinical response, the
    reasons as sentences, state, and the API path of the patient's record."""
    alert = outbox_payload["alert"]
    patient_id = alert["patient_id"]
    return {
        "type": EVENT_TYPES[event],
        "timestamp": created_at,
        "data": {
            "seq": seq,
            "alert_id": alert["id"],
            "patient_id": patient_id,
            "bed": patient_id,  # the ward identifies a patient by bed (e.g. "bed-07"); no separate bed registry yet
            "kind": alert.get("kind", "twin"),
            "state": alert["state"],
            "risk": alert["risk"],
            "news2": alert.get("news2"),
            "reasons": list(alert["reasons"])[:MAX_REASONS],
            "raised_at": alert["raised_at"],
            "window_end": alert["window_end"],
            "escalated_at": alert.get("escalated_at"),
            "acknowledged_by": alert.get("acknowledged_by"),
            "acknowledged_at": alert.get("acknowledged_at"),
            "resolved_at": alert.get("resolved_at"),
            "resolved_reason": alert.get("resolved_reason"),
            "actor": outbox_payload.get("actor"),
            "patient_url": f"/v1/patients/{patient_id}",
            "alerts_url": f"/v1/alerts?patient_id={patient_id}",
        },
    }


@dataclass(frozen=True)
class Endpoint:
    id: str
    url: str
    events: list[str]
    created_at: str
    cursor: int


@dataclass(frozen=True)
class Delivery:
    id: str
    endpoint_id: str
    seq: int
    alert_id: str
    event_type: str
    status: str
    attempts: int
    next_attempt_at: float
    last_status: int | None
    last_error: str | None
    created_at: str
    delivered_at: str | None
    dead_at: str | None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


_DELIVERY_COLUMNS = ("id, endpoint_id, seq, alert_id, event_type, status, attempts, next_attempt_at, last_status, "
                     "last_error, created_at, delivered_at, dead_at")


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat()


@cache
def _process_box() -> SecretBox:
    return SecretBox.ephemeral()


class WebhookStore:
    """Endpoints and their deliveries, in the alert database (``db``), so fan-out reads the outbox (through the
    alert store's ``outbox_after``) in the same transaction that records the deliveries.

    ``box`` seals the secrets (``SecretBox.from_settings``); without one, a key held in memory by this process
    (tests, benchmarks: what it seals does not survive a restart, and never a plain-text column)."""

    def __init__(self, db: ControlDatabase, wall: Callable[[], float] = time.time,
                 box: SecretBox | None = None) -> None:
        self._db = db
        self._wall = wall
        self._box = box or _process_box()

    async def open(self) -> None:
        """Migrate, then seal every secret still in plain text (H18); log the live endpoints whose secret no key of
        the box opens (their deliveries will fail until the key is restored)."""
        await self._db.migrate(SCHEMA)

        def seal_plain(conn: Connection) -> tuple[int, list[str]]:
            sealed, unreadable = 0, []
            for endpoint_id, stored, deleted_at in conn.execute(
                    "SELECT id, secret, deleted_at FROM webhook_endpoints ORDER BY id").fetchall():
                if stored.startswith(SECRET_PREFIX):
                    conn.execute("UPDATE webhook_endpoints SET secret = ? WHERE id = ?",
                                 (self._box.seal(stored), endpoint_id))
                    sealed += 1
                elif deleted_at is None and not self._opens(stored):
                    unreadable.append(endpoint_id)
            return sealed, unreadable

        sealed, unreadable = await self._db.run_tx(seal_plain, LOCK)
        if sealed:
            logger.info("webhook secrets sealed at rest endpoints=%d", sealed)
        if unreadable:
            logger.error("webhook secrets of %s do not open with any key in %s: their deliveries fail until it is "
                         "restored", ", ".join(unreadable), self._box.source)

    @property
    def key_source(self) -> str:
        """Where the box's keys come from (a file's path), for messages."""
        return self._box.source

    def _opens(self, stored: str) -> bool:
        try:
            self._box.unseal(stored)
        except SecretsKeyError:
            return False
        return True

    def _reveal(self, rows: Sequence[Sequence[Any]]) -> list[tuple[Delivery, str, str | None, str]]:
        """Delivery rows with their endpoint's secret opened: None for one no key opens (logged once per call)."""
        opened: dict[str, str | None] = {}
        for row in rows:
            stored = row[14]
            if stored not in opened:
                try:
                    opened[stored] = self._box.unseal(stored)
                except SecretsKeyError as exc:
                    opened[stored] = None
                    logger.error("webhook secret of %s: %s", row[1], exc)
        return [(Delivery(*r[:13]), r[13], opened[r[14]], r[15]) for r in rows]

    async def rekey(self) -> tuple[int, list[str]]:
        """Seal every stored secret (deleted endpoints' too) again under the box's newest key, in one transaction;
        returns how many were re-sealed and the endpoints whose secret no key opens (left as they are)."""
        def again(conn: Connection) -> tuple[int, list[str]]:
            done, unreadable = 0, []
            for endpoint_id, stored in conn.execute("SELECT id, secret FROM webhook_endpoints ORDER BY id").fetchall():
                try:
                    fresh = self._box.seal(stored) if stored.startswith(SECRET_PREFIX) else self._box.reseal(stored)
                except SecretsKeyError:
                    unreadable.append(endpoint_id)
                    continue
                conn.execute("UPDATE webhook_endpoints SET secret = ? WHERE id = ?", (fresh, endpoint_id))
                done += 1
            return done, unreadable

        return await self._db.run_tx(again, LOCK)

    # -- endpoints ------------------------------------------------------------------------------------------------
    async def create(self, url: str, secret: str, events: Sequence[str]) -> Endpoint:
        """Register an endpoint; it receives events raised from now on."""
        try:
            secret_bytes(secret)
        except ValueError as exc:
            raise InvalidRequestError(["body", "secret"], str(exc), "webhook_secret") from None
        endpoint_id = "ep_" + secrets.token_hex(8)
        created = _iso(self._wall())
        sealed = self._box.seal(secret)  # never stored in plain text (H18)

        def insert(conn: Connection) -> int:
            cursor = outbox_head(conn)
            conn.execute("INSERT INTO webhook_endpoints (id, url, secret, events, created_at, cursor) "
                         "VALUES (?, ?, ?, ?, ?, ?)", (endpoint_id, url, sealed, json.dumps(list(events)), created,
                                                       cursor))
            return int(cursor)

        cursor = await self._db.run_tx(insert, LOCK)
        return Endpoint(endpoint_id, url, list(events), created, cursor)

    async def endpoints(self) -> list[Endpoint]:
        sql = "SELECT id, url, events, created_at, cursor FROM webhook_endpoints WHERE deleted_at IS NULL ORDER BY id"
        rows = await self._db.run_read(lambda c: c.execute(sql).fetchall())
        return [Endpoint(i, u, json.loads(e), c, k) for i, u, e, c, k in rows]

    async def unopened(self) -> list[str]:
        """Live endpoints whose secret no key of this instance's box opens: their deliveries fail here until the key
        is restored (a fleet instance given another key file, or a lost key): ``/healthz`` is not ok while any."""
        sql = "SELECT id, secret FROM webhook_endpoints WHERE deleted_at IS NULL ORDER BY id"
        rows = await self._db.run_read(lambda c: c.execute(sql).fetchall())
        return [endpoint_id for endpoint_id, stored in rows if not self._opens(stored)]

    async def counts(self) -> dict[str, Counter[str]]:
        """Per endpoint, deliveries by status."""
        sql = "SELECT endpoint_id, status, COUNT(*) FROM webhook_deliveries GROUP BY endpoint_id, status"
        rows = await self._db.run_read(lambda c: c.execute(sql).fetchall())
        out: dict[str, Counter[str]] = {}
        for endpoint_id, status, n in rows:
            out.setdefault(endpoint_id, Counter())[status] = n
        return out

    async def delete(self, endpoint_id: str) -> None:
        """Stop delivering to an endpoint; its pending deliveries are cancelled."""
        def remove(conn: Connection) -> None:
            cur = conn.execute("UPDATE webhook_endpoints SET deleted_at = ? WHERE id = ? AND deleted_at IS NULL",
                               (_iso(self._wall()), endpoint_id))
            if not cur.rowcount:
                raise WebhookNotFoundError(f"no webhook {endpoint_id!r}")
            conn.execute("UPDATE webhook_deliveries SET status = 'cancelled' WHERE endpoint_id = ? "
                         "AND status = 'pending'", (endpoint_id,))

        await self._db.run_tx(remove, LOCK)

    # -- deliveries -----------------------------------------------------------------------------------------------
    async def fan_out(self, batch: int = 500) -> int:
        """Copy new outbox events into each endpoint's deliveries (its subscribed types only), advancing its
        cursor in the same transaction. Returns how many deliveries were created."""
        behind_sql = "SELECT COUNT(*) FROM webhook_endpoints WHERE deleted_at IS NULL AND cursor < ?"
        (behind,) = await self._db.run_read(lambda c: c.execute(behind_sql, (outbox_head(c),)).fetchone())
        if not behind:  # nothing new for anyone: no write transaction
            return 0
        now = self._wall()

        def copy(conn: Connection) -> int:
            created = 0
            endpoints = conn.execute(
                "SELECT id, events, cursor FROM webhook_endpoints WHERE deleted_at IS NULL").fetchall()
            for endpoint_id, events, cursor in endpoints:
                wanted = set(json.loads(events))
                rows = outbox_after(conn, cursor, batch)
                for event, created_at in rows:
                    if EVENT_TYPES.get(event.event) not in wanted:
                        continue
                    body = json.dumps(payload(event.event, event.seq, created_at, event.payload),
                                      separators=(",", ":"), sort_keys=True)
                    created += conn.execute(
                        "INSERT INTO webhook_deliveries (id, endpoint_id, seq, alert_id, event_type, body, status, "
                        "next_attempt_at, created_at) VALUES (?, ?, ?, ?, ?, ?, 'pending', ?, ?) "
                        "ON CONFLICT DO NOTHING",
                        (f"msg_{endpoint_id[3:]}_{event.seq}", endpoint_id, event.seq, event.alert_id,
                         EVENT_TYPES[event.event], body, now, _iso(now))).rowcount
                if rows:
                    conn.execute("UPDATE webhook_endpoints SET cursor = ? WHERE id = ?", (rows[-1][0].seq, endpoint_id))
            return created

        return await self._db.run_tx(copy, LOCK)

    async def due(self, now: float, limit: int = 200) -> list[tuple[Delivery, str, str | None, str]]:
        """Pending deliveries whose time has come, oldest first, with their endpoint's url and secret (opened; None
        when no key opens it) and body."""
        sql = (f"SELECT {', '.join('d.' + c.strip() for c in _DELIVERY_COLUMNS.split(','))}, e.url, e.secret, d.body "
               "FROM webhook_deliveries d JOIN webhook_endpoints e ON e.id = d.endpoint_id "
               "WHERE d.status = 'pending' AND d.next_attempt_at <= ? AND e.deleted_at IS NULL "
               "ORDER BY d.next_attempt_at, d.seq LIMIT ?")
        rows = await self._db.run_read(lambda c: c.execute(sql, (now, limit)).fetchall())
        return self._reveal(rows)

    async def claim_pending(self, worker: str, now: float, limit: int = 200, lease_s: float = 120.0,
                            per_endpoint: int | None = None) -> list[tuple[Delivery, str, str | None, str]]:
        """Claim up to ``limit`` due deliveries for ``worker`` until ``now + lease_s``, oldest first, as ``due`` gives
        them: a claimed delivery is attempted by that worker alone (of every instance on the database) until its
        outcome is recorded (which clears the claim) or the lease runs out (the worker died: another takes it).

        PostgreSQL picks the rows with ``SELECT … FOR UPDATE SKIP LOCKED``, so workers claiming at once take
        different rows without waiting; on SQLite the write transaction is alone. Nothing claimable: no write.
        ``per_endpoint``: at most this many of each endpoint's (the oldest), so a worker claims what it may start."""
        free = "(d.claimed_until IS NULL OR d.claimed_until <= ?)"
        where = (f"FROM webhook_deliveries d JOIN webhook_endpoints e ON e.id = d.endpoint_id WHERE d.status = "
                 f"'pending' AND d.next_attempt_at <= ? AND e.deleted_at IS NULL AND {free}")
        (any_due,) = await self._db.run_read(lambda c: c.execute(f"SELECT COUNT(*) FROM (SELECT 1 {where} LIMIT 1) x",
                                                                   (now, now)).fetchone())
        if not any_due:
            return []
        suffix = self._db.dialect.claim_suffix("d")
        if per_endpoint is None:
            pick, params = f"SELECT d.id {where} ORDER BY d.next_attempt_at, d.seq LIMIT ?{suffix}", (now, now, limit)
        else:  # ranked in a subquery: PostgreSQL locks no rows of a query with a window function
            pick = (f"SELECT d.id FROM webhook_deliveries d WHERE d.id IN (SELECT id FROM (SELECT d.id, ROW_NUMBER() "
                    f"OVER (PARTITION BY d.endpoint_id ORDER BY d.next_attempt_at, d.seq) AS n {where}) ranked "
                    f"WHERE n <= ?) ORDER BY d.next_attempt_at, d.seq LIMIT ?{suffix}")
            params = (now, now, per_endpoint, limit)
        columns = ", ".join("d." + c.strip() for c in _DELIVERY_COLUMNS.split(","))

        def claim(conn: Connection) -> list[tuple]:
            ids = [r[0] for r in conn.execute(pick, params).fetchall()]
            if not ids:
                return []
            marks = ", ".join("?" * len(ids))
            # The claim re-checks that each row is still free: on PostgreSQL a row another worker claimed and
            # committed while this SELECT waited is locked here all the same (a ranked subquery is not re-checked
            # against the row's new version), and this statement's fresh snapshot sees that claim.
            conn.execute(f"UPDATE webhook_deliveries SET claimed_by = ?, claimed_until = ? WHERE id IN ({marks}) "
                         "AND status = 'pending' AND (claimed_until IS NULL OR claimed_until <= ?)",
                         (worker, now + lease_s, *ids, now))
            return conn.execute(f"SELECT {columns}, e.url, e.secret, d.body FROM webhook_deliveries d JOIN "
                                f"webhook_endpoints e ON e.id = d.endpoint_id WHERE d.id IN ({marks}) "
                                "AND d.claimed_by = ? AND d.claimed_until = ? ORDER BY d.next_attempt_at, d.seq",
                                (*ids, worker, now + lease_s)).fetchall()

        rows = await self._db.run_tx(claim)
        return self._reveal(rows)

    async def release(self, worker: str, delivery_ids: Sequence[str]) -> None:
        """Give back claims ``worker`` took but will not attempt now (its endpoint is busy)."""
        if delivery_ids:
            marks = ", ".join("?" * len(delivery_ids))
            await self._db.run(lambda c: c.execute(
                f"UPDATE webhook_deliveries SET claimed_by = NULL, claimed_until = NULL WHERE claimed_by = ? "
                f"AND status = 'pending' AND id IN ({marks})", (worker, *delivery_ids)))

    async def next_due_at(self) -> float | None:
        sql = "SELECT MIN(next_attempt_at) FROM webhook_deliveries WHERE status = 'pending'"
        row = await self._db.run_read(lambda c: c.execute(sql).fetchone())
        return row[0]

    async def succeeded(self, delivery_id: str, status: int) -> None:
        await self._db.run(lambda c: c.execute(
            "UPDATE webhook_deliveries SET status = 'delivered', attempts = attempts + 1, last_status = ?, "
            "last_error = NULL, delivered_at = ?, claimed_by = NULL, claimed_until = NULL "
            "WHERE id = ? AND status = 'pending'",
            (status, _iso(self._wall()), delivery_id)))

    async def failed(self, delivery_id: str, status: int | None, error: str, next_attempt_at: float | None) -> None:
        """Record a failed attempt: retry at ``next_attempt_at``, or dead-letter when it is None."""
        if next_attempt_at is None:
            sql = ("UPDATE webhook_deliveries SET status = 'dead', attempts = attempts + 1, last_status = ?, "
                   "last_error = ?, dead_at = ?, claimed_by = NULL, claimed_until = NULL "
                   "WHERE id = ? AND status = 'pending'")
            params: tuple = (status, error[:500], _iso(self._wall()), delivery_id)
        else:
            sql = ("UPDATE webhook_deliveries SET attempts = attempts + 1, last_status = ?, last_error = ?, "
                   "next_attempt_at = ?, claimed_by = NULL, claimed_until = NULL WHERE id = ? AND status = 'pending'")
            params = (status, error[:500], next_attempt_at, delivery_id)
        await self._db.run(lambda c: c.execute(sql, params))

    async def list(self, status: str, limit: int = 500) -> list[Delivery]:
        sql = f"SELECT {_DELIVERY_COLUMNS} FROM webhook_deliveries WHERE status = ? ORDER BY seq, id LIMIT ?"
        rows = await self._db.run_read(lambda c: c.execute(sql, (status, limit)).fetchall())
        return [Delivery(*r) for r in rows]

    async def get(self, delivery_id: str) -> Delivery:
        sql = f"SELECT {_DELIVERY_COLUMNS} FROM webhook_deliveries WHERE id = ?"
        row = await self._db.run_read(lambda c: c.execute(sql, (delivery_id,)).fetchone())
        if row is None:
            raise WebhookNotFoundError(f"no webhook delivery {delivery_id!r}")
        return Delivery(*row)

    async def redeliver(self, delivery_id: str) -> Delivery:
        """Put a dead letter back in the queue, with a fresh retry budget and the same ``webhook-id``."""
        def again(conn: Connection) -> None:
            row = conn.execute("SELECT d.status, e.deleted_at FROM webhook_deliveries d JOIN webhook_endpoints e "
                               "ON e.id = d.endpoint_id WHERE d.id = ?", (delivery_id,)).fetchone()
            if row is None:
                raise WebhookNotFoundError(f"no webhook delivery {delivery_id!r}")
            if row[0] != "dead":
                raise DeliveryConflictError(f"delivery {delivery_id} is {row[0]}, not dead-lettered")
            if row[1] is not None:
                raise DeliveryConflictError(f"delivery {delivery_id}'s webhook was deleted")
            conn.execute("UPDATE webhook_deliveries SET status = 'pending', attempts = 0, dead_at = NULL, "
                         "next_attempt_at = ?, claimed_by = NULL, claimed_until = NULL WHERE id = ?",
                         (self._wall(), delivery_id))

        await self._db.run_tx(again)
        return await self.get(delivery_id)


def retry_after_s(value: str | None, now: float) -> float | None:
    """The wait a receiver asked for in ``Retry-After`` (RFC 9110: delay-seconds or an HTTP-date), in seconds from
    ``now`` (0 for a date already past), or None when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:  # HTTP-dates are GMT
        return None
    return max(0.0, when.timestamp() - now)


class WebhookWorker:
    """Fans the outbox out to endpoints and sends due deliveries, each in its own task; a ``Notifier`` of the
    alert engine."""

    def __init__(self, store: WebhookStore, confirm: Callable[[Sequence[int], str], Awaitable[Any]], *,
                 max_attempts: int, backoff_base_s: float, backoff_max_s: float, timeout_s: float,
                 poll_s: float = 1.0, per_endpoint: int = 4, wall: Callable[[], float] = time.time,
                 jitter: Callable[[], float] = random.random,
                 transport: httpx.AsyncBaseTransport | None = None, worker_id: str | None = None) -> None:
        self.store = store
        #: This worker's name on the deliveries it claims (``WebhookStore.claim_pending``): unique per process.
        self.worker_id = worker_id or f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"
        self.confirm = confirm
        self.max_attempts = max_attempts
        self.backoff_base_s = backoff_base_s
        self.backoff_max_s = backoff_max_s
        self.timeout_s = timeout_s
        self.poll_s = poll_s
        self.per_endpoint = per_endpoint
        self._wall = wall
        self._jitter = jitter
        self._transport = transport
        self._wake = asyncio.Event()
        self._task: asyncio.Task | None = None
        self._client: httpx.AsyncClient | None = None
        self._in_flight: dict[str, str] = {}  # delivery id → endpoint id
        self._sends: set[asyncio.Task] = set()

    def backoff_s(self, attempts: int) -> float:
        """Delay before the next attempt after ``attempts`` failures: exponential, capped, 50–100 % jitter."""
        return min(self.backoff_max_s, self.backoff_base_s * 2 ** (attempts - 1)) * (0.5 + 0.5 * self._jitter())

    def wake(self) -> None:
        self._wake.set()

    # -- the engine's Notifier: the outbox is read at each endpoint's durable cursor, so a wake is all it needs --
    def committed(self) -> None:
        """Nothing at commit: woken by the engine's delivery, after the hub (as one burst per cycle)."""

    async def deliver(self, batch: Batch) -> None:
        self.wake()

    @property
    def lease_s(self) -> float:
        """How long a claim lasts: longer than any attempt (its request times out at ``timeout_s``)."""
        return 2 * self.timeout_s + 30.0

    async def run_once(self) -> int:
        """Fan out, then claim every due delivery (``WebhookStore.claim_pending``: no other worker, of this instance
        or another, attempts it meanwhile) and start it; returns how many were started."""
        await self.store.fan_out()
        busy = Counter(self._in_flight.values())
        # A delivery in flight while ``due`` reads may finish during the read: its row as read is then stale (one
        # attempt short), and starting it again would count an attempt twice. Skip it this round; its finish
        # wakes the worker, which reads it afresh.
        in_flight_at_read = set(self._in_flight)
        started = 0
        unused: list[str] = []
        for delivery, url, secret, body in await self.store.claim_pending(
                self.worker_id, self._wall(), lease_s=self.lease_s, per_endpoint=self.per_endpoint):
            if delivery.id in self._in_flight or delivery.id in in_flight_at_read \
                    or busy[delivery.endpoint_id] >= self.per_endpoint:
                # claimable again only once its attempt here recorded its outcome: giving the claim back is safe
                unused.append(delivery.id)
                continue
            busy[delivery.endpoint_id] += 1
            self._in_flight[delivery.id] = delivery.endpoint_id
            task = asyncio.create_task(self._attempt(delivery, url, secret, body), name=f"webhook-{delivery.id}")
            self._sends.add(task)
            task.add_done_callback(self._sends.discard)
            started += 1
        await self.store.release(self.worker_id, unused)
        return started

    async def _attempt(self, delivery: Delivery, url: str, secret: str | None, body: str) -> None:
        try:
            await self._send(delivery, url, secret, body)
        except Exception:  # never let one delivery kill the worker; the row stays pending and is retried
            logger.exception("webhook attempt failed unexpectedly id=%s", delivery.id)
        finally:
            self._in_flight.pop(delivery.id, None)  # only once the outcome is recorded: no double send
            self._wake.set()

    async def _send(self, delivery: Delivery, url: str, secret: str | None, body: str) -> None:
        status: int | None = None
        asked: float | None = None
        if secret is None:  # sealed under a key this instance lacks (H18): not sent, fails as a refused connection
            error = f"secret does not open with the secrets key file ({self.store.key_source})"
        else:
            try:
                assert self._client is not None
                response = await self._client.post(url, content=body.encode(),
                                                   headers=headers(secret, delivery.id, int(self._wall()), body))
                status = response.status_code
                error = f"HTTP {status}"
                if status in (429, 503):
                    asked = retry_after_s(response.headers.get("retry-after"), self._wall())
            except httpx.HTTPError as exc:
                error = f"{type(exc).__name__}: {exc}"
        if status is not None and 200 <= status < 300:
            await self.store.succeeded(delivery.id, status)
            await self.confirm([delivery.seq], f"webhook:{delivery.endpoint_id}")
            logger.info("webhook delivered id=%s type=%s attempts=%d", delivery.id, delivery.event_type,
                        delivery.attempts + 1)
            return
        attempts = delivery.attempts + 1
        gone = status == 410
        delay = self.backoff_s(attempts)
        if asked is not None:  # the receiver's own wait, if longer, up to the backoff's cap
            delay = max(delay, min(asked, self.backoff_max_s))
        next_at = None if gone or attempts >= self.max_attempts else self._wall() + delay
        await self.store.failed(delivery.id, status, error, next_at)
        if next_at is None:
            logger.warning("webhook dead-lettered id=%s after %d attempts: %s", delivery.id, attempts, error)
        else:
            logger.info("webhook retry id=%s attempt=%d in %.2fs: %s", delivery.id, attempts,
                        next_at - self._wall(), error)

    async def _run(self) -> None:
        while True:
            started = 0
            try:
                started = await self.run_once()
                next_due = await self.store.next_due_at()
            except Exception:
                logger.exception("webhook worker round failed; will retry")
                next_due = None
            wait = self.poll_s if next_due is None else max(0.0, min(self.poll_s, next_due - self._wall()))
            if wait == 0 and not started:  # what is due is in flight or its endpoint is busy: a finish wakes us
                wait = self.poll_s
            # asyncio.timeout, not wait_for: Python 3.11's wait_for can hold a cancellation that arrives as the
            # event is set, and stop() then waited 10 s for this task (a test teardown's sporadic 10 s)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(wait):
                    await self._wake.wait()
            self._wake.clear()

    async def start(self) -> None:
        if self._task is None:
            self._client = httpx.AsyncClient(timeout=self.timeout_s, follow_redirects=False,
                                             transport=self._transport)
            self._task = asyncio.create_task(self._run(), name="webhook-delivery")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        for task in list(self._sends):
            task.cancel()
        for task in list(self._sends):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self._client is not None:
            await self._client.aclose()
            self._client = None
