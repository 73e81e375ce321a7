"""The realism report: simulated wards against the published adult-ward centiles (``/shared/reference``).

For every seed a cohort is generated with the enriched mix (stable and deteriorating patients
together, as on a real ward) and its artefact-free readings are pooled per vital (time-weighted, as
continuous monitoring is). The report states, per statistic, the reference (CEWS, Tarassenko et al.
2011), the tolerance, every seed's value and whether all seeds are within tolerance of the reference
*and* within half the tolerance of one another (not one lucky seed). It adds what a ward nurse
would recognise (benign dips and spikes per stable patient-day; NEWS2 ≥ 5 on stable patients at the
nurse's charted observation rounds, and per 5-minute window for contrast), the event rate and
archetype mix, the share of pre-deterioration windows, and plots (histograms against the reference
centiles, example trajectories of each archetype).
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

import numpy as np
import pandas as pd

from models.labels import CRITERIA, criterion_text
from models.schema import VITALS
from simulator import detect, realism
from simulator.archetypes import ARCHETYPES, DEFAULT_MIX, ENRICHED_MIX, EVENT_ARCHETYPES, WARD_EVENT_RATE_PER_DAY
from simulator.cohort import DEFAULT_START, iter_streams
from simulator.devices import Q_OK, S_CHARTED, S_MONITOR
from simulator.patient import PatientStream, generate_patient, to_epoch_ms

logger = logging.getLogger(__name__)

REPORT_VITALS: Final[tuple[str, ...]] = ("hr", "rr", "sbp", "temp", "spo2")
SCALE: Final[int] = 10  # histogram resolution 0.1 unit
NBINS: Final[int] = 301 * SCALE
#: (vital, centile) → (CEWS reference, tolerance, mCEWS reference or None)
REFERENCE: Final[dict[tuple[str, int], tuple[float, float, float | None]]] = {
    ("hr", 1): (50, 6, 42), ("hr", 10): (64, 4, 54), ("hr", 90): (104, 4, 104), ("hr", 99): (128, 8, 128),
    ("rr", 1): (7, 3, 7), ("rr", 10): (14, 2, 13), ("rr", 90): (25, 2, 21), ("rr", 99): (34, 4, 29),
    ("sbp", 1): (85, 6, 83), ("sbp", 10): (102, 5, 101), ("sbp", 90): (154, 5, 157), ("sbp", 99): (185, 10, 185),
    ("temp", 1): (35.4, 0.3, 35.4), ("temp", 10): (36.0, 0.2, 36.0), ("temp", 90): (37.3, 0.2, 37.3),
    ("temp", 99): (38.4, 0.4, 38.4),
    ("spo2", 1): (84, 4, 84), ("spo2", 10): (95, 1.5, 94),  # reference "≥ 94": 93.5–96.5 accepted
}
HORIZON: Final[pd.Timedelta] = pd.Timedelta(hours=6)
WINDOW_MS: Final[int] = 300_000
NEWS2_PATIENTS: Final[int] = 100


@dataclass
class SeedStats:
    seed: int
    hist_ward: dict[str, np.ndarray] = field(default_factory=dict)
    hist_stable: dict[str, np.ndarray] = field(default_factory=dict)
    hist_all_quality: dict[str, np.ndarray] = field(default_factory=dict)
    patients: list[dict] = field(default_factory=list)
    events: list[dict] = field(default_factory=list)
    windows: int = 0
    pre_windows: int = 0
    post_windows: int = 0
    stable_days: float = 0.0
    episodes: Counter = field(default_factory=Counter)
    news2_days: float = 0.0
    news2_triggers: int = 0
    news2_windows_ge5: int = 0
    news2_windows: int = 0
    charted_days: float = 0.0
    charted_sets: int = 0
    charted_ge5: int = 0
    charted_triggers: int = 0
    charted_points: Counter = field(default_factory=Counter)  # points per parameter in the sets ≥ 5
    quality: Counter = field(default_factory=Counter)
    rows: int = 0
    flags: list[dict[str, float]] = field(default_factory=list)  # realism.patient_flags per stable patient
    charted_ge5_monitor: int = 0  # the same rounds scored with the monitor's RR instead of the nurse's count
    rr_pairs: list[tuple[float, float]] = field(default_factory=list)  # (nurse count, monitor window mean)
    chronic: Counter = field(default_factory=Counter)  # (group, "patients" | "events") over stable patients
    criteria_stable: Counter = field(default_factory=Counter)  # first criterion of stable patients' events
    shapes: Counter = field(default_factory=Counter)  # (shape, "planned" | "events") over planned episodes
    fates: Counter = field(default_factory=Counter)  # (fate, "planned" | "events")
    confusion: Counter = field(default_factory=Counter)  # event patients: "charted", "before_onset"
    doc_delay_min: list[float] = field(default_factory=list)
    charted_late_s: float = 0.0  # longest delivery delay of a charted set after its ts
    ward_days: float = 0.0  # the default (general-ward) mix cohort of the same seed
    ward_events: Counter = field(default_factory=Counter)  # kind → events in it
    ward_archetype_days: Counter = field(default_factory=Counter)  # archetype → patient-days in it
    ward_criteria: Counter = field(default_factory=Counter)  # (archetype, criterion) → events in it


def _hist(values: np.ndarray) -> np.ndarray:
    return np.bincount(np.clip(np.round(values * SCALE).astype(np.int64), 0, NBINS - 1), minlength=NBINS)


def centile(hist: np.ndarray, q: float) -> float:
    """Inverse CDF (smallest value whose cumulative share ≥ q) of a 0.1-unit histogram."""
    cdf = np.cumsum(hist)
    return float(np.searchsorted(cdf, q / 100.0 * cdf[-1], side="left")) / SCALE


def _runs(mask: np.ndarray, min_len: int = 1) -> int:
    if not mask.any():
        return 0
    starts = np.flatnonzero(mask & ~np.r_[False, mask[:-1]])
    ends = np.flatnonzero(mask & ~np.r_[mask[1:], False]) + 1
    return int(((ends - starts) >= min_len).sum())


def _series(s: PatientStream, vital: str, clean: bool = True) -> np.ndarray:
    """The monitor's readings of ``vital`` by time, once each (``clean``: artefact-free only)."""
    m = (s.vital == VITALS.index(vital)) & (s.source == S_MONITOR)
    if clean:
        m &= s.quality == Q_OK
    ts, vals = s.ts_ms[m], s.value[m]
    _, first = np.unique(ts, return_index=True)  # sorted by ts, duplicates dropped
    return vals[first]


def _news2_for(stream: PatientStream) -> tuple[int, int, int] | None:
    try:
        from models import news2
        from models import windows as W
    except ImportError:
        return None
    if not hasattr(news2, "from_windows"):
        return None
    win = W.build(stream.frame())
    scores = news2.from_windows(win)["news2"].to_numpy()
    high = scores >= 5
    return _runs(high), int(high.sum()), len(high)


def charted_news2(stream: PatientStream, rr_source: str = "nurse") -> list[tuple[int, int, dict[str, int]]]:
    """NEWS2 as the nurse meets it: one per observation set she charts (``simulator.nurse``, RCP 2017 frequency).

    Each set (``PatientStream.observation_sets``: her RR count, spot SpO2, pulse, cuff systolic, temperature,
    ACVPU and oxygen, on the patient's SpO2 scale) is scored with ``models.news2.score`` — what
    ``POST /v1/observations`` answers. ``rr_source="monitor"`` scores the same set with the monitor's RR instead
    (the impedance mean of the last complete 5-minute window before the bedside round), for contrast.
    Returns ``(documentation time in epoch ms, total, points)`` per set, in time order.
    """
    from models import news2

    monitor_rr: np.ndarray | None = None
    origin = 0
    if rr_source == "monitor":
        ts, vital, value = realism._clean(stream)
        origin, series = detect.window_aggregates(ts, vital, value)
        monitor_rr = series.get("rr")
    out = []
    for (doc, body), bedside in zip(stream.observation_sets(), stream.nurse_rr_ms.tolist(), strict=True):
        rr: float | None = body["rr"]
        if monitor_rr is not None:
            k = min(max((bedside - origin) // WINDOW_MS - 1, 0), len(monitor_rr) - 1)
            rr = None if np.isnan(monitor_rr[k]) else float(monitor_rr[k])
        got = news2.score(rr=rr, spo2=body["spo2"], spo2_scale=body["spo2_scale"], on_oxygen=body["o2"] > 0,
                          sbp=body["sbp"], hr=body["hr"], acvpu=body["acvpu"], temp=body["temp"])
        out.append((doc, got.total, got.points))
    out.sort(key=lambda x: x[0])
    return out


def _stable_details(st: SeedStats, s: PatientStream, days: float) -> None:
    st.flags.append(realism.patient_flags(s))
    group = str(s.traits.get("chronic") or ("af" if s.traits.get("af") else "none"))
    st.chronic[(group, "patients")] += 1
    st.chronic[(group, "events")] += bool(s.events)
    for e in s.events:
        st.criteria_stable[e["criterion"]] += 1
    sets = charted_news2(s)
    monitor = charted_news2(s, rr_source="monitor")
    st.charted_days += days
    st.charted_sets += len(sets)
    st.charted_ge5_monitor += sum(total >= 5 for _, total, _ in monitor)
    previous = 0
    for _t, total, points in sets:
        if total >= 5:
            st.charted_ge5 += 1
            st.charted_triggers += previous < 5
            st.charted_points.update(points)
        previous = total
    ts, vital, value = realism._clean(s)
    origin, series = detect.window_aggregates(ts, vital, value)
    if series:
        for t, counted in zip(s.nurse_rr_ms.tolist(), s.nurse_rr.tolist(), strict=True):
            k = min(max((t - origin) // WINDOW_MS - 1, 0), len(series["rr"]) - 1)
            if np.isfinite(series["rr"][k]):
                st.rr_pairs.append((counted, float(series["rr"][k])))


def _event_details(st: SeedStats, s: PatientStream) -> None:
    shape = str(s.traits.get("shape", ""))
    fate = "stops short" if s.traits.get("stops_short") else "resolves" if s.traits.get("resolves") else "transferred"
    if s.patient["archetype"] == "recovery":
        fate = "recovery"
    for key, c in ((shape, st.shapes), (fate, st.fates)):
        c[(key, "planned")] += 1
        c[(key, "events")] += bool(s.events)
    if s.events:
        acvpu = (s.vital == VITALS.index("acvpu")) & (s.value > 0)
        if acvpu.any():
            st.confusion["charted"] += 1
            st.confusion["before_onset"] += int(s.ts_ms[acvpu].min() < to_epoch_ms(s.events[0]["onset"]))


def collect(seed: int, n_patients: int, hours: float, progress: bool = False,
            start: pd.Timestamp = DEFAULT_START, ward_patients: int | None = None) -> SeedStats:
    """One seed: the enriched cohort (centiles, stable-patient checks, NEWS2, deteriorations) and, with
    ``ward_patients``, a general-ward cohort of the same seed for the event rate per patient-day."""
    st = SeedStats(seed)
    for kind in ("ward", "stable", "all_quality"):
        getattr(st, f"hist_{kind}").update({v: np.zeros(NBINS, dtype=np.int64) for v in REPORT_VITALS})
    news2_done = 0
    for s in iter_streams(n_patients, hours, seed, start, ENRICHED_MIX, progress):
        arche = s.patient["archetype"]
        st.patients.append(s.patient)
        st.events.extend(s.events)
        st.rows += len(s)
        st.quality.update(Counter(s.quality.tolist()))
        nurse = s.source == S_CHARTED
        if nurse.any():  # first copy of each set
            late = pd.Series(s.deliver_ms[nurse] - s.ts_ms[nurse]).groupby(s.ts_ms[nurse]).min()
            st.charted_late_s = max(st.charted_late_s, float(late.max()) / 1000)
        st.doc_delay_min.extend(((s.nurse_doc_ms - s.nurse_rr_ms) / 60_000).tolist())
        for v in REPORT_VITALS:
            clean = _series(s, v)
            h = _hist(clean)
            st.hist_ward[v] += h
            st.hist_all_quality[v] += _hist(_series(s, v, clean=False))
            if arche == "stable":
                st.hist_stable[v] += h
        first_w = s.start_ms // WINDOW_MS
        n_w = -(-(s.end_ms - first_w * WINDOW_MS) // WINDOW_MS)
        st.windows += n_w
        for e in s.events:
            onset_w = (to_epoch_ms(e["onset"]) - first_w * WINDOW_MS) // WINDOW_MS  # index of the onset window
            # window i ends at (i + 1) * 5 min; label 1 when end <= onset < end + 6 h
            lo = max(0, onset_w - int(HORIZON / pd.Timedelta(minutes=5)))
            st.pre_windows += max(0, min(onset_w, n_w) - lo)
            st.post_windows += max(0, n_w - onset_w)
        if arche in EVENT_ARCHETYPES:
            _event_details(st, s)
        if arche == "stable":
            days = (s.end_ms - s.start_ms) / 86_400_000
            st.stable_days += days
            spo2, rr, hr = _series(s, "spo2"), _series(s, "rr"), _series(s, "hr")
            st.episodes["short desaturation (30-s SpO2 < 90 %)"] += _runs(spo2 < 90)
            st.episodes["slow breathing (minute RR ≤ 8)"] += _runs(rr <= 8)
            st.episodes["fast breathing (minute RR ≥ 25)"] += _runs(rr >= 25)
            st.episodes["tachycardia (HR > 120 for ≥ 10 s)"] += _runs(hr > 120, 10)
            st.episodes["bradycardia (HR < 50 for ≥ 10 s)"] += _runs(hr < 50, 10)
            st.episodes["hypotension (one cuff reading < 90)"] += _runs(_series(s, "sbp") < 90)
            _stable_details(st, s, days)
            if news2_done < NEWS2_PATIENTS:
                got = _news2_for(s)
                if got is not None:
                    news2_done += 1
                    st.news2_days += days
                    st.news2_triggers += got[0]
                    st.news2_windows_ge5 += got[1]
                    st.news2_windows += got[2]
    for s in iter_streams(ward_patients or 0, hours, seed, start, DEFAULT_MIX, False):
        st.ward_days += (s.end_ms - s.start_ms) / 86_400_000
        st.ward_archetype_days[s.patient["archetype"]] += (s.end_ms - s.start_ms) / 86_400_000
        for e in s.events:
            st.ward_events[e["kind"]] += 1
            st.ward_criteria[(e["kind"], e["criterion"])] += 1
    return st


def _fmt(x: float) -> str:
    return f"{x:.1f}" if abs(x - round(x)) > 1e-9 else f"{x:.0f}"


def centile_table(stats: list[SeedStats]) -> tuple[list[str], bool]:
    seeds = [s.seed for s in stats]
    head = ("| vital | centile | reference (CEWS) | tolerance | " + " | ".join(f"seed {s}" for s in seeds)
            + " | seed spread | stable only | all readings incl. artefacts | mCEWS | within |")
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    ok_all = True
    for (vital, q), (ref, tol, mref) in REFERENCE.items():
        vals = [centile(s.hist_ward[vital], q) for s in stats]
        spread = max(vals) - min(vals)
        ok = all(abs(v - ref) <= tol for v in vals) and spread <= tol / 2 + 1e-9
        ok_all &= ok
        stable = centile(sum(s.hist_stable[vital] for s in stats), q)
        raw = centile(sum(s.hist_all_quality[vital] for s in stats), q)
        lines.append(f"| {vital} | p{q} | {_fmt(ref)} | ±{_fmt(tol)} | " + " | ".join(_fmt(v) for v in vals)
                     + f" | {_fmt(spread)} | {_fmt(stable)} | {_fmt(raw)} | {_fmt(mref) if mref is not None else ''} | "
                     + ("yes" if ok else "**no**") + " |")
    return lines, ok_all


def _pct(x: float | None, digits: int = 1) -> str:
    return "–" if x is None else f"{x:.{digits}f}"


def realism_table(stats: list[SeedStats]) -> tuple[list[str], bool, dict[str, list[float | None]]]:
    """Stable-patient checks (``simulator.realism.CHECKS``) per seed, with reference and accepted range."""
    values: dict[str, list[float | None]] = {c.key: [] for c in realism.CHECKS}
    for st in stats:
        got = realism.summarise(st.flags, {q: centile(st.hist_stable["rr"], q) for q in (25, 50, 75)})
        for c in realism.CHECKS:
            values[c.key].append(got[c.key])
    head = ("| measure (stable patients, 24-h stays) | " + " | ".join(f"seed {st.seed}" for st in stats)
            + " | reference | accepted | within |")
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    ok_all = True
    for c in realism.CHECKS:
        ok = realism.within(c, values[c.key])
        ok_all &= ok is not False
        unit = " /min" if c.unit == "/min" else " %"
        pop = {"opioid": " (on opioids)", "no_opioid": " (no opioids)"}.get(c.population, "")
        accepted = "context" if c.low is None else f"{_fmt(c.low)}–{_fmt(c.high)}{unit}"
        lines.append(f"| {c.measure}{pop} | " + " | ".join(_pct(v) for v in values[c.key])
                     + f" | {c.reference} | {accepted} | {'' if ok is None else 'yes' if ok else '**no**'} |")
    return lines, ok_all, values


def _plots(out: Path, stats: list[SeedStats], hours: float, values: dict[str, list[float | None]],
           all_plots: bool = False) -> list[str]:
    """The two key plots (ward histograms against the CEWS centiles; monitor against nurse-counted RR) and, with
    ``all_plots``, the stable checks and example trajectories (kept out of ``reports/``: it stays small)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from models import windows as W

    files = []
    fig, axes = plt.subplots(1, len(REPORT_VITALS), figsize=(4 * len(REPORT_VITALS), 3.2))
    x = np.arange(NBINS) / SCALE
    ranges = {"hr": (30, 170), "rr": (0, 45), "sbp": (60, 210), "temp": (34.5, 40), "spo2": (75, 100)}
    for ax, v in zip(axes, REPORT_VITALS, strict=True):
        h = sum(s.hist_ward[v] for s in stats).astype(float)
        lo, hi = ranges[v]
        m = (x >= lo) & (x <= hi)
        width = 0.1 if v == "temp" else 1.0
        step = max(1, round(width * SCALE))
        xs, hs = x[m][::step], np.add.reduceat(h[m], np.arange(0, m.sum(), step)) / h.sum()
        ax.bar(xs, hs, width=width * 0.9, color="#7aa6c2")
        for (vital, q), (ref, _tol, _m) in REFERENCE.items():
            if vital == v:
                ax.axvline(ref, color="#c0392b", ls="--", lw=1)
                ax.axvline(centile(h.astype(np.int64), q), color="#2c3e50", ls=":", lw=1)
        ax.set_title(f"{v}: ward (all seeds)")
        ax.set_yticks([])
    fig.suptitle("Clean readings of the simulated ward; red dashed = reference centiles (CEWS), dotted = simulated")
    fig.tight_layout()
    fig.savefig(out / "histograms.png", dpi=90)
    plt.close(fig)
    files.append("histograms.png")

    if all_plots:  # the pinned checks at a glance (the table above says the same)
        pinned = [c for c in realism.CHECKS if c.low is not None and c.unit == "%"]
        fig, ax = plt.subplots(figsize=(10, 0.45 * len(pinned) + 1.2))
        for k, c in enumerate(pinned):
            ax.plot([c.low, c.high], [k, k], color="#bdc3c7", lw=8, solid_capstyle="butt")
            if c.ref_value is not None:
                ax.plot([c.ref_value], [k], marker="|", color="#c0392b", ms=16, mew=2)
            vals = [v for v in values[c.key] if v is not None]
            ax.plot(vals, [k] * len(vals), "o", color="#2c3e50", ms=5)
        ax.set_yticks(range(len(pinned)), [c.key for c in pinned], fontsize=8)
        ax.set_xlabel("% of stable patients (per 24-h stay); grey = accepted range, red = published figure, "
                      "dots = seeds")
        fig.tight_layout()
        fig.savefig(out / "stable_checks.png", dpi=90)
        plt.close(fig)
        files.append("stable_checks.png")

    pairs = np.array([p for st in stats for p in st.rr_pairs]) if any(st.rr_pairs for st in stats) else None
    if pairs is not None:
        fig, ax = plt.subplots(figsize=(6, 3.2))
        bins = np.arange(4, 41) - 0.5
        ax.hist(pairs[:, 1], bins=bins, alpha=0.6, density=True, label="monitor (impedance, 5-min mean)")
        ax.hist(pairs[:, 0], bins=bins, alpha=0.6, density=True, label="nurse count (30 s × 2)")
        ax.set_xlabel("respiratory rate at the observation round, stable patients (/min)")
        ax.legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(out / "rr_monitor_vs_nurse.png", dpi=90)
        plt.close(fig)
        files.append("rr_monitor_vs_nurse.png")

    if all_plots:  # example trajectories of every archetype and prodrome shape
        start_ms = to_epoch_ms(DEFAULT_START)
        examples: list[tuple[str, PatientStream]] = []
        for a in ARCHETYPES:
            examples.append((a, generate_patient(f"ex-{a[:4]}", (2026, len(examples)), start_ms, max(hours, 12.0),
                                                 archetype=a)))
        wanted = {"gradual", "short", "fluctuating", "abrupt"}
        for k in range(200):  # one sepsis or bradyarrhythmia course of every prodrome shape
            if not wanted:
                break
            a = "bradyarrhythmia" if "abrupt" in wanted and k % 2 else "sepsis"
            s = generate_patient(f"sh{k}", (2027, k), start_ms, 12.0, archetype=a, onset_window_h=(6.0, 9.0))
            if s.traits["shape"] in wanted and s.events:
                wanted.discard(s.traits["shape"])
                examples.append((f"{a} ({s.traits['shape']} prodrome)", s))
        fig, axes = plt.subplots(len(examples), 1, figsize=(12, 2.0 * len(examples)), sharex=True)
        for k, (ax, (name, s)) in enumerate(zip(axes, examples, strict=True)):
            win = W.build(s.frame())
            t = (win["start"] - DEFAULT_START).dt.total_seconds() / 3600
            for col, color in (("hr_mean", "#c0392b"), ("sbp", "#2c3e50"), ("spo2_mean", "#2980b9"),
                               ("rr_mean", "#27ae60"), ("temp", "#e67e22")):
                y = win[col] * (10 if col == "temp" else 1) - (300 if col == "temp" else 0)
                ax.plot(t, y, color=color, lw=0.9, label=col if col != "temp" else "temp×10−300")
            for e in s.events:
                at = (e["onset"] - DEFAULT_START).total_seconds() / 3600
                ax.axvline(at, color="k", ls="--", lw=1)
                ax.text(at, 150, f" onset ({e['criterion']})", fontsize=8)
            ax.set_ylim(20, 170)
            ax.set_ylabel(name, fontsize=7)
            if k == 0:
                ax.legend(fontsize=7, ncol=5, loc="upper right")
        axes[-1].set_xlabel("hours since admission (5-minute windows)")
        fig.tight_layout()
        fig.savefig(out / "trajectories.png", dpi=90)
        plt.close(fig)
        files.append("trajectories.png")
    return files


def _share(c: Counter, key: str) -> str:
    planned = c[(key, "planned")]
    return f"{planned} | {c[(key, 'events')]} ({c[(key, 'events')] / planned:.0%})" if planned else "0 | –"


def build_report(out: str | Path, n_patients: int = 500, hours: float = 24.0, seeds: list[int] | None = None,
                 progress: bool = False, all_plots: bool = False) -> dict:
    """Write ``README.md``, ``report.json`` (the numbers, for other tools) and the plots under ``out``."""
    seeds = seeds or [1, 2, 3]
    out_dir = Path(out)
    out_dir.mkdir(parents=True, exist_ok=True)
    stats = [collect(seed, n_patients, hours, progress, ward_patients=n_patients) for seed in seeds]
    table, ok = centile_table(stats)
    checks, checks_ok, values = realism_table(stats)
    first = stats[0]
    days = sum(1 for _ in first.patients) * hours / 24.0
    mix = Counter(p["archetype"] for p in first.patients)
    kinds = Counter(e["kind"] for e in first.events)
    criteria = Counter(e.get("criterion", "") for e in first.events)
    shapes = sum((st.shapes for st in stats), Counter())
    fates = sum((st.fates for st in stats), Counter())
    confusion = sum((st.confusion for st in stats), Counter())
    chronic = sum((st.chronic for st in stats), Counter())
    crit_stable = sum((st.criteria_stable for st in stats), Counter())
    pairs = np.array([p for st in stats for p in st.rr_pairs]).reshape(-1, 2)
    delays = np.array([d for st in stats for d in st.doc_delay_min])
    lines = [
        "# wardtwin simulator — realism report", "",
        f"Generated by `wardtwin simulate report --patients {n_patients} --hours {hours:g} --seeds "
        f"{','.join(map(str, seeds))}` (simulator {simulator_version()}). Per seed: a cohort of {n_patients} "
        f"patients × {hours:g} h with the enriched mix ({', '.join(f'{k} {v:.1%}' for k, v in ENRICHED_MIX.items())}"
        ", the population the CEWS centiles were matched on in issue 4) and, for the event rate, a cohort of the "
        f"same size with the default general-ward mix ({WARD_EVENT_RATE_PER_DAY} planned deteriorations per "
        "patient-day). Readings with a quality flag are excluded (they are never scored), except in the column "
        "that says so.", "",
        "## 1. Ward centiles against the reference", "",
        "Reference: CEWS (Tarassenko et al. 2011, continuous monitoring, 863 acute patients); mCEWS (manual "
        "observations) shown for context. *Within* = every seed within the tolerance of the reference **and** the "
        "spread between seeds at most half the tolerance.", "",
        *table, "",
        f"All centiles within tolerance: **{'yes' if ok else 'no'}**.", "",
        "## 2. Stable patients against continuous ward-monitoring studies", "",
        "Brief benign episodes (`simulator.physiology.Benign`, `simulator.devices`): slow desaturations "
        "(atelectasis, position) to a 90.5–92.5 % nadir for 30–180 min, some touching 88.5–90.5 % for 6–14 min; "
        "brief dips; opioid respiratory depression at night; brief tachypnoea; the impedance monitor reading "
        "talking as fast breathing, flagged `motion` as a monitor's motion detection does (artefact-flagged readings "
        "are never scored). Multi-day study shares are converted per day (`realism.per_day`). "
        "*Accepted* ranges were set from the references before tuning; *context* rows are not pinned.", "",
        *checks, "",
        f"All pinned stable-patient checks within their range on every seed: **{'yes' if checks_ok else 'no'}**.",
        "", "Not matched, on purpose: Sun's 37 % (SpO2 < 90 % for an hour in 48 h) and Duus's 52 % (SpO2 < 85 % for "
        "more than 10 min) are postoperative cohorts, sicker than a general ward's stable patients (rows above).", "",
        *_episode_lines(stats), "",
        "### Hard negatives: stable patients near a threshold (all seeds)", "",
        "Nothing is regenerated: a stable patient who crosses a threshold for half an hour (`models.labels`) keeps the "
        "crossing, and the label calls it an event (first criterion of those events: "
        + (", ".join(f"{k} {v}" for k, v in crit_stable.most_common()) or "none") + ").", "",
        "| stable group | patients | with an event by the label |", "|---|---|---|",
        *[f"| {g} | {chronic[(g, 'patients')]} | {chronic[(g, 'events')]} "
          f"({chronic[(g, 'events')] / max(chronic[(g, 'patients')], 1):.0%}) |"
          for g in ("none", "af", "copd", "tachycardia", "hypotension")], "",
        "Groups: `copd` hypercapnic COPD on long-term oxygen, NEWS2 scale 2, SpO2 90.6–93 %; `tachycardia` resting "
        "HR 100–108; `hypotension` resting SBP 102–112 on antihypertensives; `af` atrial fibrillation; fever "
        "patients peak at 38.3–39.4 °C (they can touch the 39 °C line).", "",
        "### Monitor RR and nurse-counted RR (stable patients, all rounds, all seeds)", "",
    ]
    if len(pairs):
        diff = pairs[:, 0] - pairs[:, 1]
        lines += [
            f"- rounds: {len(pairs):,}; nurse count minus monitor 5-min mean: median {np.median(diff):+.1f} /min, "
            f"middle 90 % {np.percentile(diff, 5):+.1f} to {np.percentile(diff, 95):+.1f}",
            f"- nurse counts written as 18 or 20: {np.isin(pairs[:, 0], (18, 20)).mean():.0%} (digit preference; "
            f"monitor means rounding to 18 or 20: {np.isin(np.round(pairs[:, 1]), (18, 20)).mean():.0%})",
            f"- NEWS2 RR points ≥ 2: nurse {np.mean(pairs[:, 0] >= 21):.1%} of rounds, monitor "
            f"{np.mean(np.round(pairs[:, 1]) >= 21):.1%}",
            "- the nurse's count is hers, apart from the monitor's: it reaches the service in her observation set "
            "(`PatientStream.observation_sets`, `POST /v1/observations`; stored as `rr` with source `charted`) and is "
            "the RR of the charted NEWS2 below, as on a ward.", "",
        ]
    lines += [
        "## 3. NEWS2 ≥ 5 on stable patients at RCP 2017 charting frequency", "",
        "| NEWS2 ≥ 5 on stable patients | " + " | ".join(f"seed {st.seed}" for st in stats) + " | real wards |",
        "|---|" + "---|" * (len(stats) + 1),
        "| **charted sets ≥ 5 per 100 patient-days** (nurse's rounds, nurse-counted RR) | " + " | ".join(
            f"**{100 * st.charted_ge5 / max(st.charted_days, 1e-9):.1f}**" for st in stats) + " | 2–5.5 alerts |",
        "| the same rounds with the monitor's RR instead | " + " | ".join(
            f"{100 * st.charted_ge5_monitor / max(st.charted_days, 1e-9):.1f}" for st in stats) + " | |",
        "| new triggers at charting (a set ≥ 5 after one < 5) per 100 patient-days | " + " | ".join(
            f"{100 * st.charted_triggers / max(st.charted_days, 1e-9):.1f}" for st in stats) + " | |",
        "| charted observation sets per patient-day | " + " | ".join(
            f"{st.charted_sets / max(st.charted_days, 1e-9):.1f}" for st in stats) + " | 2–6 |",
    ]
    if first.news2_windows:
        lines.append("| per 5-minute window: entering ≥ 5 per 100 patient-days (not what a ward sees) | " + " | ".join(
            f"{100 * st.news2_triggers / st.news2_days:.0f}" if st.news2_days else "–" for st in stats) + " | |")
        lines.append("| per 5-minute window: share of windows with NEWS2 ≥ 5 | " + " | ".join(
            f"{st.news2_windows_ge5 / st.news2_windows:.2%}" if st.news2_windows else "–" for st in stats) + " | |")
    points = sum((st.charted_points for st in stats), Counter())
    lines += ["", "*Charted*: the simulated nurse (`simulator.nurse`) charts a full set at the RCP 2017 minimum "
              "frequency for the band she sees: 10.5–12 h at 0, 4–6 h at 1–4, hourly at 5–6 or a single 3, every "
              "15 min (continuous) at ≥ 7; each set holds her own measurements (RR counted over 30 s, spot SpO2, "
              "pulse, cuff systolic, tympanic temperature, ACVPU, oxygen flow: `PatientStream.observation_sets`, the "
              "`POST /v1/observations` bodies) and is scored with `models.news2.score` on the patient's SpO2 scale, as "
              "the service answers it; all stable patients of each "
              f"seed. *Per 5-minute window*: `models.news2.from_windows` on the first {NEWS2_PATIENTS} stable "
              "patients of each seed — a continuous score, not an alert rate. Real wards: about 2–5.5 alerts per "
              "100 patient-days (`reference/news2.md`).",
              "", "Points per parameter in the charted sets ≥ 5 (all seeds): "
              + (", ".join(f"{k} {v}" for k, v in points.most_common()) or "none") + "."]
    ward_days = sum(st.ward_days for st in stats)
    ward_events = sum((st.ward_events for st in stats), Counter())
    n_ward = sum(ward_events.values())
    planned = sum(v for k, v in ward_events.items() if k in EVENT_ARCHETYPES)
    lines += [
        "", "## 4. Deterioration: event rate, prodromes, resolution, charting", "",
        f"- **general-ward default** (`--mix ward`, {WARD_EVENT_RATE_PER_DAY} planned deteriorations per patient-day,"
        " `reference/news2.md`): recorded events per patient-day by seed "
        + ", ".join(f"{sum(st.ward_events.values()) / max(st.ward_days, 1e-9):.3f}" for st in stats)
        + f" (pooled {n_ward / max(ward_days, 1e-9):.3f}: planned deteriorations {planned / max(ward_days, 1e-9):.3f}"
        f", stable or fever crossings {(n_ward - planned) / max(ward_days, 1e-9):.3f})."
        " Configurable: `wardtwin simulate cohort --event-rate R` or `--mix enriched` (the training mix).",
        "", *_ward_event_lines(stats),
        "", "| prodrome shape (all seeds) | planned episodes | recorded events |", "|---|---|---|",
        *[f"| {k} | {_share(shapes, k)} |" for k in ("gradual", "short", "fluctuating", "abrupt")],
        "", "| course (all seeds) | planned episodes | recorded events |", "|---|---|---|",
        *[f"| {k} | {_share(fates, k)} |" for k in ("transferred", "resolves", "stops short", "recovery")],
        "", "Shapes: `gradual` 2–6 h of accelerating drift; `short` 15–60 min; `fluctuating` 2–6 h that comes and "
        "goes (±25–50 % of the severity, 0.5–1.5 h period); `abrupt` 2–10 min (nothing visible before: 70 % of "
        "bradyarrhythmias, as high-grade block). Courses: `resolves` crosses and is treated on the ward; `stops "
        "short` peaks below its threshold (treated in time) — no event unless noise carries it over.",
        f"- new confusion charted in {confusion['charted']} deteriorating patients with an event; in "
        f"{confusion['before_onset']} of them ({confusion['before_onset'] / max(confusion['charted'], 1):.0%}) "
        "first charted before the onset (the severity at which it appears is drawn per patient, 0.2–0.9).",
        f"- charting latency: a set is documented {np.percentile(delays, 5):.0f}–{np.percentile(delays, 95):.0f} min "
        f"(middle 90 %) after the bedside round and its readings carry that time; the longest delivery of a set's "
        f"first copy after it is {max(st.charted_late_s for st in stats):.1f} s (the cycle's grace: 30 s), so training "
        "(windows by "
        "`ts`) and serving see every set at the same moment.",
        "", f"## 5. Cohort detail (seed {first.seed}, enriched mix, {len(first.patients)} patients, {days:g} "
        "patient-days)", "",
        "| archetype | patients | share | events |", "|---|---|---|---|",
        *[f"| {a} | {mix.get(a, 0)} | {mix.get(a, 0) / max(len(first.patients), 1):.1%} | {kinds.get(a, 0)} |"
          for a in ARCHETYPES],
        "",
        f"- events: {len(first.events)} = {len(first.events) / max(len(first.patients), 1):.3f} per patient-day",
        f"- first criterion crossed: {', '.join(f'{k} {v}' for k, v in sorted(criteria.items()))}",
        f"- 5-minute windows monitored: {first.windows:,}; pre-deterioration (an onset within the next 6 h): "
        f"{first.pre_windows:,} = **{first.pre_windows / first.windows:.2%}**; at or after an onset (before "
        f"transfer): {first.post_windows:,} = {first.post_windows / first.windows:.2%}",
        f"- rows: {first.rows:,}; quality flags: "
        + ", ".join(f"{q} {n / first.rows:.2%}" for q, n in sorted(
            ((("ok", "probe_off", "motion", "low_perfusion")[k], v) for k, v in first.quality.items()),
            key=lambda kv: -kv[1])),
        "", "| episodes per stable patient-day (raw readings) | "
        + " | ".join(f"seed {st.seed}" for st in stats) + " |",
        "|---|" + "---|" * len(stats),
    ]
    for name in first.episodes:
        lines.append(f"| {name} | " + " | ".join(f"{st.episodes[name] / max(st.stable_days, 1e-9):.2f}"
                                                for st in stats) + " |")
    files = _plots(out_dir, stats, hours, values, all_plots)
    lines += ["", "## Plots", "", *[f"![{f[:-4]}]({f})" for f in files], ""]
    markdown = "\n".join(lines)
    path = out_dir / "README.md"
    path.write_text(markdown + "\n")
    summary = _summary(stats, n_patients, hours, seeds, ok, checks_ok, values)
    (out_dir / "report.json").write_text(json.dumps(summary, indent=2, sort_keys=True) + "\n")
    return {"markdown": markdown, "path": str(path), "all_within_tolerance": ok and checks_ok, "stats": stats,
            "checks": values, "events_per_patient": len(first.events) / max(len(first.patients), 1),
            "pre_deterioration_fraction": first.pre_windows / max(first.windows, 1),
            "event_archetypes": sorted(EVENT_ARCHETYPES)}


def _summary(stats: list[SeedStats], n_patients: int, hours: float, seeds: list[int], centiles_ok: bool,
             checks_ok: bool, values: dict[str, list[float | None]]) -> dict:
    """The report's numbers as JSON: the ward mix's events per patient-day by archetype, the stable checks per
    seed, benign episodes per stable patient-day, charted NEWS2 ≥ 5 per 100 stable patient-days."""
    days = sum((st.ward_archetype_days for st in stats), Counter())
    events = sum((st.ward_events for st in stats), Counter())
    negatives = [a for a in ARCHETYPES if a not in EVENT_ARCHETYPES]
    neg_days = sum(days[a] for a in negatives)
    episodes = [realism.summarise(st.flags, {}) for st in stats]
    return {
        "simulator_version": simulator_version(),
        "command": f"wardtwin simulate report --patients {n_patients} --hours {hours:g} --seeds "
                   f"{','.join(map(str, seeds))}",
        "label": {kind: criterion_text(kind) for kind in CRITERIA},
        "ward_mix": {
            "events_per_patient_day_by_archetype": {a: round(events[a] / days[a], 4) for a in ARCHETYPES if days[a]},
            "patient_days_by_archetype": {a: round(days[a], 1) for a in ARCHETYPES if days[a]},
            "events_by_archetype": {a: events[a] for a in ARCHETYPES if days[a]},
            "stable_and_hard_negative_events_per_patient_day": round(
                sum(events[a] for a in negatives) / max(neg_days, 1e-9), 4),
            "target": 0.03,
        },
        "stable_checks": {k: [None if v is None else round(v, 2) for v in vs] for k, vs in values.items()},
        "benign_episodes_per_stable_patient_day": {
            k: [round(e[k], 3) for e in episodes] for k in ("rr_gt24_episodes", "rr_lt11_episodes",
                                                             "spo2_lt92_episodes")},
        "charted_news2_ge5_per_100_stable_patient_days": [
            round(100 * st.charted_ge5 / max(st.charted_days, 1e-9), 1) for st in stats],
        "charted_sets_per_stable_patient_day": [round(st.charted_sets / max(st.charted_days, 1e-9), 2)
                                                for st in stats],
        "centiles_within_tolerance": centiles_ok, "stable_checks_within_range": checks_ok,
    }


def _episode_lines(stats: list[SeedStats]) -> list[str]:
    """Benign monitor episodes per stable patient-day: runs of 5-minute windows beyond a NEWS2 RR or SpO2 band."""
    rows = (("rr_gt24_episodes", "5-min monitor RR mean > 24 /min (NEWS2 3 points)"),
            ("rr_lt11_episodes", "5-min monitor RR mean < 11 /min (NEWS2 ≥ 1 point)"),
            ("spo2_lt92_episodes", "5-min SpO2 mean < 92 % (NEWS2 scale 1: 3 points)"))
    got = [realism.summarise(st.flags, {}) for st in stats]
    return ["### Benign monitor episodes per stable patient-day (all stable patients, 24-h stays)", "",
            "| episode (a run of 5-minute windows; artefact-flagged readings excluded) | "
            + " | ".join(f"seed {st.seed}" for st in stats) + " |", "|---|" + "---|" * len(stats),
            *[f"| {name} | " + " | ".join(f"{g[key]:.2f}" if g[key] is not None else "–" for g in got) + " |"
              for key, name in rows], "",
            "The share of patient-days with at least one such episode is checked against Duus 2018 in the table above "
            "(`rr_any_gt24`, `rr_any_lt11`, `spo2_any_lt92`)."]


def _ward_event_lines(stats: list[SeedStats]) -> list[str]:
    """Recorded events per patient-day by archetype on the general-ward mix (all seeds pooled; issue 20's target:
    stable and hard-negative patients ≤ 0.03)."""
    days = sum((st.ward_archetype_days for st in stats), Counter())
    events = sum((st.ward_events for st in stats), Counter())
    criteria = sum((st.ward_criteria for st in stats), Counter())
    negatives = [a for a in ARCHETYPES if a not in EVENT_ARCHETYPES]
    neg_days = sum(days[a] for a in negatives)
    neg_events = sum(events[a] for a in negatives)
    lines = ["| archetype (`--mix ward`, all seeds) | patient-days | events | events per patient-day "
             "| first criterion |", "|---|---|---|---|---|"]
    for a in ARCHETYPES:
        if days[a]:
            crit = ", ".join(f"{c} {n}" for (k, c), n in sorted(criteria.items()) if k == a) or "–"
            lines.append(f"| {a} | {days[a]:.1f} | {events[a]} | {events[a] / days[a]:.3f} | {crit} |")
    lines += ["", f"**Stable and hard-negative (fever) patients: {neg_events} events in {neg_days:.0f} patient-days = "
              f"{neg_events / max(neg_days, 1e-9):.3f} per patient-day** (issue 20's target ≤ 0.03; 0.17 under the "
              "old label). The event rule (`models.labels`): " + "; ".join(criterion_text(k) for k in CRITERIA)
              + ", sustained half an hour (three cuff cycles for SBP and temperature). Deteriorating patient-days are "
              "short: most leave the ward 2–10 h after the onset."]
    return lines


def simulator_version() -> str:
    import simulator

    return simulator.__version__


__all__ = ["REFERENCE", "build_report", "centile", "charted_news2", "collect", "realism_table"]
