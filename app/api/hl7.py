"""POST /v1/hl7: one HL7 v2 message (IHE PCD-01 ORU^R01, ER7) over HTTP, answered with its ACK.

The same handling as the MLLP listener (``app.interop.hl7.receive``): the ACK's MSA-1 carries the outcome, and the
HTTP status mirrors it (AA 200, AE 422: some observations refused and named, the good ones stored; AR 400:
nothing stored; 503 with an AR when the store is unavailable), so an HTTP client that only reads statuses still
sees a refusal.
"""

from __future__ import annotations

from typing import Final

from fastapi import APIRouter, Depends, Request, Response

from app.api.auth import requires
from app.api.deps import ServiceDep
from app.api.device_writes import audit_write
from app.interop.hl7 import HL7_MEDIA_TYPE, receive
from app.service import Ingested

router = APIRouter(tags=["interop"], dependencies=[Depends(requires("device", audited=False))])

STATUS: Final = {"AA": 200, "AE": 422, "AR": 400}
_ER7 = {"schema": {"type": "string"}}
_EXAMPLE = ("MSH|^~\\&|Gateway^ACDE48234567ABCD^EUI-64||||20260302115700+0000||ORU^R01^ORU_R01|MSG1|P|2.6\r"
            "PID|||bed-01^^^Ward^PI\rOBR|1|||182777000^monitoring of patient^SNOMED-CT|||20260302115700+0000\r"
            "OBX|1|NM|147842^MDC_ECG_HEART_RATE^MDC|1.1.1.1|88|264864^MDC_DIM_BEAT_PER_MIN^MDC|||||R\r")


def _ack(description: str) -> dict:
    return {"description": description, "content": {HL7_MEDIA_TYPE: _ER7}}


@router.post(
    "/v1/hl7",
    response_class=Response,
    operation_id="post_hl7_message",
    summary="Ingest one HL7 v2 ORU^R01 message (IHE PCD-01), answered with its ACK",
    description=(
        "Body: one ER7 message (segments separated by CR; LF accepted), `Content-Type: application/hl7-v2`, "
        "`x-application/hl7-v2+er7` or `text/plain`. OBX observations with IEEE 11073 MDC or LOINC codes become "
        "readings (time from OBX-14, a parent OBX-14 or OBR-7; unit from OBX-6, converted or refused) checked by "
        "the rules of `POST /v1/readings`, as `monitor` readings unless OBX-17 (observation method) is `MMEAS` "
        "(manual measurement: stored as `charted`). The answer is the ACK (MSA-1 AA, AE or AR; MSA-2 = MSH-10; one ERR "
        "segment per refused or unknown observation)."
    ),
    responses={200: _ack("AA: every observation stored"),
               400: _ack("AR: the message is not a readable ORU^R01; nothing stored"),
               422: _ack("AE: some observations refused (ERR segments); the good ones stored"),
               503: _ack("AR: the store is unavailable, nothing stored; retry")},
    openapi_extra={"requestBody": {"required": True, "content": {
        HL7_MEDIA_TYPE: {**_ER7, "example": _EXAMPLE}, "x-application/hl7-v2+er7": _ER7, "text/plain": _ER7}}},
)
async def post_hl7(request: Request, wt: ServiceDep) -> Response:
    answer = await receive(await request.body(), wt, request.scope.get("user"))
    audit_write(request, answer.ingested or Ingested([], []))
    status = 503 if answer.unavailable else STATUS[answer.code]
    return Response(answer.text.encode(), status_code=status, media_type=HL7_MEDIA_TYPE)
