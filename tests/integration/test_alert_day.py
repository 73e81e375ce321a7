"""``wardtwin evaluate alert-day`` on a small ward: the counts it prints are consistent with the service's alerts."""

from __future__ import annotations

import asyncio

from app.alerts.store import KINDS
from lab.alert_day import DEFAULT_START, measure, render


def test_the_alert_day_measurement_counts_what_the_service_did(tmp_path, monkeypatch):
    # stray configuration the tool must ignore: its own store and the default policy, whatever the shell or .env say
    monkeypatch.setenv("WARDTWIN_INFLUX_URL", "http://127.0.0.1:9")  # nothing listens: reading it would fail
    monkeypatch.setenv("WARDTWIN_DATA_DIR", str(tmp_path / "stray"))
    monkeypatch.setenv("WARDTWIN_ALERT_ESCALATE_AFTER_MIN", "1")
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".env").write_text("WARDTWIN_ALERT_RENOTIFY_AFTER_MIN=1\n")
    result = asyncio.run(measure(6, 7, 3.0, DEFAULT_START, tmp_path / "data"))
    assert result["settings"]["escalate_after_min"] == 15 and result["settings"]["renotify_after_min"] == 10
    assert not (tmp_path / "stray").exists() and (tmp_path / "data" / "alerts.db").exists()
    assert result["ward"]["patient_days"] == 6 * 3.0 / 24
    alerts, naive = result["alerts"], result["naive_every_cycle_above_threshold"]
    assert alerts["all"] == sum(alerts[k] for k in KINDS) > 0
    for kind in (*KINDS, "all"):
        assert naive[kind] >= alerts[kind]  # every raised alert was a cycle whose rule held
        assert result["suppressed_by_lifecycle"][kind] == naive[kind] - alerts[kind]
        assert result["alerts_per_patient_day"][kind] == alerts[kind] / result["ward"]["patient_days"]
    assert result["escalations"] <= alerts["all"]  # nobody acknowledges: at most one escalation per alert
    assert "suppressed" in render(result)
    assert result["charted_sets"] > 0  # the ward's nurse charts through POST /v1/observations
