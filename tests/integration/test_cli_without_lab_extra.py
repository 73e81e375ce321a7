"""``pip install -e .`` has neither matplotlib nor pyarrow: ``wardtwin --help``, ``keys`` and the modules behind
``demo``, ``serve`` and ``replay`` must not need them (lab commands import their modules lazily)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

SCRIPT = """
import importlib.abc, sys

class Missing(importlib.abc.MetaPathFinder):  # as if the lab extra were not installed
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("matplotlib", "pyarrow"):
            raise ModuleNotFoundError(f"No module named {name!r}")

sys.meta_path.insert(0, Missing())
from lab.cli import main
assert main(["--help"]) == 0
assert main(["keys", "list", "--data-dir", sys.argv[1]]) == 0
import app.main, lab.demo, lab.replay  # serve, demo, replay
print("ok")
"""


def test_service_commands_run_without_the_lab_extra(tmp_path: Path) -> None:
    result = subprocess.run([sys.executable, "-c", SCRIPT, str(tmp_path)], capture_output=True, text=True,
                            timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.rstrip().endswith("ok")
