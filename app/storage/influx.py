"""The InfluxDB store: the ``VitalStore`` protocol over InfluxDB's v1 HTTP API (1.x; 2.x/3.x compatibility).

Measurements
------------
``vitals``     raw readings; tags ``patient_id``, ``vital`` and, for a charted reading, ``source=charted`` (no tag:
               the monitor's, as every reading written before sources existed); fields ``value`` (float),
               ``quality`` (string); millisecond timestamps. Same series + timestamp overwrites: the last
               delivered copy of a source wins; a charted and a monitor value at one time are two series, both kept.
``vitals_5m``  pushed-down 5-minute windows; tag ``patient_id``; fields ``models.windows.WINDOW_COLUMNS``
               plus ``missing``, an integer bitmask of the columns that are NaN (see below).
``scores``     tag ``patient_id``; fields ``risk``, ``logit``, ``model_version``, ``payload`` (``codec``
               JSON); timestamp = window end.

Writes go to ``/write`` as line protocol (``precision=ms``) in batches of ``batch_size``. Reads go to
``/query`` by POST with InfluxQL whose every user-supplied value is a bound parameter (``params``): a
patient id is never pasted into query text, so ``x'; DROP DATABASE wardtwin; SELECT '`` is just an id.

Push-down
---------
``materialize_windows(start, end)`` runs, in one request, ``GROUP BY time(5m), patient_id`` queries over
raw ``vitals`` (``mean``/``stddev``/``count`` of HR; ``mean`` of SpO2 and RR; ``last`` of SBP, DBP,
temperature, ACVPU and O2 per source, the charted one winning where a window has both, with ``quality = 'ok'``)
for ``[start, end)`` only, and writes the result to
``vitals_5m``; the cycle then reads ``vitals_5m``, never hours of raw 1 Hz data. ``stddev`` is the sample
standard deviation and InfluxDB returns null for a single point, as pandas gives NaN. Carry-forward of
BP/temperature is not done in InfluxQL (``fill(previous)`` cannot look before a query's start); it
stays in ``models.windows.carry_forward``.

Re-materializing a window must not leave a stale field behind (InfluxDB merges the fields of points
with the same series and time). So every ``vitals_5m`` point carries *every* field: a NaN column is
written as ``0.0`` with its bit set in ``missing``; a window that existed and now has no clean reading
(e.g. its only reading was re-delivered with an artefact flag) is overwritten with all bits set (a
tombstone) and ``windows`` skips it. No ``DELETE`` (slow in 1.x, and a reader would see a hole).

Nothing lost
------------
``write_readings`` returns only after InfluxDB acknowledged the batch (204) or the batch is fsync'd into
the local ``Spool``. While the spool holds anything, new batches queue behind it, so replay keeps arrival
order; a background drainer replays oldest first with exponential backoff and removes a batch only when
acknowledged. A 400 from InfluxDB (a point it refuses, e.g. a field type conflict) is logged and counted
in ``health()["rejected"]``, never retried; connection errors, timeouts, 5xx, 401/403 and 404 (database
missing) are retried.

One limit, inherent to HTTP: a write that timed out may still be applied by a slow InfluxDB later, after
its spooled copy was replayed. That is harmless (same points) unless a *newer copy of the same key* was
replayed in between, which the stale request would then overwrite. Re-deliveries of a key with a different
value are rare (a device correcting itself); ``timeout_s`` well above InfluxDB's worst write latency keeps
that window closed in practice.

Identity
--------
``open`` marks a database it finds unmarked (``wardtwin_store``: ``store_id``, ``created_at``) and records the marker
in the spool's file (``app.storage.identity``); ``health`` compares them on every check. A database dropped and
recreated by the next write, swapped, or restored from elsewhere has no marker or another one: ``health`` says
``ok: false`` naming it, also after later writes and restarts, until ``wardtwin store accept-database`` adopts it.

Errors: transport failures on reads and on window writes raise ``StoreUnavailableError`` (503 at the edge).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import time
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

import httpx
import numpy as np
import pandas as pd
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type, wait_exponential

from app.domain import Reading, Score
from app.errors import StoreUnavailableError
from app.storage.base import WINDOW_MS, window_runs
from app.storage.codec import from_ms, score_from_json, score_to_json, to_ms
from app.storage.identity import MARKER_Q, REFRESH_S, Identity, Verdict, chosen, iso, judge, marker_line, problem
from app.storage.spool import Spool
from models.line_protocol import ReadingEncoder, encode_point
from models.schema import NAME_PATTERN, NAME_RULE, SOURCE_CHARTED, SOURCE_MONITOR, SOURCED_READING_COLUMNS
from models.windows import LAST_VITALS, WINDOW_COLUMNS, empty_windows, normalise

logger = logging.getLogger(__name__)

#: Window value columns as stored in ``vitals_5m`` (``hr_count`` is an integer field, never missing).
VALUE_COLUMNS: Final[tuple[str, ...]] = tuple(c for c in WINDOW_COLUMNS if c not in ("patient_id", "start", "hr_count"))
MISSING_BIT: Final[dict[str, int]] = {c: 1 << i for i, c in enumerate(VALUE_COLUMNS)}
ALL_MISSING: Final[int] = (1 << len(VALUE_COLUMNS)) - 1
#: Readings per query statement when filtering on patient ids (each id is one bound parameter).
IDS_PER_STATEMENT: Final[int] = 200
#: Longest ``close`` waits for the spool to drain (InfluxDB reachable): well inside the service's 10 s stop budget.
CLOSE_DRAIN_S: Final[float] = 5.0
#: Once a request found InfluxDB unreachable or hung (a transport error: refused, reset, timed out), reads fail at
#: once instead of each waiting out ``timeout_s`` again, until InfluxDB answers anything (a write or replay, a read,
#: the health check's ``/ping``); one read every this many seconds is let through to probe it. So while InfluxDB
#: hangs the ingest's conflict check (which then lets the write spool unchecked) and the board's and the API's reads
#: answer 503 in milliseconds. Writes are not affected (they spool).
READ_BACKOFF_S: Final[float] = 5.0

_GROUP = "GROUP BY time(5m), patient_id"


def _materialize_statements(only_ok: bool) -> tuple[str, ...]:
    """The aggregation of ``[$lo, $hi)``; ``only_ok=False`` drops the ``quality = 'ok'`` field filter (for a range
    holding no other quality, where it changes nothing but costs influxd a fifth to a third of the time)."""
    where = ("quality = 'ok' AND " if only_ok else "") + "time >= $lo AND time < $hi"
    return (
        f"SELECT mean(value), stddev(value), count(value) FROM vitals WHERE vital = 'hr' AND {where} {_GROUP} "
        "fill(none)",
        f"SELECT mean(value) FROM vitals WHERE vital = 'spo2' AND {where} {_GROUP} fill(none)",
        f"SELECT mean(value) FROM vitals WHERE vital = 'rr' AND {where} {_GROUP} fill(none)",
        "SELECT last(value) FROM vitals WHERE ({}) AND {} {}, vital, source fill(none)".format(
            " OR ".join(f"vital = '{v}'" for v in LAST_VITALS), where, _GROUP
        ),
        "SELECT hr_count, missing FROM vitals_5m WHERE time >= $lo AND time < $hi GROUP BY patient_id",
    )


_MATERIALIZE_Q: Final[tuple[str, ...]] = _materialize_statements(only_ok=True)
_MATERIALIZE_ANY_QUALITY_Q: Final[tuple[str, ...]] = _materialize_statements(only_ok=False)
#: Readings of another quality than "ok" in ``[$lo, $hi)`` (one number).
_FLAGGED_Q: Final[str] = "SELECT count(value) FROM vitals WHERE quality != 'ok' AND time >= $lo AND time < $hi"


#: Scores per write (a score's payload is about 4 kB of JSON): small enough to overlap encoding with writing.
SCORES_PER_WRITE: Final[int] = 1000


def _score_lines(scores: Sequence[Score]) -> bytes:
    """``scores`` points (tag ``patient_id``; fields ``model_version``, ``payload``, and ``risk``/``logit`` when
    finite) at the window end."""
    lines = []
    for score in scores:
        fields: dict[str, float | str] = {"model_version": score.model_version, "payload": score_to_json(score)}
        for name in ("risk", "logit"):
            value = float(getattr(score, name))
            if np.isfinite(value):
                fields[name] = value
        lines.append(encode_point("scores", {"patient_id": score.patient_id}, fields, to_ms(score.window_end)))
    return "\n".join(lines).encode()


class _Retryable(Exception):
    """InfluxDB could not take a write now (down, slow, 5xx, auth, database missing): spool and retry."""


def _rfc3339(ms: int) -> str:
    """Millisecond time as an RFC 3339 string: exact as a bound parameter (an integer ns would pass through a
    float64 in some InfluxDB versions and lose the last bits)."""
    ts = datetime.fromtimestamp(ms // 1000, UTC).replace(microsecond=(ms % 1000) * 1000)
    return ts.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _id_filter(ids: Sequence[str], offset: int = 0) -> tuple[str, dict[str, str]]:
    """``(patient_id = $p0 OR patient_id = $p1 ...)`` and its parameters: ids only ever travel as parameters."""
    params = {f"p{offset + i}": pid for i, pid in enumerate(ids)}
    return "(" + " OR ".join(f"patient_id = ${name}" for name in params) + ")", params


def _pending_lines(starts: Sequence[int]) -> bytes:
    """``pending_windows`` marks: one point per window start that received readings (``n`` is unused)."""
    return "\n".join(encode_point("pending_windows", {}, {"n": 1}, ms) for ms in starts).encode()


def _rejected_points(message: str, sent: int) -> int:
    """How many points of a 400'd batch InfluxDB dropped (``dropped=N`` plus unparseable lines)."""
    dropped = sum(int(n) for n in re.findall(r"dropped=(\d+)", message))
    unparsed = message.count("unable to parse")
    return min(sent, dropped + unparsed) or sent


class InfluxStore:
    name = "influx"

    def __init__(
        self,
        url: str,
        database: str,
        *,
        retention_policy: str | None = None,
        username: str | None = None,
        password: str | None = None,
        token: str | None = None,
        spool_path: Path,
        batch_size: int = 5000,
        timeout_s: float = 10.0,
        retry_initial_s: float = 0.2,
        retry_max_s: float = 30.0,
    ) -> None:
        if not NAME_PATTERN.match(database):
            raise ValueError(f"InfluxDB database name must be {NAME_RULE}")
        if retention_policy is not None and not NAME_PATTERN.match(retention_policy):
            raise ValueError(f"InfluxDB retention policy must be {NAME_RULE}")
        if token and (username or password):
            raise ValueError("give either an InfluxDB token or a username/password, not both")
        if batch_size < 1:
            raise ValueError("batch_size must be positive")
        self.url = str(url).rstrip("/")
        self.database = database
        self.retention_policy = retention_policy
        self.batch_size = batch_size
        self.timeout_s = timeout_s
        #: The spool's last replay failed (InfluxDB unreachable or refusing): ``close`` does not wait for a drain.
        self.replay_failing = False
        self.retry_initial_s = retry_initial_s
        self.retry_max_s = retry_max_s
        self._auth = httpx.BasicAuth(username, password or "") if username else None
        self._headers = {"Authorization": f"Token {token}"} if token else {}
        self._spool = Spool(spool_path)
        self._encoder = ReadingEncoder("vitals")
        self._client: httpx.AsyncClient | None = None
        self._drainer: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._spooling = 0
        self._database_ready = False
        self.rejected = 0
        self.last_rejection: str | None = None
        self.last_error: str | None = None
        self._reads_down_until = 0.0  # 0: InfluxDB answered last; else (monotonic) reads fail at once until then
        self._reads_down_reason = ""
        self.reads_short_circuited = 0  # reads refused without asking InfluxDB, since open
        self._marker_refreshed: float | None = None  # monotonic time of the last marker rewrite

    # -- lifecycle --------------------------------------------------------------------------------
    async def open(self) -> None:
        if self._client is not None:
            return
        self._client = self._new_client()
        await self._spool.open()
        try:
            await self._ensure_database()
            await self._verify_identity()
        except (_Retryable, StoreUnavailableError) as exc:  # health() checks the database's identity again
            logger.warning("influx open url=%s not ready, spooling until it answers: %s", self.url, exc)
        self._wake = asyncio.Event()
        self._drainer = asyncio.create_task(self._drain_forever(), name="influx-spool-drainer")
        if self._spool.backlog:
            logger.info("influx spool backlog=%d points at open", self._spool.backlog)
            self._wake.set()

    def _new_client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            base_url=self.url,
            auth=self._auth,
            headers=self._headers,
            timeout=httpx.Timeout(self.timeout_s, connect=min(self.timeout_s, 3.0)),
            limits=httpx.Limits(max_connections=32, max_keepalive_connections=16),
        )

    async def close(self, drain_timeout_s: float | None = None) -> None:
        """Stop the drainer after giving it ``drain_timeout_s`` (default ``CLOSE_DRAIN_S``) to empty the spool, or
        none while InfluxDB is unreachable (its last replay failed); whatever is left stays durable in the spool for
        the next start. Bounded below the service's ``STOP_TIMEOUT_S``: a shutdown during an outage used to wait the
        whole request timeout here and was abandoned ("vital store did not stop within 10 s", issue 21, H24)."""
        if self._client is None:
            return
        if self._drainer is not None:
            if self._spool.backlog and not self.replay_failing:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.wait_drained(), drain_timeout_s or min(self.timeout_s, CLOSE_DRAIN_S))
            elif self._spool.backlog:
                logger.warning("influx unreachable at close: %d points stay in the spool for the next start",
                               self._spool.backlog)
            self._drainer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._drainer
            self._drainer = None
        await self._client.aclose()
        self._client = None
        await self._spool.close()

    @property
    def backlog(self) -> int:
        return self._spool.backlog

    async def wait_drained(self, poll_s: float = 0.02) -> None:
        """Return once the spool is empty (tests, shutdown)."""
        while self._spool.backlog or self._spooling:
            await asyncio.sleep(poll_s)

    # -- HTTP -------------------------------------------------------------------------------------
    @property
    def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            raise StoreUnavailableError("influx store is not open")
        return self._client

    async def _ensure_database(self) -> None:
        if self._database_ready:
            return
        try:
            response = await self._http.post("/query", data={"q": f'CREATE DATABASE "{self.database}"'})
        except httpx.TransportError as exc:
            raise _Retryable(f"{type(exc).__name__}: {exc}") from exc
        if response.status_code == 200 and "error" not in response.text:
            self._database_ready = True
        elif response.status_code in (401, 403):
            # A user without admin rights (or a 2.x/3.x compatibility endpoint): the database is provisioned.
            logger.info("influx CREATE DATABASE not permitted (%d); assuming it exists", response.status_code)
            self._database_ready = True
        elif response.status_code >= 500:
            raise _Retryable(f"CREATE DATABASE answered {response.status_code}")
        else:
            logger.warning("influx CREATE DATABASE answered %d: %s", response.status_code, response.text[:200])
            self._database_ready = True

    async def _post_write(self, body: bytes, points: int) -> None:
        """POST one line-protocol body; returns on 204 or after reporting a 400, raises ``_Retryable`` otherwise."""
        params = {"db": self.database, "precision": "ms"}
        if self.retention_policy:
            params["rp"] = self.retention_policy
        try:
            response = await self._http.post("/write", params=params, content=body)
        except httpx.TransportError as exc:
            self._unreachable(exc)
            raise _Retryable(f"{type(exc).__name__}: {exc}") from exc
        status = response.status_code
        self._reads_down_until = 0.0  # InfluxDB answers: reads may ask it again
        if status == 204:
            return
        if status in (400, 413, 422):
            message = response.text[:2000]
            rejected = _rejected_points(message, points)
            self.rejected += rejected
            self.last_rejection = message
            logger.error("influx rejected points=%d of batch=%d status=%d: %s", rejected, points, status, message)
            return
        if status == 404:
            self._database_ready = False
        raise _Retryable(f"/write answered {status}: {response.text[:300]}")

    def _unreachable(self, exc: Exception) -> None:
        """A request found InfluxDB unreachable or hung: reads fail at once for ``READ_BACKOFF_S``."""
        self._reads_down_reason = f"{type(exc).__name__}: {exc}"
        self._reads_down_until = time.monotonic() + READ_BACKOFF_S

    async def _query(
        self, q: str, params: dict[str, Any] | None = None, statements: int = 1
    ) -> list[list[dict[str, Any]]]:
        """Run InfluxQL by POST (``params`` bound); one list of series per statement, chunks merged."""
        data = {"q": q, "db": self.database, "epoch": "ms", "chunked": "true", "chunk_size": "10000"}
        if self.retention_policy:
            data["rp"] = self.retention_policy
        if params:
            data["params"] = json.dumps(params)
        if self._reads_down_until:  # InfluxDB failed since it last answered
            if time.monotonic() < self._reads_down_until:
                self.reads_short_circuited += 1
                raise StoreUnavailableError(f"influx {self.url}: unreachable at the last request "
                                            f"({self._reads_down_reason}); reads are refused without waiting, "
                                            f"one every {READ_BACKOFF_S:g} s tries it again")
            self._reads_down_until = time.monotonic() + READ_BACKOFF_S  # this read probes; the others still fail
        try:
            response = await self._http.post("/query", data=data)
        except httpx.TransportError as exc:
            self._unreachable(exc)
            raise StoreUnavailableError(f"influx {self.url}: {self._reads_down_reason}") from exc
        self._reads_down_until = 0.0  # InfluxDB answers: reads may ask it again
        if response.status_code != 200:
            raise StoreUnavailableError(f"influx /query answered {response.status_code}: {response.text[:300]}")
        by_statement: dict[int, dict[tuple[str, tuple[tuple[str, str], ...]], dict[str, Any]]] = {}
        decoder = json.JSONDecoder()
        text, pos = response.text, 0
        while True:
            while pos < len(text) and text[pos].isspace():
                pos += 1
            if pos >= len(text):
                break
            chunk, pos = decoder.raw_decode(text, pos)
            if "error" in chunk:
                raise StoreUnavailableError(f"influx query failed: {chunk['error']}")
            for result in chunk.get("results", []):
                if "error" in result:
                    raise StoreUnavailableError(f"influx query failed: {result['error']}")
                merged = by_statement.setdefault(int(result.get("statement_id", 0)), {})
                for series in result.get("series", []):
                    key = (series.get("name", ""), tuple(sorted((series.get("tags") or {}).items())))
                    if key in merged:
                        merged[key]["values"].extend(series.get("values", []))
                    else:
                        merged[key] = {**series, "values": list(series.get("values", []))}
        n = max(statements, max(by_statement, default=-1) + 1)
        return [list(by_statement.get(i, {}).values()) for i in range(n)]

    # -- writes -----------------------------------------------------------------------------------
    async def _write(self, body: bytes, points: int) -> None:
        """Acknowledged by InfluxDB, or durably spooled behind what is already waiting, before returning."""
        if self._spool.backlog == 0 and self._spooling == 0:
            try:
                await self._post_write(body, points)
                return
            except _Retryable as exc:
                self.last_error = str(exc)
                logger.warning("influx write of %d points failed, spooling: %s", points, exc)
        self._spooling += 1
        try:
            await self._spool.append(body, points)
        finally:
            self._spooling -= 1
        self._wake.set()

    async def write_readings(self, readings: Sequence[Reading]) -> None:
        """Each batch carries a ``pending_windows`` mark for every window it touches, in the same body, so
        the marks reach InfluxDB (or the spool) exactly when the readings do."""
        for i in range(0, len(readings), self.batch_size):
            chunk = readings[i : i + self.batch_size]
            # The distinct times first (a batch repeats each tick's time across beds and vitals), then their windows;
            # per reading if a time is in a zone with folds, where equal times need not be one instant (PEP 495).
            times = {r.ts for r in chunk}
            if not all(type(ts.tzinfo) is type(UTC) for ts in times):  # datetime.timezone: a fixed offset
                times = [r.ts for r in chunk]
            starts = sorted({to_ms(ts) // WINDOW_MS * WINDOW_MS for ts in times})
            body = self._encoder.encode(chunk) + b"\n" + _pending_lines(starts)
            await self._write(body, len(chunk))  # the backlog counts readings; the marks ride along

    async def _drain_forever(self) -> None:
        def replay_failed(state: RetryCallState) -> None:
            exc = state.outcome.exception() if state.outcome else None
            self.last_error = str(exc)
            self.replay_failing = True
            logger.warning("influx spool replay failed (backlog=%d, retry in %.1fs): %s",
                           self._spool.backlog, state.upcoming_sleep, exc)

        while True:
            if self._spool.backlog == 0:
                self._wake.clear()
                await self._wake.wait()
                continue
            # The oldest batch, retried until acknowledged: any exception (keep draining whatever happens, the
            # spool keeps the data), never a cancellation; the backoff starts again at each batch.
            async for attempt in AsyncRetrying(
                retry=retry_if_exception_type(Exception),
                wait=wait_exponential(multiplier=self.retry_initial_s, max=self.retry_max_s),
                before_sleep=replay_failed,
            ):
                with attempt:
                    await self._ensure_database()
                    batches = await self._spool.peek(self.batch_size)
                    body = b"\n".join(b for _, _, b in batches)
                    points = sum(n for _, n, _ in batches)
                    await self._post_write(body, points)
                    await self._spool.remove_through(batches[-1][0])
                    self.replay_failing = False
            if self._spool.backlog == 0:
                logger.info("influx spool drained")

    # -- readings ---------------------------------------------------------------------------------
    async def readings(self, patient_ids: Sequence[str], start: datetime, end: datetime) -> pd.DataFrame:
        ids = list(dict.fromkeys(patient_ids))
        rows: list[tuple[str, int, str, float, str, str]] = []
        if ids:
            time_params = {"lo": _rfc3339(to_ms(start)), "hi": _rfc3339(to_ms(end))}
            for series in await self._by_ids(
                "SELECT value, quality FROM vitals WHERE {ids} AND time >= $lo AND time < $hi "
                "GROUP BY patient_id, vital, source",
                ids, time_params,
            ):
                tags = series["tags"]
                pid, vital, source = tags["patient_id"], tags["vital"], tags.get("source") or SOURCE_MONITOR
                rows.extend((pid, t, vital, v, q, source) for t, v, q in series["values"])
        frame = pd.DataFrame(rows, columns=list(SOURCED_READING_COLUMNS))
        # monitor before charted at one key, as the SQLite store answers
        frame = frame.assign(_charted=frame["source"] == SOURCE_CHARTED).sort_values(
            ["ts", "patient_id", "vital", "_charted"], kind="mergesort").drop(columns="_charted").reset_index(drop=True)
        frame["ts"] = pd.to_datetime(frame["ts"].astype("int64"), unit="ms", utc=True).astype("datetime64[ns, UTC]")
        frame["value"] = frame["value"].astype("float64")
        frame["patient_id"] = frame["patient_id"].astype(object)
        frame["vital"] = frame["vital"].astype(object)
        frame["quality"] = frame["quality"].astype(object)
        frame["source"] = frame["source"].astype(object)
        return frame[list(SOURCED_READING_COLUMNS)]

    async def _by_ids(self, template: str, ids: list[str], params: dict[str, Any]) -> list[dict[str, Any]]:
        """Run ``template`` (with ``{ids}`` where the patient filter goes) over ids in bound-parameter groups."""
        statements, bound = [], dict(params)
        for i in range(0, len(ids), IDS_PER_STATEMENT):
            condition, id_params = _id_filter(ids[i : i + IDS_PER_STATEMENT], offset=i)
            statements.append(template.format(ids=condition))
            bound.update(id_params)
        results = await self._query("; ".join(statements), bound, statements=len(statements))
        return [series for statement in results for series in statement]

    async def patient_ids(self) -> list[str]:
        results = await self._query('SHOW TAG VALUES FROM vitals WITH KEY = "patient_id"')
        return sorted({value for statement in results for s in statement for _, value in s["values"]})

    # -- windows ----------------------------------------------------------------------------------
    async def materialize_windows(self, start: datetime, end: datetime) -> int:
        lo = to_ms(start) // WINDOW_MS * WINDOW_MS
        hi = -(-to_ms(end) // WINDOW_MS) * WINDOW_MS
        if hi <= lo:
            return 0
        if self._spool.backlog:
            logger.warning("influx materialize with spool backlog=%d: late readings land on a re-run",
                           self._spool.backlog)
        bounds = {"lo": _rfc3339(lo), "hi": _rfc3339(hi)}
        # One request per statement, all at once: influxd answers them in parallel (a multi-statement request is
        # run one statement after another), and the heart-rate statement is most of the time. First without the
        # quality filter; then, if the range holds any reading flagged otherwise, again with it. The count runs
        # after the aggregation, so a flagged reading the aggregation saw is counted (and one written later marks
        # its window for the next cycle).
        answers = await asyncio.gather(*(self._query(q, bounds) for q in _MATERIALIZE_ANY_QUALITY_Q))
        (flagged,) = await self._query(_FLAGGED_Q, bounds)
        if any(row[1] for series in flagged for row in series["values"]):
            answers = await asyncio.gather(*(self._query(q, bounds) for q in _MATERIALIZE_Q))
        hr, spo2, rr, last, existing = (series for (series,) in answers)
        windows: dict[tuple[str, int], dict[str, float | int]] = {}
        for series in hr:
            pid = series["tags"]["patient_id"]
            for t, mean, std, count in series["values"]:
                windows.setdefault((pid, t), {}).update(hr_mean=mean, hr_std=std, hr_count=count)
        for column, statement in (("spo2_mean", spo2), ("rr_mean", rr)):
            for series in statement:
                pid = series["tags"]["patient_id"]
                for t, mean in series["values"]:
                    windows.setdefault((pid, t), {})[column] = mean
        charted_last: set[tuple[str, int, str]] = set()  # (patient, window, vital) holding a charted value
        for series in last:
            tags = series["tags"]
            pid, vital, charted = tags["patient_id"], tags["vital"], tags.get("source") == SOURCE_CHARTED
            for t, value in series["values"]:
                if charted or (pid, t, vital) not in charted_last:  # a charted value wins in its window
                    windows.setdefault((pid, t), {})[vital] = value
                if charted:
                    charted_last.add((pid, t, vital))

        lines: list[str] = []
        for (pid, t), row in windows.items():
            lines.append(self._window_line(pid, t, row))
        stale = 0
        for series in existing:
            pid = series["tags"]["patient_id"]
            for t, _, missing in series["values"]:
                if (pid, t) not in windows and missing != ALL_MISSING:
                    lines.append(self._window_line(pid, t, {}))
                    stale += 1
        for i in range(0, len(lines), self.batch_size):
            chunk = lines[i : i + self.batch_size]
            try:
                await self._post_write("\n".join(chunk).encode(), len(chunk))
            except _Retryable as exc:
                raise StoreUnavailableError(f"influx: writing vitals_5m failed: {exc}") from exc
        logger.debug("influx materialize lo=%d hi=%d windows=%d tombstones=%d", lo, hi, len(windows), stale)
        return len(windows)

    async def materialize_pending(self, end: datetime) -> list[datetime]:
        """Marks are read, then deleted, then their windows aggregated: a reading written after the delete
        leaves a new mark for the next cycle. If aggregation fails the marks are written back (through the
        spool if InfluxDB is down), so no window is forgotten."""
        hi = to_ms(end) // WINDOW_MS * WINDOW_MS
        (series_list,) = await self._query("SELECT n FROM pending_windows WHERE time < $hi", {"hi": _rfc3339(hi)})
        starts = sorted({int(t) for s in series_list for t, _ in s["values"]})
        if not starts:
            return []
        await self._query("DELETE FROM pending_windows WHERE time <= $last", {"last": _rfc3339(starts[-1])})
        try:
            for lo, run_hi in window_runs(starts):
                await self.materialize_windows(from_ms(lo), from_ms(run_hi))
        except BaseException:
            await self._write(_pending_lines(starts), len(starts))
            raise
        return [from_ms(ms) for ms in starts]

    @staticmethod
    def _window_line(patient_id: str, start_ms: int, row: dict[str, float | int]) -> str:
        fields: dict[str, float | int] = {"hr_count": int(row.get("hr_count") or 0)}
        missing = 0
        for column in VALUE_COLUMNS:
            value = row.get(column)
            if value is None or not np.isfinite(value):
                missing |= MISSING_BIT[column]
                value = 0.0
            fields[column] = float(value)
        fields["missing"] = missing
        return encode_point("vitals_5m", {"patient_id": patient_id}, fields, start_ms)

    async def windows(self, patient_ids: Sequence[str] | None, start: datetime, end: datetime) -> pd.DataFrame:
        columns = ["hr_count", *VALUE_COLUMNS, "missing"]
        select = f"SELECT {', '.join(columns)} FROM vitals_5m WHERE"
        in_range = "time >= $lo AND time < $hi GROUP BY patient_id"
        bounds = {"lo": _rfc3339(to_ms(start)), "hi": _rfc3339(to_ms(end))}
        if patient_ids is None:  # every patient: no id filter at all
            (series_list,) = await self._query(f"{select} {in_range}", bounds)
        else:
            ids = list(dict.fromkeys(patient_ids))
            if not ids:
                return empty_windows()
            series_list = await self._by_ids(f"{select} {{ids}} AND {in_range}", ids, bounds)
        pids: list[str] = []
        blocks: list[np.ndarray] = []
        for series in series_list:
            order = [series["columns"].index(c) for c in ("time", *columns)]
            block = np.array(series["values"], dtype="float64")[:, order]
            blocks.append(block)
            pids.extend([series["tags"]["patient_id"]] * len(block))
        if not blocks:
            return empty_windows()
        data = np.vstack(blocks)
        missing = np.nan_to_num(data[:, -1], nan=ALL_MISSING).astype("int64")
        keep = missing != ALL_MISSING
        frame = pd.DataFrame(data[:, 1:-1], columns=columns[:-1])
        for column in VALUE_COLUMNS:
            frame.loc[(missing & MISSING_BIT[column]) != 0, column] = np.nan
        frame["hr_count"] = np.nan_to_num(frame["hr_count"].to_numpy(), nan=0.0)
        frame.insert(0, "start", pd.to_datetime(data[:, 0].astype("int64"), unit="ms", utc=True))
        frame.insert(0, "patient_id", np.array(pids, dtype=object))
        frame = frame[keep][list(WINDOW_COLUMNS)]
        frame = frame.sort_values(["patient_id", "start"], kind="mergesort").reset_index(drop=True)
        return normalise(frame)

    # -- scores -----------------------------------------------------------------------------------
    async def save_scores(self, scores: Sequence[Score]) -> None:
        """Written in order, chunk by chunk; the next chunk is encoded (in a worker thread) while influxd takes the
        one before, so encoding and influxd's parsing overlap on two cores."""
        writing: asyncio.Task[None] | None = None
        try:
            for i in range(0, len(scores), SCORES_PER_WRITE):
                chunk = scores[i : i + SCORES_PER_WRITE]
                body = await asyncio.to_thread(_score_lines, chunk)
                if writing is not None:
                    await writing
                writing = asyncio.create_task(self._write(body, len(chunk)))
            if writing is not None:
                await writing
        except BaseException:
            if writing is not None and not writing.done():  # let the chunk in flight land (or spool), then fail
                with contextlib.suppress(BaseException):
                    await writing
            raise

    async def newest_reading_after(self, limit: datetime) -> datetime | None:
        # readings still in the spool are not seen until they are written
        (series_list,) = await self._query("SELECT last(value) FROM vitals WHERE time > $lo",
                                           {"lo": _rfc3339(to_ms(limit))})
        times = [t for s in series_list for t, _ in s["values"]]
        return from_ms(max(times)) if times else None

    async def last_window_end(self) -> datetime | None:
        (series_list,) = await self._query("SELECT last(model_version) FROM scores")
        times = [t for s in series_list for t, _ in s["values"]]
        return from_ms(max(times)) if times else None

    async def latest_scores(self, not_after: datetime | None = None) -> list[Score]:
        if not_after is None:
            (series_list,) = await self._query("SELECT last(payload) FROM scores GROUP BY patient_id")
        else:
            (series_list,) = await self._query("SELECT last(payload) FROM scores WHERE time <= $hi GROUP BY patient_id",
                                               {"hi": _rfc3339(to_ms(not_after))})
        latest = [score_from_json(s["values"][-1][1]) for s in series_list if s["values"]]
        return sorted(latest, key=lambda s: s.patient_id)

    async def score_history(self, patient_id: str, start: datetime, end: datetime) -> list[Score]:
        (series_list,) = await self._query(
            "SELECT payload FROM scores WHERE patient_id = $p AND time >= $lo AND time < $hi",
            {"p": patient_id, "lo": _rfc3339(to_ms(start)), "hi": _rfc3339(to_ms(end))},
        )
        return [score_from_json(payload) for s in series_list for _, payload in s["values"]]

    # -- health -----------------------------------------------------------------------------------
    async def _check_database(self, out: dict[str, Any]) -> None:
        """``ok`` false, naming it, when the database is gone (dropped while the service ran: issue 21, finding 11;
        the next write would recreate it empty). A server that will not list databases (``SHOW DATABASES`` not
        permitted, or unsupported) is not judged: ``database_check`` says why."""
        response = await self._http.post("/query", data={"q": "SHOW DATABASES"}, timeout=min(self.timeout_s, 2.0))
        try:
            results = response.json().get("results", []) if response.status_code == 200 else None
        except ValueError:
            results = None
        if not results or "error" in results[0]:
            out["database_check"] = f"SHOW DATABASES answered {response.status_code}: {response.text[:200]}"
            return
        names = {row[0] for series in results[0].get("series", []) for row in series.get("values", [])}
        if self.database not in names:
            out["ok"] = False
            out["error"] = f"database {self.database!r} does not exist on {self.url} (dropped?)"

    # -- identity (``app.storage.identity``) -----------------------------------------------------------------------
    async def _read_markers(self) -> list[Identity]:
        (series_list,) = await self._query(MARKER_Q)  # a fixed string: nothing user-supplied
        return [Identity(str(row[1]), str(row[2] or "?")) for series in series_list for row in series["values"]
                if row[1]]

    async def _write_marker(self, identity: Identity) -> None:
        """Write the marker point now (straight to InfluxDB, never spooled: a marker must not recreate a database)."""
        try:
            await self._post_write(marker_line(identity, int(time.time() * 1000)), 1)
        except _Retryable as exc:
            raise StoreUnavailableError(f"influx: writing the identity marker failed: {exc}") from exc
        self._marker_refreshed = time.monotonic()

    async def _verify_identity(self) -> tuple[Verdict, Identity | None, list[Identity]]:
        """Compare the database's marker with the record; mark and record a new or unrecorded database (trust on
        first use), and rewrite a verified marker every ``REFRESH_S`` so no retention policy expires it."""
        markers = await self._read_markers()
        record = await self._spool.identity(self.database)
        verdict = judge(record, markers)
        now = datetime.now(UTC)
        if verdict is Verdict.NEW:
            await self._write_marker(Identity.fresh(now))
            markers = await self._read_markers()  # another instance may have marked it too: adopt the chosen one
            if not markers:
                raise StoreUnavailableError("influx: the identity marker written is not readable")
            verdict = Verdict.ADOPT
        if verdict is Verdict.ADOPT:
            record = replace(chosen(markers), seen_at=iso(now))
            await self._spool.record_identity(self.database, record)
            logger.info("influx store identity database=%s store_id=%s recorded", self.database, record.store_id)
            return Verdict.OK, record, markers
        due = self._marker_refreshed is None or time.monotonic() - self._marker_refreshed >= REFRESH_S
        if verdict is Verdict.OK and record is not None and due:
            await self._write_marker(record)
            record = replace(record, seen_at=iso(now))
            await self._spool.record_identity(self.database, record)
        return verdict, record, markers

    async def _check_identity(self, out: dict[str, Any]) -> None:
        try:
            verdict, record, markers = await self._verify_identity()
        except StoreUnavailableError as exc:
            out["ok"], out["error"] = False, f"identity check failed: {exc}"
            return
        out["identity"] = verdict.value
        if record is not None:
            out["store_id"] = record.store_id
        if verdict in (Verdict.MISSING, Verdict.REPLACED) and record is not None:
            out["ok"], out["error"] = False, problem(verdict, self.database, record, markers)

    async def accept_database(self, operator: str) -> tuple[Identity | None, Identity]:
        """Adopt the database as it is now (``wardtwin store accept-database``): its marker if it has one (so other
        instances already on it agree), else a new one; record it and log who did it. Returns (previous record,
        adopted). Works on a store not opened (no drainer: the running service keeps replaying its spool)."""
        opened_here = self._client is None
        if opened_here:
            self._client = self._new_client()
            await self._spool.open()
        try:
            self._database_ready = False
            try:
                await self._ensure_database()
            except _Retryable as exc:
                raise StoreUnavailableError(f"influx {self.url}: {exc}") from exc
            previous, markers = await self._spool.identity(self.database), await self._read_markers()
            now = datetime.now(UTC)
            ours = [m for m in markers if previous is not None and m.store_id == previous.store_id]
            found = (ours or [chosen(markers)])[0] if markers else None
            adopted = replace(found or Identity.fresh(now), seen_at=iso(now))
            await self._write_marker(adopted)
            if all(m.store_id != adopted.store_id for m in await self._read_markers()):
                raise StoreUnavailableError("influx: the identity marker written is not readable")
            await self._spool.record_identity(self.database, adopted)
            logger.warning("influx accept-database database=%s url=%s by=%s previous=%s found=%s adopted=%s",
                           self.database, self.url, operator, previous.store_id if previous else None,
                           found.store_id if found else None, adopted.store_id)
            return previous, adopted
        finally:
            if opened_here:
                client, self._client = self._client, None
                if client is not None:
                    await client.aclose()
                await self._spool.close()

    async def health(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "store": self.name, "ok": False, "backlog": self._spool.backlog, "spooled_batches": self._spool.batches,
            "rejected": self.rejected, "database": self.database,
        }
        try:
            response = await self._http.get("/ping", timeout=min(self.timeout_s, 2.0))
            out["ok"] = response.status_code == 204
            if out["ok"]:
                self._reads_down_until = 0.0  # InfluxDB answers: reads may ask it again
            if not out["ok"]:
                out["error"] = f"/ping answered {response.status_code}"
            out["version"] = response.headers.get("X-Influxdb-Version")
            if out["ok"]:
                await self._check_database(out)
            if out["ok"]:
                await self._check_identity(out)
        except (httpx.HTTPError, StoreUnavailableError) as exc:
            out["error"] = f"{type(exc).__name__}: {exc}"
        if self.last_rejection:
            out["last_rejection"] = self.last_rejection[:300]
        if self.last_error and self._spool.backlog:
            out["last_error"] = self.last_error[:300]
        return out
