"""How good and how private a synthetic cohort is, measured as the field measures it (issue 25).

Every function takes records (``lab.research.synthetic``: one row per patient-hour, ``patient_id`` on real rows)
and returns plain numbers. Real patients are split once (``synthetic.split_of``): *train* (the synthesizer and the
real-data twin see only these; members for the attack), *holdout* (never fitted: the privacy baselines'
non-members) and *test* (never fitted: every AUROC is measured on their real hours, with patient-bootstrap 95 %
intervals). Each fidelity number has a baseline: the same measure between the real train and the real holdout
patients, i.e. what two samples of real patients differ by.

- Fidelity: per-column two-sample Kolmogorov–Smirnov statistic (known values) and missing share; Pearson correlation
  matrices (standardised, missing at the mean) and the mean absolute difference of their off-diagonal entries.
- Classifier two-sample test (C2ST, Lopez-Paz & Oquab 2017): a gradient-boosting classifier tells real train
  records from synthetic ones (equal numbers); fitted on half, accuracy and AUROC on the other half (real rows
  split by patient). 0.5 = indistinguishable.
- Utility: TSTR (train the twin on synthetic, test on real) against TRTR (train on real train patients), the twin's
  own estimator (``lab.train``: sign-constrained, class-balanced L2 logistic regression on standardised, winsorised
  features, the NEWS2 floors), on the test patients' eligible hours.
- Privacy: distance to closest record (DCR) of synthetic records to the real train records against the same for
  real holdout records (the baseline a fresh sample of patients gives), and the share of synthetic records nearer a
  train record than a holdout record (train and holdout reference sets of equal size; 0.5 = no closer to the
  training patients than to unseen ones). A membership-inference attack (distance to the closest synthetic record,
  as GAN-Leaks; and its calibrated form, minus the distance to the attacker's reference sample of real non-members),
  scored per patient as the mean over their records: AUROC of train patients (members) against holdout patients.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

import numpy as np
import pandas as pd
from scipy.stats import ks_2samp

from lab import metrics as M
from lab import train as T
from lab.research.synthetic import LABEL, PATIENT
from models import features as F

Progress = Callable[[str], None]

#: Records compared per side in the classifier test and queries per side for DCR (a fixed-seed sample).
C2ST_MAX: Final[int] = 20_000
DCR_QUERIES: Final[int] = 5_000
#: Patients per side in the membership-inference attack, and records per patient.
MIA_PATIENTS: Final[int] = 500
MIA_RECORDS: Final[int] = 12
MIN_KNOWN: Final[int] = 20
MISSING_SENTINEL: Final[float] = -1e9
DIRECTIONS: Final[np.ndarray] = np.asarray([F.DIRECTIONS[n] for n in F.FEATURE_NAMES], dtype=int)


def _quiet(_: str) -> None:
    return None


# -- fidelity ----------------------------------------------------------------------------------------------------
def ks_columns(real: pd.DataFrame, synth: pd.DataFrame, columns: list[str]) -> dict[str, dict[str, Any]]:
    """Per column: the KS statistic on known values (None when either side has fewer than ``MIN_KNOWN``) and the
    missing shares."""
    out: dict[str, dict[str, Any]] = {}
    for c in columns:
        a, b = real[c].to_numpy(float), synth[c].to_numpy(float)
        ka, kb = a[~np.isnan(a)], b[~np.isnan(b)]
        ks = float(ks_2samp(ka, kb, method="asymp").statistic) if min(len(ka), len(kb)) >= MIN_KNOWN else None
        out[c] = {"ks": ks, "missing_real": float(np.isnan(a).mean()) if len(a) else None,
                  "missing_synthetic": float(np.isnan(b).mean()) if len(b) else None}
    return out


def ks_summary(table: dict[str, dict[str, Any]]) -> dict[str, Any]:
    vals = {k: v["ks"] for k, v in table.items() if v["ks"] is not None}
    miss = [abs(v["missing_real"] - v["missing_synthetic"]) for v in table.values()
            if v["missing_real"] is not None and v["missing_synthetic"] is not None]
    worst = max(vals, key=lambda k: vals[k]) if vals else None
    return {"mean_ks": float(np.mean(list(vals.values()))) if vals else None,
            "max_ks": vals[worst] if worst else None, "max_ks_column": worst, "columns_compared": len(vals),
            "mean_abs_missing_share_difference": float(np.mean(miss)) if miss else None}


def standardiser(reference: pd.DataFrame, columns: list[str]) -> Callable[[pd.DataFrame], np.ndarray]:
    """Columns standardised by the reference's mean and SD (winsorised at ±4 SD, ``lab.train.standardise``),
    missing → 0, plus a 0/1 missing indicator per column that is ever missing in the reference."""
    x = reference.loc[:, columns].to_numpy(float)
    mean, scale = T.fit_scaler(x)
    gappy = np.isnan(x).any(axis=0)

    def apply(frame: pd.DataFrame) -> np.ndarray:
        v = frame.loc[:, columns].to_numpy(float)
        z = T.standardise(v, mean, scale, clip=T.Z_CLIP)
        return np.hstack([z, np.isnan(v[:, gappy]).astype(float)])

    return apply


def correlation_difference(real: pd.DataFrame, synth: pd.DataFrame, columns: list[str]) -> dict[str, Any]:
    """Pearson correlations of the standardised columns (missing at the mean) on each side; mean and max absolute
    difference over the pairs of columns that vary on both sides."""
    if min(len(real), len(synth)) < MIN_KNOWN:
        return {"mean_abs_difference": None, "max_abs_difference": None, "pairs": 0, "columns": [], "real": [],
                "synthetic": []}
    scale = standardiser(real, columns)
    k = len(columns)
    a, b = scale(real)[:, :k], scale(synth)[:, :k]
    live = (a.std(axis=0) > 1e-12) & (b.std(axis=0) > 1e-12)
    ca, cb = np.corrcoef(a[:, live], rowvar=False), np.corrcoef(b[:, live], rowvar=False)
    iu = np.triu_indices(int(live.sum()), 1)
    d = np.abs(ca - cb)[iu]
    names = [c for c, ok in zip(columns, live, strict=True) if ok]
    return {"mean_abs_difference": float(d.mean()) if len(d) else None,
            "max_abs_difference": float(d.max()) if len(d) else None, "pairs": len(d), "columns": names,
            "real": ca.tolist(), "synthetic": cb.tolist()}


# -- classifier two-sample test ----------------------------------------------------------------------------------
def _halves(n: int, groups: np.ndarray | None, rng: np.random.Generator) -> np.ndarray:
    """True for the rows in the fitting half (by group when groups are given)."""
    if groups is None:
        return rng.permutation(n) < n // 2
    ids = np.unique(groups)
    fit_ids = set(ids[rng.permutation(len(ids)) < len(ids) // 2])
    return np.asarray([g in fit_ids for g in groups])


def two_sample_test(a: pd.DataFrame, b: pd.DataFrame, columns: list[str], *, seed: int,
                    groups_a: np.ndarray | None = None, groups_b: np.ndarray | None = None,
                    max_rows: int = C2ST_MAX) -> dict[str, Any]:
    """C2ST: can a classifier tell ``a`` from ``b``? Equal numbers from each (at most ``max_rows``), fitted on one
    half (split by patient where groups are given), judged on the other: accuracy and AUROC (0.5 = cannot)."""
    from sklearn.ensemble import HistGradientBoostingClassifier
    from threadpoolctl import threadpool_limits

    rng = np.random.default_rng(seed)
    n = min(len(a), len(b), max_rows)
    if n < 10:
        return {"accuracy": None, "auroc": None, "rows_per_side": n}
    ia, ib = np.sort(rng.choice(len(a), n, replace=False)), np.sort(rng.choice(len(b), n, replace=False))
    xa, xb = a.iloc[ia][columns].to_numpy(float), b.iloc[ib][columns].to_numpy(float)
    fa = _halves(n, None if groups_a is None else np.asarray(groups_a)[ia], rng)
    fb = _halves(n, None if groups_b is None else np.asarray(groups_b)[ib], rng)
    # Missing as a value below every real one (a tree splits it off as it would NaN; sklearn's binning fails on a
    # column that is missing throughout).
    x = np.nan_to_num(np.vstack([xa, xb]), nan=MISSING_SENTINEL)
    y = np.r_[np.ones(n), np.zeros(n)]
    fit = np.r_[fa, fb]
    model = HistGradientBoostingClassifier(max_iter=200, learning_rate=0.1, max_leaf_nodes=31, early_stopping=False,
                                           random_state=seed)
    with threadpool_limits(limits=1, user_api="openmp"):  # OpenMP threads crawl on a shared 2-core machine
        model.fit(x[fit], y[fit])
        p = model.predict_proba(x[~fit])[:, 1]
    return {"accuracy": float(np.mean((p >= 0.5) == (y[~fit] == 1))), "auroc": M.auroc(y[~fit], p),
            "rows_per_side": n, "judged_rows": int((~fit).sum())}


# -- the twin on real or synthetic records -----------------------------------------------------------------------
def fit_twin(records: pd.DataFrame) -> dict[str, np.ndarray | float]:
    """The twin's estimator (``lab.train``, every feature free, the NEWS2 floors) on records' features and label.
    Raw logits only: a calibration map would not change any AUROC."""
    x = records.loc[:, list(F.FEATURE_NAMES)].to_numpy(float)
    y = records[LABEL].to_numpy(int)
    if y.min(initial=1) == y.max(initial=0):
        raise ValueError("the twin needs records with and without a deterioration label")
    mean, scale = T.fit_scaler(x)
    free = np.ones(len(F.FEATURE_NAMES), dtype=bool)
    w, b = T._fit_free(T.standardise(x, mean, scale), y, DIRECTIONS, free, T.floors(scale))
    return {"mean": mean, "scale": scale, "w": w, "b": b}


def twin_logit(model: dict[str, Any], records: pd.DataFrame) -> np.ndarray:
    x = records.loc[:, list(F.FEATURE_NAMES)].to_numpy(float)
    return T.standardise(x, model["mean"], model["scale"]) @ model["w"] + float(model["b"])


def compare_on_test(test: pd.DataFrame, scores: dict[str, np.ndarray], *, reference: str, n_bootstrap: int,
                    seed: int, subgroups: dict[str, np.ndarray] | None = None) -> dict[str, Any]:
    """AUROC of each score on the test records with patient-bootstrap 95 % intervals and the paired difference from
    ``reference``; the same within each subgroup (a boolean row mask) when given."""
    def one(mask: np.ndarray) -> dict[str, Any]:
        y = test[LABEL].to_numpy(int)[mask]
        pid = test[PATIENT].to_numpy(object)[mask]
        res = M.bootstrap(y, {k: v[mask] for k, v in scores.items()}, pid, n=n_bootstrap, seed=seed,
                          references=(reference,))
        out = {k: {m: v[m] for m in v if m.startswith("auroc")} for k, v in res.items()}
        return {"patients": len(pd.unique(pid)), "hours": int(mask.sum()), "positive_hours": int(y.sum()),
                "scores": out}

    result = {"all": one(np.ones(len(test), dtype=bool))}
    for name, mask in (subgroups or {}).items():
        result[name] = one(mask)
    return result


# -- privacy -----------------------------------------------------------------------------------------------------
def nearest(reference: np.ndarray, queries: np.ndarray) -> np.ndarray:
    """Euclidean distance from each query to its closest reference row."""
    from sklearn.neighbors import NearestNeighbors

    if not len(queries):
        return np.zeros(0)
    nn = NearestNeighbors(n_neighbors=1, algorithm="brute", n_jobs=1).fit(reference)
    return nn.kneighbors(queries, return_distance=True)[0][:, 0]


def _sample(n: int, k: int, rng: np.random.Generator) -> np.ndarray:
    return np.arange(n) if n <= k else np.sort(rng.choice(n, k, replace=False))


def dcr(train: pd.DataFrame, holdout: pd.DataFrame, synth: pd.DataFrame, columns: list[str], *, seed: int,
        queries: int = DCR_QUERIES) -> dict[str, Any]:
    """Distance to closest record (module docstring): synthetic → real train against real holdout → real train,
    and the share of synthetic records nearer train than holdout (equal-size reference sets)."""
    rng = np.random.default_rng(seed)
    scale = standardiser(train, columns)
    tr, ho, sy = scale(train), scale(holdout), scale(synth)
    qs, qh = sy[_sample(len(sy), queries, rng)], ho[_sample(len(ho), queries, rng)]
    d_syn, d_hold = nearest(tr, qs), nearest(tr, qh)
    m = min(len(tr), len(ho))
    closer = None
    if m and len(qs):
        tr_eq, ho_eq = tr[_sample(len(tr), m, rng)], ho[_sample(len(ho), m, rng)]
        to_tr, to_ho = nearest(tr_eq, qs), nearest(ho_eq, qs)
        closer = float(np.mean(np.where(to_tr < to_ho, 1.0, np.where(to_tr == to_ho, 0.5, 0.0))))

    def stats(d: np.ndarray) -> dict[str, float | None]:
        if not len(d):
            return {"median": None, "p05": None, "exact_copies": None}
        return {"median": float(np.median(d)), "p05": float(np.percentile(d, 5)),
                "exact_copies": float(np.mean(d < 1e-9))}

    return {"synthetic_to_train": stats(d_syn), "holdout_to_train": stats(d_hold),
            "share_synthetic_closer_to_train_than_holdout": closer, "queries": {"synthetic": len(qs),
                                                                                "holdout": len(qh)},
            "equal_reference_rows": m, "space": "the synthesized columns standardised by the real train records "
            "(winsorised at 4 SD, missing at the mean) with a missing indicator per gappy column; Euclidean"}


def membership_attack(train: pd.DataFrame, holdout: pd.DataFrame, reference: pd.DataFrame, synth: pd.DataFrame,
                      columns: list[str], *, seed: int, patients: int = MIA_PATIENTS,
                      records: int = MIA_RECORDS) -> dict[str, Any]:
    """Patient-level membership inference from the synthetic records (module docstring): AUROC of members (train
    patients) against non-members (holdout patients), uncalibrated and calibrated by ``reference`` (real
    non-members the attacker holds)."""
    rng = np.random.default_rng(seed)
    scale = standardiser(train, columns)

    def targets(frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        ids = np.sort(pd.unique(frame[PATIENT].astype(str)))
        ids = ids[_sample(len(ids), patients, rng)]
        rows = []
        codes = []
        pid = frame[PATIENT].astype(str).to_numpy()
        for i, p in enumerate(ids):
            where = np.flatnonzero(pid == p)
            rows.extend(where[_sample(len(where), records, rng)])
            codes.extend([i] * min(len(where), records))
        return np.asarray(rows, dtype=int), np.asarray(codes, dtype=int)

    rm, cm = targets(train)
    rh, ch = targets(holdout)
    sy = scale(synth)
    ref = scale(reference)[_sample(len(reference), len(synth), rng)]
    q = np.vstack([scale(train.iloc[rm]), scale(holdout.iloc[rh])])
    d_syn, d_ref = nearest(sy, q), nearest(ref, q)
    n_m = len(rm)

    def per_patient(score: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        sm = np.bincount(cm, weights=score[:n_m]) / np.bincount(cm)
        sh = np.bincount(ch, weights=score[n_m:]) / np.bincount(ch)
        return np.r_[sm, sh], np.r_[np.ones(len(sm)), np.zeros(len(sh))]

    s1, y = per_patient(-d_syn)
    s2, _ = per_patient(d_ref - d_syn)
    r1, r2 = M.auroc(y, s1), M.auroc(y, s2)
    return {"auroc_distance_to_synthetic": r1, "auroc_calibrated": r2,
            "auroc_worst": max(v for v in (r1, r2) if v is not None) if (r1 or r2) else None,
            "members": int(y.sum()), "non_members": int(len(y) - y.sum()), "records_per_patient": records,
            "reference_rows": len(ref), "attack": "score per record: -(distance to the closest synthetic record) "
            "(GAN-Leaks), calibrated: distance to the closest reference record minus that; a patient's score is the "
            "mean over at most " f"{records} of their records; members are train patients, non-members holdout"}


__all__ = ["compare_on_test", "correlation_difference", "dcr", "fit_twin", "ks_columns", "ks_summary",
           "membership_attack", "nearest", "standardiser", "twin_logit", "two_sample_test"]
