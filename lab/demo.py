"""``wardtwin demo``: a simulated ward streamed through the ingest API in accelerated time.

Start-up: the service starts on the embedded store (or InfluxDB when WARDTWIN_INFLUX_URL is set),
a few hours of the ward's history are posted — the monitors' readings through ``POST /v1/readings``, each
observation set the simulated nurse charts through ``POST /v1/observations`` (so NEWS2 escalates as the RCP
defines it, in that request) — and scored window by window, then the ward streams live at ``--speed`` × real
time while APScheduler runs the cycle at the matching accelerated interval. Ctrl-C stops cleanly: every
reading generated is either acknowledged by the service or regenerated on the next start, because the demo records in
``data/demo.json`` the simulated time up to which the service has acknowledged everything, and a
restart rebuilds the (deterministic) ward and resumes from there.

``--mix enriched`` (the default) is the training mix, 12 % deteriorating, so a demo shows deteriorations within
hours; ``--mix ward`` is a general ward (0.02 deteriorations per patient-day), to watch a ward's real alert rate.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pandas as pd
import uvicorn
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception_type,
    retry_if_result,
    stop_never,
    wait_exponential,
)

from app.api.serving import uvicorn_options
from app.clock import AcceleratedClock
from app.main import create_app
from app.security.access import Access
from app.security.keys import ROLES
from app.service import WardTwin
from app.settings import Settings
from models.windows import WINDOW, align
from simulator.archetypes import NAMED_MIXES
from simulator.sinks import split_observations
from simulator.ward import Ward

logger = logging.getLogger(__name__)

BATCH = 10_000
#: Between attempts: 0.2 s doubling to at most 5 s (tests make it instant).
RETRY_WAIT = wait_exponential(multiplier=0.2, max=5)


def riding_out(what: str) -> AsyncRetrying:
    """Retries of a request while the service answers 5xx or cannot be reached, without limit: a store outage is
    ridden out, never a reason for the demo to exit (issue 21, finding 10: a 503 from the cycle stopped it)."""
    def told(state: RetryCallState) -> None:
        outcome = state.outcome
        why = (f"HTTP {outcome.result().status_code}" if outcome is not None and not outcome.failed
               else repr(outcome.exception()) if outcome is not None else "?")
        logger.warning("%s: %s (attempt %d); retrying", what, why, state.attempt_number)

    return AsyncRetrying(
        retry=retry_if_exception_type(httpx.TransportError) | retry_if_result(lambda r: r.status_code >= 500),
        stop=stop_never, wait=RETRY_WAIT, before_sleep=told)
DEMO_KEY_PREFIX = "demo session "


def session_keys(access: Access, at: datetime) -> dict[str, str]:
    """One new key per role for this demo session (the previous session's are revoked): role → token."""
    for key in access.keys.list():
        if key.name.startswith(DEMO_KEY_PREFIX) and key.revoked_at is None:
            access.keys.revoke(key.id, at)
    return {role: access.keys.create(DEMO_KEY_PREFIX + role, role, at)[1] for role in ROLES}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@dataclass
class DemoState:
    seed: int
    beds: int
    epoch: datetime  # the ward's simulated start (its history begins here)
    acknowledged_until: datetime  # everything the ward delivered up to here is stored
    mix: str = "enriched"  # the ward's archetype mix (``simulator.archetypes.NAMED_MIXES``)

    @classmethod
    def load(cls, path: Path) -> DemoState | None:
        if not path.exists():
            return None
        data = json.loads(path.read_text())
        return cls(data["seed"], data["beds"], datetime.fromisoformat(data["epoch"]),
                   datetime.fromisoformat(data["acknowledged_until"]), data.get("mix", "enriched"))

    def save(self, path: Path) -> None:
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"seed": self.seed, "beds": self.beds, "epoch": self.epoch.isoformat(),
                                   "acknowledged_until": self.acknowledged_until.isoformat(), "mix": self.mix},
                                  indent=2))
        tmp.replace(path)


async def post_readings(client: httpx.AsyncClient, readings: list[dict],
                        spo2_scale: Callable[[str], int] | None = None) -> int:
    """Post the monitors' readings in batches through ``POST /v1/readings`` and each charted set through
    ``POST /v1/observations`` (``simulator.sinks.split_observations``: never the set's values as readings too;
    ``spo2_scale``: each patient's NEWS2 SpO2 scale, ``Ward.spo2_scale``).
    Transport errors and 5xx are retried until they pass (``riding_out``); a 422 is logged (bad items named) and
    not retried. Returns how many observation sets were posted."""
    monitor, sets = split_observations(readings, spo2_scale)
    for i in range(0, len(monitor), BATCH):
        batch = monitor[i:i + BATCH]
        response = await riding_out("readings")(client.post, "/v1/readings", json={"readings": batch})
        if response.status_code == 422:
            logger.warning("ingest rejected items: %s", response.text[:500])
    for body in sets:
        response = await riding_out("observation set")(client.post, "/v1/observations", json=body)
        if response.status_code == 422:
            logger.warning("observation set rejected: %s", response.text[:500])
    return len(sets)


@dataclass(frozen=True)
class DemoOptions:
    """What ``wardtwin demo`` was asked for (see the options in ``lab.cli``)."""

    host: str = "127.0.0.1"
    port: int = 8000
    speed: float = 60.0  # simulated seconds per real second
    beds: int = 24
    seed: int = 7
    history_hours: float = 4.0
    data_dir: Path | None = None  # None → WARDTWIN_DATA_DIR or ./data (the demo is the configured service)
    fresh: bool = False  # forget a previous demo's ward
    mix: str = "enriched"  # ``enriched`` (deteriorations within hours) or ``ward`` (a general ward's rate)


def _state(args: DemoOptions, path: Path) -> tuple[DemoState, bool]:
    state = DemoState.load(path)
    if state and not args.fresh and (state.seed, state.beds, state.mix) == (args.seed, args.beds, args.mix):
        return state, True
    epoch = align(datetime.now(UTC) - timedelta(hours=args.history_hours)).to_pydatetime()
    return DemoState(args.seed, args.beds, epoch, epoch, args.mix), False


async def run(args: DemoOptions) -> int:
    settings = Settings(**({"data_dir": args.data_dir} if args.data_dir else {}))
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    state_path = settings.data_dir / "demo.json"
    state, resumed = _state(args, state_path)
    sim_start = max(state.acknowledged_until, state.epoch + timedelta(hours=args.history_hours))
    clock = AcceleratedClock(sim_start, args.speed)
    app = create_app(settings, clock, cycle_interval_s=WINDOW.total_seconds() / args.speed)
    wt = app.state.wardtwin
    server = uvicorn.Server(uvicorn.Config(app, host=args.host, port=args.port, log_level="warning",
                                           **uvicorn_options(settings)))
    server_task = asyncio.create_task(server.serve())
    while not server.started:
        if server_task.done():
            return 1
        await asyncio.sleep(0.05)

    base = f"http://{args.host}:{args.port}"
    keys = session_keys(app.state.access, datetime.now(UTC))
    feed = asyncio.create_task(_feed(args, state, state_path, resumed, clock, wt, base, keys))
    stopping = asyncio.create_task(_until_exit_requested(server))
    with contextlib.suppress(asyncio.CancelledError):
        await asyncio.wait({server_task, feed, stopping}, return_when=asyncio.FIRST_COMPLETED)
    # Ctrl-C (uvicorn sets should_exit) or the feed gave up: stop feeding first, so no request races the
    # shutdown; whatever was not acknowledged is regenerated from the saved ward time on the next start.
    feed.cancel()
    stopping.cancel()
    failure: BaseException | None = None
    with contextlib.suppress(asyncio.CancelledError):
        await feed
    if feed.done() and not feed.cancelled():
        failure = feed.exception()
    if failure is not None:
        print(f"demo stopped: {failure}", flush=True)
        server.should_exit = True
    with contextlib.suppress(asyncio.CancelledError, KeyboardInterrupt):
        await server_task
    print(f"stopped; ward time {state.acknowledged_until:%Y-%m-%d %H:%M} saved in {state_path}", flush=True)
    return 1 if failure is not None else 0


async def _until_exit_requested(server: uvicorn.Server) -> None:
    while not server.should_exit:
        await asyncio.sleep(0.1)


async def _feed(args: DemoOptions, state: DemoState, state_path: Path, resumed: bool,
                clock: AcceleratedClock, wt: WardTwin, base: str, keys: dict[str, str]) -> None:
    """Post the history and score it through the public API, then stream the ward until cancelled.

    APScheduler runs the live cycle from the start (and, after a restart, resumes after the newest window end
    scored); the history's window ends are scored through ``POST /v1/cycle``, as an operator would."""
    history_end = state.epoch + timedelta(hours=args.history_hours)
    ward = Ward(args.beds, args.seed, pd.Timestamp(state.epoch), archetype_mix=NAMED_MIXES[args.mix])
    if resumed:
        ward.advance(pd.Timestamp(state.acknowledged_until))  # already stored: regenerate and discard
    async with httpx.AsyncClient(base_url=base, timeout=60, headers=bearer(keys["device"])) as client:
        if state.acknowledged_until < history_end:
            t0 = time.perf_counter()
            history = ward.advance(pd.Timestamp(history_end))
            sets = await post_readings(client, history, ward.spo2_scale)
            state.acknowledged_until = history_end
            state.save(state_path)
            print(f"history: {len(history):,} readings of {args.history_hours:g} h posted "
                  f"({sets} nurse's observation sets among them) in {time.perf_counter() - t0:.1f} s", flush=True)
            window_end = state.epoch + WINDOW
            while window_end <= history_end:
                response = await riding_out("history cycle")(  # a 503 while the store is down: wait it out
                    client.post, "/v1/cycle", params={"window_end": window_end.isoformat()},
                    headers=bearer(keys["admin"]))
                response.raise_for_status()
                window_end += WINDOW
            print(f"history: scored {args.history_hours * 12:.0f} windows for {args.beds} beds "
                  f"in {time.perf_counter() - t0:.1f} s", flush=True)
        await _stream_until(clock.now(), ward, client, state, state_path)
        print(f"\nwardtwin demo{' (resumed)' if resumed else ''}: {args.beds} beds ({args.mix} mix) "
              f"at {args.speed:g}x, "
              f"store={wt.store.name}, model={wt.twin.version}")
        shown = f"http://127.0.0.1:{args.port}" if args.host in ("0.0.0.0", "::", "") else base  # a browsable URL
        print(f"  ward board   {shown}/?key={keys['clinician']}   (the key is kept for the browser session)\n"
              f"  API docs     {shown}/docs   (offline: assets shipped with the package)\n"
              f"  patients     {shown}/v1/patients")
        print(f"  alerts       {shown}/v1/alerts   (live: ws://{shown.removeprefix('http://')}/v1/ws/alerts)")
        print(f"  clock        simulated, {args.speed:g}x real time ({300 / args.speed:g} s per 5-minute window); "
              f"ward time {clock.now():%Y-%m-%d %H:%M} UTC, shown in {wt.settings.ward_time_zone} on the board")
        print("  API keys for this session (Authorization: Bearer <key>; revoked by the next demo start):")
        for role, token in keys.items():
            print(f"  {role:<10}   {token}")
        print("  Ctrl-C stops; a restart resumes the same ward.\n", flush=True)
        while True:
            await asyncio.sleep(1.0)
            await _stream_until(clock.now(), ward, client, state, state_path)


async def _stream_until(until: datetime, ward: Ward, client: httpx.AsyncClient, state: DemoState,
                        state_path: Path) -> None:
    readings = ward.advance(pd.Timestamp(until))
    if readings:
        await post_readings(client, readings, ward.spo2_scale)
    state.acknowledged_until = until
    state.save(state_path)


def demo(*, host: str, port: int, speed: float, beds: int, seed: int, history_hours: float, data_dir: Path | None,
         fresh: bool, mix: str = "enriched") -> int:
    """``wardtwin demo``: run until Ctrl-C."""
    if mix not in NAMED_MIXES:
        raise ValueError(f"unknown mix {mix!r}; known: {', '.join(NAMED_MIXES)}")
    args = DemoOptions(host, port, speed, beds, seed, history_hours, data_dir, fresh, mix)
    for noisy in ("app", "httpx", "apscheduler", "simulator"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    with contextlib.suppress(KeyboardInterrupt):
        return asyncio.run(run(args))
    return 0
