"""Issue 21, finding 11: the request's ``Host`` was reflected in what the service answered: trailing-slash redirects
(``Location: http://evil.example/v1/patients``), history paging's ``Link`` header, and the absolute links of FHIR
bundles and CDS Hooks cards. Now no redirect is made, paging links are relative, and absolute links come from
``Settings.public_base_url`` when it is configured."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.api import SICK, T0, WINDOW_ENDS, post_readings, run_cycle, serve

EVIL = {"Host": "evil.example"}
PUBLIC = "https://wardtwin.hospital.example"


@pytest.mark.parametrize("path", ["/v1/patients/", "/v1/alerts/", "/v1/keys/", "/v1/"])
def test_no_redirect_reflects_the_host(client, path: str) -> None:
    response = client.get(path, headers=EVIL, follow_redirects=False)
    assert "evil.example" not in response.headers.get("location", "")  # today's main: 307 to http://evil.example/...
    assert response.status_code == 404, response.text


@pytest.fixture
def scored(tmp_path: Path, sick_readings: list[dict]):
    with serve(tmp_path, public_base_url=PUBLIC) as client:
        post_readings(client, sick_readings)
        for end in WINDOW_ENDS[-4:]:
            run_cycle(client, end)
        yield client


def test_paging_links_are_relative(scored) -> None:
    response = scored.get(f"/v1/patients/{SICK}/risk/history", headers=EVIL,
                          params={"since": (T0 - 3 * (WINDOW_ENDS[1] - WINDOW_ENDS[0])).isoformat(),
                                  "until": T0.isoformat(), "limit": 1})
    assert response.status_code == 200, response.text
    link = response.headers["link"]
    assert link.startswith(f"</v1/patients/{SICK}/risk/history?") and "evil" not in link, link


def test_fhir_and_cds_hooks_links_use_the_configured_base(scored) -> None:
    bundle = scored.get("/fhir/RiskAssessment", headers=EVIL, params={"subject": f"Patient/{SICK}", "_count": 1})
    assert bundle.status_code == 200, bundle.text
    links = {link["relation"]: link["url"] for link in bundle.json()["link"]}
    assert links["self"].startswith(f"{PUBLIC}/fhir/RiskAssessment?") and links["next"].startswith(PUBLIC), links
    assert all(e["fullUrl"].startswith(f"{PUBLIC}/fhir/") for e in bundle.json()["entry"])
    statement = scored.get("/fhir/metadata", headers=EVIL).json()
    assert "evil" not in str(statement)
    cards = scored.post("/cds-services/wardtwin-deterioration", headers=EVIL, json={
        "hook": "patient-view", "hookInstance": "d1577c69-dfbe-44ad-ba6d-3e05e953b2ea",
        "context": {"userId": "Practitioner/example", "patientId": SICK}}).json()["cards"]
    assert cards and all(link["url"] == f"{PUBLIC}/patients/{SICK}" for c in cards for link in c["links"])
