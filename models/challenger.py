"""The challenger: gradient-boosted trees as plain JSON, for the evaluation report and optional shadow serving.

Trained and exported by ``lab.train.train_challenger`` / ``lab.train.export_hgb``; this module only
walks the exported trees.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

import numpy as np
import pandas as pd
from scipy.special import expit

from models import features as F

DEFAULT_CHALLENGER: Final[Path] = Path(__file__).resolve().parent / "artifacts" / "challenger.json"
CHALLENGER_FORMAT: Final[str] = "wardtwin.challenger/1"


class Challenger:
    """scikit-learn HistGradientBoostingClassifier exported as plain JSON trees (never pickle).

    ``risk(features)``: per row, ``expit(baseline + Σ_trees leaf value)``; a tree goes left when
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
        return expit(self.raw(features))


__all__ = ["CHALLENGER_FORMAT", "DEFAULT_CHALLENGER", "Challenger"]
