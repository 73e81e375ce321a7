"""HTML pages served beside the API: the patient view's address (the board's own page) and the API documentation
(Swagger UI at ``/docs``, ReDoc at ``/redoc``) from assets shipped in ``app/static/vendor`` (no CDN: they work
offline). The pages hold no patient data; the board fetches it with its key."""

from __future__ import annotations

from pathlib import Path as FsPath
from typing import Annotated

from fastapi import APIRouter, Path
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import FileResponse, HTMLResponse

from models.schema import PATIENT_ID_PATTERN

router = APIRouter(include_in_schema=False)
STATIC = FsPath(__file__).resolve().parent.parent / "static"
TITLE = "wardtwin"


@router.get("/patients/{patient_id}")
async def patient_page(patient_id: Annotated[str, Path(pattern=PATIENT_ID_PATTERN.pattern)]) -> FileResponse:
    """The board's page; its script shows the patient view for this address."""
    return FileResponse(STATIC / "index.html", media_type="text/html")


@router.get("/docs")
async def swagger_ui() -> HTMLResponse:
    return get_swagger_ui_html(openapi_url="/openapi.json", title=f"{TITLE} — API docs",
                               swagger_js_url="/vendor/swagger-ui/swagger-ui-bundle.js",
                               swagger_css_url="/vendor/swagger-ui/swagger-ui.css",
                               swagger_favicon_url="/vendor/swagger-ui/favicon-32x32.png")


@router.get("/redoc")
async def redoc() -> HTMLResponse:
    return get_redoc_html(openapi_url="/openapi.json", title=f"{TITLE} — API reference",
                          redoc_js_url="/vendor/redoc/redoc.standalone.js",
                          redoc_favicon_url="/vendor/swagger-ui/favicon-32x32.png", with_google_fonts=False)
