"""The typed dependencies routes take: the service's use cases (``ServiceDep``) and access control
(``AccessDep``), both wired once by ``app.main.create_app``."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends
from starlette.requests import HTTPConnection

from app.security.access import Access
from app.service import WardTwin


async def get_service(connection: HTTPConnection) -> WardTwin:
    return connection.app.state.wardtwin


async def get_access(connection: HTTPConnection) -> Access:
    return connection.app.state.access


ServiceDep = Annotated[WardTwin, Depends(get_service)]
AccessDep = Annotated[Access, Depends(get_access)]
