"""CDS Hooks 2.0 (cds-hooks.org): the discovery document and the ``patient-view`` card (the mapping only).

One card per patient with a score: its indicator is the bed's RCP 2017 clinical-response band as the ward board
ranks it (``app.urgency.level``: the NEWS2 band, raised by an open NEWS2 or observations-due alert and by stale
data) — ``high`` → critical, ``medium`` and ``low-medium`` → warning, ``low`` → info; the summary (at most 140
characters) gives NEWS2 and the twin's 6-hour risk; the detail the clinical response and the top reasons; the link
opens the board's patient view.
"""

from __future__ import annotations

import uuid
from typing import Any, Final

from app.alerts.criteria import criteria_reasons
from app.domain import Score
from app.interop.fhir import explanation, instant

SERVICE_ID: Final = "wardtwin-deterioration"
HOOK: Final = "patient-view"
MAX_SUMMARY: Final = 140
#: Clinical-response band → card indicator.
INDICATORS: Final[dict[str, str]] = {"high": "critical", "medium": "warning", "low-medium": "warning",
                                     "low": "info"}
TOP_REASONS: Final = 3
_CARD_NAMESPACE: Final = uuid.UUID("6f1c1a52-6a43-4a4e-9f55-3c7d0a9b2e10")


def discovery() -> dict[str, Any]:
    return {"services": [{
        "hook": HOOK, "id": SERVICE_ID, "title": "wardtwin deterioration risk",
        "description": "The patient's NEWS2 and the digital twin's risk of deterioration within 6 hours, with the "
                       "RCP clinical response and the reasons; a link to the ward board's patient view.",
        "usageRequirements": "An API key with the role ehr or clinician (Authorization: Bearer <key>).",
    }]}


def shorten(text: str, limit: int = MAX_SUMMARY) -> str:
    return text if len(text) <= limit else text[:limit - 1].rstrip() + "…"


def reasons(score: Score) -> list[str]:
    """The criteria met now, then the sentences that raise the risk most (as the board's top reason is chosen)."""
    rising = {c.sentence for c in score.contributions if c.sentence and c.points > 0}
    ranked = [s for s in explanation(score) if s in rising]
    return list(dict.fromkeys([*criteria_reasons(score), *ranked]))[:TOP_REASONS]


def card(score: Score, band: str, stale: bool, open_alerts: list[str], board_url: str) -> dict[str, Any]:
    """The ``patient-view`` card of a patient's latest score. ``band``: the bed's clinical-response level."""
    news2 = score.news2
    risk = f"6-h deterioration risk {score.risk:.0%}"
    head = f"NEWS2 {news2.total} ({band} clinical risk)" if news2 is not None else f"{band} clinical risk"
    summary = f"{head}; {risk}" + ("; data not current" if stale else "")
    lines = []
    if news2 is not None:
        lines.append(f"**Clinical response (RCP 2017):** {news2.response.rstrip('.')}. "
                     f"Observations: {news2.monitoring}.")
    found = reasons(score)
    if found:
        lines.append("**Why:**\n" + "\n".join(f"- {r}" for r in found))
    if open_alerts:
        lines.append("**Open alerts:** " + ", ".join(open_alerts))
    if stale:
        lines.append("**No current monitor data**: the latest score may not reflect the patient now.")
    lines.append(f"Scored for the window ending {instant(score.window_end)} by model {score.model_version}; the "
                 "risk is a probability (0–1) of deterioration within 6 hours.")
    return {
        "uuid": str(uuid.uuid5(_CARD_NAMESPACE, f"{score.patient_id}|{instant(score.window_end)}|{band}")),
        "summary": shorten(summary),
        "detail": "\n\n".join(lines),
        "indicator": INDICATORS.get(band, "info"),
        "source": {"label": "wardtwin", "topic": {"code": "deterioration-risk", "display": "Deterioration risk",
                                                  "system": "urn:wardtwin:fhir:outcome"}},
        "links": [{"label": "Open in the wardtwin ward board", "url": board_url, "type": "absolute"}],
    }
