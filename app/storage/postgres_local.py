"""Start a throwaway local PostgreSQL (Debian's 15): for the tests and the benchmarks, never the service.

``ManagedPostgres`` runs ``initdb`` and ``postgres`` with their own data and socket directories and a free loopback
port. ``initdb`` refuses root, so as root the cluster belongs to the ``postgres`` user (Debian's package creates it)
and lives under a fresh ``/tmp`` directory that user can reach (pytest's own tmp dirs are root-only). Authentication
is ``trust`` on 127.0.0.1 only: the cluster is private to this process tree and is deleted on ``stop``.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

from app.storage.influxd_local import free_port


def find_pg_bin() -> Path | None:
    """The directory holding ``initdb`` and ``postgres`` (Debian keeps them out of PATH), or None."""
    found = shutil.which("initdb")
    if found:
        return Path(found).resolve().parent
    for root in sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True):
        if (root / "initdb").exists():
            return root
    return None


class ManagedPostgres:
    """One PostgreSQL cluster on 127.0.0.1 with its own data and socket directories."""

    def __init__(self, bin_dir: Path, user: str = "wardtwin") -> None:
        self.bin_dir = Path(bin_dir)
        self.user = user
        self.port = free_port()
        self.root = Path(tempfile.mkdtemp(prefix="wardtwin-pg-"))
        self.data = self.root / "data"
        self.sockets = self.root / "sockets"
        self.log = self.root / "postgres.log"
        self._os_user = "postgres" if os.geteuid() == 0 else None
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def dsn(self) -> str:
        return self.dsn_for("postgres")

    def dsn_for(self, database: str) -> str:
        return f"postgresql://{self.user}@127.0.0.1:{self.port}/{database}"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def _cmd(self, *argv: str) -> list[str]:
        return ["runuser", "-u", self._os_user, "--", *argv] if self._os_user else list(argv)

    def _prepare(self) -> None:
        self.sockets.mkdir(parents=True, exist_ok=True)
        if self._os_user:
            record = pwd.getpwnam(self._os_user)
            os.chmod(self.root, 0o700)
            for path in (self.root, self.sockets):
                os.chown(path, record.pw_uid, record.pw_gid)

    def start(self, timeout_s: float = 60.0) -> None:
        if self.running:
            return
        if not self.data.exists():
            self._prepare()
            subprocess.run(
                self._cmd(
                    str(self.bin_dir / "initdb"), "-D", str(self.data), "-U", self.user,
                    "--auth=trust", "--encoding=UTF8", "--locale=C", "--no-sync",
                ),
                check=True, capture_output=True,
            )
        log = self.log.open("ab")
        # Started as the cluster's user by Popen itself (not through ``runuser``, which does not pass signals on): the
        # process is the postmaster, so ``stop`` (SIGINT) and ``pid`` (a kill -9 in a test) reach it.
        owner = pwd.getpwnam(self._os_user) if self._os_user else None
        self._proc = subprocess.Popen(
            [
                str(self.bin_dir / "postgres"), "-D", str(self.data), "-p", str(self.port),
                "-c", "listen_addresses=127.0.0.1", "-c", f"unix_socket_directories={self.sockets}",
                "-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off",
                "-c", "max_connections=200",
            ],
            stdout=log, stderr=subprocess.STDOUT,
            user=owner.pw_uid if owner else None, group=owner.pw_gid if owner else None,
            extra_groups=[] if owner else None,
        )
        log.close()
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise RuntimeError(f"postgres exited with {self._proc.returncode}; see {self.log}")
            ready = subprocess.run(
                [str(self.bin_dir / "pg_isready"), "-h", "127.0.0.1", "-p", str(self.port), "-U", self.user],
                capture_output=True,
            )
            if ready.returncode == 0:
                return
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"postgres did not become ready within {timeout_s}s; see {self.log}")

    def create_database(self, name: str) -> str:
        """Create database ``name`` (a test's fresh one) and return its DSN."""
        if not name.replace("_", "").isalnum():
            raise ValueError(f"database name must be letters, digits and underscores: {name!r}")
        subprocess.run(
            [str(self.bin_dir / "createdb"), "-h", "127.0.0.1", "-p", str(self.port), "-U", self.user, name],
            check=True, capture_output=True,
        )
        return self.dsn_for(name)

    def stop(self, timeout_s: float = 30.0, *, remove: bool = True) -> None:
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGINT)  # "fast" shutdown
            try:
                proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)
        if remove:
            with contextlib.suppress(OSError):
                shutil.rmtree(self.root)
