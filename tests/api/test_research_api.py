"""Admin-only research routes (issue 25): a de-identified export of the store's patients, DP aggregates spent from
the store's budget (409 naming what remains once spent), 401/403 for everyone else, 422 naming the bad field."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from app.security.keys import ROLES
from tests.support.api import T0, client_as, post_readings, run_cycle, serve

SECRET = "r" * 40


@pytest.fixture
def research(tmp_path: Path, sick_readings: list[dict], stable_readings: list[dict]) -> Iterator[TestClient]:
    with serve(tmp_path, research_secret=SECRET, research_epsilon_budget=1.0) as client:
        post_readings(client, stable_readings + sick_readings)
        run_cycle(client, T0)  # the store's windows are materialised by the cycle
        yield client


@pytest.mark.parametrize(("method", "path", "body"), [
    ("post", "/v1/research/exports", {"k": 2, "l": 1}),
    ("post", "/v1/research/aggregates", {"statistic": "admissions", "epsilon": 0.1}),
    ("get", "/v1/research/budget", None),
    ("get", "/v1/research/exports/0123456789abcdef/export.csv", None),
])
def test_only_admins(research: TestClient, method: str, path: str, body: dict | None) -> None:
    kwargs = {"json": body} if body is not None else {}
    assert getattr(client_as(research, None), method)(path, **kwargs).status_code == 401
    for role in (r for r in ROLES if r != "admin"):
        answer = getattr(client_as(research, role), method)(path, **kwargs)
        assert answer.status_code == 403, (role, answer.text)
        assert answer.headers["content-type"].startswith("application/problem+json")
    admin = client_as(research, "admin")
    assert getattr(admin, method)(path, **kwargs).status_code in (200, 201, 404)


def test_export_of_the_store_with_its_csv(research: TestClient) -> None:
    admin = client_as(research, "admin")
    answer = admin.post("/v1/research/exports", json={"k": 2, "l": 1})
    assert answer.status_code == 201, answer.text
    body = answer.json()
    report = body["report"]
    assert report["quasi_identifiers"] == ["age_group", "sex", "ward", "admission_period"]
    assert report["sensitive_column"] == "deteriorated"
    assert report["patients"]["input"] == 2 and report["demo_secret"] is False
    released = report["patients"]["released"]
    assert released in (0, 2)  # one class of both patients, or nothing
    table = admin.get(body["csv"])
    assert table.status_code == 200 and table.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(table.text)))
    assert len(rows) == body["rows"]
    assert all(r["pseudonym"].startswith("r-") for r in rows)
    assert "bed" not in table.text  # the store's patient ids never leave
    assert admin.get("/v1/research/exports/ffffffffffffffff/export.csv").status_code == 404


def test_export_refused_without_a_secret(tmp_path: Path) -> None:
    with serve(tmp_path) as client:
        answer = client_as(client, "admin").post("/v1/research/exports", json={})
    assert answer.status_code == 409
    assert answer.json()["code"] == "research_secret_missing"
    assert "WARDTWIN_RESEARCH_SECRET" in answer.json()["detail"]


@pytest.mark.parametrize(("body", "field"), [
    ({"k": 0}, "k"), ({"l": 3}, "l"), ({"t": 2}, "t"), ({"max_suppression": -1}, "max_suppression"),
    ({"k": "five"}, "k"), ({"colour": "red"}, "colour"),
])
def test_bad_export_parameters_are_422_naming_the_field(research: TestClient, body: dict, field: str) -> None:
    answer = client_as(research, "admin").post("/v1/research/exports", json=body)
    assert answer.status_code == 422
    assert answer.json()["errors"][0]["loc"][-1] == field


@pytest.mark.parametrize(("body", "field"), [
    ({"statistic": "everything", "epsilon": 1}, "statistic"), ({"statistic": "admissions", "epsilon": 0}, "epsilon"),
    # Schemathesis found 5e-324 (a scale of sensitivity / ε overflowing) answered with a 500: refused as too small
    ({"statistic": "vitals_by_hour", "epsilon": 5e-324}, "epsilon"),
    ({"statistic": "admissions", "epsilon": 0.0009}, "epsilon"),
    ({"statistic": "admissions"}, "epsilon"), ({"statistic": "vitals_by_hour", "epsilon": 1, "vital": "x"}, "vital"),
    ({"statistic": "vitals_by_hour", "epsilon": 1, "max_hours": 25}, "max_hours"),
])
def test_bad_aggregate_parameters_are_422_naming_the_field(research: TestClient, body: dict, field: str) -> None:
    answer = client_as(research, "admin").post("/v1/research/aggregates", json=body)
    assert answer.status_code == 422
    assert answer.json()["errors"][0]["loc"][-1] == field


def test_aggregates_spend_the_budget_until_refused(research: TestClient) -> None:
    admin = client_as(research, "admin", "research office")
    first = admin.post("/v1/research/aggregates", json={"statistic": "admissions", "epsilon": 0.6})
    assert first.status_code == 200, first.text
    body = first.json()
    assert body["keys"] == ["store"] and len(body["values"]) == 1
    assert body["mechanism"]["privacy_unit"].startswith("one patient")
    assert body["budget"]["remaining_epsilon"] == pytest.approx(0.4)
    hourly = admin.post("/v1/research/aggregates", json={"statistic": "vitals_by_hour", "epsilon": 0.3})
    assert hourly.status_code == 200 and len(hourly.json()["values"]) == 24
    refused = admin.post("/v1/research/aggregates", json={"statistic": "deterioration_rate", "epsilon": 0.2})
    assert refused.status_code == 409
    assert refused.headers["content-type"].startswith("application/problem+json")
    problem = refused.json()
    assert problem["code"] == "privacy_budget_exhausted"
    assert problem["remaining_epsilon"] == pytest.approx(0.1) and problem["requested_epsilon"] == 0.2
    assert "remaining epsilon=0.1" in problem["detail"]
    ledger = admin.get("/v1/research/budget").json()
    assert ledger["queries"] == 2 and ledger["spent_epsilon"] == pytest.approx(0.9)
    assert [s["actor"] for s in ledger["spends"]] == ["research office", "research office"]
    assert admin.post("/v1/research/aggregates",
                      json={"statistic": "deterioration_rate", "epsilon": 0.1}).status_code == 200
