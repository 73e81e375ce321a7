"""Finding Debian's ``influxd`` for the tests (the launcher itself is ``app.storage.influxd_local``)."""

from __future__ import annotations

import os
import shutil

import pytest


def find_influxd() -> str:
    """The ``influxd`` binary; without one the calling test fails under ``CI`` and is skipped otherwise."""
    binary = shutil.which("influxd")
    if binary is None:
        if os.environ.get("CI"):
            pytest.fail("influxd missing in CI (.ci/run installs Debian's influxdb package)")
        pytest.skip("influxd not installed (apt-get install influxdb)")
    return binary
