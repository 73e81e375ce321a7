"""Patient archetypes and the ward mix.

=====================  =====  ==================================================================
archetype              event  course
=====================  =====  ==================================================================
stable                 no     personal baseline, circadian rhythm, benign brief dips and spikes; some with
                              hypercapnic COPD on oxygen (scale 2), atrial fibrillation or nocturnal desaturations
sepsis                 yes    fever, tachycardia, vasodilatory hypotension, tachypnoea, confusion
respiratory_failure    yes    falling SpO2, rising RR and HR; the nurse starts oxygen
haemorrhage            yes    hypovolaemia: HR rises while SBP falls, RR rises
bradyarrhythmia        yes    heart rate drifts down below 50 with a modest fall in SBP
fever                  no     fever to 38.3–38.8 °C with a coupled HR rise that stays ≤ 120 (hard negative)
recovery               yes    an episode (sepsis, respiratory or haemorrhage) early, then recovery
=====================  =====  ==================================================================

``DEFAULT_MIX`` is the ward mix: 85 % stable, 3 % fever, 12 % deteriorating. A real ward sees about
0.02 deteriorations per patient-day; the default is richer in positives (≈ 0.12 per patient over a
24-hour cohort) so that a model can be trained on a cohort of a few hundred patients. Pass
``archetype_mix`` to change it (weights are normalised; missing archetypes get weight 0).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

import numpy as np

STABLE: Final = "stable"
SEPSIS: Final = "sepsis"
RESPIRATORY: Final = "respiratory_failure"
HAEMORRHAGE: Final = "haemorrhage"
BRADY: Final = "bradyarrhythmia"
FEVER: Final = "fever"
RECOVERY: Final = "recovery"

ARCHETYPES: Final[tuple[str, ...]] = (STABLE, SEPSIS, RESPIRATORY, HAEMORRHAGE, BRADY, FEVER, RECOVERY)
#: Archetypes whose patients cross a deterioration threshold (one recorded event each).
EVENT_ARCHETYPES: Final[frozenset[str]] = frozenset({SEPSIS, RESPIRATORY, HAEMORRHAGE, BRADY, RECOVERY})
#: Deteriorating archetypes whose patient leaves the ward (rapid response → ICU) 3–10 h after onset.
TRANSFERRED: Final[frozenset[str]] = frozenset({SEPSIS, RESPIRATORY, HAEMORRHAGE, BRADY})

DEFAULT_MIX: Final[dict[str, float]] = {
    STABLE: 0.85, FEVER: 0.03, SEPSIS: 0.035, RESPIRATORY: 0.03, HAEMORRHAGE: 0.02, BRADY: 0.015, RECOVERY: 0.02,
}


def normalise_mix(mix: Mapping[str, float] | None) -> dict[str, float]:
    """Validate a mix and return weights summing to 1 in ``ARCHETYPES`` order."""
    mix = DEFAULT_MIX if mix is None else mix
    unknown = set(mix) - set(ARCHETYPES)
    if unknown:
        raise ValueError(f"unknown archetypes {sorted(unknown)}; known: {', '.join(ARCHETYPES)}")
    weights = {a: float(mix.get(a, 0.0)) for a in ARCHETYPES}
    if any(w < 0 or not np.isfinite(w) for w in weights.values()):
        raise ValueError("archetype weights must be finite and non-negative")
    total = sum(weights.values())
    if total <= 0:
        raise ValueError("archetype weights must not all be zero")
    return {a: w / total for a, w in weights.items()}


def draw_archetype(rng: np.random.Generator, mix: Mapping[str, float]) -> str:
    weights = np.array([mix[a] for a in ARCHETYPES])
    return ARCHETYPES[int(rng.choice(len(ARCHETYPES), p=weights))]


def quota_archetypes(n: int, mix: Mapping[str, float], rng: np.random.Generator) -> list[str]:
    """``n`` archetypes in proportion to ``mix`` (largest remainder), shuffled: a ward that has its mix."""
    exact = np.array([mix[a] * n for a in ARCHETYPES])
    counts = np.floor(exact).astype(int)
    order = np.argsort(-(exact - counts), kind="stable")
    counts[order[: n - counts.sum()]] += 1
    out = [a for a, c in zip(ARCHETYPES, counts, strict=True) for _ in range(c)]
    rng.shuffle(out)
    return out


def parse_mix(text: str) -> dict[str, float]:
    """``"stable=0.7,sepsis=0.1,..."`` → a mix (for the command line)."""
    out: dict[str, float] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, _, weight = part.partition("=")
        out[name.strip()] = float(weight)
    return normalise_mix(out)
