"""The realism report: simulated wards against the published adult-ward centiles (``/shared/reference``).

For every seed a cohort is generated with the default ward mix (stable and deteriorating patients
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

import logging
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

import numpy as np
import pandas as pd

from models.schema import ACVPU_CODES, VITALS
from simulator import detect
from simulator.archetypes import ARCHETYPES, DEFAULT_MIX, EVENT_ARCHETYPES
from simulator.cohort import DEFAULT_START, iter_streams
from simulator.devices import Q_OK
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
    m = s.vital == VITALS.index(vital)
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


def charted_news2(stream: PatientStream) -> list[tuple[int, int, dict[str, int]]]:
    """NEWS2 as the nurse meets it: one set per charted observation (the ACVPU/oxygen rounds of ``nurse``).

    Each set is scored with ``models.news2.score`` from the vitals of the last complete 5-minute window
    before the observation (HR, SpO2, RR window means; SBP and temperature carried forward up to 1 h, as
    ``models.windows``), the ACVPU and oxygen charted at that round, on the SpO2 scale the patient is
    charted on. Returns ``(epoch ms, total, points)`` per set, in time order.
    """
    from models import news2

    m = stream.quality == Q_OK
    ts, vital, value = stream.ts_ms[m], stream.vital[m], stream.value[m]
    key = ts * 16 + vital
    _, first = np.unique(key, return_index=True)  # duplicates (retransmissions) dropped
    ts, vital, value = ts[first], vital[first], value[first]
    origin, series = detect.window_aggregates(ts, vital, value)
    if not series:
        return []
    n = len(series["hr"])
    obs = vital == VITALS.index("acvpu")
    is_o2 = vital == VITALS.index("o2")
    o2_at = dict(zip(ts[is_o2].tolist(), value[is_o2].tolist(), strict=True))
    out = []
    for t, code in zip(ts[obs].tolist(), value[obs].tolist(), strict=True):
        k = min(max((t - origin) // WINDOW_MS - 1, 0), n - 1)
        at = {v: series[v][k] for v in ("hr", "spo2", "rr", "sbp", "temp")}
        at = {v: None if np.isnan(x) else float(x) for v, x in at.items()}
        o2 = o2_at.get(t)
        got = news2.score(rr=at["rr"], spo2=at["spo2"], spo2_scale=stream.spo2_scale,
                          on_oxygen=None if o2 is None else o2 > 0, sbp=at["sbp"], hr=at["hr"],
                          acvpu=ACVPU_CODES[round(code)], temp=at["temp"])
        out.append((t, got.total, got.points))
    return out


def collect(seed: int, n_patients: int, hours: float, progress: bool = False,
            start: pd.Timestamp = DEFAULT_START) -> SeedStats:
    st = SeedStats(seed)
    for kind in ("ward", "stable", "all_quality"):
        getattr(st, f"hist_{kind}").update({v: np.zeros(NBINS, dtype=np.int64) for v in REPORT_VITALS})
    news2_done = 0
    for s in iter_streams(n_patients, hours, seed, start, DEFAULT_MIX, progress):
        arche = s.patient["archetype"]
        st.patients.append(s.patient)
        st.events.extend(s.events)
        st.rows += len(s)
        st.quality.update(Counter(s.quality.tolist()))
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
        if arche == "stable":
            days = (s.end_ms - s.start_ms) / 86_400_000
            st.stable_days += days
            spo2, rr, hr = _series(s, "spo2"), _series(s, "rr"), _series(s, "hr")
            st.episodes["short desaturation (SpO2 < 90 %)"] += _runs(spo2 < 90)
            st.episodes["slow breathing (RR ≤ 8)"] += _runs(rr <= 8)
            st.episodes["fast breathing (RR ≥ 25)"] += _runs(rr >= 25)
            st.episodes["tachycardia (HR > 120 for ≥ 10 s)"] += _runs(hr > 120, 10)
            st.episodes["bradycardia (HR < 50 for ≥ 10 s)"] += _runs(hr < 50, 10)
            st.episodes["hypotension (one cuff reading < 90)"] += _runs(_series(s, "sbp") < 90)
            sets = charted_news2(s)
            st.charted_days += days
            st.charted_sets += len(sets)
            previous = 0
            for _t, total, points in sets:
                if total >= 5:
                    st.charted_ge5 += 1
                    st.charted_triggers += previous < 5
                    st.charted_points.update(points)
                previous = total
            if news2_done < NEWS2_PATIENTS:
                got = _news2_for(s)
                if got is not None:
                    news2_done += 1
                    st.news2_days += days
                    st.news2_triggers += got[0]
                    st.news2_windows_ge5 += got[1]
                    st.news2_windows += got[2]
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


def _plots(out: Path, stats: list[SeedStats], hours: float) -> list[str]:
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

    start_ms = to_epoch_ms(DEFAULT_START)
    fig, axes = plt.subplots(len(ARCHETYPES), 1, figsize=(12, 2.2 * len(ARCHETYPES)), sharex=True)
    for k, (ax, a) in enumerate(zip(axes, ARCHETYPES, strict=True)):
        s = generate_patient(f"ex-{a[:4]}", (2026, k), start_ms, max(hours, 12.0), archetype=a)
        win = W.build(s.frame())
        t = (win["start"] - DEFAULT_START).dt.total_seconds() / 3600
        for col, color in (("hr_mean", "#c0392b"), ("sbp", "#2c3e50"), ("spo2_mean", "#2980b9"),
                           ("rr_mean", "#27ae60"), ("temp", "#e67e22")):
            y = win[col] * (10 if col == "temp" else 1) - (300 if col == "temp" else 0)
            ax.plot(t, y, color=color, lw=0.9, label=col if col != "temp" else "temp×10−300")
        for e in s.events:
            ax.axvline((e["onset"] - DEFAULT_START).total_seconds() / 3600, color="k", ls="--", lw=1)
            ax.text((e["onset"] - DEFAULT_START).total_seconds() / 3600, 150, f" onset ({e['criterion']})", fontsize=8)
        ax.set_ylim(20, 170)
        ax.set_ylabel(a, fontsize=8)
        if k == 0:
            ax.legend(fontsize=7, ncol=5, loc="upper right")
    axes[-1].set_xlabel("hours since admission (5-minute windows)")
    fig.tight_layout()
    fig.savefig(out / "trajectories.png", dpi=90)
    plt.close(fig)
    files.append("trajectories.png")
    return files


def build_report(out: str | Path, n_patients: int = 500, hours: float = 24.0, seeds: list[int] | None = None,
                 progress: bool = False) -> dict:
    seeds = seeds or [1, 2, 3]
    out_dir = Path(out)
    out_dir.mkdir(parents=True, exist_ok=True)
    stats = []
    for seed in seeds:
        stats.append(collect(seed, n_patients, hours, progress))
    table, ok = centile_table(stats)
    first = stats[0]
    days = sum(1 for _ in first.patients) * hours / 24.0
    mix = Counter(p["archetype"] for p in first.patients)
    kinds = Counter(e["kind"] for e in first.events)
    criteria = Counter(e.get("criterion", "") for e in first.events)
    lines = [
        "# wardtwin simulator — realism report", "",
        f"Cohorts: {n_patients} patients × {hours:g} h per seed, seeds {', '.join(map(str, seeds))}, default ward mix "
        f"({', '.join(f'{k} {v:.1%}' for k, v in DEFAULT_MIX.items())}). Readings with a quality flag are excluded "
        "(they are never scored), except in the column that says so.", "",
        "## Ward centiles against the reference", "",
        "Reference: CEWS (Tarassenko et al. 2011, continuous monitoring, 863 acute patients); mCEWS (manual "
        "observations) shown for context. *Within* = every seed within the tolerance of the reference **and** the "
        "spread between seeds at most half the tolerance.", "",
        *table, "",
        f"All statistics within tolerance: **{'yes' if ok else 'no'}**.", "",
        f"## Event rate and archetype mix (seed {first.seed}, {len(first.patients)} patients, {days:g} patient-days)",
        "",
        "| archetype | patients | share | events |", "|---|---|---|---|",
        *[f"| {a} | {mix.get(a, 0)} | {mix.get(a, 0) / max(len(first.patients), 1):.1%} | {kinds.get(a, 0)} |"
          for a in ARCHETYPES],
        "",
        f"- events: {len(first.events)} = {len(first.events) / max(len(first.patients), 1):.3f} per patient, "
        f"{len(first.events) / days:.3f} per patient-day (a real ward: ~0.02 per patient-day; the default mix is "
        "enriched for training, see `simulator.archetypes`)",
        f"- first criterion crossed: {', '.join(f'{k} {v}' for k, v in sorted(criteria.items()))}",
        f"- 5-minute windows monitored: {first.windows:,}; pre-deterioration (an onset within the next 6 h: "
        f"`window_end ≤ onset < window_end + 6 h`): {first.pre_windows:,} = **{first.pre_windows / first.windows:.2%}**"
        f"; at or after an onset (before transfer): {first.post_windows:,} = {first.post_windows / first.windows:.2%}",
        f"- rows: {first.rows:,}; quality flags: "
        + ", ".join(f"{q} {n / first.rows:.2%}" for q, n in sorted(
            ((("ok", "probe_off", "motion", "low_perfusion")[k], v) for k, v in first.quality.items()),
            key=lambda kv: -kv[1])),
        "", "## What a ward nurse would recognise (stable patients)", "",
        "| per stable patient-day | " + " | ".join(f"seed {s.seed}" for s in stats) + " |",
        "|---|" + "---|" * len(stats),
    ]
    for name in stats[0].episodes:
        lines.append(f"| {name} | " + " | ".join(f"{s.episodes[name] / max(s.stable_days, 1e-9):.2f}" for s in stats)
                     + " |")
    lines += [
        "", "## NEWS2 ≥ 5 on stable patients", "",
        "| NEWS2 ≥ 5 on stable patients | " + " | ".join(f"seed {s.seed}" for s in stats) + " | real wards |",
        "|---|" + "---|" * (len(stats) + 1),
        "| **charted observation sets per 100 patient-days** (nurse's rounds) | " + " | ".join(
            f"{100 * s.charted_ge5 / max(s.charted_days, 1e-9):.1f}" for s in stats) + " | 2–5.5 alerts |",
        "| new triggers at charting (a set ≥ 5 after one < 5) per 100 patient-days | " + " | ".join(
            f"{100 * s.charted_triggers / max(s.charted_days, 1e-9):.1f}" for s in stats) + " | |",
        "| charted observation sets per patient-day | " + " | ".join(
            f"{s.charted_sets / max(s.charted_days, 1e-9):.1f}" for s in stats) + " | 2–6 |",
    ]
    if first.news2_windows:
        lines.append("| per 5-minute window: entering ≥ 5 per 100 patient-days (not what a ward sees) | " + " | ".join(
            f"{100 * s.news2_triggers / s.news2_days:.0f}" if s.news2_days else "–" for s in stats) + " | |")
        lines.append("| per 5-minute window: share of windows with NEWS2 ≥ 5 | " + " | ".join(
            f"{s.news2_windows_ge5 / s.news2_windows:.2%}" if s.news2_windows else "–" for s in stats) + " | |")
    points = sum((s.charted_points for s in stats), Counter())
    lines += ["", "*Charted*: NEWS2 at the times the simulated nurse charts a full observation set (`simulator.nurse`: "
              "every 12 h at 0, 4 h at 1–4, hourly at 5–6 or a single 3, 30 min at ≥ 7), scored with "
              "`models.news2.score` from the last complete 5-minute window before the round (HR, SpO2, RR means; "
              "SBP and temperature carried forward), the charted ACVPU and oxygen, on the patient's SpO2 scale "
              "(scale 2 for hypercapnic COPD on long-term oxygen); all stable patients of each seed. *Per "
              "5-minute window*: `models.news2.from_windows` (scale 1) on every `models.windows.build` window of "
              f"the first {NEWS2_PATIENTS} stable patients of each seed — a continuous score, not an alert rate. "
              "Reported NEWS2 alert burden on real wards: about 2–5.5 per 100 patient-days (`reference/news2.md`).",
              "", "Points per parameter in the charted sets ≥ 5 (all seeds): "
              + (", ".join(f"{k} {v}" for k, v in points.most_common()) or "none") + "."]
    lines += ["", "## Plots", "", "![histograms](histograms.png)", "", "![trajectories](trajectories.png)", ""]
    _plots(out_dir, stats, hours)
    markdown = "\n".join(lines)
    path = out_dir / "README.md"
    path.write_text(markdown + "\n")
    return {"markdown": markdown, "path": str(path), "all_within_tolerance": ok, "stats": stats,
            "events_per_patient": len(first.events) / max(len(first.patients), 1),
            "pre_deterioration_fraction": first.pre_windows / max(first.windows, 1),
            "event_archetypes": sorted(EVENT_ARCHETYPES)}


__all__ = ["REFERENCE", "build_report", "centile", "collect"]
