"""``wardtwin replay``: score a simulated ward's history offline and print a digest of every score.

The same path as the service (ingest validation → SQLite store → the five-minute cycle → the twin)
on a temporary store, with time fixed by the simulated ward, so two runs with the same seed and
model must print the same SHA-256: the reproducibility check for scores.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import logging
import tempfile
from datetime import datetime, timedelta
from pathlib import Path

import pandas as pd

from app.domain import Score
from app.ingest import validate_batch
from app.pipeline.cycle import Cycle
from app.storage.codec import score_to_json
from app.storage.sqlite import SqliteStore
from models.twin import Twin
from models.windows import WINDOW
from simulator.ward import Ward

DEFAULT_START = datetime.fromisoformat("2026-01-05T00:00:00+00:00")


async def replay(beds: int, seed: int, hours: float, start: datetime, artifact: Path | None,
                 store_dir: Path) -> list[Score]:
    """Every score of a ``beds``-bed ward over ``hours``, oldest window first."""
    end = start + timedelta(hours=hours)
    ward = Ward(beds, seed, pd.Timestamp(start))
    items = ward.advance(pd.Timestamp(end))
    batch = validate_batch(items, now=end, max_future_skew=timedelta(0))
    if batch.errors:
        raise ValueError(f"the simulator produced {len(batch.errors)} invalid readings: {batch.errors[:3]}")
    store = SqliteStore(store_dir / "replay.db")
    await store.open()
    try:
        await store.write_readings(batch.readings)
        cycle = Cycle(store, Twin.load(artifact), alerts=None)
        window_end = start + WINDOW
        while window_end <= end:
            await cycle.run(window_end, scored_at=window_end)
            window_end += WINDOW
        scores: list[Score] = []
        for patient_id in await store.patient_ids():
            scores += await store.score_history(patient_id, start, end + WINDOW)
        return sorted(scores, key=lambda s: (s.window_end, s.patient_id))
    finally:
        await store.close()


def digest(scores: list[Score]) -> str:
    sha = hashlib.sha256()
    for score in scores:
        sha.update(score_to_json(score).encode())
        sha.update(b"\n")
    return sha.hexdigest()


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="wardtwin replay", description=__doc__.split("\n\n")[0])
    parser.add_argument("--beds", type=int, default=24)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--hours", type=float, default=6.0)
    parser.add_argument("--start", type=datetime.fromisoformat, default=DEFAULT_START)
    parser.add_argument("--artifact", type=Path, default=None)
    parser.add_argument("--out", type=Path, default=None, help="also write the scores as JSON lines here")
    args = parser.parse_args(argv)
    for noisy in ("app", "simulator"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    with tempfile.TemporaryDirectory() as tmp:
        scores = asyncio.run(replay(args.beds, args.seed, args.hours, args.start, args.artifact, Path(tmp)))
    if args.out:
        args.out.write_text("".join(score_to_json(s) + "\n" for s in scores))
    print(f"{len(scores)} scores, {len({s.patient_id for s in scores})} patients, "
          f"{len({s.window_end for s in scores})} window ends; sha256 {digest(scores)}")
    return 0
