"""Health, NEWS2 for hand-charted observations, and the admin cycle trigger."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Depends, Query

from app.api.auth import requires
from app.api.deps import ServiceDep
from app.api.schemas import CycleOut, IsoDatetime, News2In, News2Out
from app.errors import InvalidRequestError, StoreUnavailableError
from app.service import WardTwin
from models import news2
from models.schema import EARLIEST_READING_AT, WINDOW_MINUTES

router = APIRouter()
#: Health fields that would disclose the host's layout (the database file's path): never served.
_INTERNAL = frozenset({"path", "spool_path"})


@router.get("/healthz", tags=["system"], summary="Liveness, store state and backlogs")
async def healthz(wt: ServiceDep) -> dict:
    store = {k: v for k, v in (await wt.store.health()).items() if k not in _INTERNAL}
    # the control store: its engine and whether it answers (its file or host:port/database is not shown to an
    # unauthenticated caller, like the vital store's paths); when it does not, the health still answers (not ok)
    # rather than a 503 (issue 24)
    control = {k: v for k, v in (await wt.alert_store.db.health()).items() if k != "database"}
    try:
        ahead = await _ahead_of_clock(wt)
        backlog, pending = await wt.alert_store.backlog(), await wt.alert_store.pending_delivery()
        unopened = len(await wt.webhooks.unopened()) if wt.webhooks is not None else 0
    except StoreUnavailableError as exc:
        control = {**control, "ok": False, "error": str(exc)}
        ahead, backlog, pending, unopened = {}, None, None, 0
    readings_ahead = await _readings_ahead_of_clock(wt) if store.get("ok") else None
    return {
        "ok": bool(store.get("ok")) and bool(control.get("ok")) and not ahead and not unopened and not readings_ahead,
        "store": store,
        "control_store": control,
        "window_ends_ahead_of_clock": ahead,
        "readings_ahead_of_clock": readings_ahead,
        "alerts_outbox_backlog": backlog,
        "alerts_pending_delivery": pending,
        # webhook endpoints whose signing secret this instance cannot open (sealed under a key its key file lacks:
        # a fleet instance given another file, or a lost key): their deliveries fail here (H18); a count, never ids
        "webhook_secrets_unopened": unopened,
        "websocket_clients": wt.hub.client_count,
        "model_version": wt.twin.version,
        "twin_alert_threshold": wt.engine.policy.threshold,
        "last_window_end": wt.scheduler.last_window_end if wt.scheduler else None,
        # a fleet instance (app.fleet): its leases and the fleet's as its last renewal saw them; absent otherwise
        **({"fleet": wt.fleet.health()} if wt.fleet is not None else {}),
        "now": wt.clock.now(),
    }


async def _ahead_of_clock(wt: WardTwin) -> dict[str, datetime]:
    """Window ends more than one window past the clock (written while it ran ahead): the alert rules' newest, the
    scheduler's resume point, or the one it discarded, and the newest score the read model refused as a latest
    (scores the store still holds ahead of the clock, in the history until real time passes them) (issue 21,
    finding 1). Any of them makes ``ok`` false."""
    limit = wt.clock.now() + timedelta(minutes=WINDOW_MINUTES)
    found = {"alerts": await wt.alert_store.newest_window_end(),
             "scheduler": wt.scheduler.last_window_end if wt.scheduler else None,
             "discarded_resume_point": wt.scheduler.ahead_of_clock if wt.scheduler else None,
             "latest_scores_dropped": wt.read_model.newest_dropped if wt.read_model else None}
    return {name: at for name, at in found.items() if at is not None and at > limit}


async def _readings_ahead_of_clock(wt: WardTwin) -> datetime | None:
    """The newest stored reading stamped later than ingestion accepts now (the clock plus ``max_future_skew_s``):
    accepted while the clock ran ahead (a reading sent without a timestamp is stamped by it), it would be windowed as
    that later moment's vitals when real time reaches it. Makes ``ok`` false until then (H17)."""
    try:
        return await wt.store.newest_reading_after(wt.clock.now() + timedelta(seconds=wt.settings.max_future_skew_s))
    except StoreUnavailableError:
        return None  # the store's own health already says it is down


@router.post("/v1/news2", dependencies=[Depends(requires("clinician", "ehr"))], response_model=News2Out,
             tags=["news2"], summary="NEWS2 of one charted observation set")
async def post_news2(body: News2In) -> News2Out:
    try:
        result = news2.score(**body.model_dump())
    except ValueError as exc:
        field = getattr(exc, "field", None)
        raise InvalidRequestError(["body", *([field] if field else [])], str(exc)) from None
    return News2Out.of(news2.News2Summary.of(result))


@router.post("/v1/cycle", dependencies=[Depends(requires("admin"))], response_model=CycleOut, tags=["system"],
             summary="Run the five-minute cycle for a given window end (idempotent)")
async def run_cycle(
    wt: ServiceDep,
    window_end: Annotated[IsoDatetime, Query(description=f"aligned or not; from {EARLIEST_READING_AT:%Y-%m-%d} UTC "
                                                      "to the service clock's now + one window")],
) -> CycleOut:
    """A window end before the readings' floor, or more than one window past the service clock (a window that
    has not begun), is refused: the cycle would score windows no reading can be in."""
    if window_end.tzinfo is None:
        raise InvalidRequestError(["query", "window_end"], "window_end must carry a timezone offset", "datetime")
    now = wt.now()
    if window_end < EARLIEST_READING_AT:
        raise InvalidRequestError(["query", "window_end"], f"window_end {window_end.isoformat()} is before "
                                  f"{EARLIEST_READING_AT.isoformat()}, the earliest reading accepted", "too_early")
    if window_end > now + timedelta(minutes=WINDOW_MINUTES):
        raise InvalidRequestError(["query", "window_end"], f"window_end {window_end.isoformat()} is more than one "
                                  f"window ({WINDOW_MINUTES} min) after the service's now, {now.isoformat()}",
                                  "future")
    result = await wt.run_cycle(window_end)
    return CycleOut(**result.__dict__)
