"""Does a release still teach the twin? Its AUROC trained on the released windows against trained on the originals.

Split (stated): ``lab.train.split_of(patient_id, seed)`` on the *original* ids: train + validation are the
development patients, test the held-out 20 %. Both fits use the twin's own code (``lab.train.prepare`` for features
and labels, ``fit_scaler`` / ``standardise`` / ``fit_constrained`` with the declared sign constraints, eligible
windows, balanced classes, C = 1); the original fit sees every development patient's windows, the export fit only
the development patients the export released (its windows rebuilt from ``minutes_since_admission`` under the
pseudonym). Both are scored on the same original test patients' windows, so the difference is what the release
costs the twin (suppressed patients; the window values are released unchanged).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from lab import metrics as M
from lab import train as T
from models import features as F
from models import windows as W

SPLIT_SEED = 7
_EPOCH = pd.Timestamp("2000-01-03T00:00Z")


def export_windows(rows: pd.DataFrame) -> pd.DataFrame:
    """Export rows → windows in the store's shape (``patient_id`` = pseudonym, starts from an arbitrary epoch)."""
    frame = pd.DataFrame({"patient_id": rows["pseudonym"].astype(object),
                          "start": _EPOCH + pd.to_timedelta(rows["minutes_since_admission"] - 5, unit="min")})
    for c in W.MEASURE_COLUMNS:
        frame[c] = rows[c].to_numpy()
    return W.normalise(frame)


def _fit(windows: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray, float] | None:
    ds = T.prepare(windows, pd.DataFrame({"patient_id": windows["patient_id"].unique()}))
    f = ds.frame
    m = f["eligible"].to_numpy(bool)
    x = f.loc[m, list(F.FEATURE_NAMES)].to_numpy(float)
    y = f.loc[m, "label"].to_numpy(int)
    if len(y) == 0 or y.min() == y.max():
        return None
    mean, scale = T.fit_scaler(x)
    z = T.standardise(x, mean, scale)
    directions = np.asarray([F.DIRECTIONS[n] for n in F.FEATURE_NAMES], dtype=int)
    w, b = T.fit_constrained(z, y, directions)
    return mean, scale, w, b


def _score(model: tuple[np.ndarray, np.ndarray, np.ndarray, float] | None, test: pd.DataFrame) -> float | None:
    if model is None or test.empty:
        return None
    mean, scale, w, b = model
    f = T.prepare(test, pd.DataFrame({"patient_id": test["patient_id"].unique()})).frame
    m = f["eligible"].to_numpy(bool)
    z = T.standardise(f.loc[m, list(F.FEATURE_NAMES)].to_numpy(float), mean, scale)
    y = f.loc[m, "label"].to_numpy(int)
    return M.auroc(y, z @ w + b) if len(y) and y.min() != y.max() else None


def compare(windows: pd.DataFrame, rows: pd.DataFrame, pseudonym_of: dict[str, str], *,
            seed: int = SPLIT_SEED) -> dict[str, Any]:
    """AUROC on the original test patients, trained on the originals vs on the export (module docstring)."""
    cols = list(W.WINDOW_COLUMNS)
    ids = windows["patient_id"].unique()
    split = dict(zip(ids, T.split_of(ids, seed), strict=True))
    dev_ids = {p for p, s in split.items() if s != "test"}
    test_ids = {p for p, s in split.items() if s == "test"}
    original_dev = windows.loc[windows["patient_id"].isin(dev_ids), cols]
    test = windows.loc[windows["patient_id"].isin(test_ids), cols]
    dev_pseudonyms = {pseudonym_of[p] for p in dev_ids}
    export_dev = export_windows(rows[rows["pseudonym"].isin(dev_pseudonyms)])
    on_original = _score(_fit(original_dev), test)
    on_export = _score(_fit(export_dev), test)
    return {
        "split": f"lab.train.split_of(original patient_id, seed={seed}): train+validation (80 %) fit, test (20 %) "
                 "scored; eligible windows; the twin's sign-constrained logistic regression (lab.train)",
        "development_patients": {"original": len(dev_ids), "export": int(export_dev["patient_id"].nunique())},
        "test_patients": len(test_ids),
        "auroc_trained_on_original": on_original,
        "auroc_trained_on_export": on_export,
        "difference": None if on_original is None or on_export is None else on_export - on_original,
    }


__all__ = ["SPLIT_SEED", "compare", "export_windows"]
