from __future__ import annotations

from fastapi import Request

from app.service import WardTwin


def service(request: Request) -> WardTwin:
    return request.app.state.wardtwin
