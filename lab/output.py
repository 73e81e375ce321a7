"""What the command-line tools print: results on stdout, progress lines on stderr."""

from __future__ import annotations

import sys
import time


class Progress:
    """Progress lines on stderr: ``[train   12.3s] message``."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.t0 = time.monotonic()

    def __call__(self, message: str) -> None:
        sys.stderr.write(f"[{self.name} {time.monotonic() - self.t0:6.1f}s] {message}\n")
        sys.stderr.flush()


def out(text: str) -> None:
    """One result line on stdout."""
    sys.stdout.write(text + "\n")
