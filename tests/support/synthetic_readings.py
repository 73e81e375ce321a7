"""Hand-made vital-sign trajectories posted to the service in tests (independent of the simulator)."""

from __future__ import annotations

from datetime import datetime, timedelta

import httpx
import numpy as np

HOURS = 3


def trajectory(patient_id: str, end: datetime, sick: bool, seed: int) -> list[dict]:
    """3 h of vitals; the sick patient drifts over the last two hours towards shock and hypoxia."""
    rng = np.random.default_rng(seed)
    start = end - timedelta(hours=HOURS)
    seconds = np.arange(0, HOURS * 3600)
    drift = np.clip((seconds - 3600) / 7200, 0, 1) if sick else np.zeros_like(seconds, dtype=float)
    hr = 78 + 52 * drift + rng.normal(0, 2, seconds.size)
    out = [{"patient_id": patient_id, "vital": "hr", "ts": (start + timedelta(seconds=int(s))).isoformat(),
            "value": round(float(v), 1)} for s, v in zip(seconds, hr, strict=True)]
    for s in seconds[::30]:
        d = drift[s]
        ts = (start + timedelta(seconds=int(s))).isoformat()
        out.append({"patient_id": patient_id, "vital": "spo2", "ts": ts, "value": round(97 - 9 * d, 1)})
        out.append({"patient_id": patient_id, "vital": "rr", "ts": ts, "value": round(16 + 14 * d, 1)})
    for s in seconds[::300]:
        d = drift[s]
        ts = (start + timedelta(seconds=int(s) + 1)).isoformat()
        out.append({"patient_id": patient_id, "vital": "temp", "ts": ts, "value": round(36.9 + 1.8 * d, 2)})
        if s % 900 == 0:
            out.append({"patient_id": patient_id, "vital": "sbp", "ts": ts, "value": round(128 - 42 * d)})
            out.append({"patient_id": patient_id, "vital": "dbp", "ts": ts, "value": round(78 - 25 * d)})
    return out


def post_all(client: httpx.Client, readings: list[dict]) -> int:
    accepted = 0
    for i in range(0, len(readings), 10_000):
        response = client.post("/v1/readings", json={"readings": readings[i:i + 10_000]})
        assert response.status_code == 200, response.text
        accepted += response.json()["accepted"]
    return accepted
