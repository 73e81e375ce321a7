"""``wardtwin evaluate alert-burden-physionet2012``: real ICU stays (PhysioNet 2012 set A) streamed through the
service in process, a five-minute cycle at a time over their 48 h, every alert counted as the service's own alert
engine stored it — the same machinery and definitions as ``wardtwin evaluate alert-burden``
(:mod:`lab.alert_burden`), with real patients instead of simulated ones.

- Readings: each stay's readings that the API's validation accepts (:func:`lab.physionet_cmd.validated`),
  delivered at their charted time (charting latency is not recorded in set A).
- Patients: monitored from admission to 48 h (every set-A stay lasts at least 48 h).
- First event: the stay's first charted 6-hour event (:func:`lab.physionet_eval.charted_events`, the rule of
  the set-A report).
- Stays: the first ``--limit`` of the archive (default 500: 4,000 stays × 576 cycles do not fit a session on two
  cores); the archive order is not chosen by outcome.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from lab import alert_burden as B
from lab import physionet2012 as P
from lab import physionet_eval as E
from lab.physionet_cmd import Tally, _skew, validated
from models.schema import READING_COLUMNS, VITALS
from simulator.devices import QUALITIES
from simulator.patient import PatientStream

HOURS = float(P.STAY_HOURS)


def stay_streams(records: Path, limit: int | None, hours: float = HOURS) -> tuple[list[PatientStream], Tally]:
    """Every stay with at least one accepted reading in its first ``hours``, as a stream delivered at charting
    time."""
    tally = Tally()
    start_ms = int(pd.Timestamp(P.ADMISSION_AT).value // 1_000_000)
    streams: list[PatientStream] = []
    for stay, readings in validated(P.iter_stays(records, limit), tally, _skew()):
        if not readings:
            continue
        frame = pd.DataFrame(readings).loc[:, list(READING_COLUMNS)]
        frame = frame[pd.to_datetime(frame["ts"], utc=True) <= pd.Timestamp(P.ADMISSION_AT) + pd.Timedelta(hours=hours)]
        if frame.empty:
            continue
        ts_ms = pd.to_datetime(frame["ts"], utc=True).dt.as_unit("ms").astype("int64").to_numpy(np.int64)
        order = np.argsort(ts_ms, kind="stable")
        first = E.charted_events(frame).sort_values("onset").head(1)
        events = [{"kind": k, "onset": pd.Timestamp(o)} for k, o in zip(first["kind"], first["onset"], strict=True)]
        streams.append(PatientStream(
            patient={"patient_id": stay.patient_id, "archetype": f"icu type {stay.icu_type}"}, events=events,
            start_ms=start_ms, end_ms=start_ms + int(hours * 3_600_000), ts_ms=ts_ms[order], deliver_ms=ts_ms[order],
            vital=np.asarray([VITALS.index(v) for v in frame["vital"]], dtype=np.int8)[order],
            value=frame["value"].to_numpy(float)[order],
            quality=np.asarray([QUALITIES.index(q) for q in frame["quality"]], dtype=np.int8)[order]))
    return streams, tally


def evaluate(records: Path, limit: int | None, out: Path, *, hours: float = HOURS, n_boot: int = B.N_BOOT,
             progress_every: int = 48, say: Any = lambda _: None, command: str = "") -> dict[str, Any]:
    streams, tally = stay_streams(records, limit, hours)
    say(f"set A: {tally.stays} stays read, {len(streams)} with readings; streaming {hours:g} h through the service")
    with tempfile.TemporaryDirectory() as tmp:
        run = asyncio.run(B.run_streams(streams, hours, 0, Path(tmp), start=pd.Timestamp(P.ADMISSION_AT),
                                        progress_every=progress_every, say=say))
    table = B.patient_table(run)
    summary = B.summarise(table, np.random.default_rng(20120101), n_boot)
    report = {"command": command, "scope": f"PhysioNet/CinC Challenge 2012 set A, first {tally.stays} stays of "
                                           f"{records.name}, {len(streams)} with an accepted reading",
              "model_version": run.model_version, "twin_threshold": run.twin_threshold,
              "definitions": {**B.DEFINITIONS, "first event": "the stay's first charted 6-hour event "
                              "(lab.physionet_eval.charted_events)",
                              "patient-days": f"{hours:g} h per stay (admission to the end of the streamed span)"},
              "readings": run.readings, "windows": run.windows, "seconds": run.seconds, "pooled": summary}
    write(report, table, run.alerts, out)
    return report


def write(report: dict[str, Any], table: pd.DataFrame, alerts: list[dict[str, Any]], out: Path) -> None:
    """``report.json``, ``README.md``, ``lead_time.png``, ``patients.csv`` and ``alerts.csv`` in ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "report.json").write_text(json.dumps(report, indent=2, default=str) + "\n", encoding="utf-8")
    (out / "README.md").write_text("\n".join([
        "# Alert burden and lead time on real ICU stays: the service's own alert engine", "",
        f"`{report['command']}`. {report['scope']}. Each stay's accepted readings are delivered at their charted "
        "time to the service in process and the five-minute cycle runs at every window end of the streamed span; "
        "every alert is read back through `GET /v1/alerts`. Patient-bootstrap 95 % intervals.", "",
        *(f"- {line}" for line in summary_lines(report)), "",
        "Definitions: `report.json` (`definitions`) and `lab/alert_burden.py` (the simulator's report uses the same "
        "code). ICU stays are sicker than a ward's patients: NEWS2 alerts most of them, events included.", "",
        "![lead time](lead_time.png)", ""]), encoding="utf-8")
    B.plot_lead_time(table, out / "lead_time.png")
    table.to_csv(out / "patients.csv", index=False)
    pd.DataFrame([{k: a.get(k) for k in ("id", "patient_id", "kind", "window_end", "raised_at", "resolved_at",
                                          "state", "risk")} for a in alerts]).to_csv(out / "alerts.csv", index=False)


def summary_lines(report: dict[str, Any]) -> list[str]:
    p = report["pooled"]
    est = p["estimates"]
    return [f"{report['scope']}; twin {report['model_version']} at {report['twin_threshold']:g}; "
            f"{p['patients']} stays, {p['patient_days']:.0f} patient-days, {p['first_events']} first events.",
            "alerts per 100 patient-days: " + ", ".join(f"{k} {B.fmt(est[f'per100d_{k}'])}" for k in B.POLICIES)
            + f"; episodes {B.fmt(est['per100d_episodes'])}",
            "first events warned >= 30 min ahead: " + ", ".join(
                f"{k} {B.fmt(est[f'sens_{k}'], 100, 0)} %" for k in B.POLICIES)
            + f"; twin-added lead per event, mean {B.fmt(est['lead_gain_mean_h'], 1, 2)} h",
            "stays without an event that got an alert: " + ", ".join(
                f"{k} {p['stable_patients_alerted'][k]}/{p['stable_patients']}" for k in B.POLICIES)]


def alert_burden_physionet_command(*, records: Path, limit: int | None, hours: float, out: Path, bootstrap: int,
                                    progress_every: int, command_line: str) -> int:
    """``wardtwin evaluate alert-burden-physionet2012``: run :func:`evaluate`, print the summary."""
    for noisy in ("app", "simulator", "httpx", "models", "apscheduler"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    report = evaluate(records, limit, out, hours=hours, n_boot=bootstrap, progress_every=progress_every, say=B.say,
                      command=command_line)
    for line in summary_lines(report):
        sys.stdout.write(line + "\n")
    return 0


__all__ = ["alert_burden_physionet_command", "evaluate", "stay_streams", "summary_lines", "write"]
