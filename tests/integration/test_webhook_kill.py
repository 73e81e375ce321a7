"""H6: an alert raised is delivered even if the service is killed (SIGKILL) before delivering it.

A real uvicorn process raises three alerts while the nurse-call receiver is down, so every webhook delivery is
still pending in the durable outbox; the process is then killed with SIGKILL (no shutdown code runs). The receiver
comes up, the service restarts on the same data directory, and each alert reaches the receiver exactly once (by
``webhook-id``), every signature verified by the ``standardwebhooks`` package in the receiver process. Nothing
sleeps: each step waits for a condition.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path

import httpx

from app.storage.influxd_local import free_port
from models.windows import align
from tests.support.server import AUTH, ROOT, SERVICE_KEY, terminate, wait_until_ok
from tests.support.synthetic_readings import post_all, trajectory
from tests.support.wait import wait_until
from tests.support.webhooks import new_secret, received, receiver


@contextmanager
def service_process(data_dir: Path, port: int) -> Iterator[subprocess.Popen]:
    env = {**os.environ, "WARDTWIN_DATA_DIR": str(data_dir), "WARDTWIN_SCHEDULER_ENABLED": "false",
           "WARDTWIN_DEMO_KEY": SERVICE_KEY, "WARDTWIN_WEBHOOK_BACKOFF_BASE_S": "0.05",
           "WARDTWIN_WEBHOOK_BACKOFF_MAX_S": "0.2", "WARDTWIN_WEBHOOK_MAX_ATTEMPTS": "100",
           "WARDTWIN_WEBHOOK_POLL_S": "0.1", "WARDTWIN_WEBHOOK_ALLOW_HOSTS": '["127.0.0.1"]'}  # the local receiver
    with (data_dir / "uvicorn.log").open("ab") as log:
        proc = subprocess.Popen([sys.executable, "-m", "uvicorn", "app.main:app_from_env", "--factory", "--host",
                                 "127.0.0.1", "--port", str(port), "--log-level", "warning"],
                                cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            wait_until_ok(f"http://127.0.0.1:{port}/healthz", proc=proc)
            yield proc
        finally:
            if proc.poll() is None:
                terminate(proc, timeout=15)


def test_an_alert_raised_before_a_sigkill_is_delivered_once_after_restart(tmp_path: Path):
    port, hook_port, secret, log = free_port(), free_port(), new_secret(), tmp_path / "received.jsonl"
    base = f"http://127.0.0.1:{port}"
    with service_process(tmp_path, port) as proc, httpx.Client(base_url=base, timeout=None, headers=AUTH) as client:
        hook = client.post("/v1/webhooks", json={"url": f"http://127.0.0.1:{hook_port}/hook", "secret": secret,
                                                 "events": ["alert.raised"]})
        assert hook.status_code == 201, hook.text
        end = align(datetime.fromisoformat(client.get("/healthz").json()["now"])).to_pydatetime()
        readings = trajectory("sick-1", end, True, 2)
        assert post_all(client, readings) == len(readings)
        raised = sum(client.post("/v1/cycle", params={"window_end": (end - timedelta(minutes=5 * k)).isoformat()})
                     .json()["alerts_raised"] for k in (2, 1, 0))
        assert raised == 1  # the twin's, sustained over three windows
        charted = client.post("/v1/observations", json={  # then a nurse charts NEWS2 10: its news2 alert at once
            "patient_id": "sick-1", "ts": end.isoformat(), "rr": 26, "spo2": 92, "o2": False, "sbp": 95, "hr": 125,
            "acvpu": "A", "temp": 38.5, "by": "Nurse Ada"})
        assert charted.status_code == 201 and charted.json()["alert"]["event"] == "raised", charted.text
        # the receiver is down: the deliveries fail and stay pending in the outbox
        wait_until(lambda: client.get("/v1/webhooks").json()[0]["pending"] == 2, "two pending deliveries")
        assert client.get("/healthz").json()["alerts_pending_delivery"] == 2
        proc.send_signal(signal.SIGKILL)
        assert proc.wait() == -signal.SIGKILL
    with receiver(hook_port, secret, log), service_process(tmp_path, port), \
            httpx.Client(base_url=base, timeout=None, headers=AUTH) as client:
        wait_until(lambda: client.get("/healthz").json()["alerts_pending_delivery"] == 0, "delivery after restart")
        alerts = client.get("/v1/alerts").json()
        got = received(log)
        assert client.get("/v1/webhooks").json()[0]["delivered"] == 2
    assert all(entry["valid"] for entry in got), [e["error"] for e in got if not e["valid"]]
    ids = Counter(entry["webhook_id"] for entry in got)
    assert len(ids) == 2 and set(ids.values()) == {1}  # each alert once
    assert {e["body"]["data"]["alert_id"] for e in got} == {a["id"] for a in alerts}
    assert {a["state"] for a in alerts} == {"delivered"} and all(a["delivered_at"] for a in alerts)
