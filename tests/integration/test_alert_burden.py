"""``wardtwin evaluate alert-burden`` on a tiny cohort: the report's structure, its counts equal to the
alerts the service stored, and every counted alert raised by the service's own alert engine."""

from __future__ import annotations

import ast
import asyncio
import json
import sqlite3
from pathlib import Path

import pytest

import lab.alert_burden as alert_burden
from app.alerts.store import KINDS
from app.settings import Settings
from lab.alert_burden import POLICIES, patient_table, run_seed
from models.twin import Twin

#: Half the cohort deteriorating, so the event columns are exercised too.
MIX = {"stable": 0.5, "sepsis": 0.25, "respiratory_failure": 0.25}


def test_alert_burden_counts_what_the_service_raised(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # a stray variable must not move the study's store or change its policy
    monkeypatch.setenv("WARDTWIN_INFLUX_URL", "http://127.0.0.1:9")  # nothing listens: reading it would fail
    monkeypatch.setenv("WARDTWIN_DATA_DIR", str(tmp_path / "stray"))
    monkeypatch.setenv("WARDTWIN_ALERT_THRESHOLD", "0.01")
    data = tmp_path / "data"
    run = asyncio.run(run_seed(4, 6.0, 1, data, archetype_mix=MIX, progress_every=0))
    assert run.windows == 72 and run.readings > 0
    assert not (tmp_path / "stray").exists() and run.twin_threshold == Twin.load().alert_threshold

    # Every alert counted is a row the service's alert store holds, with the outbox 'raised' event the
    # engine's raise_alert writes in the same transaction, and vice versa.
    with sqlite3.connect(Settings.explicit(data_dir=data).alerts_path) as conn:
        stored = {row[0]: row[1:] for row in conn.execute("SELECT id, patient_id, kind, raised_at FROM alerts")}
        raised_events = {row[0] for row in conn.execute("SELECT alert_id FROM outbox WHERE event = 'raised'")}
    counted = {a["id"]: (a["patient_id"], a["kind"], a["raised_at"]) for a in run.alerts}
    assert len(counted) == len(run.alerts)
    assert set(counted) == set(stored) == raised_events
    for alert_id, (pid, kind, _raised_at) in counted.items():
        assert stored[alert_id][:2] == (pid, kind) and kind in KINDS
        assert alert_id.startswith(f"{pid}-") and alert_id.endswith(f"-{kind}")  # the store's id scheme

    table = patient_table(run)
    assert len(table) == 4 and table["days"].sum() == pytest.approx(sum(
        (p["end"] - p["start"]).total_seconds() / 86400 for p in run.patients))
    for kind in KINDS:
        assert int(table[f"n_{kind}"].sum()) == sum(a["kind"] == kind for a in run.alerts)
    assert int(table["n_combined"].sum()) == len(run.alerts)
    assert (table["episodes"] <= table["n_combined"]).all()
    assert ((table["episodes"] > 0) == (table["n_combined"] > 0)).all()


def test_alert_burden_report(tmp_path: Path) -> None:
    out = tmp_path / "report"
    report = alert_burden.evaluate(4, 6.0, [1], out, archetype_mix=MIX, n_boot=50, progress_every=0)
    for name in ("report.json", "README.md", "lead_time.png", "alerts.csv"):
        assert (out / name).stat().st_size > 0
    assert json.loads((out / "report.json").read_text())["groups"] == ["seed 1", "pooled"]
    pooled, seed = report["pooled"], report["per_seed"]["seed 1"]
    assert pooled["alerts"] == seed["alerts"]
    assert set(pooled["alerts"]) == {*POLICIES, "episodes"}
    assert pooled["alerts"]["combined"] == sum(pooled["alerts"][k] for k in KINDS)
    assert pooled["alerts"]["combined"] == len((out / "alerts.csv").read_text().splitlines()) - 1
    for policy in POLICIES:
        est = pooled["estimates"][f"per100d_{policy}"]
        assert est["value"] == pytest.approx(100 * pooled["alerts"][policy] / pooled["patient_days"])
        assert set(pooled["lead_time_h"][policy]) >= {"n"}
        assert 0 <= pooled["stable_patients_alerted"][policy] <= pooled["stable_patients"]
    assert pooled["first_events"] + pooled["stable_patients"] == pooled["patients"] == 4
    assert "episode" in report["definitions"] and "Episode rule" in (out / "README.md").read_text()


def test_evaluation_applies_no_alert_rule_of_its_own() -> None:
    """The evaluation reads alerts back from the service; it imports neither the engine nor NEWS2."""
    tree = ast.parse(Path(alert_burden.__file__).read_text())
    imported = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)} | {
        a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    assert not imported & {"app.alerts.engine", "app.alerts.rules", "models.news2", "models.scoring",
                            "models.twin"}
