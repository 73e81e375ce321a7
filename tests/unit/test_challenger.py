"""models.challenger: the exported JSON trees score exactly as scikit-learn; the shipped challenger loads."""

from __future__ import annotations

import json

import numpy as np
import pytest

from lab import train as T
from models import features as F
from models.challenger import CHALLENGER_FORMAT, DEFAULT_CHALLENGER, Challenger
from tests.support.synthetic_windows import synthetic_windows


def test_challenger_json_trees_reproduce_scikit_learn() -> None:
    from sklearn.ensemble import HistGradientBoostingClassifier

    w, _ = synthetic_windows(60, 30, seed=21, frac_deteriorating=0.5)
    feats = F.build(w)
    x = feats[list(F.FEATURE_NAMES)].to_numpy(float).copy()
    y = (np.nan_to_num(feats["hr_outside_normal"].to_numpy()) > 0.25).astype(int)
    x[::7, 3] = np.nan  # missing values take the learned side
    x[:, 5] = np.where(y == 1, np.nan, 1.0)  # a split on missingness alone has an infinite threshold
    model = HistGradientBoostingClassifier(max_iter=15, random_state=0).fit(x, y)
    base, trees = T.export_hgb(model)
    art = {"format": CHALLENGER_FORMAT, "feature_names": list(F.FEATURE_NAMES), "baseline": base,
           "trees": trees, "version": "t"}
    text = json.dumps(art, allow_nan=False)
    assert '"inf"' in text
    ch = Challenger(json.loads(text))
    frame = feats.copy()
    frame[list(F.FEATURE_NAMES)] = x
    np.testing.assert_allclose(ch.risk(frame), model.predict_proba(x)[:, 1], rtol=0, atol=1e-12)


def test_shipped_challenger_loads_and_refuses_other_features() -> None:
    ch = Challenger.load()
    data = json.loads(DEFAULT_CHALLENGER.read_text(encoding="utf-8"))
    assert ch.version == data["version"] and ch.feature_names == F.FEATURE_NAMES
    w, _ = synthetic_windows(4, 14, seed=5, frac_deteriorating=0.5)
    risk = ch.risk(F.build(w))
    assert ((risk > 0) & (risk < 1)).all()
    data["feature_names"] = data["feature_names"][::-1]
    with pytest.raises(ValueError, match="features do not match"):
        Challenger(data)
