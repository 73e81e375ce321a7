"""Where readings go: the service's ingest API, InfluxDB (v1 line protocol), or Parquet files.

Every sink has ``send(readings: list[dict]) -> int`` (readings accepted) and ``close()``. A reading
is ``{"patient_id", "vital", "ts" (ISO 8601 with offset), "value", "quality", "source"}``; ``source`` is
``monitor`` (the default) or ``charted`` (a value of a nurse's observation set).

The HTTP sink sends what a ward sends: monitor readings through ``POST /v1/readings``, and the charted readings
of each set, whole, as one nurse's observation set through ``POST /v1/observations`` (``split_observations``:
the readings of one patient charted at one ``ts`` are one set) — never the charted values as readings too. The
InfluxDB and Parquet sinks store every reading with its source, as the service stores a set.

Line protocol (InfluxDB v1 ``/write?db=…&precision=ms``)::

    vitals,patient_id=bed-01,vital=hr value=72.0,quality="ok" 1767571200000
    vitals,patient_id=bed-01,source=charted,vital=rr value=18.0,quality="ok" 1767571200000

is written by ``models.line_protocol``, the encoder the service's InfluxDB store uses, so the simulator
and the service escape alike (and refuse alike what line protocol 1.x cannot carry).

HTTP posts are retried with ``tenacity``: connection errors and 5xx, with exponential backoff (capped at
``MAX_BACKOFF_S``); any other answer, a 422 included, is returned at once.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Final

import httpx
import pandas as pd
from tenacity import (
    Future,
    RetryCallState,
    RetryError,
    Retrying,
    retry_if_exception_type,
    retry_if_result,
    stop_after_attempt,
    wait_exponential,
)

from models.line_protocol import encode_point
from models.schema import ACVPU_CODES, QUALITY_OK

#: who charted a simulated set (``simulator.patient.NURSE``; not imported: the sinks need no physiology)
NURSE: Final[str] = "sim-nurse"

logger = logging.getLogger(__name__)

MAX_BATCH: Final[int] = 10_000
MEASUREMENT: Final[str] = "vitals"
#: The longest wait between two attempts of a POST (the backoff doubles from ``backoff_s`` up to this).
MAX_BACKOFF_S: Final[float] = 30.0


class SinkError(Exception):
    """A batch could not be delivered after all retries."""


def _describe(outcome: Future) -> str:
    return repr(outcome.exception()) if outcome.failed else f"HTTP {outcome.result().status_code}"


def _log_retry(state: RetryCallState) -> None:
    assert state.outcome is not None
    logger.warning("sink post url=%s failed=%s retry=%d in %.1fs", state.args[0], _describe(state.outcome),
                   state.attempt_number, state.upcoming_sleep)


def _retrying_post(client: httpx.Client, url: str, *, max_retries: int, backoff_s: float,
                   sleep: Callable[[float], None], **kwargs: object) -> httpx.Response:
    """POST, retrying connection errors and 5xx with exponential backoff; any other answer is returned."""
    retrying = Retrying(
        retry=retry_if_exception_type(httpx.TransportError) | retry_if_result(lambda r: r.status_code >= 500),
        stop=stop_after_attempt(max_retries + 1),
        wait=wait_exponential(multiplier=backoff_s, max=MAX_BACKOFF_S),
        sleep=sleep,
        before_sleep=_log_retry,
    )
    try:
        return retrying(client.post, url, **kwargs)
    except RetryError as exc:
        last = exc.last_attempt
        raise SinkError(f"POST {url}: {_describe(last)} after {max_retries} retries") from last.exception()


def split_observations(readings: Sequence[dict], spo2_scale: Callable[[str], int] | None = None,
                       ) -> tuple[list[dict], list[dict]]:
    """(monitor readings, observation sets): the charted readings of one patient at one ``ts`` become one
    ``POST /v1/observations`` body ``{patient_id, ts, rr, spo2, spo2_scale, o2, sbp, hr, acvpu, temp, by}`` (in
    order of first appearance; ``spo2_scale(patient_id)``, e.g. ``Ward.spo2_scale``, else scale 1); monitor
    readings are kept as they are."""
    monitor: list[dict] = []
    sets: dict[tuple[str, str], dict] = {}
    for r in readings:
        if r.get("source", "monitor") != "charted":
            monitor.append(r)
            continue
        pid = r["patient_id"]
        body = sets.setdefault((pid, r["ts"]), {"patient_id": pid, "ts": r["ts"],
                                                "spo2_scale": spo2_scale(pid) if spo2_scale else 1, "by": NURSE})
        value = float(r["value"])
        body[r["vital"]] = ACVPU_CODES[round(value)] if r["vital"] == "acvpu" else value
    return monitor, list(sets.values())


class HttpSink:
    """``POST {base_url}/v1/readings`` with ``{"readings": [...]}`` batches of at most 10,000 monitor readings, and
    each charted set through ``POST {base_url}/v1/observations`` (``split_observations``; ``spo2_scale`` names each
    patient's NEWS2 SpO2 scale, e.g. ``Ward.spo2_scale``)."""

    def __init__(self, base_url: str, *, batch_size: int = MAX_BATCH, max_retries: int = 5, backoff_s: float = 0.5,
                 timeout_s: float = 30.0, headers: dict[str, str] | None = None, client: httpx.Client | None = None,
                 sleep: Callable[[float], None] = time.sleep,
                 spo2_scale: Callable[[str], int] | None = None) -> None:
        if not 1 <= batch_size <= MAX_BATCH:
            raise ValueError(f"batch_size must be 1..{MAX_BATCH}")
        self.url = base_url.rstrip("/") + "/v1/readings"
        self.observations_url = base_url.rstrip("/") + "/v1/observations"
        self.batch_size, self.max_retries, self.backoff_s, self.sleep = batch_size, max_retries, backoff_s, sleep
        self.client = client or httpx.Client(timeout=timeout_s, headers=headers)
        self.sent = 0
        self.rejected = 0
        self.sets_sent = 0
        self.sets_rejected = 0
        self.spo2_scale = spo2_scale

    def send(self, readings: Sequence[dict]) -> int:
        """Readings accepted (a set counts as its values)."""
        monitor, sets = split_observations(readings, self.spo2_scale)
        accepted = 0
        for i in range(0, len(monitor), self.batch_size):
            batch = list(monitor[i:i + self.batch_size])
            response = _retrying_post(self.client, self.url, json={"readings": batch}, max_retries=self.max_retries,
                                      backoff_s=self.backoff_s, sleep=self.sleep)
            if response.status_code == 422:
                body = _json(response)
                # the service stores a batch's good items and names the bad ones (app/ingest.py)
                kept = int(body.get("accepted", 0)) if isinstance(body, dict) else 0
                accepted += kept
                self.rejected += len(batch) - kept
                detail = body.get("detail") if isinstance(body, dict) else body
                logger.error("ingest rejected %d of %d readings; first: %s", len(batch) - kept, len(batch),
                             detail[:3] if isinstance(detail, list) else detail)
                continue
            if response.status_code >= 400:
                raise SinkError(f"POST {self.url}: HTTP {response.status_code} {response.text[:500]}")
            accepted += len(batch)
        for body in sets:
            accepted += self._post_set(body)
        self.sent += accepted
        return accepted

    def _post_set(self, body: dict) -> int:
        response = _retrying_post(self.client, self.observations_url, json=body, max_retries=self.max_retries,
                                  backoff_s=self.backoff_s, sleep=self.sleep)
        values = len(body) - 4  # patient_id, ts, spo2_scale, by
        if response.status_code == 422:  # a set is atomic: the service names every bad field and stores nothing
            self.sets_rejected += 1
            self.rejected += values
            logger.error("observation set rejected patient=%s ts=%s: %s", body["patient_id"], body["ts"],
                         _json(response))
            return 0
        if response.status_code >= 400:
            raise SinkError(f"POST {self.observations_url}: HTTP {response.status_code} {response.text[:500]}")
        self.sets_sent += 1
        return values

    def close(self) -> None:
        self.client.close()


def _json(response: httpx.Response) -> object:
    try:
        return response.json()
    except ValueError:
        return response.text[:500]


# --- line protocol (the project's one encoder: models/line_protocol.py) ----------------------------

def readings_to_lines(readings: Sequence[dict]) -> list[str]:
    """Readings as ``vitals`` points, exactly as the service's InfluxDB store writes them."""
    if not readings:
        return []
    ts_ms = pd.to_datetime([r["ts"] for r in readings], utc=True, format="ISO8601").as_unit("ms").asi8
    return [
        encode_point(MEASUREMENT, {"patient_id": r["patient_id"], "vital": r["vital"], **_source_tag(r)},
                     {"value": float(r["value"]), "quality": r.get("quality", QUALITY_OK)}, t)
        for r, t in zip(readings, ts_ms.tolist(), strict=True)
    ]


def _source_tag(reading: dict) -> dict[str, str]:
    """A charted reading is tagged ``source=charted``; a monitor reading carries no source tag (as the service
    writes them, ``models.line_protocol.ReadingEncoder``)."""
    source = reading.get("source", "monitor")
    return {} if source == "monitor" else {"source": source}


class InfluxLineSink:
    """Line protocol to InfluxDB v1 ``POST {url}/write?db={database}&precision=ms`` (retry on 5xx)."""

    def __init__(self, url: str, database: str, *, batch_size: int = 5_000, max_retries: int = 5,
                 backoff_s: float = 0.5, timeout_s: float = 30.0, client: httpx.Client | None = None,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.url = url.rstrip("/") + "/write"
        self.params = {"db": database, "precision": "ms"}
        self.batch_size, self.max_retries, self.backoff_s, self.sleep = batch_size, max_retries, backoff_s, sleep
        self.client = client or httpx.Client(timeout=timeout_s)
        self.sent = 0

    def send(self, readings: Sequence[dict]) -> int:
        lines = readings_to_lines(readings)
        for i in range(0, len(lines), self.batch_size):
            body = "\n".join(lines[i:i + self.batch_size]).encode()
            response = _retrying_post(self.client, self.url, params=self.params, content=body,
                                      max_retries=self.max_retries, backoff_s=self.backoff_s, sleep=self.sleep)
            if response.status_code >= 300:
                raise SinkError(f"InfluxDB write: HTTP {response.status_code} {response.text[:500]}")
        self.sent += len(lines)
        return len(lines)

    def close(self) -> None:
        self.client.close()


class ParquetSink:
    """Live readings appended to ``{out_dir}/readings.parquet`` (one row group per ``send``)."""

    def __init__(self, out_dir: str | Path) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        from simulator.cohort import READINGS_SCHEMA

        self._pa, self.schema = pa, READINGS_SCHEMA
        Path(out_dir).mkdir(parents=True, exist_ok=True)
        self._writer = pq.ParquetWriter(Path(out_dir) / "readings.parquet", READINGS_SCHEMA, compression="zstd")
        self.sent = 0

    def send(self, readings: Sequence[dict]) -> int:
        if not readings:
            return 0
        pa = self._pa
        frame = pd.DataFrame(list(readings))
        ts = pd.to_datetime(frame["ts"], utc=True, format="ISO8601").astype("datetime64[ns, UTC]")
        table = pa.Table.from_arrays([
            pa.array(frame["patient_id"].astype(str)).dictionary_encode().cast(self.schema.field("patient_id").type),
            pa.array(ts),
            pa.array(frame["vital"].astype(str)).dictionary_encode().cast(self.schema.field("vital").type),
            pa.array(frame["value"].astype(float)),
            pa.array(frame["quality"].astype(str)).dictionary_encode().cast(self.schema.field("quality").type),
            pa.array((frame["source"] if "source" in frame else pd.Series("monitor", index=frame.index))
                     .fillna("monitor").astype(str)).dictionary_encode().cast(self.schema.field("source").type),
        ], schema=self.schema)
        self._writer.write_table(table)
        self.sent += len(frame)
        return len(frame)

    def close(self) -> None:
        self._writer.close()


__all__ = ["MAX_BACKOFF_S", "NURSE", "HttpSink", "InfluxLineSink", "ParquetSink", "SinkError", "readings_to_lines",
           "split_observations"]
