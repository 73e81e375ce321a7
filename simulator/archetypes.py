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
fever                  no     fever to 38.3–39.4 °C with a coupled HR rise (hard negative: NEWS2 scores it, no event)
recovery               yes    an episode (sepsis, respiratory or haemorrhage) early, then recovery
=====================  =====  ==================================================================

``DEFAULT_MIX`` is a general ward: 0.02 planned deteriorations per patient-day (``WARD_EVENT_RATE_PER_DAY``,
from ``/shared/reference/news2.md``), 3 % fever, the rest stable. ``ENRICHED_MIX`` (``--mix enriched``) is the
training mix, 12 % deteriorating, so that a model can learn from a few hundred patients; the live demo ward uses
it. ``mix_for_event_rate`` gives a mix for any rate per patient-day and cohort length. Pass ``archetype_mix`` to
change it (weights are normalised; missing archetypes get weight 0).
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

#: The enriched training mix (``--mix enriched``): 12 % of patients deteriorate, so that a model can be
#: trained on a cohort of a few hundred patients; the live demo ward uses it too (alerts within hours).
ENRICHED_MIX: Final[dict[str, float]] = {
    STABLE: 0.85, FEVER: 0.03, SEPSIS: 0.035, RESPIRATORY: 0.03, HAEMORRHAGE: 0.02, BRADY: 0.015, RECOVERY: 0.02,
}
#: Deteriorations per patient-day on a general ward: about 0.02 (``/shared/reference/news2.md``: "deterioration
#: itself occurs at about 0.02 per patient-day"), the default of every cohort.
WARD_EVENT_RATE_PER_DAY: Final[float] = 0.02


def mix_for_event_rate(per_day: float, hours: float = 24.0,
                       base: Mapping[str, float] = ENRICHED_MIX) -> dict[str, float]:
    """A mix whose deteriorating archetypes make ``per_day`` planned episodes per patient-day over ``hours``.

    Deteriorating archetypes keep their proportions in ``base`` and each has one planned episode, so their
    share of patients is ``per_day · hours / 24`` (at most 0.9); fever keeps its share; stable takes the rest.
    Some planned episodes stop short of a threshold, and some stable patients cross one: the recorded event
    rate is what the label finds (the realism report states it).
    """
    if not (np.isfinite(per_day) and per_day >= 0) or hours <= 0:
        raise ValueError("the event rate must be finite and non-negative, and hours positive")
    weights = normalise_mix(base)
    events = sum(weights[a] for a in EVENT_ARCHETYPES)
    share = min(per_day * hours / 24.0, 0.9)
    out = {a: (weights[a] / events * share if a in EVENT_ARCHETYPES else 0.0) for a in ARCHETYPES}
    out[FEVER] = weights[FEVER]
    out[STABLE] = max(1.0 - sum(out.values()), 0.0)
    return normalise_mix(out)


def normalise_mix(mix: Mapping[str, float] | None) -> dict[str, float]:
    """Validate a mix and return weights summing to 1 in ``ARCHETYPES`` order (``None``: ``DEFAULT_MIX``)."""
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


#: The default ward mix: a general ward's deterioration rate over a 24-hour block.
DEFAULT_MIX: Final[dict[str, float]] = mix_for_event_rate(WARD_EVENT_RATE_PER_DAY, 24.0)
#: Mixes by name, for ``--mix`` on the command line.
NAMED_MIXES: Final[dict[str, dict[str, float]]] = {"ward": DEFAULT_MIX, "enriched": normalise_mix(ENRICHED_MIX)}


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
    """``"stable=0.7,sepsis=0.1,..."`` or a name in ``NAMED_MIXES`` (``ward``, ``enriched``) → a mix."""
    if text.strip() in NAMED_MIXES:
        return dict(NAMED_MIXES[text.strip()])
    out: dict[str, float] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, _, weight = part.partition("=")
        out[name.strip()] = float(weight)
    return normalise_mix(out)
