"""Refused credentials in the audit trail (issue 21, finding 9: 401s were neither audited nor rate-limited).

Every 401 is a candidate row: who is unknown, so the row names the client address, the request, and the presented
key's *prefix hash* (``key_sha256:`` and the first 8 hex digits of the token's SHA-256: enough to tell one guessed
key from another or to match a leaked key's hash, never the key, and no use for logging in). A flood cannot fill
the disk: at most ``per_address`` rows per address and ``overall`` rows in all per wall-clock minute are written;
the rest are counted, and an address's count is written as one ``401 suppressed`` row (``suppressed:N``) when its
next refusal arrives in a later minute (or when its entry is pruned). The addresses held are bounded too
(``max_addresses``): beyond them a refusal is only counted (``unattributed``), written as one row with no address.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime

from app.security.keys import Principal

#: ``AuditWriter.submit``'s arguments: at, who (None), action, target, status, remote.
Entry = tuple[datetime, Principal | None, str, str | None, int | None, str | None]

#: Defaults: a mistyped key retried a few times stays fully visible; a scanner leaves ten rows a minute.
PER_ADDRESS_PER_MINUTE = 10
OVERALL_PER_MINUTE = 600
MAX_ADDRESSES = 10_000
#: Longest request path kept in a row (the request head may be 16 KiB of an attacker's choosing).
MAX_ACTION = 200


def key_prefix_hash(token: str | None) -> str | None:
    """``key_sha256:<first 8 hex of sha256(token)>``, or None when no key was presented."""
    if not token:
        return None
    return "key_sha256:" + hashlib.sha256(token.encode()).hexdigest()[:8]


@dataclass
class _Window:
    minute: int
    written: int = 0
    suppressed: int = 0


def _minute(at: datetime) -> int:
    return int(at.timestamp()) // 60


class RefusalAudit:
    """Decides which refusals become audit rows (on the event loop: not thread-safe, needs no lock)."""

    def __init__(self, per_address: int = PER_ADDRESS_PER_MINUTE, overall: int = OVERALL_PER_MINUTE,
                 max_addresses: int = MAX_ADDRESSES) -> None:
        self.per_address, self.overall, self.max_addresses = per_address, overall, max_addresses
        self._windows: dict[str | None, _Window] = {}
        self._all = _Window(-1)
        self.unattributed = 0  # refusals counted with no address entry (the table was full), not yet written
        self.suppressed = 0  # refusals not written as a row of their own, in all (a metric)

    def rows(self, at: datetime, action: str, token: str | None, remote: str | None) -> list[Entry]:
        """The rows to append for this refusal: pending ``suppressed`` counts, then the refusal itself unless
        capped (then it is counted)."""
        minute = _minute(at)
        out: list[Entry] = []
        if self._all.minute != minute:
            self._all = _Window(minute)
            if self.unattributed:
                out.append(_summary(at, self.unattributed, None))
                self.unattributed = 0
        window = self._windows.get(remote)
        if window is None:
            if len(self._windows) >= self.max_addresses:
                out += self._prune(at, minute)
            if len(self._windows) >= self.max_addresses:
                self.unattributed += 1
                self.suppressed += 1
                return out
            window = self._windows[remote] = _Window(minute)
        elif window.minute != minute:
            if window.suppressed:
                out.append(_summary(at, window.suppressed, remote))
            window.minute, window.written, window.suppressed = minute, 0, 0
        if window.written >= self.per_address or self._all.written >= self.overall:
            window.suppressed += 1
            self.suppressed += 1
            return out
        window.written += 1
        self._all.written += 1
        out.append((at, None, action[:MAX_ACTION], key_prefix_hash(token), 401, remote))
        return out

    def _prune(self, at: datetime, minute: int) -> list[Entry]:
        """Forget the addresses whose minute is over, writing what they had suppressed."""
        stale = [remote for remote, w in self._windows.items() if w.minute != minute]
        out = [_summary(at, self._windows[r].suppressed, r) for r in stale if self._windows[r].suppressed]
        for remote in stale:
            del self._windows[remote]
        return out


def _summary(at: datetime, count: int, remote: str | None) -> Entry:
    return (at, None, "401 suppressed", f"suppressed:{count}", 401, remote)
