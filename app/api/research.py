"""Admin-only research routes (issue 25): a de-identified export of the store's patients and differentially private
ward statistics spent from the store's privacy budget (``app.research``; the CLI ``wardtwin export …`` runs the same
code on cohort files and set A).

The store is one data set (``STORE_DATASET``) with one lifetime budget in ``DATA_DIR/privacy.db``: its patients stay
the same people as it grows, so every query composes with every earlier one. A query past the budget is refused
with 409 ``privacy_budget_exhausted`` naming what remains; without ``WARDTWIN_RESEARCH_SECRET`` an export is refused
with 409 ``research_secret_missing`` (never a default key).
"""

from __future__ import annotations

import asyncio
import json
import secrets
from datetime import UTC, datetime, timedelta
from pathlib import Path as FsPath
from typing import Annotated, Any, Literal

import pandas as pd
from fastapi import APIRouter, Depends, Path, Request
from fastapi.responses import FileResponse
from pydantic import BaseModel, Field

from app.api.auth import Caller, requires
from app.api.deps import ServiceDep
from app.api.errors import PROBLEM_MEDIA_TYPE, ProblemResponse, problem
from app.research import deidentify as D
from app.research import dp as P
from app.research.ledger import BudgetExhaustedError, PrivacyLedger
from app.research.source import from_store_windows

router = APIRouter(tags=["research"], dependencies=[Depends(requires("admin"))])

STORE_DATASET = "store"
EXPORT_ID_PATTERN = r"^[0-9a-f]{16}$"
_EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)


class ExportIn(BaseModel):
    model_config = {"extra": "forbid"}

    k: int = Field(5, ge=2, le=1000, description="k-anonymity: patients sharing every released quasi-identifier")
    l: int = Field(2, ge=1, le=2, description="distinct l-diversity of the 0/1 outcome per class (at most 2)")  # noqa: E741
    t: float | None = Field(None, ge=0, le=1, description="t-closeness bound (EMD on the ordered outcome); "
                                                          "absent: reported only")
    max_suppression: float = Field(0.05, ge=0, le=1, description="largest share of patients suppressed before "
                                                                  "generalising further")


class AggregateIn(BaseModel):
    model_config = {"extra": "forbid"}

    statistic: Literal["admissions", "deterioration_rate", "vitals_by_hour"]
    epsilon: float = Field(ge=P.MIN_EPSILON, le=10,
                           description="the ε this query spends from the store's budget (0.001 to 10)")
    vital: Literal["hr_mean", "rr_mean", "spo2_mean", "sbp", "temp"] = "hr_mean"
    max_hours: int = Field(24, ge=1, le=24, description="vitals_by_hour: hours of day one patient contributes to")


def _problem(description: str) -> dict[str, Any]:
    return {"description": description,
            "content": {PROBLEM_MEDIA_TYPE: {"schema": {"$ref": "#/components/schemas/Problem"}}}}


def _exports_dir(wt: Any) -> FsPath:
    return FsPath(wt.settings.data_dir) / "research-exports"


def _ledger(wt: Any) -> PrivacyLedger:
    return PrivacyLedger(FsPath(wt.settings.data_dir) / "privacy.db")


async def _store_data(wt: Any) -> tuple[pd.DataFrame, pd.DataFrame]:
    windows = await wt.store.windows(None, _EARLIEST, wt.now() + timedelta(days=1))
    return await asyncio.to_thread(from_store_windows, windows)


def _refusal(code: str, status: int, detail: str, **extra: Any) -> ProblemResponse:
    return ProblemResponse(problem(status, code, detail, title=code.replace("_", " ").capitalize(), **extra),
                           status_code=status)


@router.post("/v1/research/exports", status_code=201, summary="De-identified export of the store's patients",
             responses={409: _problem("no research secret configured (`research_secret_missing`)")})
async def create_export(wt: ServiceDep, body: ExportIn, request: Request) -> Any:
    """Pseudonyms and date shifts keyed by the deployment secret, quasi-identifiers generalised and suppressed until
    k, l (and t) hold (``app.research.deidentify``); the report says what was done and what it cost."""
    secret = wt.settings.research_secret
    if secret is None:
        return _refusal("research_secret_missing", 409, "no research secret: set WARDTWIN_RESEARCH_SECRET (at least "
                        "32 random bytes) to key pseudonyms and date shifts")
    patients, windows = await _store_data(wt)
    export = await asyncio.to_thread(D.deidentify, patients, windows, secret=secret.get_secret_value().encode(),
                                     k=body.k, l_=body.l, t=body.t, max_suppression=body.max_suppression,
                                     outcome_name="deteriorated")
    export_id = secrets.token_hex(8)
    folder = _exports_dir(wt)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{export_id}.csv"
    await asyncio.to_thread(export.rows.to_csv, path, index=False, lineterminator="\n", float_format="%.6g")
    request.state.audit_target = f"research-export:{export_id}"
    report = json.loads(json.dumps(export.report, default=str))
    return {"id": export_id, "created_at": wt.now().isoformat(), "rows": len(export.rows),
            "csv": f"/v1/research/exports/{export_id}/export.csv", "report": report}


@router.get("/v1/research/exports/{export_id}/export.csv", summary="The CSV of a de-identified export",
            response_class=FileResponse, responses={200: {"content": {"text/csv": {}}}})
async def export_csv(wt: ServiceDep, export_id: Annotated[str, Path(pattern=EXPORT_ID_PATTERN)]) -> FileResponse:
    """The export's windows as CSV (the columns its report names)."""
    path = _exports_dir(wt) / f"{export_id}.csv"
    if not path.is_file():
        return _refusal("export_not_found", 404, f"no research export {export_id!r}")  # type: ignore[return-value]
    return FileResponse(path, media_type="text/csv", filename="export.csv")


@router.post("/v1/research/aggregates", summary="A differentially private ward statistic (spends ε from the budget)",
             responses={409: _problem("the store's privacy budget would be exceeded (`privacy_budget_exhausted`, "
                                      "with `remaining_epsilon` and `remaining_delta`)")})
async def aggregate(wt: ServiceDep, body: AggregateIn, who: Caller) -> Any:
    """Patient-level ε-DP through OpenDP's Laplace mechanism (``app.research.dp``); the spend is recorded before the
    answer is computed."""
    query = P.Query(body.statistic, body.epsilon, body.vital, body.max_hours).check()
    settings = wt.settings
    try:
        after = await asyncio.to_thread(
            _ledger(wt).spend, STORE_DATASET, body.epsilon, 0.0, query=json.dumps(query.__dict__), actor=who.name,
            at=wt.now(), budget=(settings.research_epsilon_budget, settings.research_delta_budget))
    except BudgetExhaustedError as exc:
        b = exc.budget
        return _refusal(exc.code, 409, str(exc), remaining_epsilon=b.remaining_epsilon,
                        remaining_delta=b.remaining_delta, budget_epsilon=b.epsilon, budget_delta=b.delta,
                        requested_epsilon=exc.epsilon)
    patients, windows = await _store_data(wt)
    result = await asyncio.to_thread(P.release, patients, windows, query)
    return {**result, "dataset": STORE_DATASET, "budget": after.as_dict()}


@router.get("/v1/research/budget", summary="The store's privacy budget: total, spent, remaining, and each spend")
async def budget(wt: ServiceDep) -> Any:
    """The ledger's entry for the store (created at the configured budget if no query has been made yet)."""
    s = wt.settings
    ledger = _ledger(wt)
    b = await asyncio.to_thread(ledger.budget, STORE_DATASET, s.research_epsilon_budget, s.research_delta_budget,
                                wt.now())
    return {**b.as_dict(), "spends": await asyncio.to_thread(ledger.spends, STORE_DATASET)}


__all__ = ["STORE_DATASET", "router"]
