"""Webhook signing secrets sealed at rest (hazard H18): Fernet under a key file the operator keeps apart from the data.

A ``whsec_`` secret in ``webhook_endpoints.secret`` is enough to forge nurse-call messages, so whoever reads the
database file, or a backup of it, must not get it. The stored form is ``fernet:v1:<token>`` (Fernet: AES-128-CBC and
HMAC-SHA256, authenticated; ``cryptography``'s ``MultiFernet`` for rotation); the plain secret exists only in memory,
while a delivery is signed (``app.alerts.webhooks``).

Key management (the decision):

- the keys come from ``Settings.secrets_key_file`` (``WARDTWIN_SECRETS_KEY_FILE``); unset → ``<data_dir>/secrets.key``,
  created on first use with one fresh key, mode 0600 in a 0700 directory (``app.storage.sqlite_db.private_file``, as
  every file the service creates). A named file is never created: a missing one is an error;
- one Fernet key per line (``#`` comments and blank lines ignored), newest first: secrets are sealed with the first
  and opened with any. Rotation: put a new first line in the file of every instance, restart them, run ``wardtwin
  webhooks rekey`` (everything re-sealed with the first key), then drop the old line;
- a key file that exists but cannot be read, or holds a line that is not a Fernet key, or no key, is a start-up
  error naming the file (``SecretsKeyError``), never a silent fallback to a new key or to plain text;
- a secret sealed under a key the file no longer holds opens to a ``SecretsKeyError`` naming the file: the
  endpoint's deliveries fail (retried, then dead-lettered) until the key is restored;
- the key file must not travel with database backups (it would undo this), and every instance of a PostgreSQL fleet
  is given the same file: one instance seals, any may sign.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Callable, Sequence
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from app.errors import WardTwinError
from app.settings import Settings
from app.storage.sqlite_db import private_file

PREFIX = "fernet:v1:"
KEY_FILE_NAME = "secrets.key"


class SecretsKeyError(WardTwinError):
    """The secrets key file is missing, unreadable or malformed, or a sealed secret does not open with its keys."""

    code = "secrets_key"


def is_sealed(value: str) -> bool:
    return value.startswith(PREFIX)


class SecretBox:
    """Seals and opens secrets with a ring of Fernet keys (the first seals; any opens)."""

    def __init__(self, keys: Sequence[bytes], source: str) -> None:
        if not keys:
            raise SecretsKeyError(f"secrets key file {source}: holds no key")
        self._ring = MultiFernet([Fernet(key) for key in keys])
        #: where the keys came from, for error messages (never the keys themselves)
        self.source = source

    @classmethod
    def from_settings(cls, settings: Settings) -> SecretBox:
        """The service's box: ``secrets_key_file`` when set (it must exist), else ``<data_dir>/secrets.key``
        (created with a fresh key on first use)."""
        if settings.secrets_key_file is not None:
            return cls.from_file(settings.secrets_key_file)
        return cls.from_file(settings.data_dir / KEY_FILE_NAME, create=True)

    @classmethod
    def from_file(cls, path: Path, *, create: bool = False) -> SecretBox:
        """The keys in ``path``, one a line, newest first. ``create``: a missing or empty file gets one fresh key (under
        an exclusive lock, so two processes starting together write one key between them)."""
        path = Path(path)
        try:
            if create:
                private_file(path)
                with open(path, "r+", encoding="ascii") as handle:
                    fcntl.flock(handle, fcntl.LOCK_EX)  # released when the file closes
                    text = handle.read()
                    if not text.strip():
                        handle.write(Fernet.generate_key().decode() + "\n")
                        handle.flush()
                        os.fsync(handle.fileno())
                        handle.seek(0)
                        text = handle.read()
            else:
                text = path.read_text(encoding="ascii")
        except (OSError, UnicodeDecodeError) as exc:
            raise SecretsKeyError(f"secrets key file {path}: cannot be read ({type(exc).__name__}: "
                                  f"{getattr(exc, 'strerror', None) or exc})") from None
        return cls(parse_keys(text, str(path)), str(path))

    @classmethod
    def ephemeral(cls) -> SecretBox:
        """A box whose one key lives in this process only: what it seals does not survive a restart."""
        return cls([Fernet.generate_key()], "a key held in memory by this process")

    def seal(self, secret: str) -> str:
        """``fernet:v1:<token>`` of ``secret``, under the newest key."""
        return PREFIX + self._ring.encrypt(secret.encode()).decode()

    def unseal(self, stored: str) -> str:
        """The secret inside ``stored``; ``SecretsKeyError`` when it is not sealed or no key opens it."""
        return self._token_op(stored, self._ring.decrypt).decode()

    def reseal(self, stored: str) -> str:
        """``stored`` sealed again under the newest key (its Fernet timestamp kept)."""
        return PREFIX + self._token_op(stored, self._ring.rotate).decode()

    def _token_op(self, stored: str, op: Callable[[bytes], bytes]) -> bytes:
        if not is_sealed(stored):
            raise SecretsKeyError(f"a stored secret is not in the sealed form {PREFIX}<token>")
        try:
            return op(stored[len(PREFIX):].encode())
        except InvalidToken:
            raise SecretsKeyError(f"a stored secret does not open with any key in {self.source} (sealed under a key "
                                  "the file no longer holds?)") from None


def parse_keys(text: str, source: str) -> list[bytes]:
    """The Fernet keys of a key file's text, in order; a bad line is named by its number, never shown."""
    keys = []
    for number, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        try:
            Fernet(line.encode())
        except ValueError:
            raise SecretsKeyError(f"secrets key file {source}: line {number} is not a Fernet key (32 url-safe "
                                  "base64-encoded bytes, as Fernet.generate_key() writes)") from None
        keys.append(line.encode())
    if not keys:
        raise SecretsKeyError(f"secrets key file {source}: holds no key")
    return keys
