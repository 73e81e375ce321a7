"""Test helpers for webhooks: a fresh ``whsec_`` secret, and the receiver process (``webhook_receiver``)."""

from __future__ import annotations

import base64
import json
import os
import secrets
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.support.server import ROOT, terminate, wait_until_ok


def new_secret() -> str:
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


@contextmanager
def receiver(port: int, secret: str, log: Path) -> Iterator[subprocess.Popen]:
    """Run the verifying receiver on ``port`` until the block ends; deliveries are appended to ``log``."""
    proc = subprocess.Popen([sys.executable, "-m", "tests.support.webhook_receiver", "--port", str(port),
                             "--secret", secret, "--log", str(log)], cwd=ROOT, env=dict(os.environ),
                            stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    try:
        wait_until_ok(f"http://127.0.0.1:{port}/health", proc=proc)
        yield proc
    finally:
        terminate(proc)


def received(log: Path) -> list[dict]:
    """Every delivery the receiver logged, in arrival order."""
    if not log.exists():
        return []
    return [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
