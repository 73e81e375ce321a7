"""Synthetic cohorts (issue 25): a Bayesian-network synthesizer fitted on the twin's per-patient records.

Records
    One record per patient-hour the twin is trained and judged on: the 34 ``models.features`` values at a window end,
    the 6-hour deterioration label (``models.labels``), and the patient's attributes (age, sex; set A's in-hospital
    death when the outcomes are given). For PhysioNet 2012 set A they are :func:`lab.physionet_eval.stay_hours`' rows
    (the serving windows, carried forward, features at every hour end, charted-event labels), kept where the service
    would score (``scorable``) and the label is defined (``eligible``): the rows ``lab.physionet_cv`` fits the twin on.
    For a simulated cohort or the store (``lab.research.cohort``) they are the eligible windows at whole hours.
    The synthesizer draws records, not trajectories: a synthetic record is not linked to others of one patient.

Synthesizer (:class:`BayesNetSynthesizer`)
    pgmpy (MIT; maintained; numpy/pandas/scikit-learn/statsmodels, no GPU stack): a tree-augmented naive Bayes
    network, the label the parent of every column and a Chow–Liu tree (conditional mutual information) among the
    rest (:func:`tan_edges`: the structure of pgmpy's ``TreeSearch(estimator_type="tan")``, computed in numpy),
    CPDs by Bayesian estimation (BDeu prior, equivalent sample size ``ESS``), forward sampling with a seed.
    Numbers are discretised first (:class:`Column`): missing is its own state; values holding at least
    ``POINT_MASS`` of a column (the zeros of "minutes outside the normal band") are states of their own and come
    back exact; the rest fall into at most ``BINS`` quantile bins, each returned as one of ``BIN_LEVELS`` observed
    values of its bin (synthpop's practice; uniform draws within a bin let a classifier tell synthetic records
    apart by their non-integer ages and pressures alone). The design of
    synthcity's and DataSynthesizer's Bayesian-network synthesizers, without synthcity's GPU stack (torch)
    or DataSynthesizer's unmaintained state (last release 2023). SDV, CTGAN, copulas and RDT are under the Business
    Source License 1.1 (source-available, not open source), so they are not used.

Determinism
    Discretisation is a pure function of the data; the structure search and the estimator have no randomness; the
    sampler and the within-bin draws take the seed. Same records, same seed → same synthetic records.
"""

from __future__ import annotations

import hashlib
import logging
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import numpy as np
import pandas as pd

from models import features as F

Progress = Callable[[str], None]

LABEL: Final[str] = "label"
PATIENT: Final[str] = "patient_id"
ATTRIBUTES: Final[tuple[str, ...]] = ("age", "sex")
#: A value holding at least this share of a column's known values is a state of its own (returned exactly).
POINT_MASS: Final[float] = 0.02
#: A column with at most this many distinct values is categorical throughout.
CATEGORICAL_MAX: Final[int] = 12
#: Quantile bins for the rest of a numeric column.
BINS: Final[int] = 16
#: Observed-value quantiles kept per bin; a sampled bin returns one of them.
BIN_LEVELS: Final[int] = 33
#: BDeu equivalent sample size (a light smoothing: unseen combinations keep a little probability).
ESS: Final[float] = 5.0
SEX_CODES: Final[dict[str, float]] = {"F": 0.0, "M": 1.0}
#: Patient split for every evaluation: sha256(f"{seed}:{patient_id}") as a fraction.
SPLIT: Final[tuple[tuple[str, float], ...]] = (("train", 0.5), ("holdout", 0.75), ("test", 1.0))


def _quiet(_: str) -> None:
    return None


def split_of(patient_ids: Sequence[str] | np.ndarray, seed: int) -> np.ndarray:
    """"train" (the synthesizer's and TRTR's patients; members for the attack), "holdout" (never fitted: the
    privacy baselines' non-members), "test" (never fitted: TSTR/TRTR judged here) per patient id."""
    out = []
    for pid in patient_ids:
        u = int(hashlib.sha256(f"{seed}:{pid}".encode()).hexdigest()[:13], 16) / 16**13
        out.append(next(name for name, hi in SPLIT if u < hi))
    return np.asarray(out, dtype=object)


def feature_columns(records: pd.DataFrame) -> list[str]:
    """The synthesized columns: attributes present, the twin's features, extra outcomes, then the label."""
    extra = [c for c in records.columns if c not in (PATIENT, LABEL, *ATTRIBUTES, *F.FEATURE_NAMES)]
    return [*(a for a in ATTRIBUTES if a in records), *F.FEATURE_NAMES, *extra, LABEL]


# -- records -----------------------------------------------------------------------------------------------------
def records_from_hours(table: pd.DataFrame, demographics: dict[str, tuple[float | None, int | None]],
                       deaths: dict[str, int] | None = None) -> pd.DataFrame:
    """``lab.physionet_cv.hour_table`` rows → records (scorable, eligible hours), with age, sex (0 F, 1 M) and,
    when given, in-hospital death."""
    rows = table[table["scorable"].to_numpy(bool) & table["eligible"].to_numpy(bool)]
    out = pd.DataFrame({PATIENT: rows["patient_id"].astype(str).to_numpy()})
    age = {p: (np.nan if a is None else float(a)) for p, (a, _) in demographics.items()}
    sex = {p: (np.nan if g is None else float(g)) for p, (_, g) in demographics.items()}
    out["age"] = out[PATIENT].map(age).astype(float)
    out["sex"] = out[PATIENT].map(sex).astype(float)
    for n in F.FEATURE_NAMES:
        out[n] = rows[n].to_numpy(float)
    if deaths is not None:
        out["in_hospital_death"] = out[PATIENT].map(deaths).astype(float)
    out[LABEL] = rows["label"].to_numpy(int)
    return out.reset_index(drop=True)


def records_from_physionet(records: Path, outcomes: Path | None, *, limit: int | None = None,
                           progress: Progress = _quiet) -> pd.DataFrame:
    """Set A's records (module docstring), through the API's validation as ``wardtwin evaluate physionet2012``."""
    from lab import physionet2012 as P
    from lab.physionet_cmd import Tally, stay_hour_batches
    from lab.physionet_cv import hour_table

    tally = Tally()
    parts = [hour_table(hours, feats) for hours, feats, _ in stay_hour_batches(records, limit, tally, progress)]
    table = pd.concat(parts, ignore_index=True)
    deaths = None
    if outcomes is not None:
        deaths = {f"{P.PATIENT_PREFIX}{rid}": int(o.in_hospital_death)
                  for rid, o in P.read_outcomes(outcomes).items() if o.in_hospital_death is not None}
    out = records_from_hours(table, tally.demographics, deaths)
    progress(f"set A: {tally.stays} stays, {len(out)} scorable eligible stay-hours ({int(out[LABEL].sum())} "
             "before an event)")
    return out


def records_from_cohort(cohort: Any) -> pd.DataFrame:
    """A ``lab.research.cohort.ResearchCohort`` (simulated cohort or store) → records: the twin's features on its
    windows (``models.features.build``), eligible windows ending on the hour, with age and sex."""
    windows = cohort.windows.sort_values([PATIENT, "start"], kind="mergesort").reset_index(drop=True)
    feats = F.build(windows.drop(columns=["window_end", LABEL, "eligible"], errors="ignore"))
    keep = windows["eligible"].to_numpy(bool) & (pd.to_datetime(feats["window_end"], utc=True).dt.minute == 0
                                                 ).to_numpy()
    out = pd.DataFrame({PATIENT: feats.loc[keep, PATIENT].astype(str).to_numpy()})
    patients = cohort.patients.set_index(PATIENT)
    out["age"] = out[PATIENT].map(patients["age"]).astype(float)
    out["sex"] = out[PATIENT].map(patients["sex"].map(SEX_CODES)).astype(float)
    for n in F.FEATURE_NAMES:
        out[n] = feats.loc[keep, n].to_numpy(float)
    out[LABEL] = windows.loc[keep, LABEL].to_numpy(int)
    return out.reset_index(drop=True)


# -- discretisation ----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Column:
    """One column's states: 0 missing, 1..len(exact) exact values, then ``len(edges) - 1`` bins. A bin comes back as
    one of ``BIN_LEVELS`` quantiles of the values that fell into it (observed values, ``inverted_cdf``), chosen
    uniformly, as synthpop's CART draws observed values from a leaf: uniform draws between the edges gave every
    integer-valued column (age, mmHg, bpm) non-integer values that a classifier tells apart at once."""

    name: str
    exact: tuple[float, ...]
    edges: tuple[float, ...]
    levels: tuple[tuple[float, ...], ...] = ()

    @classmethod
    def fit(cls, name: str, values: np.ndarray) -> Column:
        known = values[~np.isnan(values)]
        if not len(known):
            return cls(name, (), ())
        uniq, counts = np.unique(known, return_counts=True)
        if len(uniq) <= CATEGORICAL_MAX:
            return cls(name, tuple(float(u) for u in uniq), ())
        exact = uniq[counts >= POINT_MASS * len(known)]
        rest = known[~np.isin(known, exact)]
        edges = np.unique(np.quantile(rest, np.linspace(0, 1, BINS + 1))) if len(rest) else np.zeros(0)
        if len(edges) == 1:  # one value left over: a state of its own
            exact, edges = np.sort(np.r_[exact, edges]), np.zeros(0)
        col = cls(name, tuple(float(u) for u in exact), tuple(float(e) for e in edges))
        if len(edges) < 2:
            return col
        b = col.encode(rest) - 1 - len(exact)
        q = np.linspace(0, 1, BIN_LEVELS)
        levels = tuple(tuple(float(v) for v in np.quantile(rest[b == i], q, method="inverted_cdf")) if (b == i).any()
                       else (float(edges[i]), float(edges[i + 1])) for i in range(len(edges) - 1))
        return cls(col.name, col.exact, col.edges, levels)

    @property
    def states(self) -> int:
        return 1 + len(self.exact) + max(len(self.edges) - 1, 0)

    def encode(self, values: np.ndarray) -> np.ndarray:
        codes = np.zeros(len(values), dtype=np.int64)
        known = ~np.isnan(values)
        exact = np.asarray(self.exact)
        hit = known & np.isin(values, exact)
        codes[hit] = 1 + np.searchsorted(exact, values[hit])
        rest = known & ~hit
        if rest.any():
            if len(self.edges) < 2:  # a value never seen when fitted and no bins: the nearest exact value
                codes[rest] = 1 + np.abs(values[rest, None] - exact[None, :]).argmin(axis=1)
            else:
                inner = np.asarray(self.edges[1:-1])
                codes[rest] = 1 + len(exact) + np.searchsorted(inner, values[rest], side="right")
        return codes

    def decode(self, codes: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        out = np.full(len(codes), np.nan)
        k = len(self.exact)
        ex = (codes >= 1) & (codes <= k)
        out[ex] = np.asarray(self.exact)[codes[ex] - 1]
        u = rng.random(len(codes))  # drawn for every row, so a row's value does not depend on the others' states
        for i, level in enumerate(self.levels):
            rows = codes == k + 1 + i
            if rows.any():
                out[rows] = np.asarray(level)[np.minimum((u[rows] * len(level)).astype(int), len(level) - 1)]
        return out


# -- the synthesizer ----------------------------------------------------------------------------------------------
def conditional_mutual_information(a: np.ndarray, b: np.ndarray, c: np.ndarray, sizes: tuple[int, int, int]
                                   ) -> float:
    """I(A; B | C) in nats of integer-coded columns (plug-in estimate from the counts)."""
    na, nb, nc = sizes
    joint = np.bincount((c * na + a) * nb + b, minlength=na * nb * nc).reshape(nc, na, nb).astype(float)
    n = joint.sum()
    p_abc = joint / n
    p_c = p_abc.sum(axis=(1, 2), keepdims=True)
    p_ac = p_abc.sum(axis=2, keepdims=True)
    p_bc = p_abc.sum(axis=1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = p_abc * np.log(p_abc * p_c / (p_ac * p_bc))
    return float(np.nansum(terms))


def tan_edges(coded: pd.DataFrame, states: list[int]) -> list[tuple[str, str]]:
    """Friedman, Geiger & Goldszmidt's tree-augmented naive Bayes (Machine Learning 1997;29:131-163), the structure
    pgmpy's ``TreeSearch(estimator_type="tan")`` learns, computed here with numpy (pgmpy's took 20 s on 7,000 rows):
    the label (last column) is a parent of every other column; among those, the maximum spanning tree of the
    conditional mutual information given the label, directed away from the first column. Ties break by column
    order, so the structure is a function of the data alone."""
    from scipy.sparse.csgraph import breadth_first_order, minimum_spanning_tree

    names = list(coded.columns)
    x = coded.to_numpy(np.int64)
    k = len(names) - 1
    c, nc = x[:, k], states[k]
    w = np.zeros((k, k))
    for i in range(k):
        for j in range(i + 1, k):
            w[i, j] = conditional_mutual_information(x[:, i], x[:, j], c, (states[i], states[j], nc))
    # Maximum spanning tree = minimum spanning tree of (top - w); every weight > 0 so no pair is left out.
    cost = np.triu(w.max() + 1.0 - w, 1)
    tree = minimum_spanning_tree(cost)
    order, parents = breadth_first_order(tree, 0, directed=False, return_predecessors=True)
    edges = [(names[k], names[i]) for i in range(k)]
    edges += [(names[int(parents[i])], names[int(i)]) for i in order if parents[i] >= 0]
    return sorted(edges)


# -- the synthesizer ---------------------------------------------------------------------------------------------
class BayesNetSynthesizer:
    """Tree-augmented naive Bayes network over discretised records (module docstring)."""

    def __init__(self, *, ess: float = ESS) -> None:
        self.ess = ess
        self.columns: list[Column] = []
        self.model: Any = None
        self.edges: list[tuple[str, str]] = []

    def fit(self, records: pd.DataFrame) -> BayesNetSynthesizer:
        # pgmpy logs a WARNING for every CPD whose float sum is 1 ± 1e-16 (and renormalises it): errors only.
        logging.getLogger("pgmpy").setLevel(logging.ERROR)
        with warnings.catch_warnings():  # pgmpy's own deprecation notices on import
            warnings.simplefilter("ignore", FutureWarning)
            from pgmpy.models import DiscreteBayesianNetwork
            from pgmpy.parameter_estimator import DiscreteBayesianEstimator

        names = feature_columns(records)
        if LABEL not in records or records[LABEL].nunique() < 2:
            raise ValueError("the records need both label values (hours before an event and hours not)")
        self.columns = [Column.fit(n, records[n].to_numpy(float)) for n in names]
        coded = pd.DataFrame({c.name: c.encode(records[c.name].to_numpy(float)) for c in self.columns})
        states = {c.name: list(range(c.states)) for c in self.columns}
        self.edges = tan_edges(coded, [c.states for c in self.columns])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = DiscreteBayesianNetwork(self.edges)
            model.add_nodes_from(names)
            self.model = model.fit(coded, estimator=DiscreteBayesianEstimator(
                state_names=states, prior_type="BDeu", equivalent_sample_size=self.ess))
        return self

    def sample(self, n: int, *, seed: int, evidence: dict[str, float] | None = None) -> pd.DataFrame:
        """``n`` synthetic records (columns as fitted, no patient id); ``evidence`` fixes columns to a known value
        (e.g. ``{"sex": 0.0}``: synthetic women), sampled by the network given it."""
        if self.model is None:
            raise RuntimeError("fit the synthesizer first")
        if n <= 0:
            return pd.DataFrame({c.name: pd.Series([], dtype=float) for c in self.columns})
        by_name = {c.name: c for c in self.columns}
        ev = None
        if evidence:
            ev = {k: int(by_name[k].encode(np.asarray([v], dtype=float))[0]) for k, v in evidence.items()}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            coded = self.model.simulate(n_samples=int(n), evidence=ev, seed=int(seed) % 2**32, show_progress=False)
        rng = np.random.default_rng([int(seed) % 2**32, 1])
        out = {c.name: c.decode(coded[c.name].to_numpy(np.int64), rng) for c in self.columns}
        frame = pd.DataFrame(out)
        frame[LABEL] = frame[LABEL].fillna(0).astype(int)
        return frame

    def describe(self) -> dict[str, Any]:
        return {"library": "pgmpy", "structure": "tree-augmented naive Bayes, class node 'label' (Friedman et al. "
                "1997; maximum spanning tree of conditional mutual information, lab.research.synthetic.tan_edges)",
                "parameters": f"DiscreteBayesianEstimator, BDeu prior, equivalent sample size "
                f"{self.ess:g}", "sampling": "forward sampling (DiscreteBayesianNetwork.simulate) with a seed",
                "discretisation": f"missing a state; values holding >= {POINT_MASS:.0%} of a column (or columns with "
                f"<= {CATEGORICAL_MAX} values) exact states; the rest <= {BINS} quantile bins, each sampled as one "
                f"of {BIN_LEVELS} quantiles of the values observed in it", "edges": [list(e) for e in self.edges],
                "states": {c.name: c.states for c in self.columns}}


def library_versions() -> dict[str, str]:
    from importlib.metadata import version

    return {name: version(name) for name in ("pgmpy", "numpy", "pandas", "scikit-learn", "scipy")}


__all__ = ["ATTRIBUTES", "LABEL", "PATIENT", "SPLIT", "BayesNetSynthesizer", "Column", "conditional_mutual_information",
           "feature_columns", "library_versions", "records_from_cohort", "records_from_hours", "records_from_physionet",
           "split_of", "tan_edges"]
