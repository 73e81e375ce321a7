"""The synthetic-cohort study (issue 25): fit, sample, judge (``synthetic_eval``), and the two classic uses.

1. The synthesizer is fitted on the real *train* patients' records and samples as many synthetic records; fidelity,
   the classifier two-sample test, TSTR against TRTR, DCR and the membership attack follow (``synthetic_eval``).
2. Augmentation: a small real training set (``SIZES`` train patients, a fixed-seed draw, each set inside the next)
   alone, and with synthetic records from a synthesizer fitted on that same small set only (``MULTIPLIERS`` × its
   own number of records); the twin's AUROC on the real test patients, with the paired difference from real alone.
3. Rebalancing: the train patients skewed two to one toward men (every man kept, women drawn at random down to half
   the men); the twin on the skewed set, with synthetic women (a synthesizer fitted on the skewed set, sampled given
   sex = female) up to as many women's records as men's, with the skewed set's real women's records drawn again at
   random to the same count (random oversampling, the usual comparator), and on all train patients (the women the
   skew removed put back: the reference no synthesizer can beat). AUROC overall, in women and in men.

Deterministic for a seed: the split, the draws, the synthesizer's samples and the bootstrap all take it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any, Final

import numpy as np
import pandas as pd

from lab.research import synthetic as S
from lab.research import synthetic_eval as E

Progress = Callable[[str], None]

SIZES: Final[tuple[int, ...]] = (100, 400)
MULTIPLIERS: Final[tuple[int, ...]] = (1, 4)
FEMALE: Final[float] = 0.0
MALE: Final[float] = 1.0


def _quiet(_: str) -> None:
    return None


def digest(frame: pd.DataFrame) -> str:
    """sha256 (first 16 hex digits) of records written with 9 significant digits: equal for equal samples."""
    text = frame.to_csv(index=False, float_format="%.9g")
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _logits(test: pd.DataFrame, fits: dict[str, pd.DataFrame]) -> dict[str, np.ndarray]:
    return {name: E.twin_logit(E.fit_twin(frame), test) for name, frame in fits.items()}


def _has_both(frame: pd.DataFrame) -> bool:
    return len(frame) > 0 and frame[S.LABEL].nunique() == 2


def augmentation(train: pd.DataFrame, test: pd.DataFrame, *, seed: int, n_bootstrap: int,
                 sizes: tuple[int, ...] = SIZES, multipliers: tuple[int, ...] = MULTIPLIERS,
                 progress: Progress = _quiet) -> list[dict[str, Any]]:
    ids = np.sort(pd.unique(train[S.PATIENT].astype(str)))
    order = ids[np.random.default_rng([seed, 2]).permutation(len(ids))]
    out = []
    for size in sizes:
        if size > len(ids):
            out.append({"real_patients": size, "skipped": f"only {len(ids)} train patients"})
            continue
        small = train[train[S.PATIENT].isin(set(order[:size]))].reset_index(drop=True)
        if not _has_both(small):
            out.append({"real_patients": size, "skipped": "no hour before an event among them"})
            continue
        synth = S.BayesNetSynthesizer().fit(small)
        fits = {"real": small}
        for m in multipliers:
            extra = synth.sample(m * len(small), seed=seed * 1000 + size * 10 + m)
            fits[f"real + synthetic x{m}"] = pd.concat([small, extra.assign(**{S.PATIENT: "synthetic"})],
                                                       ignore_index=True)
        progress(f"augmentation: {size} real patients ({len(small)} records), twins fitted on {list(fits)}")
        res = E.compare_on_test(test, _logits(test, fits), reference="real", n_bootstrap=n_bootstrap, seed=seed)
        out.append({"real_patients": size, "real_records": len(small),
                    "synthetic_records": {f"x{m}": m * len(small) for m in multipliers}, "test": res})
    return out


def rebalancing(train: pd.DataFrame, test: pd.DataFrame, *, seed: int, n_bootstrap: int,
                progress: Progress = _quiet) -> dict[str, Any]:
    sex = train.groupby(S.PATIENT)["sex"].first()
    men, women = np.sort(sex.index[sex == MALE].astype(str)), np.sort(sex.index[sex == FEMALE].astype(str))
    keep_women = len(men) // 2
    if keep_women > len(women) or keep_women < 2:
        return {"skipped": f"{len(men)} men and {len(women)} women among the train patients: cannot skew 2:1"}
    kept = women[np.random.default_rng([seed, 3]).permutation(len(women))[:keep_women]]
    skewed = train[train[S.PATIENT].isin(set(men) | set(kept))].reset_index(drop=True)
    male_rows = int((skewed["sex"] == MALE).sum())
    female = skewed[skewed["sex"] == FEMALE]
    need = male_rows - len(female)
    if need <= 0 or not _has_both(skewed):
        return {"skipped": "the skewed set already has as many women's records as men's, or one label only"}
    synth = S.BayesNetSynthesizer().fit(skewed)
    extra = synth.sample(need, seed=seed * 1000 + 7, evidence={"sex": FEMALE}).assign(**{S.PATIENT: "synthetic"})
    again = female.iloc[np.random.default_rng([seed, 4]).integers(0, len(female), need)]
    fits = {"skewed real": skewed,
            "+ synthetic women": pd.concat([skewed, extra], ignore_index=True),
            "+ real women oversampled": pd.concat([skewed, again], ignore_index=True),
            "all train patients (reference)": train}
    progress(f"rebalancing: {len(men)} men, {len(kept)} of {len(women)} women kept; {need} synthetic women's "
             "records")
    groups = {"women": test["sex"].to_numpy(float) == FEMALE, "men": test["sex"].to_numpy(float) == MALE}
    res = E.compare_on_test(test, _logits(test, fits), reference="skewed real", n_bootstrap=n_bootstrap, seed=seed,
                            subgroups=groups)
    return {"men": len(men), "women_kept": len(kept), "women_in_train": len(women), "male_records": male_rows,
            "female_records": len(female), "synthetic_female_records": need,
            "synthetic_female_label_rate": float(extra[S.LABEL].mean()),
            "real_female_label_rate": float(female[S.LABEL].mean()), "test": res}


def run(records: pd.DataFrame, *, seed: int, n_bootstrap: int, progress: Progress = _quiet,
        sizes: tuple[int, ...] = SIZES, multipliers: tuple[int, ...] = MULTIPLIERS
        ) -> tuple[dict[str, Any], pd.DataFrame]:
    """The whole study on real ``records``: (report, the synthetic cohort sampled from the train patients)."""
    records = records.sort_values([S.PATIENT], kind="mergesort").reset_index(drop=True)
    columns = S.feature_columns(records)
    split = pd.Series(S.split_of(pd.unique(records[S.PATIENT]), seed), index=pd.unique(records[S.PATIENT]))
    part = records[S.PATIENT].map(split).to_numpy(object)
    train, holdout, test = (records[part == s].reset_index(drop=True) for s in ("train", "holdout", "test"))
    counts = {s: {"patients": int(f[S.PATIENT].nunique()), "records": len(f),
                  "positive_records": int(f[S.LABEL].sum())} for s, f in (("train", train), ("holdout", holdout),
                                                                          ("test", test))}
    progress(f"split: {counts}")
    if not (_has_both(train) and _has_both(test)):
        raise ValueError("train and test patients both need hours before an event and hours without")
    synthesizer = S.BayesNetSynthesizer().fit(train)
    synth = synthesizer.sample(len(train), seed=seed)
    progress(f"synthesizer fitted on {len(train)} train records; {len(synth)} synthetic records sampled")

    ks = E.ks_columns(train, synth, columns)
    ks_base = E.ks_columns(train, holdout, columns)
    corr = E.correlation_difference(train, synth, columns)
    corr_base = E.correlation_difference(train, holdout, columns)
    progress("fidelity done; classifier two-sample tests")
    c2st = E.two_sample_test(train, synth, columns, seed=seed, groups_a=train[S.PATIENT].to_numpy())
    c2st_base = E.two_sample_test(train, holdout, columns, seed=seed, groups_a=train[S.PATIENT].to_numpy(),
                                  groups_b=holdout[S.PATIENT].to_numpy())
    progress("TSTR against TRTR")
    utility = E.compare_on_test(test, _logits(test, {"TRTR": train, "TSTR": synth}), reference="TRTR",
                                n_bootstrap=n_bootstrap, seed=seed)
    progress("distance to closest record and the membership attack")
    privacy = {"dcr": E.dcr(train, holdout, synth, columns, seed=seed),
               "membership_inference": E.membership_attack(train, holdout, test, synth, columns, seed=seed)}
    progress("augmentation")
    aug = augmentation(train, test, seed=seed, n_bootstrap=n_bootstrap, sizes=sizes, multipliers=multipliers,
                       progress=progress)
    progress("rebalancing")
    reb = rebalancing(train, test, seed=seed, n_bootstrap=n_bootstrap, progress=progress)
    report = {
        "seed": seed, "bootstrap": n_bootstrap, "split": {"rule": "sha256(f'{seed}:{patient_id}') as a fraction: "
                                                          "< 0.5 train, < 0.75 holdout, else test", **counts},
        "columns": columns, "synthesizer": synthesizer.describe(),
        "synthetic": {"records": len(synth), "label_rate": float(synth[S.LABEL].mean()),
                      "real_label_rate": float(train[S.LABEL].mean()), "digest": digest(synth)},
        "fidelity": {"ks": {"synthetic": ks_summary_with(ks), "holdout_baseline": ks_summary_with(ks_base)},
                     "correlation": {"synthetic": _drop_matrices(corr), "holdout_baseline": _drop_matrices(corr_base)},
                     "two_sample_test": {"synthetic": c2st, "holdout_baseline": c2st_base}},
        "correlation_matrices": {"columns": corr["columns"], "real": corr["real"], "synthetic": corr["synthetic"]},
        "utility": utility, "privacy": privacy, "augmentation": aug, "rebalancing": reb,
    }
    return report, synth


def ks_summary_with(table: dict[str, dict[str, Any]]) -> dict[str, Any]:
    return {**E.ks_summary(table), "columns": table}


def _drop_matrices(corr: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in corr.items() if k not in ("real", "synthetic", "columns")}


__all__ = ["MULTIPLIERS", "SIZES", "augmentation", "digest", "rebalancing", "run"]
