"""The FHIR R4 read API: every resource and Bundle validated with ``fhir.resources`` (R4B models) and, for vital
signs, against the published R4 profiles' fixed values; paging; OperationOutcomes; the probability convention."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

import pytest
from fastapi.testclient import TestClient

from app.interop import fhir
from tests.support.api import SICK, STABLE, T0, Ward, client_as, post_readings, reading, run_cycle
from tests.support.fhir import check_profile, validate

FHIR_JSON = "application/fhir+json"
NEWS2 = "http://snomed.info/sct|1104051000000101"


def get(client: TestClient, path: str, status: int = 200, **params: object) -> dict:
    response = client.get(path, params=params)
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(FHIR_JSON)
    body = response.json()
    validate(body)
    if status >= 400:
        assert body["resourceType"] == "OperationOutcome" and body["issue"][0]["diagnostics"]
    return body


def follow(client: TestClient, url: str) -> dict:
    """A next link, fetched as given (path and query)."""
    parts = urlsplit(url)
    response = client.get(f"{parts.path}?{parts.query}")
    assert response.status_code == 200, response.text
    body = response.json()
    validate(body)
    return body


def every_page(client: TestClient, path: str, **params: object) -> tuple[list[dict], list[dict]]:
    """Every page of a search (following next links): the pages and all their resources."""
    pages = [get(client, path, **params)]
    while next_link := {link["relation"]: link["url"] for link in pages[-1]["link"]}.get("next"):
        pages.append(follow(client, next_link))
    return pages, [e["resource"] for page in pages for e in page.get("entry", [])]


def test_capability_statement_states_the_probability_convention(ward: Ward) -> None:
    statement = get(ward.client, "/fhir/metadata")
    assert statement["resourceType"] == "CapabilityStatement" and statement["fhirVersion"] == "4.0.1"
    assert FHIR_JSON in statement["format"]
    resources = {r["type"]: r for r in statement["rest"][0]["resource"]}
    assert set(resources) == {"Patient", "Observation", "RiskAssessment"}
    assert "between 0 and 1" in resources["RiskAssessment"]["documentation"]
    assert "probabilityDecimal" in statement["description"]


def test_patient_read_and_unknown_patient(ward: Ward) -> None:
    patient = get(ward.client, f"/fhir/Patient/{SICK}")
    assert patient["id"] == SICK and patient["identifier"][0]["value"] == SICK
    outcome = get(ward.client, "/fhir/Patient/nobody-here", status=404)
    assert outcome["issue"][0]["code"] == "not-found"


def test_observation_search_pages_through_everything_once(ward: Ward) -> None:
    pages, resources = every_page(ward.client, "/fhir/Observation", subject=f"Patient/{SICK}", _count=97)
    total = pages[0]["total"]
    assert len(pages) == -(-total // 97) > 1  # ceil: every page full but the last
    assert all(len(p.get("entry", [])) == 97 for p in pages[:-1])
    ids = [r["id"] for r in resources]
    assert len(ids) == len(set(ids)) == total
    times = [r.get("effectiveDateTime") or r["effectivePeriod"]["start"] for r in resources]
    assert times == sorted(times, reverse=True)  # newest first, across pages too
    assert {r["meta"]["profile"][0].rsplit("/", 1)[1] for r in resources if "meta" in r} == {
        "heartrate", "resprate", "oxygensat", "bodytemp", "bp"}


def test_vital_signs_equal_the_windows(ward: Ward) -> None:
    """Heart rate per window (a mean, never carried forward) equals the windows' hr_mean, in /min."""
    windows = ward.client.get(f"/v1/patients/{SICK}/windows", params={
        "since": (T0 - timedelta(hours=3)).isoformat(), "until": T0.isoformat()}).json()
    expected = {datetime.fromisoformat(w["start"]): round(w["hr_mean"], 2) for w in windows if w["hr_mean"] is not None}
    _, resources = every_page(ward.client, "/fhir/Observation", subject=f"Patient/{SICK}",
                              code="http://loinc.org|8867-4", date=[f"ge{(T0 - timedelta(hours=3)).isoformat()}",
                                                                    f"lt{T0.isoformat()}"], _count=1000)
    got = {datetime.fromisoformat(r["effectivePeriod"]["start"]): r["valueQuantity"]["value"] for r in resources}
    assert got == expected and len(got) > 30
    assert {r["valueQuantity"]["code"] for r in resources} == {"/min"}


def test_blood_pressure_panel_has_both_components(ward: Ward) -> None:
    bundle = get(ward.client, "/fhir/Observation", subject=f"Patient/{SICK}", code="http://loinc.org|85354-9",
                 _count=5)
    assert bundle["total"] > 0
    for entry in bundle["entry"]:
        panel = entry["resource"]
        assert panel["code"]["coding"][0]["code"] == "85354-9"
        codes = [c["code"]["coding"][0]["code"] for c in panel["component"]]
        assert codes == ["8480-6", "8462-4"]
        assert all(c.get("valueQuantity", {}).get("code", "mm[Hg]") == "mm[Hg]" for c in panel["component"])


def test_news2_totals_equal_the_scores(ward: Ward) -> None:
    history = ward.client.get(f"/v1/patients/{SICK}/risk/history", params={
        "since": (T0 - timedelta(hours=3)).isoformat(), "until": T0.isoformat()}).json()
    expected = {datetime.fromisoformat(s["window_end"]): s["news2"]["total"] for s in history}
    _, resources = every_page(ward.client, "/fhir/Observation", subject=f"Patient/{SICK}", code=NEWS2, _count=10,
                              date=f"ge{(T0 - timedelta(hours=3)).isoformat()}")
    got = {datetime.fromisoformat(r["effectiveDateTime"]): r["valueInteger"] for r in resources}
    assert got == expected and max(got.values()) >= 5
    for resource in resources:
        assert resource["category"][0]["coding"][0]["code"] == "survey"
        assert sum(c["valueInteger"] for c in resource["component"]) == resource["valueInteger"]


def test_code_tokens_select_kinds(ward: Ward) -> None:
    def kinds(code: str) -> set[str]:
        _, resources = every_page(ward.client, "/fhir/Observation", subject=f"Patient/{SICK}", code=code,
                                  _count=1000)
        return {r["id"].split(".")[0] for r in resources}

    assert kinds("8867-4,9279-1") == {"hr", "rr"}  # a bare code, two of them
    assert kinds("http://loinc.org|59408-5") == {"spo2"}
    assert kinds("http://snomed.info/sct|") == {"news2"}
    assert kinds("http://loinc.org|8480-6") == set()  # a component's code is not the Observation's


def test_date_prefixes(ward: Ward) -> None:
    at = T0 - timedelta(minutes=30)
    around = get(ward.client, "/fhir/Observation", subject=f"Patient/{SICK}", code=NEWS2,
                 date=[f"ge{at.isoformat()}", f"le{at.isoformat()}"])
    assert [e["resource"]["effectiveDateTime"] for e in around["entry"]] == [fhir.instant(at)]
    strictly = get(ward.client, "/fhir/Observation", subject=f"Patient/{SICK}", code=NEWS2,
                   date=[f"gt{at.isoformat()}", f"lt{(at + timedelta(minutes=10)).isoformat()}"])
    assert [e["resource"]["effectiveDateTime"] for e in strictly["entry"]] == [
        fhir.instant(at + timedelta(minutes=5))]
    day = get(ward.client, "/fhir/Observation", subject=f"Patient/{SICK}", code=NEWS2, date=T0.date().isoformat(),
              _count=0)
    assert day["total"] == 36 and not day.get("entry")  # _count=0: the total only; 3 h of window ends that day


@pytest.mark.parametrize(("params", "where"), [
    ({"subject": f"Patient/{SICK}", "date": "tomorrow"}, "query.date"),
    ({"subject": f"Patient/{SICK}", "date": "ge2026-03-02T10:00:00"}, "query.date"),  # no offset
    ({"subject": f"Patient/{SICK}", "date": ["ge2025-01-01", "le2026-03-02"]}, "query.date"),  # > 31 days
    ({"subject": "Practitioner/x"}, "query.subject"),
    ({}, "query.subject"),
    ({"subject": f"Patient/{SICK}", "_count": 5000}, "query._count"),
])
def test_bad_search_parameters_are_operation_outcomes(ward: Ward, params: dict, where: str) -> None:
    outcome = get(ward.client, "/fhir/Observation", status=400, **params)
    assert outcome["issue"][0]["code"] == "invalid"
    assert any(e.startswith(where) for e in outcome["issue"][0]["expression"]), outcome


def test_unknown_subject_is_an_empty_searchset_with_a_warning(ward: Ward) -> None:
    bundle = get(ward.client, "/fhir/RiskAssessment", subject="Patient/nobody")
    assert bundle["total"] == 0
    (outcome,) = bundle["entry"]
    assert outcome["search"]["mode"] == "outcome" and outcome["resource"]["issue"][0]["severity"] == "warning"


def test_risk_assessments_carry_the_twins_scores(ward: Ward) -> None:
    history = ward.client.get(f"/v1/patients/{SICK}/risk/history", params={
        "since": (T0 - timedelta(hours=3)).isoformat(), "until": T0.isoformat()}).json()
    newest = max(history, key=lambda s: s["window_end"])
    bundle = get(ward.client, "/fhir/RiskAssessment", subject=f"Patient/{SICK}", _sort="-date", _count=5)
    assert bundle["total"] == len(history) and len(bundle["entry"]) == 5
    first = bundle["entry"][0]["resource"]
    assert first["occurrenceDateTime"] == fhir.instant(datetime.fromisoformat(newest["window_end"]))
    prediction = first["prediction"][0]
    # The convention: a probability in 0–1, exactly the twin's risk (not a percentage).
    assert prediction["probabilityDecimal"] == newest["risk"] and 0 <= prediction["probabilityDecimal"] <= 1
    period = prediction["whenPeriod"]
    assert datetime.fromisoformat(period["end"]) - datetime.fromisoformat(period["start"]) == timedelta(hours=6)
    assert first["method"]["coding"][0]["code"] == newest["model_version"]
    assert first["status"] == "final"
    for sentence in newest["explanation"]:
        assert sentence in prediction["rationale"]
    times = [e["resource"]["occurrenceDateTime"] for e in bundle["entry"]]
    assert times == sorted(times, reverse=True)
    ascending = get(ward.client, "/fhir/RiskAssessment", subject=f"Patient/{SICK}", _sort="date", _count=2)
    assert ascending["entry"][0]["resource"]["occurrenceDateTime"] < times[-1]


def test_every_risk_probability_is_in_zero_one(ward: Ward) -> None:
    _, resources = every_page(ward.client, "/fhir/RiskAssessment", subject=f"Patient/{STABLE}", _count=7)
    assert resources
    assert all(0 <= r["prediction"][0]["probabilityDecimal"] <= 1 for r in resources)


def test_risk_read_and_its_basis_resolve(ward: Ward) -> None:
    bundle = get(ward.client, "/fhir/RiskAssessment", subject=f"Patient/{SICK}", _count=1)
    listed = bundle["entry"][0]["resource"]
    read = get(ward.client, f"/fhir/RiskAssessment/{listed['id']}")
    assert read == listed
    kinds = set()
    for ref in read["basis"]:
        observation = get(ward.client, f"/fhir/{ref['reference']}")
        assert observation["subject"] == {"reference": f"Patient/{SICK}"}
        kinds.add(observation["id"].split(".")[0])
    assert "news2" in kinds and "hr" in kinds
    get(ward.client, "/fhir/RiskAssessment/risk.1.nobody", status=404)
    get(ward.client, f"/fhir/Observation/hr.{int(T0.timestamp()) // 60 + 7}.{SICK}", status=404)  # not aligned


def test_roles_and_credentials(ward: Ward) -> None:
    for role in ("ehr", "clinician"):
        get(client_as(ward.client, role), "/fhir/metadata")
    forbidden = get(client_as(ward.client, "device"), f"/fhir/Patient/{SICK}", status=403)
    assert forbidden["issue"][0]["code"] == "forbidden"
    response = client_as(ward.client, None).get("/fhir/Observation", params={"subject": f"Patient/{SICK}"})
    assert response.status_code == 401 and response.headers["www-authenticate"] == "Bearer"
    validate(response.json())


def test_unsupported_resource_is_an_operation_outcome(ward: Ward) -> None:
    get(ward.client, "/fhir/Encounter/1", status=404)


def test_long_patient_ids_get_hashed_resource_ids(client: TestClient) -> None:
    patient = "a_" * 32  # 64 characters, underscores → dots in FHIR ids
    post_readings(client, [reading(patient, "hr", 80 + i % 3, T0 - timedelta(minutes=i)) for i in range(1, 30)]
                  + [reading(patient, "sbp", 120, T0 - timedelta(minutes=2))])
    run_cycle(client, T0)
    assert get(client, f"/fhir/Patient/{'a.' * 32}")["identifier"][0]["value"] == patient
    bundle = get(client, "/fhir/Observation", subject=f"Patient/{'a.' * 32}", _count=100)
    assert bundle["total"] > 0
    for entry in bundle["entry"]:
        resource = entry["resource"]
        assert len(resource["id"]) <= 64 and ".h" in resource["id"]
        assert get(client, f"/fhir/Observation/{resource['id']}") == resource
    risk = get(client, "/fhir/RiskAssessment", subject=f"Patient/{'a.' * 32}")["entry"][0]["resource"]
    assert get(client, f"/fhir/RiskAssessment/{risk['id']}") == risk


def test_next_link_pins_the_defaulted_range(ward: Ward) -> None:
    bundle = get(ward.client, "/fhir/RiskAssessment", subject=f"Patient/{SICK}", _count=3)
    link = {lnk["relation"]: lnk["url"] for lnk in bundle["link"]}["next"]
    assert "_offset=3" in link and "date=ge" in link and "date=le" in link
    assert datetime.fromisoformat(follow(ward.client, link)["entry"][0]["resource"]["occurrenceDateTime"]) < \
        datetime.fromisoformat(bundle["entry"][-1]["resource"]["occurrenceDateTime"])


def test_ids_round_trip() -> None:
    at = datetime(2026, 3, 2, 12, 5, tzinfo=UTC)
    for patient in ("bed-1", "x_y", "b" * 64):
        rid = fhir.resource_id("news2", patient, at)
        parsed = fhir.parse_resource_id(rid, fhir.OBSERVATION_KINDS)
        assert parsed is not None and parsed.at == at and len(rid) <= 64
        assert fhir.resolve_subject(parsed.subject, ["other", patient]) == patient


def test_the_profile_check_catches_a_wrong_unit_or_code(ward: Ward) -> None:
    """The checker itself can fail: a heart rate in "bpm" (not UCUM /min) or SpO2 without the profile's 2708-6."""
    by_kind = {r["id"].split(".")[0]: r for r in every_page(
        ward.client, "/fhir/Observation", subject=f"Patient/{SICK}", _count=20)[1]}
    heart_rate = {**by_kind["hr"], "valueQuantity": {**by_kind["hr"]["valueQuantity"], "code": "bpm"}}
    with pytest.raises(AssertionError):
        check_profile(heart_rate, "heartrate")
    spo2 = {**by_kind["spo2"], "code": {"coding": by_kind["spo2"]["code"]["coding"][1:]}}
    with pytest.raises(AssertionError):
        check_profile(spo2, "oxygensat")
    panel = {**by_kind["bp"], "component": by_kind["bp"]["component"][:1]}
    with pytest.raises(AssertionError):
        check_profile(panel, "bp")


def test_fhir_reads_are_audited_with_their_patient(client: TestClient) -> None:
    post_readings(client, [reading("bed-9", "hr", 80, T0 - timedelta(minutes=2))])
    ehr, admin = client_as(client, "ehr", "records"), client_as(client, "admin", "ops")
    assert ehr.get("/fhir/Patient/bed-9").status_code == 200
    assert ehr.get("/fhir/Observation", params={"subject": "Patient/bed-9"}).status_code == 200
    trail = [(e["action"], e["target"], e["status"]) for e in admin.get("/v1/audit").json()
             if e["key_name"] == "records"]
    assert trail == [("GET /fhir/Patient/{patient_fhir_id}", "patient:bed-9", 200),
                     ("GET /fhir/Observation", "patient:bed-9", 200)]


@pytest.mark.parametrize(("raw", "prefix", "start", "end"), [
    ("2026", "eq", datetime(2026, 1, 1, tzinfo=UTC), datetime(2027, 1, 1, tzinfo=UTC)),
    ("ge2026-12", "ge", datetime(2026, 12, 1, tzinfo=UTC), datetime(2027, 1, 1, tzinfo=UTC)),
    ("lt2026-02-28", "lt", datetime(2026, 2, 28, tzinfo=UTC), datetime(2026, 3, 1, tzinfo=UTC)),
    ("le2026-03-02T12:00+01:00", "le", datetime(2026, 3, 2, 11, 0, tzinfo=UTC),
     datetime(2026, 3, 2, 11, 1, tzinfo=UTC)),
    ("gt2026-03-02T12:00:05Z", "gt", datetime(2026, 3, 2, 12, 0, 5, tzinfo=UTC),
     datetime(2026, 3, 2, 12, 0, 6, tzinfo=UTC)),
])
def test_date_values_cover_their_precision(raw: str, prefix: str, start: datetime, end: datetime) -> None:
    assert fhir.date_range(raw) == (prefix, start, end)


@pytest.mark.parametrize("raw", ["2026-13", "2026-02-30", "ne2026", "2026-03-02T12:00", "ge2026,le2027"])
def test_date_values_refused(raw: str) -> None:
    with pytest.raises(ValueError, match="date"):
        fhir.date_bounds([raw])
