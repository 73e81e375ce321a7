"""Several instances, one ward fleet (issue 24): patients partitioned among live instances by hash-bucket leases
in PostgreSQL, each patient's window scored by exactly one instance (``leases.py``, ``runner.py``)."""

from __future__ import annotations

import os
import socket
import uuid

from app.settings import Settings


def fleet_dsn(settings: Settings) -> str | None:
    """The PostgreSQL URL of the control store (``WARDTWIN_CONTROL_DB``) when the service is a fleet instance, else
    None (a single instance on SQLite scores every patient, as before)."""
    target = settings.control_db
    return target if target.startswith(("postgresql://", "postgres://")) else None


def default_instance_id() -> str:
    """``host-pid-random``: unique per process start, so a restarted instance never inherits a dead one's claims."""
    return f"{socket.gethostname()[:40]}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
