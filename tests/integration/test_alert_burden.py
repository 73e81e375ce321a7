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
from app.alerts.rules import fold_header
from app.alerts.store import KINDS
from app.settings import Settings
from lab.alert_burden import POLICIES, patient_table, run_seed
from lab.alert_pareto import replay_check
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

    # the summary: by kind as the service raised them; beyond charted NEWS2 = every kind but news2
    summary = report["summary"]
    per100 = summary["alerts_per_100_patient_days"]
    assert set(per100) == {*KINDS, "combined"}
    for kind in KINDS:
        assert per100[kind]["value"] == pytest.approx(100 * pooled["alerts"][kind] / pooled["patient_days"])
    beyond = sum(pooled["alerts"][k] for k in KINDS if k != "news2")
    assert summary["beyond_charted_news2"]["value"] == pytest.approx(100 * beyond / pooled["patient_days"])
    for policy in ("combined", "charted_news2"):
        warned, chance = summary["first_event_warned"][policy], summary["chance_warned"][policy]
        assert 0 <= chance["value"] <= 1
        if warned["value"] is not None:
            assert summary["warned_minus_chance"][policy]["value"] == pytest.approx(warned["value"] - chance["value"])
    assert summary["missed_vs_charted_news2"] == len(summary["missed_vs_charted_news2_patients"])
    assert [t["met"] for t in summary["targets"]] == [
        summary["beyond_charted_news2"]["value"] <= 10,
        summary["combined_minus_charted_news2_added_warning"]["value"] >= 0.05
        if summary["combined_minus_charted_news2_added_warning"]["value"] is not None else False,
        summary["missed_vs_charted_news2"] == 0]
    # the Pareto table: charted NEWS2, four persistence rules at two triggers (the RCP ward one and the shipped
    # one), the twin at several thresholds, the shipped policy
    rows = {r["policy"]: r for r in report["pareto"]["rows"]}
    assert sum(name.startswith("monitor NEWS2") for name in rows) == 8
    assert sum(name.startswith("twin ≥") for name in rows) >= 5
    shipped = rows["shipped policy (as the service raised it)"]
    assert shipped["per100d"] == per100["combined"]
    assert report["replay_check"]["all_same"]
    # what the shipped fold kept from the ward: counted by the replay (which is what the service raised), and found
    # in the reasons of the service's alerts (a regrade replaces a news2 alert's reasons, so at most as many)
    folded = summary["folded"]
    assert folded["policy_fold"] == Settings.explicit(data_dir=tmp_path).alert_fold
    assert all(0 <= folded["recorded_on_service_alerts"][k] <= n for k, n in folded["by_kind"].items())
    candidates = {c["policy"]: c for c in report["fold_study"]["candidates"]}
    assert candidates[f"fold {folded['policy_fold']}"]["alerts_beyond"] == beyond
    assert folded["alerts_beyond_without_fold"] == candidates["fold off"]["alerts_beyond"] \
        == len(report["fold_study"]["alerts"])
    assert sum(r["policy"].startswith("all kinds, fold ") for r in report["pareto"]["rows"]) == 3
    readme = (out / "README.md").read_text()
    assert "Pareto" in readme and "Targets" in readme and (out / "pareto.png").stat().st_size > 0


def test_the_shipped_policy_replayed_over_what_the_service_stored_is_what_it_raised(tmp_path: Path) -> None:
    """The Pareto rows are the service's rules replayed over its stored scores and the nurse's charted sets; the
    replay of the shipped policy must give every alert the service raised, open period for open period."""
    sick = {"sepsis": 0.5, "respiratory_failure": 0.5}  # charted sets at a trigger and sustained monitor NEWS2
    run = asyncio.run(run_seed(6, 12.0, 2, tmp_path, archetype_mix=sick, progress_every=0))
    assert run.meta["observations_route"] and run.meta["observation_sets"] > 0
    assert run.meta["observation_sets_refused"] == 0, run.meta.get("observation_set_refused_example")
    assert sum(map(len, run.charted.values())) == run.meta["observation_sets"]
    check = replay_check([run])
    assert check["all_same"], check
    # both charted and monitor paths ran: obs_due raised, or recorded on an open alert of a more urgent kind
    obs_due_recorded = sum(fold_header("obs_due") in a["reasons"] for a in run.alerts)
    assert check["news2"]["service"] > 0 and check["obs_due"]["service"] + obs_due_recorded > 0
    assert sum(v["service"] for k, v in check.items() if k != "all_same") == len(run.alerts)


def test_seeds_run_in_parallel_give_the_same_report(tmp_path: Path) -> None:
    one = alert_burden.evaluate(3, 3.0, [1, 2], tmp_path / "one", archetype_mix=MIX, n_boot=30, progress_every=0)
    two = alert_burden.evaluate(3, 3.0, [1, 2], tmp_path / "two", archetype_mix=MIX, n_boot=30, progress_every=0,
                                jobs=2)
    for key in ("summary", "pareto", "pooled", "replay_check"):
        assert one[key] == two[key]


def test_evaluation_applies_no_alert_rule_of_its_own() -> None:
    """The evaluation reads alerts back from the service; it imports neither the engine nor NEWS2."""
    tree = ast.parse(Path(alert_burden.__file__).read_text())
    imported = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)} | {
        a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    assert not imported & {"app.alerts.engine", "app.alerts.rules", "models.news2", "models.scoring",
                            "models.twin"}
