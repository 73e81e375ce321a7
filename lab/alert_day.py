"""``wardtwin evaluate alert-day``: what the alert lifecycle does to a nurse's day on the demo ward.

The demo ward (``simulator.ward.Ward``, as ``wardtwin replay`` and the demo run it) streams through the real service
in process: ``create_app`` on a temporary data directory with a fixed clock stepped to each five-minute window end
plus the cycle grace, readings posted through ``POST /v1/readings`` as the ward delivers them, ``POST /v1/cycle``
for each window end. Nobody acknowledges an alert (the worst case for escalation and re-notification). Afterwards:

- **alerts by kind per patient-day**: alerts raised by the service, / (beds × hours / 24) (the demo ward keeps every
  bed occupied bar short turnovers, so bed-days stand in for patient-days);
- **re-notifications** and **escalations**: ``renotified`` and ``escalated`` events in the outbox; an escalation is
  the timer's (nobody acknowledged) or a charted set's of a higher RCP grade (its actor the nurse), counted apart;
- **suppressed by the lifecycle**: "alert on every cycle above threshold" counts, per kind, every scored window at
  which the kind's raise rule holds (``app.alerts.rules.verdicts`` with no alert open, so no hysteresis, no clear time,
  no sustain rule and no one-open-alert rule) and, for ``news2``, every charted set at a trigger
  (``app.alerts.rules.charted_grade``); the service raised ``alerts`` of them; the rest were suppressed.
- **folded into an open alert**: rules recorded on an open, unacknowledged alert of a more urgent kind instead of
  raised (``Settings.alert_fold``), counted by ``app.alerts.rules.fold_header`` in the reasons of the alerts.

The ward's nurse charts her sets through ``POST /v1/observations`` (``simulator.sinks.split_observations``, as the
demo's sink does); the monitor's readings go through ``POST /v1/readings``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
import tempfile
from collections import Counter
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pandas as pd

from app.alerts.rules import charted_grade, fold_header, verdicts
from app.alerts.store import KINDS
from app.clock import FixedClock
from app.main import create_app
from app.settings import Settings
from models.news2 import News2Summary
from models.windows import WINDOW
from simulator.patient import NURSE
from simulator.sinks import split_observations
from simulator.ward import Ward

DEFAULT_START = datetime.fromisoformat("2026-01-05T00:00:00+00:00")
BATCH = 10_000


async def measure(beds: int, seed: int, hours: float, start: datetime, data_dir: Path) -> dict[str, Any]:
    """Run the ward for ``hours`` and count what the alert lifecycle did (see the module docstring)."""
    end = start + timedelta(hours=hours)
    clock = FixedClock(start)
    settings = Settings.explicit(data_dir=data_dir, demo_key="alert-day-local-key-0123456789")
    grace = timedelta(seconds=settings.cycle_grace_s)
    app = create_app(settings, clock, cycle_interval_s=None)
    ward = Ward(beds, seed, pd.Timestamp(start))
    auth = {"Authorization": "Bearer alert-day-local-key-0123456789"}
    async with app.router.lifespan_context(app), httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://alert-day", headers=auth) as client:
        wt = app.state.wardtwin
        window_end = start + WINDOW
        charted_sets = charted_triggers = 0
        while window_end <= end:
            clock.set(window_end + grace)
            monitor, sets = split_observations(ward.advance(pd.Timestamp(window_end + grace)))
            for i in range(0, len(monitor), BATCH):
                (await client.post("/v1/readings", json={"readings": monitor[i:i + BATCH]})).raise_for_status()
            for body in sets:  # the nurse's sets, escalated at once as the RCP defines it
                answer = (await client.post("/v1/observations", json=body)).raise_for_status().json()
                charted_triggers += charted_grade(News2Summary.from_stored(answer["news2"]), wt.engine.policy) > 0
                charted_sets += 1
            (await client.post("/v1/cycle", params={"window_end": window_end.isoformat()})).raise_for_status()
            window_end += WINDOW
        alerts = await wt.alert_store.list(limit=1_000_000)
        outbox = await wt.alert_store.events_after(0, limit=10_000_000)
        events = Counter(e.event for e in outbox)
        regraded = sum(e.event == "escalated" and e.payload.get("actor") == NURSE for e in outbox)
        naive: Counter[str] = Counter()
        for pid in await wt.store.patient_ids():
            for score in await wt.store.score_history(pid, start, end + timedelta(milliseconds=1)):
                for kind, verdict in verdicts(score, {}, wt.engine.policy).items():
                    naive[kind] += verdict.met
        naive["news2"] += charted_triggers  # news2 follows charted sets: each set at a trigger would alert
    patient_days = beds * hours / 24.0
    raised = Counter(a.kind for a in alerts)
    return {
        "ward": {"beds": beds, "seed": seed, "hours": hours, "start": start.isoformat(), "patient_days": patient_days},
        "settings": {"twin_threshold": wt.engine.policy.threshold,
                     "twin_clear_threshold": wt.engine.policy.clear_threshold,
                     "clear_after_min": settings.alert_clear_after_min,
                     "escalate_after_min": settings.alert_escalate_after_min,
                     "renotify_after_min": settings.alert_renotify_after_min, "alert_fold": settings.alert_fold},
        "alerts": {k: raised[k] for k in KINDS} | {"all": sum(raised.values())},
        "alerts_per_patient_day": {k: raised[k] / patient_days for k in KINDS} | {
            "all": sum(raised.values()) / patient_days},
        "charted_sets": charted_sets,
        "escalations": events["escalated"] - regraded,
        "escalations_by_a_charted_set": regraded,
        "renotifications": events["renotified"],
        "naive_every_cycle_above_threshold": {k: naive[k] for k in KINDS} | {"all": sum(naive.values())},
        "suppressed_by_lifecycle": {k: naive[k] - raised[k] for k in KINDS} | {
            "all": sum(naive.values()) - sum(raised.values())},
        # rules recorded on an open alert instead of raised (``Settings.alert_fold``), by the reasons they left
        "folded_into_an_open_alert": {k: sum(fold_header(k) in a.reasons for a in alerts) for k in KINDS
                                      if k != "news2"},
    }


def render(result: dict[str, Any]) -> str:
    w, s = result["ward"], result["settings"]
    lines = [f"Demo ward: {w['beds']} beds, seed {w['seed']}, {w['hours']:g} h from {w['start']} "
             f"({w['patient_days']:g} patient-days); nobody acknowledges",
             f"twin threshold {s['twin_threshold']:.3g} (clears below {s['twin_clear_threshold']:.3g}), clear after "
             f"{s['clear_after_min']} min, escalate after {s['escalate_after_min']} min, re-notify every "
             f"{s['renotify_after_min']} min",
             "", f"{'kind':<10}{'alerts':>8}{'/patient-day':>14}{'every-cycle':>13}{'suppressed':>12}"]
    for kind in (*KINDS, "all"):
        naive, raised = result["naive_every_cycle_above_threshold"][kind], result["alerts"][kind]
        share = f" ({100 * (naive - raised) / naive:.0f} %)" if naive else ""
        lines.append(f"{kind:<10}{raised:>8}{result['alerts_per_patient_day'][kind]:>14.2f}{naive:>13}"
                     f"{naive - raised:>12}{share}")
    lines += ["", f"charted observation sets {result['charted_sets']}; escalations {result['escalations']} "
                  f"(unacknowledged) + {result['escalations_by_a_charted_set']} (a charted set of a higher grade), "
                  f"re-notifications {result['renotifications']}"]
    if "folded_into_an_open_alert" in result:
        lines.append(f"rules recorded on an open alert instead of raised (alert_fold "
                     f"{s.get('alert_fold', '?')}): " + ", ".join(f"{k} {v}" for k, v in
                                                               result["folded_into_an_open_alert"].items()))
    return "\n".join(lines)


def alert_day_command(*, beds: int, seed: int, hours: float, start: datetime | None, json_out: Path | None) -> int:
    """``wardtwin evaluate alert-day``: measure, print the table (and write the result to ``json_out``)."""
    for noisy in ("app", "simulator", "httpx"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    with tempfile.TemporaryDirectory() as tmp:
        result = asyncio.run(measure(beds, seed, hours, start or DEFAULT_START, Path(tmp)))
    if json_out:
        json_out.write_text(json.dumps(result, indent=2) + "\n")
    sys.stdout.write(render(result) + "\n")
    return 0
