"""``wardtwin simulate cohort | live | report`` (also ``python -m simulator …``)."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd

from simulator.archetypes import ENRICHED_MIX, WARD_EVENT_RATE_PER_DAY, mix_for_event_rate, parse_mix

logger = logging.getLogger(__name__)


def _mix(text: str | None) -> dict[str, float] | None:
    return parse_mix(text) if text else None


def _cohort(argv: list[str]) -> int:
    from simulator.cohort import DEFAULT_START, write_cohort

    p = argparse.ArgumentParser(prog="wardtwin simulate cohort", description="Write a simulated cohort as Parquet.")
    p.add_argument("--patients", type=int, required=True)
    p.add_argument("--hours", type=float, required=True)
    p.add_argument("--seed", type=int, required=True)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--start", default=DEFAULT_START.isoformat(), help="admission time of every patient (UTC)")
    p.add_argument("--mix", help="'ward' (the default: a general ward, 0.02 deteriorations per patient-day), "
                   "'enriched' (the training mix: " + ", ".join(f"{k}={v}" for k, v in ENRICHED_MIX.items())
                   + ") or archetype weights, e.g. 'stable=0.7,sepsis=0.1,...'")
    p.add_argument("--event-rate", type=float, help="planned deteriorations per patient-day (overrides --mix; "
                   f"a general ward: {WARD_EVENT_RATE_PER_DAY})")
    p.add_argument("--quiet", action="store_true", help="no progress line")
    a = p.parse_args(argv)
    mix = mix_for_event_rate(a.event_rate, a.hours) if a.event_rate is not None else _mix(a.mix)
    summary = write_cohort(a.out, a.patients, a.hours, a.seed, start=pd.Timestamp(a.start),
                           archetype_mix=mix, progress=not a.quiet)
    print(json.dumps(summary, indent=2))
    return 0


def _live(argv: list[str]) -> int:
    from simulator.live import run_live
    from simulator.sinks import HttpSink, InfluxLineSink, ParquetSink
    from simulator.ward import Ward

    p = argparse.ArgumentParser(prog="wardtwin simulate live", description="Stream a simulated ward.")
    p.add_argument("--url", help="service base URL (POST {url}/v1/readings)")
    p.add_argument("--key", default=os.environ.get("WARDTWIN_API_KEY"),
                   help="API key with the device role for --url (default: $WARDTWIN_API_KEY; never printed)")
    p.add_argument("--influx-url", help="InfluxDB base URL (v1 /write)")
    p.add_argument("--database", default="wardtwin", help="InfluxDB database (with --influx-url)")
    p.add_argument("--parquet-out", type=Path, help="also append readings to DIR/readings.parquet")
    p.add_argument("--beds", type=int, default=24)
    p.add_argument("--speed", type=float, default=60.0,
                   help="simulated seconds per real second (default 60); simulated time never passes the wall "
                        "clock (the service refuses future readings), so an accelerated run replays from --start "
                        "(or --history-hours ago) until it catches up, then runs in real time")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--start", help="simulated start (UTC ISO 8601); default now minus --history-hours")
    p.add_argument("--history-hours", type=float, default=0.0, help="send this much history first, at once")
    p.add_argument("--duration", type=float, help="stop after this many real seconds")
    p.add_argument("--mix", help="'ward', 'enriched' (the default here) or archetype weights (see `simulate cohort "
                   "--help`)")
    a = p.parse_args(argv)
    sinks = []
    if a.url:
        if not a.key:
            p.error("--url needs a device key: --key or WARDTWIN_API_KEY (wardtwin keys create --role device ...)")
        sinks.append(HttpSink(a.url, headers={"Authorization": f"Bearer {a.key}"}))
    if a.influx_url:
        sinks.append(InfluxLineSink(a.influx_url, a.database))
    if a.parquet_out:
        sinks.append(ParquetSink(a.parquet_out))
    if not sinks:
        p.error("give at least one of --url, --influx-url, --parquet-out")
    now = pd.Timestamp(datetime.now(UTC)).floor("5min")
    start = pd.Timestamp(a.start) if a.start else now - pd.Timedelta(hours=a.history_hours)
    ward = Ward(a.beds, a.seed, start, archetype_mix=_mix(a.mix))
    print(f"ward: {a.beds} beds, seed {a.seed}, start {start.isoformat()}, "
          f"{sum(p['archetype'] != 'stable' for p in ward.patients)} not stable; events "
          + ", ".join(f"{e['patient_id']} {e['kind']} at {e['onset'].isoformat()}" for e in ward.events),
          file=sys.stderr)
    try:
        if a.history_hours > 0:
            history = ward.advance(start + pd.Timedelta(hours=a.history_hours))
            for sink in sinks:
                sink.send(history)
            print(f"history: {len(history)} readings up to {ward.until.isoformat()}", file=sys.stderr)

        def show(at: pd.Timestamp, n: int) -> None:
            print(f"\r  sim {at.isoformat()}  +{n} readings ", end="", file=sys.stderr, flush=True)

        sent = run_live(ward, sinks, a.speed, duration_s=a.duration, on_batch=show,
                        not_after=lambda: pd.Timestamp.now(tz="UTC"))
        print(f"\nsent {sent} readings", file=sys.stderr)
    finally:
        for sink in sinks:
            sink.close()
    return 0


def _report(argv: list[str]) -> int:
    from simulator.report import build_report

    p = argparse.ArgumentParser(prog="wardtwin simulate report", description="Realism report of the simulator.")
    p.add_argument("--out", type=Path, default=Path("reports/simulator"))
    p.add_argument("--patients", type=int, default=500, help="patients per seed (default 500)")
    p.add_argument("--hours", type=float, default=24.0)
    p.add_argument("--seeds", default="1,2,3", help="comma-separated seeds (default 1,2,3)")
    a = p.parse_args(argv)
    seeds = [int(s) for s in a.seeds.split(",") if s.strip()]
    result = build_report(a.out, a.patients, a.hours, seeds, progress=True)
    print(result["markdown"])
    print(f"\nreport written to {result['path']}", file=sys.stderr)
    return 0 if result["all_within_tolerance"] else 1


COMMANDS = {"cohort": _cohort, "live": _live, "report": _report}


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help") or argv[0] not in COMMANDS:
        print("usage: wardtwin simulate {cohort,live,report} [options]   (--help on each)", file=sys.stderr)
        return 0 if argv and argv[0] in ("-h", "--help") else 2
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s %(message)s")
    return COMMANDS[argv[0]](argv[1:])


if __name__ == "__main__":
    raise SystemExit(main())
