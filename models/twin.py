"""The logistic-regression twin: load a JSON artifact, score feature rows, explain, what-if.

Scoring (exact, no hidden terms)::

    z_j      = (x_j - mean_j) / scale_j          standardised feature; a missing x_j is imputed with
                                                 the training mean, so z_j = 0 and it contributes 0
    points_j = coef_j * z_j                      the feature's push on the logit
    logit    = intercept + Σ_j points_j          coef and intercept already include Platt calibration
    risk     = 1 / (1 + exp(-logit))             a calibrated probability of deterioration within 6 h

Every feature's points are listed, so ``intercept + sum(points) == logit``. Contributions are sorted
by ``|points|`` (ties in feature order). Sentence rule: a contribution with ``|points| >=
SIGNIFICANT_POINTS`` (0.2 on the logit, i.e. it moves the odds by at least a fifth) gets a sentence
with the patient's numbers; a missing feature says "not measured"; the rest have an empty sentence.

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
ARTIFACT_FORMAT: Final[str] = "wardtwin.twin/1"
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
        self.intercept: float = float(artifact["intercept"])
        n = len(names)
        if not (self._mean.shape == self._scale.shape == self._coef.shape == (n,)) or np.any(self._scale <= 0):
            raise ValueError("twin artifact scaler/coefficients do not fit its features")

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
        z = (x - self._mean) / self._scale
        z[np.isnan(z)] = 0.0
        return z * self._coef

    def logit(self, features: pd.DataFrame) -> np.ndarray:
        return self.intercept + self.points(features).sum(axis=1)

    def risk(self, features: pd.DataFrame) -> np.ndarray:
        return sigmoid(self.logit(features))

    def score(self, features: pd.DataFrame) -> list[TwinScore]:
        """One :class:`TwinScore` per row of ``models.features.build`` output (same order)."""
        if features.empty:
            return []
        pts = self.points(features)
        logits = self.intercept + pts.sum(axis=1)
        risks = sigmoid(logits)
        values = features.loc[:, list(self.feature_names)].to_numpy(dtype=float)
        order = np.argsort(-np.abs(pts), axis=1, kind="stable")
        pids = features["patient_id"].to_numpy()
        ends = pd.to_datetime(features["window_end"], utc=True)
        out: list[TwinScore] = []
        for i in range(len(features)):
            row = dict(zip(self.feature_names, values[i].tolist(), strict=True))
            contribs = []
            for j in order[i]:
                name = self.feature_names[j]
                v = values[i, j]
                p = float(pts[i, j])
                text = F.sentence(name, row) if math.isnan(v) or abs(p) >= SIGNIFICANT_POINTS else ""
                contribs.append(TwinContribution(name, None if math.isnan(v) else float(v), p, text))
            out.append(TwinScore(str(pids[i]), ends.iloc[i], float(risks[i]), float(logits[i]), self.intercept,
                                 tuple(contribs)))
        return out


__all__ = ["DEFAULT_ARTIFACT", "SIGNIFICANT_POINTS", "Twin", "TwinContribution", "TwinScore", "sigmoid"]
