"""What the store adapters share: times as integer milliseconds, scores as plain JSON (also used by the API)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from app.domain import Contribution, Score
from models.news2 import News2Summary

_EPOCH: Final[datetime] = datetime(1970, 1, 1, tzinfo=UTC)
_MS: Final[timedelta] = timedelta(milliseconds=1)


def to_ms(ts: datetime) -> int:
    """A timezone-aware time as integer milliseconds since the epoch (exact, floored, no float rounding)."""
    if ts.tzinfo is None:
        raise ValueError("timestamps must be timezone-aware")
    return (ts - _EPOCH) // _MS


def from_ms(ms: int) -> datetime:
    """Integer milliseconds since the epoch as a UTC time (exact)."""
    return _EPOCH + timedelta(milliseconds=ms)


def score_to_dict(score: Score) -> dict[str, Any]:
    return {
        "patient_id": score.patient_id,
        "window_end": score.window_end.astimezone(UTC).isoformat(),
        "risk": score.risk,
        "logit": score.logit,
        "intercept": score.intercept,
        "contributions": [
            {"feature": c.feature, "value": c.value, "points": c.points, "sentence": c.sentence}
            for c in score.contributions
        ],
        "model_version": score.model_version,
        "news2": score.news2.to_dict() if score.news2 is not None else {},
        "challenger_risk": score.challenger_risk,
        "flags": list(score.flags),
        "scored_at": score.scored_at.astimezone(UTC).isoformat() if score.scored_at else None,
    }


def score_from_dict(data: dict[str, Any]) -> Score:
    return Score(
        patient_id=data["patient_id"],
        window_end=datetime.fromisoformat(data["window_end"]),
        risk=float(data["risk"]),
        logit=float(data["logit"]),
        intercept=float(data["intercept"]),
        contributions=tuple(Contribution(**c) for c in data["contributions"]),
        model_version=data["model_version"],
        news2=News2Summary.from_stored(data.get("news2")),
        challenger_risk=data.get("challenger_risk"),
        flags=tuple(data.get("flags") or ()),
        scored_at=datetime.fromisoformat(data["scored_at"]) if data.get("scored_at") else None,
    )


def score_to_json(score: Score) -> str:
    """Canonical JSON (sorted keys, no whitespace): byte-identical for identical scores."""
    return json.dumps(score_to_dict(score), sort_keys=True, separators=(",", ":"), allow_nan=False)


def score_from_json(text: str) -> Score:
    return score_from_dict(json.loads(text))
