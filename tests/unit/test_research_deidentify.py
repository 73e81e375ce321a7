"""De-identified export (issue 25): k-anonymity, l-diversity and t-closeness verified by an independent checker
(pycanon) on a 200-patient simulated cohort read through ``--cohort DIR`` and on the set-A fixture records;
pseudonyms and date shifts keyed by the secret; the secret refused when missing."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from app.research import deidentify as D
from lab.research import cohort as C

pycanon = pytest.importorskip("pycanon.anonymity", reason="pycanon is a test dependency (.ci/run installs it)")

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "physionet2012"
SECRET = b"s" * 40
OTHER = b"o" * 40
QI = list(D.QUASI_IDENTIFIERS)


@pytest.fixture(scope="module")
def sim_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from simulator.archetypes import ENRICHED_MIX
    from simulator.cohort import write_cohort

    out = tmp_path_factory.mktemp("sim200")
    write_cohort(out, 200, 2.0, 11, archetype_mix=ENRICHED_MIX)
    return out


@pytest.fixture(scope="module")
def sim(sim_dir: Path) -> C.ResearchCohort:
    return C.from_cohort_dir(sim_dir)


def _verified(export: D.Export, k: int, l_: int) -> dict[str, float]:
    """pycanon's k, l, t on the released patients (one row per pseudonym), which must agree with the report."""
    table = export.released
    assert table["pseudonym"].is_unique
    k_, l_got = pycanon.k_anonymity(table, QI), pycanon.l_diversity(table, QI, ["outcome"])
    t_ = pycanon.t_closeness(table, QI, ["outcome"])
    assert k_ >= k and l_got >= l_
    achieved = export.report["achieved"]
    assert (achieved["k"], achieved["l"]) == (k_, l_got)
    assert achieved["t"] == pytest.approx(t_, abs=1e-9)
    return {"k": k_, "l": l_got, "t": t_}


def test_sim_cohort_export_is_5_anonymous_and_2_diverse_by_pycanon(sim: C.ResearchCohort) -> None:
    assert len(sim.patients) == 200 and sim.patients["outcome"].sum() >= 2
    export = D.deidentify(sim.patients, sim.windows, secret=SECRET, k=5, l_=2)
    _verified(export, 5, 2)
    report = export.report
    assert report["quasi_identifiers"] == QI and report["sensitive_column"] == "outcome"
    assert report["patients"]["released"] + report["patients"]["suppressed"] == 200
    assert report["patients"]["suppressed_fraction"] <= 0.05
    released_ids = set(export.rows["pseudonym"])
    assert released_ids == set(export.released["pseudonym"])
    assert not set(sim.patients["patient_id"]) & set(export.rows.columns)  # no raw id column
    assert not export.rows.isin(set(sim.patients["patient_id"])).any().any()  # no raw id anywhere


def test_t_closeness_is_enforced_when_asked(sim: C.ResearchCohort) -> None:
    loose = D.deidentify(sim.patients, sim.windows, secret=SECRET, k=5, l_=2)
    bound = max(loose.report["achieved"]["t"] / 2, 0.001)
    tight = D.deidentify(sim.patients, sim.windows, secret=SECRET, k=5, l_=2, t=bound)
    assert _verified(tight, 5, 2)["t"] <= bound + 1e-9


def test_set_a_fixture_export_by_pycanon() -> None:
    data = C.from_physionet(FIXTURES / "set-a", FIXTURES / "Outcomes-a.txt")
    assert len(data.patients) == 5 and data.outcome_name == "in_hospital_death"
    export = D.deidentify(data.patients, data.windows, secret=SECRET, k=5, l_=2, outcome_name=data.outcome_name)
    _verified(export, 5, 2)
    assert export.rows["in_hospital_death"].isin([0, 1]).all()


def test_pseudonyms_stable_under_one_secret_and_different_under_another() -> None:
    ids = [f"p{i:04d}" for i in range(50)]
    first = [D.pseudonym(SECRET, p) for p in ids]
    assert first == [D.pseudonym(SECRET, p) for p in ids]
    assert len(set(first)) == len(ids)
    other = [D.pseudonym(OTHER, p) for p in ids]
    assert not set(first) & set(other)
    assert all(p not in q for p, q in zip(ids, first, strict=True))


def test_dates_shift_by_one_offset_per_patient_and_intervals_are_kept(sim: C.ResearchCohort) -> None:
    export = D.deidentify(sim.patients, sim.windows, secret=SECRET, k=1, l_=1, max_suppression=0.0)
    assert export.report["generalisation"]["admission_period"] == 0  # k = 1: the shifted day is released
    by_pseudonym = {D.pseudonym(SECRET, p): p for p in sim.patients["patient_id"]}
    patients = sim.patients.set_index("patient_id")
    shifts = set()
    for pseudo, rows in export.released.groupby("pseudonym"):
        pid = by_pseudonym[pseudo]
        shift = D.shift_days(SECRET, pid)
        shifts.add(shift)
        assert abs(shift) <= D.MAX_SHIFT_DAYS
        expected = (patients.loc[pid, "admitted_at"] + pd.Timedelta(days=shift)).strftime("%Y-%m-%d")
        assert rows["admission_period"].iloc[0] == expected
    assert len(shifts) > 50  # offsets differ between patients
    # within a patient every interval is kept: window times are minutes since that patient's admission
    one = sim.windows[sim.windows["patient_id"] == sim.patients["patient_id"].iloc[0]]
    mine = export.rows[export.rows["pseudonym"] == D.pseudonym(SECRET, one["patient_id"].iloc[0])]
    original = ((one["start"] - one["start"].min()) / pd.Timedelta(minutes=1) + 5).astype(int).tolist()
    assert mine["minutes_since_admission"].tolist() == original
    assert D.shift_days(SECRET, "p0001") != D.shift_days(OTHER, "p0001") or D.shift_days(SECRET, "p0002") != \
        D.shift_days(OTHER, "p0002")


def test_ages_over_89_are_always_grouped() -> None:
    ages = pd.Series([17.0, 45.0, 89.0, 90.0, 101.0, float("nan")])
    for level in range(len(D.AGE_BANDS)):
        groups = D.age_group(ages, level).tolist()
        assert groups[3] in ("90+", "*") and groups[4] in ("90+", "*") and groups[5] == "unknown"
    assert D.age_group(ages, 0).tolist()[:3] == ["17", "45", "89"]
    assert D.age_group(ages, 1).tolist()[:3] == ["15-19", "45-49", "85-89"]


def test_no_secret_is_refused() -> None:
    with pytest.raises(D.SecretMissingError, match="WARDTWIN_RESEARCH_SECRET"):
        D.check_secret(None)
    with pytest.raises(D.SecretMissingError, match="32"):
        D.check_secret(b"short")


def test_cli_export_writes_csv_report_and_html(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from lab.cli import main

    source = ["--physionet-records", str(FIXTURES / "set-a"), "--physionet-outcomes", str(FIXTURES / "Outcomes-a.txt")]
    monkeypatch.delenv("WARDTWIN_RESEARCH_SECRET", raising=False)
    assert main(["export", "deidentified", *source, "--out", str(tmp_path / "no")]) == 2
    assert not (tmp_path / "no").exists()  # refused before anything is read or written
    out = tmp_path / "export"
    assert main(["export", "deidentified", *source, "--k", "5", "--l", "2", "--attacks", "0",
                 "--out", str(out), "--demo-secret"]) == 0
    report = json.loads((out / "report.json").read_text())
    rows = pd.read_csv(out / "export.csv")
    assert report["achieved"]["k"] >= 5 and report["achieved"]["l"] >= 2 and report["demo_secret"] is True
    assert len(rows) == report["windows"]["released"]
    assert {*QI, "pseudonym", "minutes_since_admission", "label_6h", "in_hospital_death"} <= set(rows.columns)
    assert set(report["twin_auroc"]) >= {"auroc_trained_on_original", "auroc_trained_on_export", "split"}
    assert (out / "index.html").read_text().count("<img") >= 1


def test_cli_exports_the_configured_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``--store``: the configured SQLite store's windows (no age or sex there), keyed by the deployment secret."""
    import asyncio
    from datetime import UTC, datetime

    from app.domain import Reading
    from app.storage.sqlite import SqliteStore
    from lab.cli import main
    from tests.support.synthetic_readings import trajectory

    end = datetime(2026, 3, 2, 12, tzinfo=UTC)

    async def fill() -> None:
        store = SqliteStore(tmp_path / "data" / "wardtwin.db")
        await store.open()
        try:
            for i, sick in enumerate((True, False, False)):
                items = trajectory(f"bed-{i}", end, sick, i)
                await store.write_readings([Reading(r["patient_id"], r["vital"], datetime.fromisoformat(
                    r["ts"].replace("Z", "+00:00")), float(r["value"])) for r in items])
            await store.materialize_windows(datetime(2026, 3, 1, tzinfo=UTC), end)
        finally:
            await store.close()

    (tmp_path / "data").mkdir()
    asyncio.run(fill())
    monkeypatch.setenv("WARDTWIN_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("WARDTWIN_RESEARCH_SECRET", "k" * 40)
    out = tmp_path / "export"
    assert main(["export", "deidentified", "--store", "--k", "3", "--l", "1", "--attacks", "0",
                 "--out", str(out)]) == 0
    report = json.loads((out / "report.json").read_text())
    assert report["patients"]["input"] == 3 and report["demo_secret"] is False
    assert report["source"]["kind"] == "store" and report["sensitive_column"] == "deteriorated"
    rows = pd.read_csv(out / "export.csv")
    assert set(rows["pseudonym"]) == {D.pseudonym(b"k" * 40, f"bed-{i}") for i in range(3)}
    assert set(rows["age_group"]) == {"unknown"}
