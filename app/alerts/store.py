"""Durable alert state and outbox (SQLite, whichever VitalStore holds the readings).

An alert moves ``raised → delivered → acknowledged → resolved``; an unacknowledged one may become
``escalated``. Every transition appends an event to the outbox in the same transaction, so an
alert raised is either delivered or still visibly pending after a restart.

Every alert has a ``kind`` (``KINDS``): ``twin`` (sustained twin risk), ``news2`` (a charted set at
the RCP 2017 NEWS2 triggers), ``obs_due`` (observations due: the monitor suggested NEWS2 at a trigger
persistently) or ``criteria`` (a deterioration criterion met now). A patient has at most one open alert
per kind (a partial unique index holds it durably). Databases from before kinds existed gain the
column on open, their alerts as ``twin``.

Delivery: ``delivered_at`` is set when at least one subscriber (a WebSocket client that acknowledged the
event's ``seq``, a webhook endpoint that answered 2xx) confirmed one of the alert's notifications
(``raised``, ``escalated``, ``renotified``); until then an open, unacknowledged alert is *pending*
(``Alert.delivery_pending``, counted in ``/healthz``). Every transition, and every re-notification, is also
written to ``alert_transitions`` with its time and actor (``engine``, a nurse's name, ``websocket:<id>``,
``webhook:<id>``). ``alert_clock`` holds the newest window end whose cycle drove the alert rules: only a
cycle at or after it may raise, resolve or escalate (a cycle for a past window writes scores only).

Engines (issue 24): the state lives in a ``ControlDatabase`` (``app.storage.control_db``): a SQLite file (the
default) or PostgreSQL shared by every instance. The SQL below is written once for both; every transaction that
appends to the outbox (and ``claim_window``) names ``LOCK``, which PostgreSQL takes as an advisory lock held to
commit, so outbox seqs commit in order across instances and one instance's read-then-write (a transition's state
check, the alert clock) is never interleaved with another's. "At most one open alert per patient and kind" is
the partial unique index on both engines: a second raise, from any instance, is refused by the database.
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from app.errors import AlertConflictError, AlertNotFoundError
from app.storage.control import open_control_db
from app.storage.control_db import Connection, ControlDatabase
from app.storage.migrations import Schema, add_column
from models.schema import WINDOW_MINUTES

logger = logging.getLogger(__name__)

STATES = ("raised", "delivered", "acknowledged", "resolved", "escalated")
OPEN_STATES = ("raised", "delivered", "escalated", "acknowledged")
#: Open and not acknowledged: escalates, is re-notified, and is pending until a subscriber confirms it.
UNACKNOWLEDGED = ("raised", "delivered", "escalated")
PENDING_STATES = ("raised", "escalated")
#: The events whose confirmation by a subscriber counts as the alert reaching someone.
NOTIFYING_EVENTS = ("raised", "escalated", "renotified")
#: Alert kinds, most urgent first (the order the ward board picks a patient's open alert by).
#: ``news2``: a charted set at an RCP trigger; ``criteria``: a deterioration criterion met now; ``obs_due``: the
#: monitor has suggested NEWS2 at a trigger persistently, observations are due; ``twin``: sustained twin risk.
KINDS = ("news2", "criteria", "obs_due", "twin")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS alerts (
    id TEXT PRIMARY KEY, patient_id TEXT NOT NULL, window_end TEXT NOT NULL, raised_at TEXT NOT NULL,
    risk REAL NOT NULL, reasons TEXT NOT NULL, state TEXT NOT NULL, updated_at TEXT NOT NULL,
    delivered_at TEXT, acknowledged_by TEXT, acknowledged_at TEXT, escalated_at TEXT, resolved_at TEXT,
    resolved_reason TEXT);
CREATE TABLE IF NOT EXISTS alert_last_met (alert_id TEXT PRIMARY KEY, window_end TEXT NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS alert_transitions (
    id INTEGER PRIMARY KEY AUTOINCREMENT, alert_id TEXT NOT NULL, from_state TEXT, to_state TEXT NOT NULL,
    event TEXT NOT NULL, at TEXT NOT NULL, actor TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS alert_transitions_alert ON alert_transitions (alert_id, id);
CREATE TABLE IF NOT EXISTS alert_clock (id INTEGER PRIMARY KEY CHECK (id = 1), newest_window_end TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS outbox (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, alert_id TEXT NOT NULL, event TEXT NOT NULL,
    payload TEXT NOT NULL, created_at TEXT NOT NULL, delivered_at TEXT, attempts INTEGER NOT NULL DEFAULT 0);
"""


@dataclass(frozen=True)
class Alert:
    id: str
    patient_id: str
    window_end: str
    raised_at: str
    risk: float
    reasons: list[str]
    state: str
    updated_at: str
    delivered_at: str | None = None
    acknowledged_by: str | None = None
    acknowledged_at: str | None = None
    escalated_at: str | None = None
    resolved_at: str | None = None
    resolved_reason: str | None = None
    kind: str = "twin"
    #: NEWS2 of the score that raised the alert: total, band, RCP clinical response, monitoring.
    news2: dict[str, Any] | None = None
    last_notified_at: str | None = None
    renotifications: int = 0

    @property
    def delivery_pending(self) -> bool:
        """Open, not acknowledged, and no subscriber has confirmed any notification of it yet."""
        return self.delivered_at is None and self.state in PENDING_STATES

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "delivery_pending": self.delivery_pending}


@dataclass(frozen=True)
class OutboxEvent:
    seq: int
    alert_id: str
    event: str
    payload: dict[str, Any]


@dataclass(frozen=True)
class NewAlert:
    """One alert to raise (:meth:`AlertStore.raise_alerts`); ``alert_id`` None: ``<patient>-<window end>-<kind>``."""

    patient_id: str
    window_end: datetime
    risk: float
    reasons: list[str]
    kind: str = "twin"
    news2: dict[str, Any] | None = None
    actor: str = "engine"
    alert_id: str | None = None


def _iso(ts: datetime) -> str:
    return ts.astimezone(UTC).isoformat()


def _row_to_alert(row: tuple) -> Alert:
    values = list(row)
    values[5] = json.loads(values[5])
    values[15] = json.loads(values[15]) if values[15] else None
    return Alert(*values)


def outbox_head(conn: Connection) -> int:
    """The newest outbox seq (0 when empty), read on ``conn`` (inside the caller's transaction)."""
    return int(conn.execute("SELECT COALESCE(MAX(seq), 0) FROM outbox").fetchone()[0])


def outbox_after(conn: Connection, seq: int, limit: int) -> list[tuple[OutboxEvent, str]]:
    """Outbox events after ``seq`` in seq order, each with its ``created_at``, read on ``conn`` (inside the caller's
    transaction: the webhook fan-out copies them and moves its cursors atomically)."""
    rows = conn.execute("SELECT seq, alert_id, event, payload, created_at FROM outbox WHERE seq > ? ORDER BY seq "
                        "LIMIT ?", (seq, limit)).fetchall()
    return [(OutboxEvent(q, a, e, _with_kind(json.loads(p))), c) for q, a, e, p, c in rows]


def _urgency(alert: Alert) -> tuple[int, int, str]:
    return _STATE_URGENCY.get(alert.state, 9), KINDS.index(alert.kind) if alert.kind in KINDS else 9, alert.raised_at


def _with_kind(payload: dict[str, Any]) -> dict[str, Any]:
    """Events written before alert kinds existed carry a ``twin`` alert (as the migrated row does)."""
    if isinstance(payload.get("alert"), dict):
        payload["alert"].setdefault("kind", "twin")
    return payload


_COLUMNS = (
    "id, patient_id, window_end, raised_at, risk, reasons, state, updated_at, delivered_at, acknowledged_by, "
    "acknowledged_at, escalated_at, resolved_at, resolved_reason, kind, news2, last_notified_at, renotifications"
)
_OPEN_MARKS = ", ".join(f"'{s}'" for s in OPEN_STATES)
#: Versioned (``app/storage/migrations.py``): append steps, never edit one. The column steps skip a column that a
#: database made before versioning already has; alerts from before kinds existed become ``twin`` alerts.
SCHEMA = Schema("alerts", (
    _SCHEMA,
    add_column("alerts", "kind", "TEXT NOT NULL DEFAULT 'twin'"),
    f"""CREATE INDEX IF NOT EXISTS alerts_patient_kind ON alerts (patient_id, kind, state);
    CREATE UNIQUE INDEX IF NOT EXISTS alerts_one_open_per_kind ON alerts (patient_id, kind)
        WHERE state IN ({_OPEN_MARKS});""",
    add_column("alerts", "news2", "TEXT"),
    add_column("alerts", "last_notified_at", "TEXT"),
    add_column("alerts", "renotifications", "INTEGER NOT NULL DEFAULT 0"),
    add_column("alert_transitions", "note", "TEXT"),  # a nurse's note on an acknowledgement or resolution
    # runs of consecutive windows a sustained rule held (``app.alerts.rules.Streak``), per patient and kind
    """CREATE TABLE IF NOT EXISTS alert_streaks (
        patient_id TEXT NOT NULL, kind TEXT NOT NULL, since TEXT NOT NULL, last TEXT NOT NULL,
        PRIMARY KEY (patient_id, kind)) WITHOUT ROWID;""",
), postgres=(
    f"""CREATE TABLE alerts (
        id TEXT PRIMARY KEY, patient_id TEXT NOT NULL, window_end TEXT NOT NULL, raised_at TEXT NOT NULL,
        risk DOUBLE PRECISION NOT NULL, reasons TEXT NOT NULL, state TEXT NOT NULL, updated_at TEXT NOT NULL,
        delivered_at TEXT, acknowledged_by TEXT, acknowledged_at TEXT, escalated_at TEXT, resolved_at TEXT,
        resolved_reason TEXT, kind TEXT NOT NULL DEFAULT 'twin', news2 TEXT, last_notified_at TEXT,
        renotifications INTEGER NOT NULL DEFAULT 0);
    CREATE INDEX alerts_patient_kind ON alerts (patient_id, kind, state);
    CREATE UNIQUE INDEX alerts_one_open_per_kind ON alerts (patient_id, kind) WHERE state IN ({_OPEN_MARKS});
    CREATE TABLE alert_last_met (alert_id TEXT PRIMARY KEY, window_end TEXT NOT NULL);
    CREATE TABLE alert_transitions (
        id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY, alert_id TEXT NOT NULL, from_state TEXT,
        to_state TEXT NOT NULL, event TEXT NOT NULL, at TEXT NOT NULL, actor TEXT NOT NULL, note TEXT);
    CREATE INDEX alert_transitions_alert ON alert_transitions (alert_id, id);
    CREATE TABLE alert_clock (id INTEGER PRIMARY KEY CHECK (id = 1), newest_window_end TEXT NOT NULL);
    CREATE TABLE outbox (
        seq BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY, alert_id TEXT NOT NULL, event TEXT NOT NULL,
        payload TEXT NOT NULL, created_at TEXT NOT NULL, delivered_at TEXT, attempts INTEGER NOT NULL DEFAULT 0);
    CREATE INDEX outbox_undelivered ON outbox (seq) WHERE delivered_at IS NULL;
    CREATE TABLE alert_streaks (
        patient_id TEXT NOT NULL, kind TEXT NOT NULL, since TEXT NOT NULL, last TEXT NOT NULL,
        PRIMARY KEY (patient_id, kind));""",
))
#: The advisory lock (PostgreSQL) of every transaction that appends to the outbox or moves the alert clock.
LOCK = "wardtwin.alerts"
#: The PostgreSQL channel every outbox append notifies (at commit), so other instances deliver it without waiting for
#: their engine's next poll.
CHANNEL = "wardtwin_outbox"
#: How urgently an open alert wants attention on the board: unacknowledged first, escalated first of all.
_STATE_URGENCY = {"escalated": 0, "raised": 1, "delivered": 2, "acknowledged": 3}


class AlertStore:
    def __init__(self, target: Path | str | ControlDatabase) -> None:
        """``target``: a SQLite file, a ``postgresql://`` URL, or an open-able ``ControlDatabase``."""
        self._db = open_control_db(target, SCHEMA)
        self._origin = secrets.token_hex(6)  # names this store's commits in the PostgreSQL notifications
        #: Called after every committed event: the alert engine's, which tells its notifiers (``subscribe``).
        self.on_event: Callable[[], None] | None = None

    async def open(self) -> None:
        self._db.open()
        listen = getattr(self._db, "listen", None)  # PostgreSQL: other instances' commits wake this one's engine
        if listen is not None:
            loop = asyncio.get_running_loop()

            def heard(origin: str) -> None:
                if origin != self._origin:  # this store's own commits already called on_event
                    loop.call_soon_threadsafe(self._notify)

            listen(CHANNEL, heard)

    async def close(self) -> None:
        self._db.close()

    # -- reads ------------------------------------------------------------------------------------
    async def get(self, alert_id: str) -> Alert:
        sql = f"SELECT {_COLUMNS} FROM alerts WHERE id = ?"
        row = await self._db.run(lambda c: c.execute(sql, (alert_id,)).fetchone())
        if row is None:
            raise AlertNotFoundError(f"no alert {alert_id!r}")
        return _row_to_alert(row)

    async def list(self, *, patient_id: str | None = None, state: str | None = None, kind: str | None = None,
                   limit: int = 200) -> list[Alert]:
        clauses, params = [], []
        if patient_id is not None:
            clauses.append("patient_id = ?")
            params.append(patient_id)
        if state is not None:
            clauses.append("state = ?")
            params.append(state)
        if kind is not None:
            clauses.append("kind = ?")
            params.append(kind)
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        sql = f"SELECT {_COLUMNS} FROM alerts {where} ORDER BY raised_at DESC, id LIMIT ?"
        rows = await self._db.run(lambda c: c.execute(sql, (*params, limit)).fetchall())
        return [_row_to_alert(r) for r in rows]

    async def open_by_kind(self) -> dict[tuple[str, str], Alert]:
        """Every open alert, keyed by (patient, kind)."""
        marks = ", ".join("?" * len(OPEN_STATES))
        sql = f"SELECT {_COLUMNS} FROM alerts WHERE state IN ({marks})"
        rows = await self._db.run(lambda c: c.execute(sql, OPEN_STATES).fetchall())
        return {(a.patient_id, a.kind): a for a in map(_row_to_alert, rows)}

    async def open_alerts(self) -> dict[str, Alert]:
        """One open alert per patient, the one most in need of attention: unacknowledged before acknowledged
        (escalated first), then by kind (``KINDS`` order), then the oldest."""
        best: dict[str, Alert] = {}
        for alert in (await self.open_by_kind()).values():
            current = best.get(alert.patient_id)
            if current is None or _urgency(alert) < _urgency(current):
                best[alert.patient_id] = alert
        return best

    # -- transitions ------------------------------------------------------------------------------
    def _emit(self, conn: Connection, alert_id: str, event: str, at: datetime, actor: str,
              from_state: str | None, note: str | None = None) -> Alert:
        """Append the event to the outbox and the transition log (inside the caller's transaction); the alert as
        the event carries it."""
        alert = _row_to_alert(conn.execute(f"SELECT {_COLUMNS} FROM alerts WHERE id = ?", (alert_id,)).fetchone())
        payload = json.dumps({"event": event, "actor": actor, "alert": alert.to_dict()}, sort_keys=True)
        conn.execute(
            "INSERT INTO outbox (alert_id, event, payload, created_at) VALUES (?, ?, ?, ?)",
            (alert_id, event, payload, _iso(at)),
        )
        conn.execute(
            "INSERT INTO alert_transitions (alert_id, from_state, to_state, event, at, actor, note) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)", (alert_id, from_state, alert.state, event, _iso(at), actor, note),
        )
        if self._db.dialect.name == "postgresql":  # delivered at commit to every instance's listener
            conn.execute("SELECT pg_notify(?, ?)", (CHANNEL, self._origin))
        return alert

    def _notify(self) -> None:
        if self.on_event is not None:
            self.on_event()

    async def raise_alert(self, patient_id: str, window_end: datetime, risk: float, reasons: list[str],
                          at: datetime, kind: str = "twin", news2: dict[str, Any] | None = None,
                          actor: str = "engine", alert_id: str | None = None) -> Alert | None:
        """Raise an alert of ``kind``; ``None`` if this (patient, window end, kind) already raised one (cycle
        rerun) or the patient already has an open alert of this kind. The id is ``<patient>-<window end>-<kind>``."""
        raised = await self.raise_alerts([NewAlert(patient_id, window_end, risk, reasons, kind, news2, actor,
                                                   alert_id)], at)
        return raised[0] if raised else None

    async def raise_alerts(self, batch: Sequence[NewAlert], at: datetime) -> list[Alert]:
        """Raise every alert of ``batch`` in one transaction (a cycle's burst costs one commit, not one per alert;
        issue 21, finding 8) and return those created, in ``batch`` order; one that already exists (cycle rerun) or
        whose patient already has an open alert of its kind is skipped, as :meth:`raise_alert` skips it."""
        for item in batch:
            if item.kind not in KINDS:
                raise ValueError(f"alert kind must be one of {', '.join(KINDS)}, got {item.kind!r}")
        if not batch:
            return []
        ids = [item.alert_id or f"{item.patient_id}-{item.window_end.astimezone(UTC):%Y%m%dT%H%MZ}-{item.kind}"
               for item in batch]

        def raise_(conn: Connection) -> list[Alert]:
            created: list[Alert] = []
            for alert_id, item in zip(ids, batch, strict=True):
                cur = conn.execute(
                    "INSERT INTO alerts (id, patient_id, window_end, raised_at, risk, reasons, state, updated_at, "
                    "kind, news2, last_notified_at) VALUES (?, ?, ?, ?, ?, ?, 'raised', ?, ?, ?, ?) "
                    "ON CONFLICT DO NOTHING",
                    (alert_id, item.patient_id, _iso(item.window_end), _iso(at), item.risk, json.dumps(item.reasons),
                     _iso(at), item.kind, json.dumps(item.news2) if item.news2 is not None else None, _iso(at)),
                )
                if cur.rowcount:
                    created.append(self._emit(conn, alert_id, "raised", at, item.actor, None))
            return created

        created = await self._db.run_tx(raise_, LOCK)
        if created:
            self._notify()
        return created

    async def _transition(self, alert_id: str, allowed_from: tuple[str, ...], to: str, at: datetime,
                          extra: dict[str, Any], actor: str, note: str | None = None) -> Alert:
        def move(conn: Connection) -> None:
            row = conn.execute("SELECT state FROM alerts WHERE id = ?", (alert_id,)).fetchone()
            if row is None:
                raise AlertNotFoundError(f"no alert {alert_id!r}")
            if row[0] not in allowed_from:
                raise AlertConflictError(f"alert {alert_id} is {row[0]}; cannot become {to}")
            sets = ", ".join(f"{k} = ?" for k in ("state", "updated_at", *extra))
            conn.execute(f"UPDATE alerts SET {sets} WHERE id = ?", (to, _iso(at), *extra.values(), alert_id))
            self._emit(conn, alert_id, to, at, actor, row[0], note)

        await self._db.run_tx(move, LOCK)
        self._notify()
        return await self.get(alert_id)

    async def confirm_delivery(self, seqs: Sequence[int], at: datetime, actor: str) -> list[str]:
        """A subscriber (``actor``) confirmed these outbox events: mark each event delivered (first confirmation
        wins) and every alert they notify about delivered (``raised`` becomes ``delivered``, with its event; an
        escalated alert keeps its state and gains ``delivered_at``). Returns the ids of alerts newly delivered."""
        if not seqs:
            return []
        marks = ", ".join("?" * len(seqs))

        def confirm(conn: Connection) -> list[str]:
            conn.execute(f"UPDATE outbox SET delivered_at = COALESCE(delivered_at, ?), attempts = attempts + 1 "
                         f"WHERE seq IN ({marks})", (_iso(at), *seqs))
            notifying = ", ".join(f"'{e}'" for e in NOTIFYING_EVENTS)
            ids = [r[0] for r in conn.execute(
                f"SELECT DISTINCT o.alert_id FROM outbox o JOIN alerts a ON a.id = o.alert_id WHERE o.seq IN "
                f"({marks}) AND o.event IN ({notifying}) AND a.delivered_at IS NULL", tuple(seqs))]
            for alert_id in ids:
                (state,) = conn.execute("SELECT state FROM alerts WHERE id = ?", (alert_id,)).fetchone()
                if state == "raised":
                    conn.execute("UPDATE alerts SET state = 'delivered', delivered_at = ?, updated_at = ? WHERE id = ?",
                                 (_iso(at), _iso(at), alert_id))
                    self._emit(conn, alert_id, "delivered", at, actor, state)
                else:
                    conn.execute("UPDATE alerts SET delivered_at = ? WHERE id = ?", (_iso(at), alert_id))
                    conn.execute("INSERT INTO alert_transitions (alert_id, from_state, to_state, event, at, actor) "
                                 "VALUES (?, ?, ?, 'delivered', ?, ?)", (alert_id, state, state, _iso(at), actor))
            return ids

        delivered = await self._db.run_tx(confirm, LOCK)
        if delivered:
            self._notify()
        return delivered

    async def acknowledge(self, alert_id: str, by: str, at: datetime, note: str | None = None) -> Alert:
        return await self._transition(
            alert_id, UNACKNOWLEDGED, "acknowledged", at,
            {"acknowledged_by": by, "acknowledged_at": _iso(at)}, by, note,
        )

    async def escalate(self, alert_id: str, at: datetime, actor: str = "engine") -> Alert:
        return await self._transition(alert_id, ("raised", "delivered"), "escalated", at,
                                      {"escalated_at": _iso(at), "last_notified_at": _iso(at)}, actor)

    async def resolve(self, alert_id: str, at: datetime, reason: str, actor: str = "engine",
                      note: str | None = None) -> Alert:
        return await self._transition(
            alert_id, OPEN_STATES, "resolved", at, {"resolved_at": _iso(at), "resolved_reason": reason}, actor, note
        )

    async def renotify(self, alert_id: str, at: datetime, actor: str = "engine") -> Alert | None:
        """Notify again about an alert still unacknowledged (no state change; a ``renotified`` event)."""
        def again(conn: Connection) -> bool:
            row = conn.execute("SELECT state FROM alerts WHERE id = ?", (alert_id,)).fetchone()
            if row is None or row[0] not in UNACKNOWLEDGED:
                return False
            conn.execute("UPDATE alerts SET last_notified_at = ?, renotifications = renotifications + 1 "
                         "WHERE id = ?", (_iso(at), alert_id))
            self._emit(conn, alert_id, "renotified", at, actor, row[0])
            return True

        if not await self._db.run_tx(again, LOCK):
            return None
        self._notify()
        return await self.get(alert_id)

    async def unacknowledged(self) -> list[Alert]:
        """Open alerts nobody has acknowledged (for escalation and re-notification)."""
        marks = ", ".join("?" * len(UNACKNOWLEDGED))
        sql = f"SELECT {_COLUMNS} FROM alerts WHERE state IN ({marks}) ORDER BY raised_at, id"
        rows = await self._db.run(lambda c: c.execute(sql, UNACKNOWLEDGED).fetchall())
        return [_row_to_alert(r) for r in rows]

    async def transitions(self, alert_id: str) -> list[dict[str, Any]]:
        """Every transition of one alert, oldest first: from, to, event, at, actor."""
        sql = ("SELECT from_state, to_state, event, at, actor, note FROM alert_transitions WHERE alert_id = ? "
               "ORDER BY id")
        rows = await self._db.run(lambda c: c.execute(sql, (alert_id,)).fetchall())
        return [dict(zip(("from_state", "to_state", "event", "at", "actor", "note"), r, strict=True)) for r in rows]

    # -- which window drives the alert rules ------------------------------------------------------
    async def claim_window(self, window_end: datetime, now: datetime | None = None) -> bool:
        """True (and recorded durably) when ``window_end`` is at or after the newest window end that has driven
        the alert rules; False for a past window, whose cycle must leave alert state alone.

        Given the clock's ``now``, a recorded window end more than one window past it (written while the host
        clock ran ahead) is never trusted: the claim replaces it, so alerting recovers as soon as the clock comes
        back (issue 21, finding 1). Window ends past the clock are refused at the edge (``POST /v1/cycle``) and
        never due in the scheduler."""
        ahead = None if now is None else now + timedelta(minutes=WINDOW_MINUTES)

        def claim(conn: Connection) -> bool:
            row = conn.execute("SELECT newest_window_end FROM alert_clock WHERE id = 1").fetchone()
            if row is not None and datetime.fromisoformat(row[0]) > window_end:
                if ahead is None or datetime.fromisoformat(row[0]) <= ahead:
                    return False
                logger.warning("alert clock newest_window_end=%s is ahead of the clock (now %s): replaced by %s",
                               row[0], _iso(now), _iso(window_end))  # type: ignore[arg-type]
            conn.execute("INSERT INTO alert_clock (id, newest_window_end) VALUES (1, ?) ON CONFLICT (id) DO UPDATE "
                         "SET newest_window_end = excluded.newest_window_end", (_iso(window_end),))
            return True

        return await self._db.run_tx(claim, LOCK)

    async def newest_window_end(self) -> datetime | None:
        row = await self._db.run(lambda c: c.execute("SELECT newest_window_end FROM alert_clock").fetchone())
        return datetime.fromisoformat(row[0]) if row else None

    async def regrade(self, alert_id: str, reasons: list[str], news2: dict[str, Any], at: datetime,
                      actor: str) -> Alert:
        """A charted set of a higher grade for an open ``news2`` alert: new reasons and NEWS2, and the alert becomes
        ``escalated`` from any open state (an acknowledged one too: a higher grade needs someone again), its delivery
        pending until a subscriber confirms the ``escalated`` event."""
        def move(conn: Connection) -> None:
            row = conn.execute("SELECT state FROM alerts WHERE id = ?", (alert_id,)).fetchone()
            if row is None:
                raise AlertNotFoundError(f"no alert {alert_id!r}")
            if row[0] not in OPEN_STATES:
                raise AlertConflictError(f"alert {alert_id} is {row[0]}; cannot be escalated")
            conn.execute("UPDATE alerts SET state = 'escalated', updated_at = ?, escalated_at = ?, "
                         "last_notified_at = ?, delivered_at = NULL, reasons = ?, news2 = ? WHERE id = ?",
                         (_iso(at), _iso(at), _iso(at), json.dumps(reasons), json.dumps(news2), alert_id))
            self._emit(conn, alert_id, "escalated", at, actor, row[0])

        await self._db.run_tx(move, LOCK)
        self._notify()
        return await self.get(alert_id)

    async def corroborate(self, alert_id: str, reasons: list[str], at: datetime, actor: str = "engine",
                          note: str | None = None) -> Alert | None:
        """Another rule holds for the patient of this open alert and is recorded on it rather than raised
        (``app.alerts.rules.Corroborate``): ``reasons`` appended, a ``corroborated`` transition row (state unchanged,
        ``note`` naming the rule). No outbox event: it notifies nobody (the board shows it at its next refresh).
        None when the alert is no longer open."""
        def add(conn: Connection) -> bool:
            row = conn.execute("SELECT state, reasons FROM alerts WHERE id = ?", (alert_id,)).fetchone()
            if row is None or row[0] not in OPEN_STATES:
                return False
            conn.execute("UPDATE alerts SET reasons = ?, updated_at = ? WHERE id = ?",
                         (json.dumps([*json.loads(row[1]), *reasons]), _iso(at), alert_id))
            conn.execute("INSERT INTO alert_transitions (alert_id, from_state, to_state, event, at, actor, note) "
                         "VALUES (?, ?, ?, 'corroborated', ?, ?, ?)", (alert_id, row[0], row[0], _iso(at), actor, note))
            return True

        if not await self._db.run_tx(add, LOCK):
            return None
        return await self.get(alert_id)

    # -- sustained rules ----------------------------------------------------------------------------
    async def streaks(self) -> dict[tuple[str, str], tuple[datetime, datetime]]:
        """Every run of a sustained rule: (patient, kind) → (first, newest window end)."""
        rows = await self._db.run(lambda c: c.execute("SELECT patient_id, kind, since, last FROM alert_streaks")
                                  .fetchall())
        return {(p, k): (datetime.fromisoformat(a), datetime.fromisoformat(b)) for p, k, a, b in rows}

    async def save_streaks(self, changed: dict[tuple[str, str], tuple[datetime, datetime] | None]) -> None:
        """Write the runs that changed (None: the run ended), in one transaction."""
        upserts = [(p, k, _iso(v[0]), _iso(v[1])) for (p, k), v in changed.items() if v is not None]
        ended = [(p, k) for (p, k), v in changed.items() if v is None]

        def write(conn: Connection) -> None:
            conn.executemany("INSERT INTO alert_streaks (patient_id, kind, since, last) VALUES (?, ?, ?, ?) "
                             "ON CONFLICT (patient_id, kind) DO UPDATE SET since = excluded.since, "
                             "last = excluded.last", upserts)
            conn.executemany("DELETE FROM alert_streaks WHERE patient_id = ? AND kind = ?", ended)

        if changed:
            await self._db.run_tx(write, LOCK)

    async def open_for(self, patient_id: str) -> dict[str, Alert]:
        """One patient's open alerts by kind."""
        marks = ", ".join("?" * len(OPEN_STATES))
        sql = f"SELECT {_COLUMNS} FROM alerts WHERE patient_id = ? AND state IN ({marks})"
        rows = await self._db.run(lambda c: c.execute(sql, (patient_id, *OPEN_STATES)).fetchall())
        return {a.kind: a for a in map(_row_to_alert, rows)}

    # -- sustained clearing -----------------------------------------------------------------------
    async def mark_met(self, met: Sequence[tuple[str, datetime]]) -> None:
        """Record, per open alert, the newest window end at which its rule still held (durable, so a restarted
        service clears an alert after the same sustained time as an uninterrupted one)."""
        rows = [(alert_id, _iso(window_end)) for alert_id, window_end in met]

        greatest = self._db.dialect.greatest

        def write(conn: Connection) -> None:
            conn.executemany(
                "INSERT INTO alert_last_met (alert_id, window_end) VALUES (?, ?) ON CONFLICT (alert_id) DO UPDATE "
                f"SET window_end = {greatest}(alert_last_met.window_end, excluded.window_end)", rows)

        if rows:
            await self._db.run_tx(write, LOCK)

    async def last_met(self) -> dict[str, datetime]:
        """The newest window end at which each open alert's rule held (absent: only when it was raised)."""
        sql = (f"SELECT m.alert_id, m.window_end FROM alert_last_met m JOIN alerts a ON a.id = m.alert_id "
               f"WHERE a.state IN ({_OPEN_MARKS})")
        rows = await self._db.run(lambda c: c.execute(sql).fetchall())
        return {alert_id: datetime.fromisoformat(at) for alert_id, at in rows}

    # -- outbox -----------------------------------------------------------------------------------
    async def pending_events(self, limit: int = 500) -> list[OutboxEvent]:
        """Events no subscriber has confirmed yet, oldest first."""
        sql = "SELECT seq, alert_id, event, payload FROM outbox WHERE delivered_at IS NULL ORDER BY seq LIMIT ?"
        rows = await self._db.run_read(lambda c: c.execute(sql, (limit,)).fetchall())
        return [OutboxEvent(s, a, e, _with_kind(json.loads(p))) for s, a, e, p in rows]

    async def events_after(self, seq: int, limit: int = 500) -> list[OutboxEvent]:
        rows = await self._db.run_read(lambda c: outbox_after(c, seq, limit))
        return [event for event, _ in rows]

    async def last_seq(self) -> int:
        return await self._db.run_read(outbox_head)

    async def first_pending_seq(self) -> int | None:
        sql = "SELECT MIN(seq) FROM outbox WHERE delivered_at IS NULL"
        row = await self._db.run_read(lambda c: c.execute(sql).fetchone())
        return None if row[0] is None else int(row[0])

    async def backlog(self) -> int:
        """Outbox events no subscriber has confirmed."""
        sql = "SELECT COUNT(*) FROM outbox WHERE delivered_at IS NULL"
        row = await self._db.run_read(lambda c: c.execute(sql).fetchone())
        return int(row[0])

    async def pending_delivery(self) -> int:
        """Open, unacknowledged alerts that no subscriber has confirmed (``Alert.delivery_pending``)."""
        marks = ", ".join("?" * len(PENDING_STATES))
        sql = f"SELECT COUNT(*) FROM alerts WHERE delivered_at IS NULL AND state IN ({marks})"
        row = await self._db.run_read(lambda c: c.execute(sql, PENDING_STATES).fetchone())
        return int(row[0])

    @property
    def db(self) -> ControlDatabase:
        """The database the alerts live in (the webhook outbox shares it)."""
        return self._db
