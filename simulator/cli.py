"""What ``wardtwin simulate cohort | live | report`` run: typed functions, their options declared in ``lab.cli``.

The simulator imports nothing of the service or the lab; the one command-line tree (``lab/cli.py``) parses the
options, checks their combinations and calls these functions with them."""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd

from simulator.archetypes import mix_for_event_rate, parse_mix


def _mix(text: str | None) -> dict[str, float] | None:
    return parse_mix(text) if text else None


def cohort(*, patients: int, hours: float, seed: int, out: Path, start: str | None = None, mix: str | None = None,
           event_rate: float | None = None, quiet: bool = False) -> int:
    """Write a cohort as Parquet under ``out`` and print its summary."""
    from simulator.cohort import DEFAULT_START, write_cohort

    archetype_mix = mix_for_event_rate(event_rate, hours) if event_rate is not None else _mix(mix)
    summary = write_cohort(out, patients, hours, seed, start=pd.Timestamp(start) if start else DEFAULT_START,
                           archetype_mix=archetype_mix, progress=not quiet)
    print(json.dumps(summary, indent=2))
    return 0


def live(*, url: str | None, key: str | None, influx_url: str | None, database: str, parquet_out: Path | None,
         beds: int, speed: float, seed: int, start: str | None, history_hours: float, duration: float | None,
         mix: str | None) -> int:
    """Stream a ward to every sink given (at least one; ``url`` with a device ``key``: monitor readings through
    ``POST /v1/readings``, the nurse's sets through ``POST /v1/observations``) until ``duration`` ends."""
    from simulator.live import run_live
    from simulator.sinks import HttpSink, InfluxLineSink, ParquetSink
    from simulator.ward import Ward

    now = pd.Timestamp(datetime.now(UTC)).floor("5min")
    first = pd.Timestamp(start) if start else now - pd.Timedelta(hours=history_hours)
    ward = Ward(beds, seed, first, archetype_mix=_mix(mix))
    sinks = []
    if url:
        sinks.append(HttpSink(url, headers={"Authorization": f"Bearer {key}"}, spo2_scale=ward.spo2_scale))
    if influx_url:
        sinks.append(InfluxLineSink(influx_url, database))
    if parquet_out:
        sinks.append(ParquetSink(parquet_out))
    if not sinks or (url and not key):
        raise ValueError("give at least one sink, and a device key with url")
    print(f"ward: {beds} beds, seed {seed}, start {first.isoformat()}, "
          f"{sum(p['archetype'] != 'stable' for p in ward.patients)} not stable; events "
          + ", ".join(f"{e['patient_id']} {e['kind']} at {e['onset'].isoformat()}" for e in ward.events),
          file=sys.stderr)
    try:
        if history_hours > 0:
            history = ward.advance(first + pd.Timedelta(hours=history_hours))
            for sink in sinks:
                sink.send(history)
            print(f"history: {len(history)} readings up to {ward.until.isoformat()}", file=sys.stderr)

        def show(at: pd.Timestamp, n: int) -> None:
            print(f"\r  sim {at.isoformat()}  +{n} readings ", end="", file=sys.stderr, flush=True)

        sent = run_live(ward, sinks, speed, duration_s=duration, on_batch=show,
                        not_after=lambda: pd.Timestamp.now(tz="UTC"))
        print(f"\nsent {sent} readings", file=sys.stderr)
    finally:
        for sink in sinks:
            sink.close()
    return 0


def report(*, out: Path, patients: int, hours: float, seeds: list[int]) -> int:
    """The realism report of ``seeds`` × ``patients`` × ``hours``; 1 when a statistic is out of tolerance."""
    from simulator.report import build_report

    result = build_report(out, patients, hours, seeds, progress=True)
    print(result["markdown"])
    print(f"\nreport written to {result['path']}", file=sys.stderr)
    return 0 if result["all_within_tolerance"] else 1
