"""Anchors of the audit trail (issue 21, H23 residual 2): what the hash chain alone cannot show.

The chain (``app.security.audit``) makes a rewritten, inserted or removed row break verification, but rows cut off
the *end* of the trail, or a row rewritten with every later hash recomputed, leave a shorter or different chain that
verifies. An anchor is the trail's last ``seq`` and ``row_hash`` at a moment, signed (HMAC-SHA256) with a key kept
away from ``access.db``; kept elsewhere (appended to a file on another volume, mailed, printed), it lets
``wardtwin audit verify --anchor`` tell that the trail still holds that row with that hash: if the row is gone the
trail was truncated, if its hash differs it was rewritten at or before it.

    {"seq": 1234, "row_hash": "9f…", "rows": 1234, "at": "2026-12-05T10:00:00+00:00", "hmac": "…"}
"""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from app.storage.control_db import Connection

#: The fields signed, in order.
_SIGNED = ("seq", "row_hash", "rows", "at")


@dataclass(frozen=True)
class Anchor:
    seq: int  # 0: the trail was empty
    row_hash: str | None  # None: empty, or the last row predates the chain
    rows: int
    at: str  # ISO 8601, when the anchor was taken
    hmac: str = ""

    def signed(self, key: bytes) -> Anchor:
        return Anchor(self.seq, self.row_hash, self.rows, self.at, _mac(key, self))

    def to_json(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> Anchor:
        raw: dict[str, Any] = json.loads(text)
        try:
            return cls(int(raw["seq"]), raw["row_hash"], int(raw["rows"]), str(raw["at"]), str(raw["hmac"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"not an audit anchor: {exc}") from None


def _mac(key: bytes, anchor: Anchor) -> str:
    message = json.dumps([getattr(anchor, name) for name in _SIGNED], separators=(",", ":")).encode()
    return hmac.new(key, message, hashlib.sha256).hexdigest()


def take_anchor(conn: Connection, at: datetime, key: bytes) -> Anchor:
    """The trail's last row now, signed."""
    last = conn.execute("SELECT seq, row_hash FROM audit ORDER BY seq DESC LIMIT 1").fetchone()
    rows = conn.execute("SELECT COUNT(*) FROM audit").fetchone()[0]
    seq, row_hash = (int(last[0]), last[1]) if last is not None else (0, None)
    return Anchor(seq, row_hash, int(rows), at.isoformat()).signed(key)


def check_anchor(conn: Connection, anchor: Anchor, key: bytes) -> str | None:
    """None when the trail still holds the anchored row with the anchored hash; else why not."""
    if not hmac.compare_digest(anchor.hmac, _mac(key, anchor)):
        return f"anchor of seq={anchor.seq} taken {anchor.at}: signature does not match (wrong key or edited anchor)"
    if anchor.seq == 0:
        return None
    row = conn.execute("SELECT row_hash FROM audit WHERE seq = ?", (anchor.seq,)).fetchone()
    if row is None:
        last = conn.execute("SELECT MAX(seq) FROM audit").fetchone()[0]
        return (f"row seq={anchor.seq} anchored {anchor.at} is gone: the trail ends at seq={last or 0} "
                "(truncated or rows removed)")
    if row[0] != anchor.row_hash:
        return f"row seq={anchor.seq} anchored {anchor.at} has another row_hash: rewritten at or before it"
    return None
