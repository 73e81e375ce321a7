"""Schemathesis over the interoperability operations alone (FHIR, CDS Hooks, POST /v1/hl7), every check it has, as
each role, against a ward with one sick patient scored: no server error, every status, content type and body as
documented (OperationOutcomes included). ``test_schemathesis.py`` runs the whole document the same way."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import CHECKS, load_all_checks
from schemathesis.python import asgi
from schemathesis.specs.openapi.checks import positive_data_acceptance

from app.clock import FixedClock
from app.main import create_app
from app.settings import Settings
from tests.support.api import NOW, SICK, T0, bearer
from tests.support.synthetic_readings import trajectory

ROLES = ("device", "clinician", "ehr", "admin")
PREFIXES = ("/fhir", "/cds-services", "/v1/hl7")
EXAMPLES = 25
load_all_checks()
#: A FHIR search's date range may span 31 days (a 400 beyond: tests/api/test_fhir.py), a bound JSON Schema cannot
#: state; an ER7 body is a grammar (its AR/AE answers: tests/api/test_hl7.py). Every other check applies to them.
NOT_ALL_VALID_ACCEPTED = {("GET", "/fhir/Observation"), ("GET", "/fhir/RiskAssessment"), ("POST", "/v1/hl7")}


@pytest.fixture(scope="module")
def schema(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[schemathesis.schemas.BaseSchema, dict]]:
    app = create_app(Settings(data_dir=tmp_path_factory.mktemp("interop-schemathesis"), rate_limit_burst=1_000_000),
                     clock=FixedClock(NOW), cycle_interval_s=None)
    loaded = schemathesis.openapi.from_asgi("/openapi.json", app)
    tokens = {role: app.state.access.keys.create(f"schemathesis {role}", role, NOW)[1] for role in ROLES}
    with asgi.get_client(app) as client:
        readings = trajectory(SICK, T0, True, 2)
        for i in range(0, len(readings), 10_000):
            posted = client.post("/v1/readings", json={"readings": readings[i:i + 10_000]},
                                 headers=bearer(tokens["device"]))
            assert posted.status_code == 200, posted.text
        cycle = client.post("/v1/cycle", params={"window_end": T0.isoformat()}, headers=bearer(tokens["admin"]))
        assert cycle.status_code == 200 and cycle.json()["scored"] == 1, cycle.text
    yield loaded, tokens


def _run(operation: schemathesis.APIOperation, token: str, counter: list[int]) -> None:
    """Every check on ``EXAMPLES`` generated calls of one operation."""
    excluded = [positive_data_acceptance] if (operation.method.upper(), operation.path) in NOT_ALL_VALID_ACCEPTED \
        else []

    @given(case=operation.as_strategy())
    @settings(max_examples=EXAMPLES, deadline=None, database=None, derandomize=True,
              suppress_health_check=list(HealthCheck))
    def run(case: schemathesis.Case) -> None:
        counter[0] += 1
        case.call_and_validate(headers=bearer(token), checks=CHECKS.get_all(), excluded_checks=excluded)

    run()


@pytest.mark.parametrize("role", ROLES)
def test_interop_operations_as_each_role(schema: tuple, role: str) -> None:
    loaded, tokens = schema
    operations = [op for op in (r.ok() for r in loaded.get_all_operations()) if op.path.startswith(PREFIXES)]
    assert len(operations) == 9  # 6 FHIR, 2 CDS Hooks, POST /v1/hl7
    cases = [0]
    for operation in operations:
        _run(operation, tokens[role], cases)
    print(f"interop schemathesis as {role}: {cases[0]} cases over {len(operations)} operations")
    assert cases[0] >= len(operations)
