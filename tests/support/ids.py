"""Fresh names per test, so tests sharing one server or database never see each other's data."""

from __future__ import annotations

import uuid


def unique(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:10]}"
