"""Builds the app from settings; nothing runs at import. The only place a store adapter is chosen."""

from __future__ import annotations

import gc
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.staticfiles import StaticFiles

from app.alerts.notify import OnCommit
from app.api import admin, alerts, board, errors, observations, pages, patients, readings, system, webhooks
from app.api import cds_hooks as cds_hooks_api
from app.api import fhir as fhir_api
from app.api import hl7 as hl7_api
from app.api import research as research_api
from app.api.auth import Authenticate
from app.api.edge import BoardMount, Edge, board_csp, redact_keys_in_access_logs
from app.api.openapi import document_errors
from app.clock import Clock, SystemClock
from app.interop import mllp
from app.readmodel import LatestView
from app.security.access import Access
from app.service import WardTwin
from app.settings import Settings
from app.storage.base import VitalStore
from app.storage.observed import ObservedStore
from app.storage.sqlite import SqliteStore
from models.twin import Twin
from models.windows import WINDOW

logger = logging.getLogger(__name__)


def make_store(settings: Settings) -> VitalStore:
    if settings.influx_url is None:
        return SqliteStore(settings.sqlite_path)
    from app.storage.influx import InfluxStore

    return InfluxStore(
        str(settings.influx_url).rstrip("/"), settings.influx_database,
        retention_policy=settings.influx_retention_policy,
        username=settings.influx_username,
        password=settings.influx_password.get_secret_value() if settings.influx_password else None,
        token=settings.influx_token.get_secret_value() if settings.influx_token else None,
        spool_path=settings.spool_path, batch_size=settings.influx_batch_size,
    )


def create_app(settings: Settings | None = None, clock: Clock | None = None, *,
               cycle_interval_s: float | None = WINDOW.total_seconds(), store: VitalStore | None = None) -> FastAPI:
    """``cycle_interval_s=None`` builds no scheduler (tests and ``replay`` drive ``POST /v1/cycle``
    themselves); otherwise APScheduler calls the cycle every ``cycle_interval_s`` seconds of wall time."""
    settings = settings or Settings()
    clock = clock or SystemClock()
    twin = Twin.load(settings.artifact_path)
    # the read model, fed by the store it observes; no score ahead of the clock is a latest (issue 21, H17)
    latest = LatestView(patients.encode_risk, patients.encode_board, clock)
    wt = WardTwin.build(settings, clock, ObservedStore(store or make_store(settings), latest), twin, cycle_interval_s)
    wt.read_model = latest
    wt.engine.subscribe(OnCommit(latest.alerts_changed))
    access = Access(settings)
    if wt.fleet is not None:  # a key's rate is shared by the live instances (app/security/ratelimit.py)
        access.limiter.instances = lambda: wt.fleet.leases.view.instances_alive

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        access.open()
        await wt.start()
        app.state.mllp = await mllp.start(settings, wt)  # HL7 v2 over MLLP; None when WARDTWIN_MLLP_PORT is unset
        # The objects built at start-up (the twin, pandas, sklearn, the routes) never die: moved out of the
        # collector's generations, the full collections that ingest's allocations trigger no longer scan them.
        gc.freeze()
        try:
            yield
        finally:
            if app.state.mllp is not None:
                await app.state.mllp.close()
            await wt.stop()
            access.close()

    app = FastAPI(
        title="wardtwin",
        version="0.1.0",
        summary="Patient-deterioration digital twin: risk within 6 h, explained, with NEWS2 beside it.",
        lifespan=lifespan,
        docs_url=None, redoc_url=None,  # app.api.pages serves both from the package's own assets (no CDN)
        redirect_slashes=False,  # a trailing-slash redirect reflects the request's Host in Location (issue 21)
    )
    app.state.wardtwin = wt
    app.state.access = access
    errors.register(app)
    document_errors(app)
    # Every module's routes become routes of the app's one router (not included routers, which FastAPI matches
    # twice per request), ahead of the documentation's; the hot reads first, so they are matched first.
    app.router.routes[:0] = [route for module in (patients, readings, observations, alerts, board, system, webhooks,
                                                  admin, research_api, pages)
                             for route in module.router.routes]
    app.router.routes.extend(route for module in (hl7_api, fhir_api, cds_hooks_api)
                             for route in module.router.routes)  # interop
    static = Path(__file__).parent / "static"
    if static.is_dir():
        app.router.routes.append(BoardMount("/", StaticFiles(directory=static, html=True), name="dashboard"))
    app.add_middleware(Edge, access=access, max_body_bytes=settings.max_body_bytes, csp=board_csp(static))
    app.add_middleware(Authenticate, access=access)  # outside the edge: no body is read before a key is admitted
    redact_keys_in_access_logs()
    if settings.cors_origins:  # closed unless configured
        app.add_middleware(CORSMiddleware, allow_origins=settings.cors_origins, allow_methods=["GET", "POST"],
                           allow_headers=["Authorization", "Content-Type"])
    return app


def app_from_env() -> FastAPI:
    """Factory for ``uvicorn app.main:app_from_env --factory``: settings from WARDTWIN_* variables."""
    settings = Settings()
    return create_app(settings, cycle_interval_s=WINDOW.total_seconds() if settings.scheduler_enabled else None)
