"""The logistic-regression twin: load a JSON artifact, score feature rows, explain, what-if.

Scoring (exact, no hidden terms)::

    z_j      = clip((x_j - mean_j) / scale_j, ±Z_CLIP)   standardised feature, winsorised at ±4 SD so a
                                                 far-out value cannot push the logit without bound; a
                                                 missing x_j is imputed with the training mean: z_j = 0
    points_j = coef_j * z_j                      the feature's push on the logit
    logit    = intercept + Σ_j points_j          coef and intercept already include Platt calibration
    risk     = 1 / (1 + exp(-logit))             a calibrated probability of deterioration within 6 h

Every feature's points are listed, so ``intercept + sum(points) == logit``. Contributions are sorted
by ``|points|`` (ties in feature order). Sentence rule: a contribution with ``|points| >=
SIGNIFICANT_POINTS`` (0.2 on the logit, i.e. it moves the odds by at least a fifth) gets a sentence
with the patient's numbers; a missing feature says "not measured"; the rest have an empty sentence.
The wording follows the sign: a contribution that lowers the risk says so ("... less than a typical ward
patient (x), which lowers the risk"), so it never reads like a warning; the ward board shows the
sentence of the largest positive contribution.

Signs: every coefficient has the sign its feature declares (``models.features.Feature.direction``);
training fits with those bounds and Platt calibration multiplies by a positive slope, so they hold in
the artifact (``directions`` is stored beside the coefficients and checked at load).

The artifact is JSON only (never pickle); loading refuses feature names that differ from
``models.features.FEATURES``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import numpy as np
import pandas as pd

from models import features as F

DEFAULT_ARTIFACT: Final[Path] = Path(__file__).resolve().parent / "artifacts" / "twin.json"
DEFAULT_CHALLENGER: Final[Path] = Path(__file__).resolve().parent / "artifacts" / "challenger.json"
ARTIFACT_FORMAT: Final[str] = "wardtwin.twin/2"
SIGNIFICANT_POINTS: Final[float] = 0.2


@dataclass(frozen=True)
class TwinContribution:
    feature: str
    value: float | None
    points: float
    sentence: str


@dataclass(frozen=True)
class TwinScore:
    patient_id: str
    window_end: pd.Timestamp
    risk: float
    logit: float
    intercept: float
    contributions: tuple[TwinContribution, ...]


def sigmoid(x: np.ndarray | float) -> np.ndarray:
    x = np.asarray(x, dtype=float)
    out = np.empty_like(x)
    pos = x >= 0
    out[pos] = 1.0 / (1.0 + np.exp(-x[pos]))
    ex = np.exp(x[~pos])
    out[~pos] = ex / (1.0 + ex)
    return out


class Twin:
    """A loaded twin. Build with :meth:`load` or :meth:`from_dict`; immutable after that."""

    def __init__(self, artifact: Mapping[str, Any]) -> None:
        if artifact.get("format") != ARTIFACT_FORMAT:
            raise ValueError(f"unknown twin artifact format {artifact.get('format')!r}")
        names = tuple(artifact["feature_names"])
        if names != F.FEATURE_NAMES:
            extra = sorted(set(names) - set(F.FEATURE_NAMES))
            lacking = sorted(set(F.FEATURE_NAMES) - set(names))
            raise ValueError(f"twin artifact features do not match models.features.FEATURES "
                             f"(unknown {extra}, missing {lacking}, or a different order); retrain the twin")
        self.version: str = str(artifact["version"])
        self.feature_names: tuple[str, ...] = names
        self.card: dict[str, Any] = dict(artifact.get("card", {}))
        self.artifact: dict[str, Any] = dict(artifact)
        self._mean = np.asarray(artifact["scaler"]["mean"], dtype=float)
        self._scale = np.asarray(artifact["scaler"]["scale"], dtype=float)
        self._coef = np.asarray(artifact["coefficients"], dtype=float)
        clip = artifact["scaler"].get("clip")
        self._clip = float(clip) if clip is not None else math.inf
        self.intercept: float = float(artifact["intercept"])
        n = len(names)
        if not (self._mean.shape == self._scale.shape == self._coef.shape == (n,)) or np.any(self._scale <= 0):
            raise ValueError("twin artifact scaler/coefficients do not fit its features")
        wrong = [name for name, c in zip(names, self._coef.tolist(), strict=True) if F.DIRECTIONS[name] * c < 0]
        if wrong:
            raise ValueError(f"twin artifact coefficients contradict the features' declared directions: {wrong}")

    @classmethod
    def load(cls, path: str | Path | None = None) -> Twin:
        p = Path(path) if path is not None else DEFAULT_ARTIFACT
        return cls(json.loads(p.read_text(encoding="utf-8")))

    @classmethod
    def from_dict(cls, artifact: Mapping[str, Any]) -> Twin:
        return cls(artifact)

    @property
    def coefficients(self) -> dict[str, float]:
        return dict(zip(self.feature_names, self._coef.tolist(), strict=True))

    def points(self, features: pd.DataFrame) -> np.ndarray:
        """Per-row, per-feature points (n_rows × n_features): coef × standardised value, 0 when missing."""
        x = features.loc[:, list(self.feature_names)].to_numpy(dtype=float)
        z = np.clip((x - self._mean) / self._scale, -self._clip, self._clip)
        z[np.isnan(z)] = 0.0
        return z * self._coef

    def logit(self, features: pd.DataFrame) -> np.ndarray:
        return self.intercept + self.points(features).sum(axis=1)

    def risk(self, features: pd.DataFrame) -> np.ndarray:
        return sigmoid(self.logit(features))

    def score(self, features: pd.DataFrame, *, explain: bool = True) -> list[TwinScore]:
        """One :class:`TwinScore` per row of ``models.features.build`` output (same order).

        ``explain=False`` leaves every sentence empty (faster; for bulk evaluation).
        """
        if features.empty:
            return []
        pts = self.points(features)
        logits = self.intercept + pts.sum(axis=1)
        risks = sigmoid(logits)
        values = features.loc[:, list(self.feature_names)].to_numpy(dtype=float)
        order = np.argsort(-np.abs(pts), axis=1, kind="stable").tolist()
        missing = np.isnan(values)
        talk = ((missing | (np.abs(pts) >= SIGNIFICANT_POINTS)) & explain).tolist()
        pts_l, values_l, missing_l = pts.tolist(), values.tolist(), missing.tolist()
        pids = features["patient_id"].astype(str).tolist()
        ends = list(pd.to_datetime(features["window_end"], utc=True))
        names = self.feature_names
        typical = self._mean.tolist()
        out: list[TwinScore] = []
        for i in range(len(features)):
            fields = dict(zip(names, values_l[i], strict=True))
            row_pts, row_vals, row_miss, row_talk = pts_l[i], values_l[i], missing_l[i], talk[i]
            contribs = tuple(
                TwinContribution(names[j], None if row_miss[j] else row_vals[j], row_pts[j],
                                 F.render(names[j], fields, row_pts[j], typical[j]) if row_talk[j] else "")
                for j in order[i])
            out.append(TwinScore(pids[i], ends[i], float(risks[i]), float(logits[i]), self.intercept, contribs))
        return out




# --------------------------------------------------------------------------------------------
# What-if


#: what-if keys → the window column they override (applied to the patient's last hour of windows).
WHAT_IF_COLUMNS: Final[dict[str, str]] = {
    "hr": "hr_mean", "spo2": "spo2_mean", "rr": "rr_mean", "sbp": "sbp", "dbp": "dbp", "temp": "temp",
    "acvpu": "acvpu", "o2": "o2",
}
WHAT_IF_SPAN: Final[pd.Timedelta] = pd.Timedelta(hours=1)


def what_if(twin: Twin, windows: pd.DataFrame, patient_id: str, changes: Mapping[str, float]
            ) -> tuple[TwinScore, TwinScore, dict[str, Any]]:
    """Rescore the patient's newest window with some vitals overridden over their last hour of windows.

    ``windows``: carried-forward windows (at least ``models.features.HISTORY`` of them for full features).
    ``changes``: keys among hr, spo2, rr, sbp, dbp, temp, acvpu (code 0..4 = A,C,V,P,U), o2 (L/min);
    each value replaces that vital in every window of the last hour (so its last-hour mean becomes the
    value and its last-hour trend flat). Returns ``(before, after, changed)`` where ``changed`` is
    ``{"vitals": {key: value}, "windows": n_overridden, "features": {name: {"before", "after",
    "points_before", "points_after"}}}`` for the features whose value moved.
    Raises ``KeyError`` for an unknown patient and ``ValueError`` for an unknown key or an implausible value.
    """
    from models.schema import PLAUSIBLE_RANGES

    if not changes:
        raise ValueError("changes: give at least one vital to change")
    applied: dict[str, float] = {}
    for key, value in changes.items():
        if key not in WHAT_IF_COLUMNS:
            raise ValueError(f"{key}: not a vital that what-if can change ({', '.join(WHAT_IF_COLUMNS)})")
        if isinstance(value, bool) or not isinstance(value, int | float | np.integer | np.floating):
            raise ValueError(f"{key}: expected a number, got {value!r}")
        lo, hi = PLAUSIBLE_RANGES[key]
        if math.isnan(float(value)) or not lo <= float(value) <= hi:
            raise ValueError(f"{key}: {value!r} is outside the plausible range {lo:g}–{hi:g}")
        applied[key] = float(value)
    mine = windows[windows["patient_id"] == patient_id]
    if mine.empty:
        raise KeyError(patient_id)
    starts = pd.to_datetime(mine["start"], utc=True)
    last = starts.max()
    before_feats = F.build(mine)
    before_feats = before_feats[before_feats["window_end"] == before_feats["window_end"].max()]
    modified = mine.copy()
    span = (starts > last - WHAT_IF_SPAN).to_numpy()
    for key, value in applied.items():
        modified.loc[span, WHAT_IF_COLUMNS[key]] = value
        if key == "hr":
            modified.loc[span, "hr_count"] = modified.loc[span, "hr_count"].clip(lower=1)
    after_feats = F.build(modified)
    after_feats = after_feats[after_feats["window_end"] == after_feats["window_end"].max()]
    before = twin.score(before_feats)[0]
    after = twin.score(after_feats)[0]
    pb = {c.feature: c for c in before.contributions}
    pa = {c.feature: c for c in after.contributions}
    moved = {}
    for name in twin.feature_names:
        b, a = pb[name].value, pa[name].value
        if b != a and not (b is not None and a is not None and abs(b - a) < 1e-9):
            moved[name] = {"before": b, "after": a, "points_before": pb[name].points, "points_after": pa[name].points}
    return before, after, {"vitals": applied, "windows": int(span.sum()), "features": moved}


# --------------------------------------------------------------------------------------------
# Challenger: gradient-boosted trees as plain JSON, for the report and optional shadow serving.

CHALLENGER_FORMAT: Final[str] = "wardtwin.challenger/1"


class Challenger:
    """scikit-learn HistGradientBoostingClassifier exported as plain JSON trees (never pickle).

    ``risk(features)``: per row, ``sigmoid(baseline + Σ_trees leaf value)``; a tree goes left when
    ``x <= threshold``, and a missing value follows the tree's ``missing_left`` flag (as in scikit-learn).
    Infinite thresholds are stored as the strings "inf" / "-inf" (JSON has no infinity).
    No per-feature contributions: it is a challenger for comparison, not an explanation.
    """

    def __init__(self, artifact: Mapping[str, Any]) -> None:
        if artifact.get("format") != CHALLENGER_FORMAT:
            raise ValueError(f"unknown challenger artifact format {artifact.get('format')!r}")
        names = tuple(artifact["feature_names"])
        if names != F.FEATURE_NAMES:
            raise ValueError("challenger features do not match models.features.FEATURES; retrain it")
        self.version: str = str(artifact["version"])
        self.feature_names = names
        self.baseline = float(artifact["baseline"])
        self.trees = [{k: np.asarray([float(x) for x in v]) if k == "threshold" else np.asarray(v)
                       for k, v in tree.items()} for tree in artifact["trees"]]
        self.artifact = dict(artifact)

    @classmethod
    def load(cls, path: str | Path | None = None) -> Challenger:
        p = Path(path) if path is not None else DEFAULT_CHALLENGER
        return cls(json.loads(p.read_text(encoding="utf-8")))

    def raw(self, features: pd.DataFrame) -> np.ndarray:
        x = features.loc[:, list(self.feature_names)].to_numpy(dtype=float)
        rows = np.arange(len(x))
        total = np.full(len(x), self.baseline)
        for tree in self.trees:
            node = np.zeros(len(x), dtype=np.int64)
            leaf = tree["is_leaf"].astype(bool)
            for _ in range(int(tree["depth"])):
                active = ~leaf[node]
                if not active.any():
                    break
                f = tree["feature"][node]
                v = x[rows, f]
                left = np.where(np.isnan(v), tree["missing_left"][node].astype(bool), v <= tree["threshold"][node])
                node = np.where(active, np.where(left, tree["left"][node], tree["right"][node]), node)
            total += tree["value"][node]
        return total

    def risk(self, features: pd.DataFrame) -> np.ndarray:
        return sigmoid(self.raw(features))


__all__ = [
    "DEFAULT_ARTIFACT", "DEFAULT_CHALLENGER", "SIGNIFICANT_POINTS", "WHAT_IF_COLUMNS", "Challenger", "Twin",
    "TwinContribution", "TwinScore", "sigmoid", "what_if",
]
