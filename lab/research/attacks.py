"""Re-identification risk of a release, measured by anonymeter's three attacks (Giomi et al., PoPETs 2023):
singling out, linkability and attribute inference, each as a risk with a 95 % confidence interval
(``PrivacyRisk``: the attack's success on the released patients beyond its success on control patients who were not
released, so a risk near 0 means the release teaches the attacker nothing about a released patient that it does not
teach about anyone).

Set-up (stated): the patients are split by ``lab.train.split_of(patient_id, ATTACK_SEED)``; the "test" fifth is the
control and is never released; the other patients are released with the same k, l, t (a run of its own).
Attacks work on one row per patient, in the release's own representation: the generalised quasi-identifiers, the
outcome and, in the second scenario, the patient's stay means of four exported vitals (heart rate, respiratory rate,
SpO2, systolic pressure, rounded to 0.1) — what an attacker who knows a patient's vital signs from elsewhere could
match on. ``ori`` holds every non-control patient, suppressed ones included (the data holder's truth), ``syn`` the
released ones, ``control`` the held-out fifth at the same generalisation.

Library: anonymeter 1.1.0 (Statice / Anonos), Clear BSD licence, which grants no patent rights, and its README notes
patent-pending code (US-20230401336-A1): used here as a measuring instrument in the lab only, never shipped in the
service. Its metadata pins ``numpy<1.27`` and ``pyarrow<22``; it runs on this project's numpy 2 / pyarrow 26 and is
installed without its dependency pins (``.ci/run``).
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable
from typing import Any, Final

import numpy as np
import pandas as pd

from app.research import deidentify as D
from lab import train as T

logger = logging.getLogger(__name__)

ATTACK_SEED: Final[int] = 25
VITAL_MEANS: Final[dict[str, str]] = {"hr_mean": "hr_stay_mean", "rr_mean": "rr_stay_mean",
                                      "spo2_mean": "spo2_stay_mean", "sbp": "sbp_stay_mean"}


def stay_means(windows: pd.DataFrame, key: str) -> pd.DataFrame:
    g = windows.groupby(key)[list(VITAL_MEANS)].mean().round(1)
    return g.rename(columns=VITAL_MEANS)


def _risk(evaluator: Any) -> dict[str, Any]:
    risk = evaluator.risk(confidence_level=0.95)
    res = evaluator.results()
    return {"risk": float(risk.value), "ci95": [float(risk.ci[0]), float(risk.ci[1])],
            "attack_rate": float(res.attack_rate.value), "control_rate": float(res.control_rate.value),
            "baseline_rate": float(res.baseline_rate.value), "n_attacks": int(res.n_attacks_ori)}


def _guarded(name: str, fn: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """Run one attack with numpy's global generator seeded (anonymeter draws its targets with pandas' ``sample``,
    which uses it), so a rerun gives the same risks; the caller's generator state is put back afterwards."""
    state = np.random.get_state()
    np.random.seed(ATTACK_SEED)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return fn()
    except Exception as exc:  # anonymeter refuses some tables (e.g. no predicate singles anyone out): say so
        logger.info("attack %s not measurable: %s", name, exc)
        return {"risk": None, "error": f"{type(exc).__name__}: {exc}"}
    finally:
        np.random.set_state(state)


def evaluate(patients: pd.DataFrame, windows: pd.DataFrame, *, secret: bytes, k: int, l_: int, t: float | None,
             max_suppression: float, n_attacks: int = 500,
             progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Both scenarios' three risks (module docstring)."""
    try:
        from anonymeter.evaluators import InferenceEvaluator, LinkabilityEvaluator, SinglingOutEvaluator
    except ImportError:
        return {"scenarios": {}, "note": "anonymeter is not installed: pip install --no-deps anonymeter==1.1.0 "
                                         "(its pins are stale; see .ci/run), or pass --attacks 0"}

    split = T.split_of(patients["patient_id"].to_numpy(), ATTACK_SEED)
    control_p = patients[split == "test"].reset_index(drop=True)
    release_p = patients[split != "test"].reset_index(drop=True)
    run = D.deidentify(release_p, windows[windows["patient_id"].isin(set(release_p["patient_id"]))], secret=secret,
                       k=k, l_=l_, t=t, max_suppression=max_suppression)
    node = tuple(run.report["generalisation"][q] for q in D.QUASI_IDENTIFIERS)
    means = stay_means(windows, "patient_id")

    def table(p: pd.DataFrame) -> pd.DataFrame:
        p = p.copy()
        p["shifted_admission"] = pd.to_datetime(p["admitted_at"], utc=True) + pd.to_timedelta(
            [D.shift_days(secret, pid) for pid in p["patient_id"]], unit="D")
        out = D.generalise(p, node)  # type: ignore[arg-type]
        out["outcome"] = p["outcome"].astype(str).to_numpy()
        return out.join(means.reindex(p["patient_id"]).set_axis(out.index))

    ori, control = table(release_p), table(control_p)
    released_ids = set(run.released["pseudonym"])
    pseudo = {D.pseudonym(secret, pid): pid for pid in release_p["patient_id"]}
    syn = table(release_p[release_p["patient_id"].isin({pseudo[s] for s in released_ids})])
    n = int(min(n_attacks, len(control), len(syn)))
    qi = list(D.QUASI_IDENTIFIERS)
    vitals = list(VITAL_MEANS.values())
    scenarios = {"quasi-identifiers and outcome": [*qi, "outcome"],
                 "plus stay means of four vitals": [*qi, "outcome", *vitals]}
    out: dict[str, Any] = {"setup": {"control_patients": len(control), "attack_release_patients": len(syn),
                                     "original_patients": len(ori), "n_attacks": n,
                                     "generalisation": run.report["generalisation"],
                                     "achieved": {key: run.report["achieved"][key] for key in ("k", "l", "t")}},
                           "scenarios": {}}
    if n < 10:
        out["note"] = "too few patients for the attacks (fewer than 10 control or released patients)"
        return out
    for name, cols in scenarios.items():
        o, s, c = ori[cols], syn[cols], control[cols]
        if progress:
            progress(f"attacks ({name}): singling out, linkability, inference; {n} attacks each")
        half = len(cols) // 2
        res = {
            "singling_out": _guarded("singling out", lambda o=o, s=s, c=c, cols=cols: _risk(SinglingOutEvaluator(
                ori=o, syn=s, control=c, n_attacks=n, n_cols=min(3, len(cols)), seed=ATTACK_SEED,
                max_attempts=20_000).evaluate(mode="multivariate"))),
            "linkability": _guarded("linkability", lambda o=o, s=s, c=c, a=cols[:half], b=cols[half:]: _risk(
                LinkabilityEvaluator(ori=o, syn=s, control=c, n_attacks=n, aux_cols=(a, b),
                n_neighbors=1).evaluate(n_jobs=1))),
            "inference": _guarded("inference", lambda o=o, s=s, c=c, cols=cols: _risk(InferenceEvaluator(
                ori=o, syn=s, control=c, n_attacks=n, aux_cols=[x for x in cols if x != "outcome"],
                secret="outcome").evaluate(n_jobs=1))),
        }
        res["columns"] = cols
        res["linkability_split"] = [cols[:half], cols[half:]]
        out["scenarios"][name] = res
    return out


__all__ = ["ATTACK_SEED", "VITAL_MEANS", "evaluate", "stay_means"]
