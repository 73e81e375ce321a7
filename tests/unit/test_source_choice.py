"""The stated rule that picks the twin's training data, and the weighted fit under it."""

from __future__ import annotations

import numpy as np
import pytest

from lab import source_choice as S
from lab import train as T
from models import features as F


def _result(worse: float) -> dict:
    return {"worse_margin": worse}


def test_the_highest_worse_margin_wins() -> None:
    r = {"simulator": _result(-0.02), "set-a": _result(0.01), "simulator+set-a": _result(0.03)}
    assert S.choose(r) == "simulator+set-a"


def test_ties_go_to_fewer_sources_then_the_stated_order() -> None:
    r = {"simulator": _result(0.028), "set-a": _result(0.027), "simulator+set-a": _result(0.03)}
    assert S.choose(r) == "simulator"
    r = {"simulator": _result(0.0), "set-a": _result(0.029), "simulator+set-a": _result(0.03)}
    assert S.choose(r) == "set-a"


def test_each_source_gets_the_same_total_weight() -> None:
    a, b = np.ones(100, dtype=bool), np.ones(10, dtype=bool)
    wa, wb = S.source_weights([None, None], [a, b])  # type: ignore[list-item]
    assert wa.sum() == pytest.approx(wb.sum())
    assert S.source_weights([None], [a])[0].tolist() == [1.0] * 100  # type: ignore[list-item]


def test_unit_sample_weights_give_the_unweighted_fit() -> None:
    rng = np.random.default_rng(3)
    z = rng.normal(size=(400, 3))
    y = (z[:, 0] + rng.normal(size=400) > 1).astype(int)
    d = np.asarray([1, 0, -1])
    w0, b0 = T.fit_constrained(z, y, d)
    w1, b1 = T.fit_constrained(z, y, d, sample_weight=np.ones(400))
    assert np.allclose(w0, w1, atol=1e-8) and b0 == pytest.approx(b1, abs=1e-8)
    w2, _ = T.fit_constrained(z, y, d, sample_weight=np.full(400, 3.0))  # a common scale changes nothing
    assert np.allclose(w0, w2, atol=1e-6)


def _rows(name: str, n_patients: int, signal: int, seed: int) -> S.SourceRows:
    """Patients of 20 rows each; the label follows feature ``signal`` (the others are noise)."""
    rng = np.random.default_rng(seed)
    n = n_patients * 20
    x = rng.normal(size=(n, len(F.FEATURE_NAMES)))
    j = F.FEATURE_NAMES.index(F.FEATURE_NAMES[signal])
    direction = F.DIRECTIONS[F.FEATURE_NAMES[j]] or 1
    y = (direction * x[:, j] + rng.normal(scale=0.5, size=n) > 1.0).astype(int)
    patient = np.repeat([f"{name}-{i}" for i in range(n_patients)], 20).astype(object)
    fold = np.repeat(np.arange(n_patients) % S.FOLDS, 20)
    news = rng.integers(0, 8, n).astype(float)
    every = np.ones(n, dtype=bool)
    return S.SourceRows(name, x, y, every, every, news, patient, fold)


def test_each_candidate_is_judged_on_both_sources_out_of_fold() -> None:
    sim = _rows("simulator", 40, signal=F.FEATURE_NAMES.index("hr_rise_1h"), seed=1)
    real = _rows("set-a", 40, signal=F.FEATURE_NAMES.index("hr_outside_normal"), seed=2)
    report, logits = S.compare({"simulator": sim, "set-a": real}, n_bootstrap=20, seed=0)
    c = report["candidates"]
    # a model learns its own source's signal and not the other's; the pooled one learns both
    assert c["simulator"]["margins"]["simulator"]["auroc"] > 0.8 > c["simulator"]["margins"]["set-a"]["auroc"]
    assert c["set-a"]["margins"]["set-a"]["auroc"] > 0.8 > c["set-a"]["margins"]["simulator"]["auroc"]
    assert min(m["auroc"] for m in c["simulator+set-a"]["margins"].values()) > 0.7
    assert c["simulator+set-a"]["worse_margin"] > max(c["simulator"]["worse_margin"], c["set-a"]["worse_margin"])
    assert report["chosen"] == "simulator+set-a"
    assert all(np.isfinite(v).all() for v in logits["set-a"].values())
    pooled = S.pooled_fit(report, logits, {"simulator": sim, "set-a": real})
    assert pooled.name == "simulator+set-a" and len(pooled.oof) == len(sim.y)


def test_a_feature_that_only_marks_the_source_learns_nothing_in_a_pooled_fit() -> None:
    """Set A charts SpO2 a few times a day, so SpO2-missing minutes are high there, and its event rate is higher
    than the ward's: without a per-source intercept that feature would learn the base-rate difference."""
    rng = np.random.default_rng(5)
    marker = F.FEATURE_NAMES.index("spo2_missing_min_1h")
    sources = []
    for name, rate, missing in (("simulator", 0.03, 0.0), ("set-a", 0.12, 60.0)):
        n = 20_000
        x = rng.normal(size=(n, len(F.FEATURE_NAMES)))
        x[:, marker] = np.abs(missing - np.abs(rng.normal(scale=10.0, size=n)))  # varies, tells nothing within
        y = (rng.uniform(size=n) < rate).astype(int)
        every = np.ones(n, dtype=bool)
        pids = np.repeat([f"{name}-{i}" for i in range(1000)], 20).astype(object)
        sources.append(S.SourceRows(name, x, y, every, every, np.zeros(n), pids, np.zeros(n, dtype=int)))
    mean, scale, coef, _, offsets = S.fit_on(sources, [s.fit for s in sources])
    assert offsets["set-a"] > 1.0  # the base-rate difference sits in the source's own intercept
    # the same rows without the per-source intercept: the marker takes the difference
    x = np.vstack([s.x for s in sources])
    y = np.concatenate([s.y for s in sources])
    directions = np.asarray([F.DIRECTIONS[n] for n in F.FEATURE_NAMES], dtype=int)
    naive, _ = T.fit_constrained(T.standardise(x, mean, scale), y, directions)
    assert naive[marker] > 0.5
    assert coef[marker] < 0.1 * naive[marker]
