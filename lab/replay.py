"""``wardtwin replay``: replay a simulated ward through the service and print a digest of every score.

The served path, in process: ``create_app`` with the service's default settings (challenger included; explicit:
no ``WARDTWIN_*`` variable or ``.env`` changes them) on a temporary data directory and a fixed clock that steps
through the ward's time. At each
window end the readings the ward delivered by then go through ``POST /v1/readings`` and the cycle runs
through ``POST /v1/cycle``; the scores are read back through ``GET /v1/patients/{id}/risk/history``.
Two runs with the same seed, settings and model must print the same SHA-256: the reproducibility
check for scores.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import tempfile
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pandas as pd

from app.clock import FixedClock
from app.main import create_app
from app.security.keys import new_token
from app.settings import Settings
from models.windows import WINDOW
from simulator.ward import Ward

DEFAULT_START = datetime.fromisoformat("2026-01-05T00:00:00+00:00")
BATCH = 10_000


async def replay(beds: int, seed: int, hours: float, start: datetime, data_dir: Path,
                 artifact: Path | None = None) -> list[dict[str, Any]]:
    """Every score of a ``beds``-bed ward over ``hours`` as the API serves it, oldest window end first."""
    end = start + timedelta(hours=hours)
    clock = FixedClock(start)
    key = new_token()  # this in-process session's key with every role (nothing else can reach the app)
    settings = Settings.explicit(data_dir=data_dir, demo_key=key, rate_limit_burst=10**9,  # its own: no limit
                                 **({"artifact_path": artifact} if artifact else {}))
    app = create_app(settings, clock, cycle_interval_s=None)
    ward = Ward(beds, seed, pd.Timestamp(start))
    async with app.router.lifespan_context(app), httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://replay",
            headers={"Authorization": f"Bearer {key}"}) as client:
        window_end = start + WINDOW
        while window_end <= end:
            clock.set(window_end)
            items = ward.advance(pd.Timestamp(window_end))
            for i in range(0, len(items), BATCH):
                response = await client.post("/v1/readings", json={"readings": items[i:i + BATCH]})
                if response.status_code != 200:
                    raise ValueError(f"the service rejected simulated readings: {response.text[:500]}")
            (await client.post("/v1/cycle", params={"window_end": window_end.isoformat()})).raise_for_status()
            window_end += WINDOW
        scores: list[dict[str, Any]] = []
        for patient in (await client.get("/v1/patients")).raise_for_status().json():
            response = await client.get(f"/v1/patients/{patient['patient_id']}/risk/history",
                                        params={"since": start.isoformat(), "until": end.isoformat()})
            scores += response.raise_for_status().json()
            while "next" in response.links:  # the history is paged (Link: rel="next")
                response = await client.get(response.links["next"]["url"])
                scores += response.raise_for_status().json()
    return sorted(scores, key=lambda s: (s["window_end"], s["patient_id"]))


def canonical(score: dict[str, Any]) -> str:
    return json.dumps(score, sort_keys=True, separators=(",", ":"))


def digest(scores: list[dict[str, Any]]) -> str:
    sha = hashlib.sha256()
    for score in scores:
        sha.update(canonical(score).encode())
        sha.update(b"\n")
    return sha.hexdigest()


def replay_command(*, beds: int, seed: int, hours: float, start: datetime | None, artifact: Path | None,
                   out: Path | None) -> int:
    """``wardtwin replay``: replay the ward and print the digest (and write the scores to ``out``)."""
    for noisy in ("app", "simulator", "httpx"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    with tempfile.TemporaryDirectory() as tmp:
        scores = asyncio.run(replay(beds, seed, hours, start or DEFAULT_START, Path(tmp), artifact))
    if out:
        out.write_text("".join(canonical(s) + "\n" for s in scores))
    print(f"{len(scores)} scores, {len({s['patient_id'] for s in scores})} patients, "
          f"{len({s['window_end'] for s in scores})} window ends; sha256 {digest(scores)}")
    return 0
