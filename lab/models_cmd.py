"""``wardtwin train`` and ``wardtwin evaluate``: cohorts in, JSON artifact / evaluation report out.

A cohort is either a directory written by ``simulator.cohort.write_cohort`` (``readings.parquet``,
``patients.parquet``, ``events.parquet``) or generated on the fly with ``simulator.cohort.iter_cohort``.
Either way readings are aggregated to windows one patient at a time (1 Hz heart rate is 86,400
rows per patient-day) and only the windows are kept.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from lab.output import Progress
from lab.output import out as say
from models import windows as W
from models.challenger import DEFAULT_CHALLENGER
from models.twin import DEFAULT_ARTIFACT


@dataclass(frozen=True)
class CohortSpec:
    """Which cohort: a directory written by the simulator, or one generated from (patients, hours, seed, mix)."""

    cohort: Path | None = None
    patients: int = 600
    hours: float = 48.0
    seed: int = 2024
    mix: str | None = None  # 'ward' (None), 'enriched' or archetype weights (simulator.archetypes.parse_mix)


def _simulator_version() -> str:
    try:
        import simulator
    except ImportError:
        return "unavailable"
    return str(getattr(simulator, "__version__", "unknown"))


def _fingerprint(manifest: dict[str, Any], source: str) -> dict[str, Any]:
    keys = ("simulator_version", "seed", "n_patients", "hours", "start", "archetype_mix")
    out = {k: manifest[k] for k in keys if k in manifest}
    out["source"] = source
    return out


def load_cohort_windows(spec: CohortSpec, progress: Callable[[str], None]
                        ) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, dict[str, Any]]:
    """(windows, patients, ground-truth events, cohort fingerprint) for the cohort ``spec`` names.

    Readings are aggregated one patient at a time and dropped; only the windows are kept.
    """
    from simulator import cohort as C

    if spec.cohort is not None:
        root = Path(spec.cohort)
        manifest_path = root / "manifest.json"
        manifest = json.loads(manifest_path.read_text(encoding="utf-8")) if manifest_path.exists() else {}
        records: Iterator[Any] = C.iter_cohort_files(root)
        total = int(manifest.get("n_patients", 0)) or len(pd.read_parquet(root / "patients.parquet"))
        fingerprint = _fingerprint(manifest, f"cohort directory {root.name}")
    else:
        start = C.DEFAULT_START
        from simulator.archetypes import normalise_mix, parse_mix

        mix = normalise_mix(parse_mix(spec.mix) if spec.mix else None)
        records = C.iter_cohort(spec.patients, spec.hours, spec.seed, start=start, archetype_mix=mix)
        total = spec.patients
        fingerprint = _fingerprint({"simulator_version": _simulator_version(), "seed": int(spec.seed),
                                    "n_patients": int(spec.patients), "hours": float(spec.hours),
                                    "start": pd.Timestamp(start).tz_convert("UTC").isoformat(),
                                    "archetype_mix": mix},
                                   "simulator.cohort.iter_cohort")
    frames: list[pd.DataFrame] = []
    patient_rows: list[dict[str, Any]] = []
    event_rows: list[dict[str, Any]] = []
    step = max(1, total // 20)
    for i, record in enumerate(records, start=1):
        frames.append(W.build(record.readings))
        patient_rows.append(dict(record.patient))
        event_rows.extend(dict(e) for e in record.events)
        if i % step == 0 or i == total:
            progress(f"cohort → windows: {i}/{total} patients")
    windows = W.normalise(pd.concat(frames, ignore_index=True)) if frames else W.empty_windows()
    patients = pd.DataFrame(patient_rows)
    events = pd.DataFrame(event_rows) if event_rows else pd.DataFrame({"patient_id": [], "kind": [], "onset": []})
    events["onset"] = pd.to_datetime(events["onset"], utc=True)
    return windows, patients, events, fingerprint


def train(*, cohort: Path | None, patients: int, hours: float, seed: int, mix: str | None, train_seed: int,
          out: Path | None, no_challenger: bool, variant: str | None, physionet_records: Path | None,
          physionet_outcomes: Path | None, sources_report: Path, physionet_limit: int | None, command_line: str,
          alert_budget: float | None = None) -> int:
    """``wardtwin train``: the twin (and the challenger) from the cohort, written as JSON with the model card.

    With ``physionet_records`` the stated source comparison chooses what it is trained on
    (``lab.sources_cmd.choose_sources``; its labels are the charted events, so ``physionet_outcomes``, which the
    command line asks for beside the records, is not read). ``out`` None: the shipped artifact."""
    from lab import train as T

    out = out or DEFAULT_ARTIFACT
    progress = Progress("train")
    windows, cohort_patients, events, fingerprint = load_cohort_windows(
        CohortSpec(cohort, patients, hours, seed, mix), progress)
    dataset = T.prepare(windows, cohort_patients, events, progress=progress)
    pooled, external = None, {}
    if physionet_records is not None:
        from lab.sources_cmd import choose_sources

        pooled, fingerprint = choose_sources(physionet_records, physionet_limit, train_seed=train_seed,
                                             sources_report=sources_report, dataset=dataset, fingerprint=fingerprint,
                                             progress=progress, command_line=command_line, external=external)
    artifact = T.train(windows, events, cohort_patients, seed=train_seed, cohort_fingerprint=fingerprint,
                       progress=progress, dataset=dataset, variant=variant, pooled=pooled, external=external or None,
                       budget=T.ALERT_BUDGET_PER_100_PATIENT_DAYS if alert_budget is None else alert_budget)
    path = T.write_artifact(artifact, out)
    say(f"twin {artifact['version']} written to {path} (model card {path.parent / 'MODEL_CARD.md'})")
    if not no_challenger:
        challenger = T.train_challenger(dataset, seed=train_seed, twin=artifact, progress=progress)
        cpath = out.parent / DEFAULT_CHALLENGER.name
        T.write_json(challenger, cpath)
        say(f"challenger {challenger['version']} written to {cpath}")
    m = artifact["metrics"]["test"]
    cal = artifact["calibration_check"]["test"]
    point = artifact["operating_points"]["alert"]
    say(f"test patients: AUROC twin {m['auroc']:.3f} vs NEWS2 {m['news2_auroc']:.3f}; Brier {m['brier']:.4f}; "
        f"calibration slope {cal['calibration_slope']:.2f} ({cal['calibration_slope_ci'][0]:.2f}–"
        f"{cal['calibration_slope_ci'][1]:.2f}), observed/expected {cal['observed_over_expected']:.2f} "
        f"({cal['observed_over_expected_ci'][0]:.2f}–{cal['observed_over_expected_ci'][1]:.2f})")
    say(f"alert threshold {point['threshold']} for a budget of {point['budget_alerts_per_100_patient_days']:g} per "
        f"100 ward patient-days ({point['sustain_windows']} windows sustained): "
        f"{point['twin_alerts_per_100_patient_days']} per 100 patient-days on development patients")
    return 0


def evaluate(*, cohort: Path | None, patients: int, hours: float, seed: int, mix: str | None,
             seeds: list[int] | None, artifact: Path | None, challenger: Path | None, out: Path, bootstrap: int,
             no_model_card: bool, physionet_report: Path) -> int:
    """``wardtwin evaluate``: the twin against NEWS2 (charted at the RCP frequency and every 5 min) and the
    challenger on independent simulator cohorts, one per seed and pooled; writes report.json, plots and index.html,
    and the model card when the shipped twin was judged on generated cohorts."""
    from lab import report as R
    from lab import train as T
    from lab.model_card import write_model_card
    from models.twin import Twin

    progress = Progress("evaluate")
    artifact = artifact or DEFAULT_ARTIFACT
    twin = Twin.load(artifact)
    challenger_path = challenger or artifact.parent / DEFAULT_CHALLENGER.name
    datasets, fingerprints = {}, {}
    for s in [seed] if cohort is not None or seeds is None else seeds:
        progress(f"cohort seed {s}")
        windows, cohort_patients, events, fingerprint = load_cohort_windows(
            CohortSpec(cohort, patients, hours, s, mix), progress)
        datasets[s] = T.prepare(windows, cohort_patients, events, progress=progress)
        fingerprints[s] = fingerprint
        del windows
    old_path = out / "report.json"
    previous = R.previous_summary(json.loads(old_path.read_text(encoding="utf-8"))) if old_path.exists() else None
    report = R.evaluate_seeds(twin, datasets, fingerprints,
                              challenger_path=challenger_path if challenger_path.exists() else None,
                              n_bootstrap=bootstrap, previous=previous, progress=progress)
    R.write_report(report, out)
    pooled = report["pooled"]
    if not no_model_card and pooled["twin_version"] == twin.version \
            and artifact.resolve() == DEFAULT_ARTIFACT.resolve() and cohort is None \
            and pooled["scope"].startswith("an independent cohort"):
        real = json.loads(physionet_report.read_text(encoding="utf-8")) if physionet_report.exists() else None
        write_model_card(twin.artifact, artifact.parent / "MODEL_CARD.md", {**pooled, "seeds": report["seeds"]},
                         real)
        say(f"model card updated with this evaluation: {artifact.parent / 'MODEL_CARD.md'}")
    say(R.format_table(report))
    say(f"report: {out / 'report.json'} and {out / 'index.html'}")
    return 0


__all__ = ["CohortSpec", "evaluate", "load_cohort_windows", "train"]
