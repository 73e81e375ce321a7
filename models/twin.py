"""The logistic-regression twin: load a JSON artifact, score feature rows, explain each score.

Scoring (exact, no hidden terms)::

    z_j      = clip((x_j - mean_j) / scale_j, ±clip_j)   standardised feature, winsorised at ±4 SD (NEWS2's
                                                 features at ≥ 4 NEWS2 points' worth) so a
                                                 far-out value cannot push the logit without bound; a
                                                 missing x_j is imputed with the training mean: z_j = 0
    points_j = coef_j * z_j                      the feature's push on the logit
    logit    = intercept + Σ_j points_j          coef and intercept already include Platt calibration (and a
                                                 site's own map, ``site_calibration``: slope × logit + intercept,
                                                 folded in at load; the stored weights are never changed)
    risk     = expit(logit) = 1 / (1 + exp(-logit))   a calibrated probability of deterioration within 6 h

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

Alert threshold: the artifact records the twin's alert threshold with its alert budget, sustain rule and interval
(``operating_points.alert``, derived on development patients by ``lab.train.alert_threshold``);
:attr:`Twin.sustain_windows` is how many consecutive windows at or above it raise an alert;
:meth:`Twin.alert_thresholds` gives the service its raise / clear pair: the artifact's threshold unless a
site overrides it, and a clear threshold of ``CLEAR_FRACTION`` (0.8) of the raise threshold unless given.

Beside it: :mod:`models.what_if` (rescore with some vitals changed) and :mod:`models.challenger`
(the gradient-boosting challenger's JSON trees).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, NamedTuple

import numpy as np
import pandas as pd
from scipy.special import expit

from models import features as F

DEFAULT_ARTIFACT: Final[Path] = Path(__file__).resolve().parent / "artifacts" / "twin.json"
ARTIFACT_FORMAT: Final[str] = "wardtwin.twin/2"
SIGNIFICANT_POINTS: Final[float] = 0.2
#: An active twin alert clears when the risk falls below this fraction of the raise threshold (hysteresis).
CLEAR_FRACTION: Final[float] = 0.8
#: Raise threshold for an artifact that records none (artifacts before twin v3).
FALLBACK_THRESHOLD: Final[float] = 0.7


class TwinContribution(NamedTuple):
    """One feature's push on the logit: ``points`` = coefficient × standardised value; ``value`` None when not
    measured. A NamedTuple (the service's ``app.domain.Contribution`` is this type): a cycle makes ~40 per
    patient, and a frozen dataclass costs three times as much to build."""

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


def _row_sum(pts: np.ndarray) -> np.ndarray:
    """Row sums added feature by feature in a fixed order, so a row's logit is bit-identical whatever the batch
    (``ndarray.sum(axis=1)`` may block the additions differently for one row and for many)."""
    out = np.zeros(pts.shape[0])
    for j in range(pts.shape[1]):
        out += pts[:, j]
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
        clip = artifact["scaler"].get("clip")  # one bound for every feature, or one per feature
        self._clip = np.full(len(names), math.inf) if clip is None else \
            np.broadcast_to(np.asarray(clip, dtype=float), (len(names),)).copy()
        self.intercept: float = float(artifact["intercept"])
        site = artifact.get("site_calibration")
        if site is not None:  # a site's own calibration map on top of the shipped logit (``wardtwin calibrate``)
            slope, shift = float(site["slope"]), float(site["intercept"])
            if not (slope > 0 and math.isfinite(slope) and math.isfinite(shift)):
                raise ValueError(f"site calibration slope {slope!r} must be positive and finite (it keeps the signs)")
            self._coef = slope * self._coef
            self.intercept = slope * self.intercept + shift
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

    @property
    def alert_threshold(self) -> float:
        """The artifact's alert threshold (``operating_points.alert.threshold``; 0.7 for older artifacts)."""
        point = (self.artifact.get("operating_points") or {}).get("alert") or {}
        t = point.get("threshold")
        return float(t) if t is not None and 0 < float(t) < 1 else FALLBACK_THRESHOLD

    @property
    def sustain_windows(self) -> int:
        """Consecutive 5-minute windows at or above the threshold before the twin raises (the rule its threshold was
        budgeted with, ``operating_points.alert.sustain_windows``; 1 for older artifacts)."""
        point = (self.artifact.get("operating_points") or {}).get("alert") or {}
        n = point.get("sustain_windows")
        return int(n) if isinstance(n, int) and n >= 1 else 1

    def alert_thresholds(self, threshold: float | None = None, clear: float | None = None) -> tuple[float, float]:
        """(raise, clear): a site's values where given, else the artifact's threshold and ``CLEAR_FRACTION`` × it."""
        raise_at = float(threshold) if threshold is not None else self.alert_threshold
        clear_at = float(clear) if clear is not None else CLEAR_FRACTION * raise_at
        if clear_at > raise_at:
            raise ValueError(f"alert clear threshold {clear_at:g} exceeds the alert threshold {raise_at:g}")
        return raise_at, clear_at

    def points(self, features: pd.DataFrame) -> np.ndarray:
        """Per-row, per-feature points (n_rows × n_features): coef × standardised value, 0 when missing."""
        x = features.loc[:, list(self.feature_names)].to_numpy(dtype=float)
        z = np.clip((x - self._mean) / self._scale, -self._clip, self._clip)
        z[np.isnan(z)] = 0.0
        return z * self._coef

    def logit(self, features: pd.DataFrame) -> np.ndarray:
        return self.intercept + _row_sum(self.points(features))

    def risk(self, features: pd.DataFrame) -> np.ndarray:
        return expit(self.logit(features))

    def score(self, features: pd.DataFrame, *, explain: bool = True) -> list[TwinScore]:
        """One :class:`TwinScore` per row of ``models.features.build`` output (same order).

        ``explain=False`` leaves every sentence empty (faster; for bulk evaluation).
        """
        if features.empty:
            return []
        pts = self.points(features)
        logits = self.intercept + _row_sum(pts)
        risks = expit(logits)
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


__all__ = ["ARTIFACT_FORMAT", "CLEAR_FRACTION", "DEFAULT_ARTIFACT", "FALLBACK_THRESHOLD", "SIGNIFICANT_POINTS", "Twin",
           "TwinContribution", "TwinScore"]
