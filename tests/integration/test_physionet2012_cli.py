"""``wardtwin import physionet2012`` into a real SQLite store, and ``wardtwin evaluate physionet2012`` files, on the
five committed real stays (tests/fixtures/physionet2012)."""

from __future__ import annotations

import asyncio
import csv
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from app.domain import Reading
from app.ingest import validate_batch
from app.storage.sqlite import SqliteStore
from lab import physionet2012 as P
from lab.cli import main
from lab.physionet_cmd import VALIDATION_NOW
from models import windows as W
from models.schema import READING_COLUMNS
from models.scoring import score_ward
from models.twin import Twin

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "physionet2012"
RECORDS = FIXTURES / "set-a"
OUTCOMES = FIXTURES / "Outcomes-a.txt"
STAY_IDS = [132539, 132543, 132551, 132588, 132698]


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The configured store: the embedded SQLite store under a fresh WARDTWIN_DATA_DIR."""
    monkeypatch.setenv("WARDTWIN_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("WARDTWIN_INFLUX_URL", raising=False)
    monkeypatch.chdir(tmp_path)  # no stray .env
    return tmp_path / "data"


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("physionet-eval")
    rc = main(["evaluate", "physionet2012", "--records", str(RECORDS), "--outcomes", str(OUTCOMES), "--out",
               str(out), "--bootstrap", "50"])
    assert rc == 0
    return out


def test_import_writes_accepted_readings_into_sqlite_and_counts_rejections(
        data_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc = main(["import", "physionet2012", "--records", str(RECORDS), "--outcomes", str(OUTCOMES)])
    assert rc == 0
    text = capsys.readouterr().out
    assert "imported into the sqlite store" in text
    assert "stays 5: readings mapped 1072, accepted 1070, rejected 2" in text
    assert "rejected       1  sbp (NISysABP) value: implausible" in text
    assert "systolic blood pressure 0 mmHg is outside 40–300" in text
    assert "rejected       1  dbp (NIDiasABP) value: implausible" in text
    assert "5 of the imported stays have one (3 in-hospital deaths)" in text

    ids, stored, windows = asyncio.run(read_store(data_dir / "wardtwin.db"))
    assert ids == [f"pn2012-{r}" for r in STAY_IDS]
    expected = pd.concat([accepted(s) for s in P.iter_stays(RECORDS)], ignore_index=True)
    expected = expected.drop_duplicates(["patient_id", "vital", "ts"], keep="last")
    assert len(stored) == len(expected)  # every accepted reading, once per (patient, vital, ts)
    assert not ((stored["vital"] == "sbp") & (stored["value"] == 0)).any()
    assert len(windows) > 0 and windows["start"].min() >= pd.Timestamp(P.ADMISSION_AT)


async def read_store(path: Path) -> tuple[list[str], pd.DataFrame, pd.DataFrame]:
    store = SqliteStore(path)
    await store.open()
    try:
        ids = await store.patient_ids()
        return (ids, await store.readings(ids, P.ADMISSION_AT, VALIDATION_NOW),
                await store.windows(ids, P.ADMISSION_AT, VALIDATION_NOW))
    finally:
        await store.close()


def test_import_is_idempotent(data_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = ["import", "physionet2012", "--records", str(RECORDS), "--outcomes", str(OUTCOMES), "--limit", "2"]
    assert main(args) == 0
    assert main(args) == 0
    assert "stays 2:" in capsys.readouterr().out


def accepted(stay: P.Stay) -> pd.DataFrame:
    result = validate_batch(stay.items(), VALIDATION_NOW, timedelta(minutes=5))
    return pd.DataFrame(result.readings, columns=list(Reading._fields)).loc[:, list(READING_COLUMNS)]


def test_evaluate_writes_scores_with_exactly_the_stated_columns(evaluated: Path) -> None:
    with (evaluated / "scores.csv").open(encoding="utf-8", newline="") as handle:
        rows = list(csv.reader(handle))
    assert rows[0] == ["record_id", "hour", "risk", "news2_total"]
    body = rows[1:]
    assert len(body) == 48 * len(STAY_IDS)
    for rid in STAY_IDS:
        hours = [int(r[1]) for r in body if r[0] == str(rid)]
        assert hours == list(range(1, 49))
    risks = [float(r[2]) for r in body if r[2]]
    news = [int(r[3]) for r in body if r[3]]
    assert risks and all(0 < r < 1 for r in risks)
    assert news and all(0 <= n <= 20 for n in news)


def test_evaluate_report_has_both_tasks_with_intervals(evaluated: Path) -> None:
    report = json.loads((evaluated / "report.json").read_text(encoding="utf-8"))
    events = report["events_6h"]
    assert set(events["discrimination"]) == {"twin", "news2"}
    assert len(events["discrimination"]["twin"]["auroc_ci"]) == 2
    assert events["eligible_hours_same"] > 0 and events["events"] > 0
    threshold = Twin.load().alert_threshold  # the artifact's threshold, as the service alerts on
    assert set(events["sensitivity_30min_lead"]) == {"NEWS2 >= 5", f"twin >= {threshold:g}"}
    death = report["death"]
    assert set(death["discrimination"]) == {"twin_peak", "twin_last", "news2_peak", "news2_last", "saps1", "sofa"}
    assert death["stays"] == 4 and death["deaths"] == 2  # 132588 has no SAPS-I
    assert report["data"]["readings_rejected"] == 2
    assert {"met", "target"} <= set(events["goal"]) and {"met", "target"} <= set(death["goal"])
    for name in ("index.html", "roc_events.png", "roc_death.png", "risk_by_outcome.png", "calibration_decision.png"):
        assert (evaluated / name).stat().st_size > 0


def test_evaluate_risk_is_what_the_service_cycle_scores(evaluated: Path) -> None:
    """The same readings through the service's scoring reference give the same risk at every hour (or no score)."""
    scores = pd.read_csv(evaluated / "scores.csv")
    twin = Twin.load()
    for stay in list(P.iter_stays(RECORDS))[:2]:
        stored = W.aggregate(accepted(stay))
        mine = scores[scores["record_id"] == stay.record_id].set_index("hour")["risk"]
        for hour in range(1, 49):
            end = P.ADMISSION_AT + timedelta(hours=hour)
            served = score_ward(stored[stored["start"] < pd.Timestamp(end)], end, twin,
                                scored_at=datetime(2030, 1, 1, tzinfo=UTC), stale_after=timedelta(hours=1))
            if served:
                assert mine[hour] == pytest.approx(served[0].risk, rel=1e-5, abs=1e-9)
            else:
                assert pd.isna(mine[hour])


def test_evaluate_cv_variant_writes_its_numbers_beside_the_shipped_twins(tmp_path: Path) -> None:
    plain = tmp_path / "plain"
    assert main(["evaluate", "physionet2012", "--records", str(RECORDS), "--outcomes", str(OUTCOMES), "--out",
                 str(plain), "--bootstrap", "20"]) == 0
    out = tmp_path / "cv"
    assert main(["evaluate", "physionet2012", "--records", str(RECORDS), "--outcomes", str(OUTCOMES), "--out",
                 str(out), "--bootstrap", "20", "--cv-variant", "--cv-folds", "2"]) == 0
    cv = json.loads((out / "cv_variant.json").read_text(encoding="utf-8"))
    assert cv["design"]["folds"] == 2 and "not tuned" in cv["design"]["regularisation"]
    assert {"met", "target"} <= set(cv["events_6h"]["goal"]) and {"met", "target"} <= set(cv["death"]["goal"])
    report = json.loads((out / "report.json").read_text(encoding="utf-8"))
    assert report["variants"]["twin-cv-set-a"]["not_shipped"] is True
    assert "patient-level cross-validation, not shipped" in (out / "index.html").read_text(encoding="utf-8")
    # the shipped twin's numbers and scores are unchanged by the flag
    assert (out / "scores.csv").read_bytes() == (plain / "scores.csv").read_bytes()
    plain_report = json.loads((plain / "report.json").read_text(encoding="utf-8"))
    assert {k: v for k, v in report.items() if k != "variants"} == plain_report
    assert not (plain / "cv_variant.json").exists()


def _twin_fitted_on_the_fixtures(tmp_path: Path) -> Path:
    """The shipped artifact, its cohort saying it was fitted on these very records (what wardtwin train
    --physionet-records records)."""
    from lab.physionet2012 import records_sha256

    artifact = dict(Twin.load().artifact)
    artifact["cohort"] = {**artifact["cohort"], "real_data": {
        "records_sha256": records_sha256(RECORDS), "limit": None, "stays": len(STAY_IDS)}}
    path = tmp_path / "twin.json"
    path.write_text(json.dumps(artifact), encoding="utf-8")
    return path


def test_a_twin_fitted_on_the_records_is_never_judged_in_sample(tmp_path: Path,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    twin = _twin_fitted_on_the_fixtures(tmp_path)
    args = ["evaluate", "physionet2012", "--records", str(RECORDS), "--outcomes", str(OUTCOMES), "--artifact",
            str(twin), "--bootstrap", "20", "--out", str(tmp_path / "out")]
    rc = main([*args, "--out-of-fold", str(tmp_path / "missing.csv.gz")])
    assert rc == 2
    assert "was fitted on set-a" in capsys.readouterr().out
    assert not (tmp_path / "out" / "scores.csv").exists()

    # with out-of-fold logits, the risk is expit(a · logit + c) where the service would score, else empty
    logit = 0.5
    rows = [(rid, hour, logit) for rid in STAY_IDS for hour in range(1, 49)]
    pd.DataFrame(rows, columns=["record_id", "hour", "logit"]).to_csv(tmp_path / "oof.csv.gz", index=False)
    assert main([*args, "--out-of-fold", str(tmp_path / "oof.csv.gz")]) == 0
    cal = json.loads(twin.read_text(encoding="utf-8"))["calibration"]
    expected = f"{1 / (1 + np.exp(-(cal['a'] * logit + cal['c']))):.6g}"
    scores = pd.read_csv(tmp_path / "out" / "scores.csv", dtype=str, keep_default_na=False)
    assert set(scores.loc[scores["risk"] != "", "risk"]) == {expected}
    report = json.loads((tmp_path / "out" / "report.json").read_text(encoding="utf-8"))
    assert report["data"]["risk"].startswith("out of fold")
    assert "out of fold" in report["scope"]


def test_limit_does_not_skip_the_in_sample_guard(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Issue 20: ``--limit`` used to skip the guard, judging a twin fitted on these stays in sample."""
    twin = _twin_fitted_on_the_fixtures(tmp_path)
    out = tmp_path / "out"
    rc = main(["evaluate", "physionet2012", "--records", str(RECORDS), "--outcomes", str(OUTCOMES), "--artifact",
               str(twin), "--bootstrap", "20", "--limit", "2", "--out", str(out), "--out-of-fold",
               str(tmp_path / "missing.csv.gz")])
    assert rc == 2
    assert "was fitted on set-a" in capsys.readouterr().out
    assert not (out / "scores.csv").exists()


def test_a_twin_fitted_on_the_first_stays_of_the_records_is_guarded_too(tmp_path: Path) -> None:
    from lab.physionet_cmd import _fitted_on_these

    artifact = json.loads(_twin_fitted_on_the_fixtures(tmp_path).read_text(encoding="utf-8"))
    artifact["cohort"]["real_data"]["limit"] = 3
    assert "its first 3 stays" in (_fitted_on_these(artifact, RECORDS) or "")
    artifact["cohort"]["real_data"]["records_sha256"] = "0" * 64  # other records: not in sample
    assert _fitted_on_these(artifact, RECORDS) is None


def test_report_names_the_records_given_and_the_twins_training_data(tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert main(["evaluate", "physionet2012", "--records", str(RECORDS), "--outcomes", str(OUTCOMES), "--limit", "3",
                 "--bootstrap", "20", "--out", str(out)]) == 0
    report = json.loads((out / "report.json").read_text(encoding="utf-8"))
    cohort = Twin.load().artifact["cohort"]
    assert report["scope"].startswith(f"PhysioNet/CinC Challenge 2012 records {RECORDS.name}, the first 3 stays, "
                                      "3 real ICU stays")
    assert f"{cohort['n_patients']} simulated patients" in report["scope"]
    real = cohort.get("real_data")
    if real:  # the shipped twin's real training records are named, not "the simulator only"
        assert f"{real['stays']} stays of {real['records']}" in report["scope"]
        assert "simulator only" not in report["scope"]
