"""DP aggregates (issue 25): the ledger refuses a query past its budget (and persists across restarts), one patient's
contribution is bounded as stated, and the released numbers are noised around the bounded truth."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from app.research import dp as P
from app.research.ledger import BudgetExhaustedError, PrivacyLedger

AT = datetime(2026, 3, 2, 12, tzinfo=UTC)


def _data(n: int = 60, seed: int = 3) -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    patients = pd.DataFrame({"patient_id": [f"p{i}" for i in range(n)],
                             "ward": np.where(np.arange(n) % 3 == 0, "A", "B"),
                             "outcome": (rng.random(n) < 0.3).astype(int)})
    rows = []
    for pid in patients["patient_id"]:
        start = pd.Timestamp("2026-01-05T00:00Z") + pd.Timedelta(minutes=5 * int(rng.integers(0, 288)))
        for j in range(int(rng.integers(12, 120))):
            rows.append({"patient_id": pid, "start": start + pd.Timedelta(minutes=5 * j),
                         "hr_mean": float(rng.normal(85, 25))})
    return patients, pd.DataFrame(rows)


def test_ledger_refuses_past_budget_and_names_what_remains(tmp_path: Path) -> None:
    ledger = PrivacyLedger(tmp_path / "privacy.db")
    after = ledger.spend("ds", 0.4, 0.0, query="q1", actor="t", at=AT, budget=(1.0, 0.0))
    assert after.remaining_epsilon == pytest.approx(0.6)
    ledger.spend("ds", 0.5, 0.0, query="q2", actor="t", at=AT, budget=(1.0, 0.0))
    with pytest.raises(BudgetExhaustedError) as refused:
        ledger.spend("ds", 0.2, 0.0, query="q3", actor="t", at=AT, budget=(1.0, 0.0))
    assert refused.value.budget.remaining_epsilon == pytest.approx(0.1)
    assert "remaining epsilon=0.1" in str(refused.value)
    # the refusal recorded nothing; what fits still goes through; a restart keeps the spends; a later, larger
    # configured budget does not raise an existing data set's budget
    assert len(ledger.spends("ds")) == 2
    reopened = PrivacyLedger(tmp_path / "privacy.db")
    assert reopened.spend("ds", 0.1, 0.0, query="q4", actor="t", at=AT, budget=(5.0, 0.0)).remaining_epsilon \
        == pytest.approx(0.0)
    with pytest.raises(BudgetExhaustedError):
        reopened.spend("ds", 1e-6, 0.0, query="q5", actor="t", at=AT, budget=(5.0, 0.0))
    # each data set has its own budget
    assert reopened.spend("other", 1.0, 0.0, query="q", actor="t", at=AT, budget=(1.0, 0.0)).queries == 1


def test_delta_is_budgeted_too(tmp_path: Path) -> None:
    ledger = PrivacyLedger(tmp_path / "privacy.db")
    with pytest.raises(BudgetExhaustedError, match="delta"):
        ledger.spend("ds", 0.1, 1e-5, query="q", actor="t", at=AT, budget=(1.0, 1e-6))


@pytest.mark.parametrize("statistic", P.STATISTICS)
def test_one_patient_moves_the_bounded_aggregate_by_at_most_its_sensitivity(statistic: str) -> None:
    patients, windows = _data()
    q = P.Query(statistic, 1.0, max_hours=6).check()
    full = P.contributions(patients, windows, q)
    gone = patients["patient_id"].iloc[7]
    less = P.contributions(patients[patients["patient_id"] != gone], windows[windows["patient_id"] != gone], q)
    if statistic == "vitals_by_hour":
        assert np.abs(full["counts"] - less["counts"]).sum() <= 6
        assert np.abs(full["sums"] - less["sums"]).sum() <= 6 * full["half_range"] + 1e-9
    else:
        moved = np.abs(full["patients"] - less["patients"]).sum()
        moved += np.abs(full["outcome"] - less["outcome"]).sum() if statistic == "deterioration_rate" else 0
        assert moved <= P.describe(q)["sensitivity_l1"]


def test_releases_are_noisy_and_centred_on_the_bounded_truth() -> None:
    patients, windows = _data(300)
    q = P.Query("admissions", 1.0).check()
    c = P.contributions(patients, windows, q)
    truth = np.asarray(P.true_values(c, q))
    draws = np.asarray([P.noisy_values(c, q) for _ in range(200)])
    assert (draws != truth).any()  # noise is added
    assert np.abs(draws.mean(axis=0) - truth).max() < 0.5  # scale-1 discrete Laplace: 200 draws average within ~0.1
    assert np.abs(draws - truth).mean() == pytest.approx(1.0, abs=0.3)  # E|Lap(1)| ≈ 1 (discrete: slightly less)
    released = P.release(patients, windows, P.Query("vitals_by_hour", 2.0))
    assert released["keys"] == list(range(24)) and len(released["values"]) == 24
    assert "values" in released and "true" not in str(released.keys())


@pytest.mark.parametrize(("field", "query"), [
    ("statistic", P.Query("everything", 1.0)), ("epsilon", P.Query("admissions", 0.0)),
    ("epsilon", P.Query("admissions", float("nan"))), ("vital", P.Query("vitals_by_hour", 1.0, vital="x")),
    ("max_hours", P.Query("vitals_by_hour", 1.0, max_hours=0)),
])
def test_bad_queries_name_the_field(field: str, query: P.Query) -> None:
    with pytest.raises(P.InvalidQueryError) as bad:
        query.check()
    assert bad.value.field == field


def test_cli_spends_the_budget_and_refuses_past_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    from lab.cli import main

    monkeypatch.delenv("WARDTWIN_RESEARCH_EPSILON_BUDGET", raising=False)
    fixtures = Path(__file__).resolve().parents[1] / "fixtures" / "physionet2012"
    source = ["--physionet-records", str(fixtures / "set-a"), "--physionet-outcomes", str(fixtures / "Outcomes-a.txt"),
              "--data-dir", str(tmp_path)]
    assert main(["export", "aggregates", *source, "--statistic", "admissions", "--epsilon", "2"]) == 0
    assert '"remaining_epsilon": 1.0' in capsys.readouterr().out  # the default budget is 3
    assert main(["export", "aggregates", *source, "--statistic", "deterioration_rate", "--epsilon", "2"]) == 3
    assert "remaining epsilon=1" in capsys.readouterr().out
    assert main(["export", "aggregates", *source, "--statistic", "vitals_by_hour", "--epsilon", "1"]) == 0
