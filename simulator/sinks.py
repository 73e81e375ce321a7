"""Where readings go: the service's ingest API, InfluxDB (v1 line protocol), or Parquet files.

Every sink has ``send(readings: list[dict]) -> int`` (readings accepted) and ``close()``. A reading
is ``{"patient_id", "vital", "ts" (ISO 8601 with offset), "value", "quality"}``.

Line protocol (InfluxDB v1 ``/write?db=…&precision=ms``)::

    vitals,patient_id=bed-01,vital=hr value=72.0,quality="ok" 1767571200000

Escaping per the line-protocol spec: in the measurement, commas and spaces; in tag keys, tag values
and field keys, commas, equals signs and spaces (backslashes are left alone, so a value with a
backslash right before one of those characters, or at its end, is ambiguous and refused); in string
field values, double quotes and backslashes. Newlines cannot be represented and are refused.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Final

import httpx
import numpy as np
import pandas as pd

logger = logging.getLogger(__name__)

MAX_BATCH: Final[int] = 10_000
MEASUREMENT: Final[str] = "vitals"


class SinkError(Exception):
    """A batch could not be delivered after all retries."""


def _retrying_post(client: httpx.Client, url: str, *, max_retries: int, backoff_s: float,
                   sleep: Callable[[float], None], **kwargs: object) -> httpx.Response | None:
    """POST with retry and exponential backoff on connection errors and 5xx; returns the final response."""
    for attempt in range(max_retries + 1):
        try:
            response = client.post(url, **kwargs)  # type: ignore[arg-type]
        except httpx.TransportError as exc:
            if attempt == max_retries:
                raise SinkError(f"POST {url}: {exc!r} after {max_retries} retries") from exc
            logger.warning("sink post url=%s error=%r retry=%d", url, exc, attempt + 1)
        else:
            if response.status_code < 500:
                return response
            if attempt == max_retries:
                raise SinkError(f"POST {url}: HTTP {response.status_code} after {max_retries} retries")
            logger.warning("sink post url=%s status=%d retry=%d", url, response.status_code, attempt + 1)
        sleep(backoff_s * 2**attempt)
    return None


class HttpSink:
    """``POST {base_url}/v1/readings`` with ``{"readings": [...]}`` batches of at most 10,000."""

    def __init__(self, base_url: str, *, batch_size: int = MAX_BATCH, max_retries: int = 5, backoff_s: float = 0.5,
                 timeout_s: float = 30.0, headers: dict[str, str] | None = None, client: httpx.Client | None = None,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        if not 1 <= batch_size <= MAX_BATCH:
            raise ValueError(f"batch_size must be 1..{MAX_BATCH}")
        self.url = base_url.rstrip("/") + "/v1/readings"
        self.batch_size, self.max_retries, self.backoff_s, self.sleep = batch_size, max_retries, backoff_s, sleep
        self.client = client or httpx.Client(timeout=timeout_s, headers=headers)
        self.sent = 0
        self.rejected = 0

    def send(self, readings: Sequence[dict]) -> int:
        accepted = 0
        for i in range(0, len(readings), self.batch_size):
            batch = list(readings[i:i + self.batch_size])
            response = _retrying_post(self.client, self.url, json={"readings": batch}, max_retries=self.max_retries,
                                      backoff_s=self.backoff_s, sleep=self.sleep)
            assert response is not None
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
        self.sent += accepted
        return accepted

    def close(self) -> None:
        self.client.close()


def _json(response: httpx.Response) -> object:
    try:
        return response.json()
    except ValueError:
        return response.text[:500]


# --- line protocol -----------------------------------------------------------------------------

def _escape(text: str, specials: str) -> str:
    if "\n" in text or "\r" in text:
        raise ValueError(f"line protocol cannot carry a newline in {text!r}")
    # a literal backslash right before a special character or at the end would read as an escape
    for i, ch in enumerate(text):
        if ch == "\\" and (i + 1 == len(text) or text[i + 1] in specials or text[i + 1] == "\\"):
            raise ValueError(f"line protocol cannot carry {text!r} unambiguously (backslash before {specials!r})")
    return "".join("\\" + ch if ch in specials else ch for ch in text)


def escape_measurement(text: str) -> str:
    """Measurement name: commas and spaces escaped."""
    return _escape(text, ", ")


def escape_key(text: str) -> str:
    """Tag key, tag value or field key: commas, equals signs and spaces escaped."""
    if not text:
        raise ValueError("tag keys, tag values and field keys must not be empty")
    return _escape(text, ",= ")


def escape_string_field(text: str) -> str:
    """A string field value with its surrounding double quotes: double quotes and backslashes escaped."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def format_float(x: float) -> str:
    if not np.isfinite(x):
        raise ValueError(f"line protocol cannot carry {x!r}")
    return repr(float(x))


def format_line(measurement: str, tags: dict[str, str], fields: dict[str, float | str], ts_ms: int) -> str:
    tag_part = "".join(f",{escape_key(k)}={escape_key(v)}" for k, v in sorted(tags.items()))
    field_part = ",".join(f"{escape_key(k)}={escape_string_field(v) if isinstance(v, str) else format_float(v)}"
                          for k, v in fields.items())
    return f"{escape_measurement(measurement)}{tag_part} {field_part} {int(ts_ms)}"


def readings_to_lines(readings: Sequence[dict]) -> list[str]:
    if not readings:
        return []
    ts_ms = pd.to_datetime([r["ts"] for r in readings], utc=True, format="ISO8601").as_unit("ms").asi8
    return [
        format_line(MEASUREMENT, {"patient_id": r["patient_id"], "vital": r["vital"]},
                    {"value": float(r["value"]), "quality": r.get("quality", "ok")}, t)
        for r, t in zip(readings, ts_ms.tolist(), strict=True)
    ]


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
            assert response is not None
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
        ], schema=self.schema)
        self._writer.write_table(table)
        self.sent += len(frame)
        return len(frame)

    def close(self) -> None:
        self._writer.close()


__all__ = [
    "HttpSink", "InfluxLineSink", "ParquetSink", "SinkError", "escape_key", "escape_measurement",
    "escape_string_field", "format_line", "readings_to_lines",
]
