"""The arithmetic for a hospital group of ``--beds`` beds (100,000 by default): readings, scores and alert events per
second, and storage per day, from rates the repo itself states or measures (issue 24, README "Running several
instances"). Writes ``reports/capacity/report.json``; ``tests/unit/test_quoted_numbers.py`` ties the README's
figures to it.

Inputs, each from its source:

- **Monitor readings per bed per 5-minute window**: counted from ``bench/bench_cycle.py``'s monitor profile (the
  simulator's device rates, ``simulator/devices.py``: HR 1 Hz, SpO2 every 30 s, RR every minute, temperature every
  5 min, NIBP every 15 min). Every bed continuously monitored: an upper bound for a general ward.
- **Charted readings**: ``--charted-sets`` NEWS2 sets per bed per day (default 4, six-hourly rounds), 7 readings each.
- **Scores**: one per bed per window (288 a day).
- **Alerts**: the shipped policy's rate on the simulated ward, all kinds (``reports/alert-burden/report.json``,
  ``summary.alerts_per_100_patient_days.combined``), each with at least 4 lifecycle events (raised, delivered,
  acknowledged, resolved), each event fanned out to ``--subscribers`` receivers (boards and webhooks).
- **Bytes**: measured here on the embedded store: a small ward's readings written and three cycles run through the
  service's wiring, then SQLite's ``dbstat`` gives bytes per stored reading, per window row and per score (pages,
  indexes included); the line protocol a reading travels to InfluxDB as is encoded by ``models.line_protocol``.
  InfluxDB's TSM files compress readings well below SQLite's row size: not measured here, so the readings' storage
  per day is stated for the embedded store's row format (an upper bound for InfluxDB).

    python bench/capacity.py                       # writes reports/capacity/report.json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sqlite3
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from app.clock import FixedClock  # noqa: E402
from app.main import create_app  # noqa: E402
from app.settings import Settings  # noqa: E402
from bench.bench_cycle import FIRST_END, STEP, window_readings  # noqa: E402
from models.line_protocol import ReadingEncoder  # noqa: E402

WINDOW_S = STEP.total_seconds()
DAY_S = 86_400
READINGS_PER_SET = 7  # rr, spo2, hr, sbp, temp, acvpu, o2 (simulator/devices.py, nurse)
EVENTS_PER_ALERT = 4  # raised, delivered, acknowledged, resolved


def monitor_readings_per_window(beds: int = 300) -> float:
    """Readings one monitored bed sends per window, averaged over three windows (NIBP is every third)."""
    return sum(len(window_readings(range(beds), FIRST_END + k * STEP, 1)) for k in range(3)) / (3 * beds)


async def measure_bytes(work: Path, patients: int = 60) -> dict[str, float]:
    """Bytes per stored reading, window and score on the embedded store, and per reading of line protocol."""
    settings = Settings.explicit(data_dir=work, scheduler_enabled=False, challenger_enabled=True)
    app = create_app(settings, FixedClock(FIRST_END + 3 * STEP), cycle_interval_s=None)
    wt = app.state.wardtwin
    written = 0
    line_bytes = 0
    encoder = ReadingEncoder()
    async with app.router.lifespan_context(app):
        for k in range(12):  # an hour, so every patient is fresh and scored
            readings = window_readings(range(patients), FIRST_END - 12 * STEP + k * STEP, 1)
            await wt.store.write_readings(readings)
            written += len(readings)
            line_bytes += sum(len(line) + 1 for line in encoder.encode_lines(readings))  # + the newline
        for k in range(3):
            await wt.cycle.run(FIRST_END + k * STEP - 2 * STEP)
    conn = sqlite3.connect(settings.sqlite_path)
    try:
        conn.execute("VACUUM")
        pages = dict(conn.execute("SELECT name, sum(pgsize) FROM dbstat GROUP BY name").fetchall())
        counts = {t: conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in ("readings", "windows", "scores")}
    finally:
        conn.close()
    window_pages = pages.get("windows", 0) + pages.get("windows_start", 0)
    return {"sqlite_bytes_per_reading": pages["readings"] / counts["readings"],
            "sqlite_bytes_per_window": window_pages / counts["windows"],
            "sqlite_bytes_per_score": pages["scores"] / counts["scores"],
            "line_protocol_bytes_per_reading": line_bytes / written,
            "sample": {"patients": patients, "readings": counts["readings"], "windows": counts["windows"],
                       "scores": counts["scores"]}}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--beds", type=int, default=100_000, help="beds in the group (default 100,000)")
    parser.add_argument("--charted-sets", type=float, default=4.0,
                        help="charted NEWS2 sets per bed per day (default 4: six-hourly)")
    parser.add_argument("--subscribers", type=int, default=2,
                        help="receivers each alert event is sent to: boards and webhooks (default 2)")
    parser.add_argument("--out", type=Path, default=ROOT / "reports" / "capacity" / "report.json",
                        help="where to write the JSON (default reports/capacity/report.json)")
    args = parser.parse_args()
    burden = json.loads((ROOT / "reports" / "alert-burden" / "report.json").read_text())
    alerts_per_100_days = burden["summary"]["alerts_per_100_patient_days"]["combined"]["value"]
    per_window = monitor_readings_per_window()
    with tempfile.TemporaryDirectory(prefix="capacity-") as tmp:
        sizes = asyncio.run(measure_bytes(Path(tmp)))
    beds = args.beds
    monitor_per_s = beds * per_window / WINDOW_S
    charted_per_s = beds * args.charted_sets * READINGS_PER_SET / DAY_S
    readings_per_s = monitor_per_s + charted_per_s
    scores_per_s = beds / WINDOW_S
    alerts_per_s = beds * alerts_per_100_days / 100 / DAY_S
    events_per_s = alerts_per_s * EVENTS_PER_ALERT
    readings_per_day = readings_per_s * DAY_S
    windows_per_day = beds * DAY_S / WINDOW_S
    scores_per_day = windows_per_day
    gb = 1e9
    out = {
        "command": "python bench/capacity.py" + ("" if beds == 100_000 else f" --beds {beds}"),
        "beds": beds,
        "inputs": {"monitor_readings_per_bed_per_window": per_window, "charted_sets_per_bed_per_day": args.charted_sets,
                   "readings_per_charted_set": READINGS_PER_SET, "window_s": WINDOW_S,
                   "alerts_per_100_patient_days": alerts_per_100_days,
                   "alerts_source": "reports/alert-burden/report.json summary.alerts_per_100_patient_days.combined",
                   "events_per_alert": EVENTS_PER_ALERT, "subscribers_per_event": args.subscribers, **sizes},
        "per_second": {"readings": readings_per_s, "monitor_readings": monitor_per_s, "charted_readings": charted_per_s,
                       "scores": scores_per_s, "alerts": alerts_per_s, "alert_events": events_per_s,
                       "alert_deliveries": events_per_s * args.subscribers,
                       "line_protocol_mb": readings_per_s * sizes["line_protocol_bytes_per_reading"] / 1e6},
        "per_day": {"readings": readings_per_day, "windows": windows_per_day, "scores": scores_per_day,
                    "alerts": alerts_per_s * DAY_S, "alert_events": events_per_s * DAY_S,
                    "readings_gb_sqlite_rows": readings_per_day * sizes["sqlite_bytes_per_reading"] / gb,
                    "windows_gb": windows_per_day * sizes["sqlite_bytes_per_window"] / gb,
                    "scores_gb": scores_per_day * sizes["sqlite_bytes_per_score"] / gb,
                    "line_protocol_gb": readings_per_day * sizes["line_protocol_bytes_per_reading"] / gb},
        "per_1000_bed_cell": {"readings_per_s": readings_per_s * 1000 / beds, "scores_per_cycle": 1000,
                              "alert_events_per_hour": events_per_s * 3600 * 1000 / beds},
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=2) + "\n")
    print(json.dumps({k: out[k] for k in ("per_second", "per_day", "per_1000_bed_cell")}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
