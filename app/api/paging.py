"""Paging of the time-ordered reads (a patient's risk history and windows): ``limit`` items per answer, oldest
first, and while more remain a ``Link: <url>; rel="next"`` header (RFC 8288) whose URL is the same query with the
range pinned (``since``/``until`` as resolved, so a moving "now" neither skips nor repeats an item) and the cursor
``after`` = the last item's time. Clients follow ``next`` as is until there is none."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Final

from fastapi import Query, Request, Response

from app.api.schemas import IsoDatetime

#: Items per page by default: a day of 5-minute windows, with room for a 24-hour range that is not aligned to the
#: window grid (it touches 289 windows), so the default 24 h of history is one page.
DEFAULT_LIMIT: Final = 300
#: At most a week of 5-minute windows per page.
MAX_LIMIT: Final = 2016

Limit = Annotated[int, Query(ge=1, le=MAX_LIMIT, description=f"items per page (default {DEFAULT_LIMIT}, at most "
                                                             f"{MAX_LIMIT}); the `Link` header names the next page")]
After = Annotated[IsoDatetime | None, Query(
    description="cursor: only items strictly after this time (ISO 8601 with offset); set by the service in the "
                "`next` link")]

#: The 200 answer's ``Link`` header, for the OpenAPI document.
NEXT_LINK: Final[dict[int | str, dict[str, Any]]] = {200: {"headers": {"Link": {
    "schema": {"type": "string"}, "example": '<https://wardtwin.example/v1/patients/bed-01/risk/history?since=…&'
                                             'until=…&limit=300&after=…>; rel="next"',
    "description": 'the next page, `<url>; rel="next"`, present while more items remain'}}}}


def link_next(request: Request, response: Response, *, since: datetime, until: datetime, limit: int,
              after: datetime) -> None:
    """Set ``Link: <next page>; rel="next"`` on ``response``: this request's path with the resolved range, the
    limit and the cursor, as a relative reference (RFC 8288 resolves it against the request's URL), so the
    request's ``Host`` is never reflected (issue 21, finding 11)."""
    url = request.url.include_query_params(since=since.isoformat(), until=until.isoformat(), limit=limit,
                                           after=after.isoformat())
    response.headers["Link"] = f'<{url.path}?{url.query}>; rel="next"'
