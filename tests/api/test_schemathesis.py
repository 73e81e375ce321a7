"""Schemathesis against the in-process service: every operation of the OpenAPI document with examples generated
from its schema, once with the key of each role; then the stateful run, following the links Schemathesis infers
between operations (create a key → revoke it, ...). Every check Schemathesis has must pass: no server error, every
status and body as documented."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import CHECKS, load_all_checks
from schemathesis.python import asgi
from schemathesis.specs.openapi.checks import negative_data_rejection, positive_data_acceptance

from app.clock import FixedClock
from app.main import create_app
from app.settings import Settings
from models.windows import WINDOW
from tests.support.api import NOW, SICK, SICK_SET, T0, bearer
from tests.support.synthetic_readings import trajectory

ROLES = ("device", "clinician", "ehr", "admin")
#: Examples per operation and role: 21 operations x 4 roles x this, bounded so the suite stays quick.
EXAMPLES = 15
STATEFUL_EXAMPLES = 25
CASES: Counter[str] = Counter()
load_all_checks()
#: Every check Schemathesis has (server errors, status codes, content types, headers, response schemas, negative
#: data rejected, positive data accepted, missing auth ignored, unsupported methods and Allow, use after free, ...).
ALL_CHECKS = CHECKS.get_all()
#: Operations whose timestamps must fall in a window that moves with the service clock (readings: a year back to
#: the future skew; ranges and cycles: 2000 to now + a day / a window). JSON Schema cannot state a window relative
#: to "now", so a schema-valid year 1474 is rightly refused with a 422 naming the field: the check that every
#: schema-valid request is accepted is skipped for these, and test_hardening.py tests those 422s one by one.
#: ``POST /v1/write`` too, and its body is line protocol, a grammar a JSON Schema string cannot state (its 422s are
#: tested in tests/api/test_write.py).
CLOCK_RELATIVE = {("POST", "/v1/readings"), ("POST", "/v1/cycle"), ("GET", "/v1/patients/{patient_id}/risk/history"),
                  ("GET", "/v1/patients/{patient_id}/windows"), ("POST", "/v1/write"),
                  ("POST", "/v1/observations"), ("GET", "/v1/patients/{patient_id}/observations"),
                  # FHIR searches: a date range may span 31 days (400 beyond, tested in test_fhir.py); /v1/hl7: an
                  # ER7 message is a grammar too (its AR/AE answers are tested in test_hl7.py)
                  ("GET", "/fhir/Observation"), ("GET", "/fhir/RiskAssessment"), ("POST", "/v1/hl7"),
                  # a webhook URL must also pass the outbound guard (no loopback, private or metadata address
                  # unless allow-listed): not a JSON Schema rule (its 422s: tests/api/test_probe_outbound.py)
                  ("POST", "/v1/webhooks"),
                  # a scope is for device keys only (422 for another role: tests/api/test_probe_scope.py)
                  ("POST", "/v1/keys")}


@pytest.fixture(scope="module")
def schema(tmp_path_factory) -> Iterator[tuple[schemathesis.schemas.BaseSchema, dict[str, str]]]:
    app = create_app(Settings(data_dir=tmp_path_factory.mktemp("schemathesis"), rate_limit_burst=1_000_000),
                     clock=FixedClock(NOW), cycle_interval_s=None)
    loaded = schemathesis.openapi.from_asgi("/openapi.json", app)  # starts the app's lifespan (for the process)
    tokens = {role: app.state.access.keys.create(f"schemathesis {role}", role, NOW)[1] for role in ROLES}
    with asgi.get_client(app) as client:  # a ward to read: one sick patient scored at T0, its alerts raised
        readings = trajectory(SICK, T0, True, 2)
        for i in range(0, len(readings), 10_000):
            posted = client.post("/v1/readings", json={"readings": readings[i:i + 10_000]},
                                 headers=bearer(tokens["device"]))
            assert posted.status_code == 200, posted.text
        raised = 0
        for end in (T0 - 2 * WINDOW, T0 - WINDOW, T0):  # the twin's sustained rule: three windows
            cycle = client.post("/v1/cycle", params={"window_end": end.isoformat()}, headers=bearer(tokens["admin"]))
            assert cycle.status_code == 200, cycle.text
            raised += cycle.json()["alerts_raised"]
        assert raised == 1  # the twin's (charted before it, the news2 alert would have taken it as a fold)
        charted = client.post("/v1/observations", json=SICK_SET, headers=bearer(tokens["clinician"]))
        assert charted.status_code == 201 and charted.json()["alert"]["event"] == "raised", charted.text
    yield loaded, tokens


@pytest.mark.parametrize("role", ROLES)
def test_every_operation_as_each_role(schema, role):
    loaded, tokens = schema
    operations = [result.ok() for result in loaded.get_all_operations()]
    assert len(operations) >= 21
    for operation in operations:
        @given(case=operation.as_strategy())
        @settings(max_examples=EXAMPLES, deadline=None, database=None, derandomize=True,
                  suppress_health_check=list(HealthCheck))
        def run(case) -> None:
            CASES[role] += 1
            case.call_and_validate(headers=bearer(tokens[role]), checks=ALL_CHECKS, excluded_checks=_excluded(case))

        run()
    print(f"schemathesis as {role}: {CASES[role]} cases over {len(operations)} operations")
    assert CASES[role] >= len(operations)


def _excluded(case) -> list:
    return [positive_data_acceptance] if (case.operation.method.upper(), case.operation.path) in CLOCK_RELATIVE else []


@pytest.mark.parametrize("role", ROLES)
def test_stateful_sequences_follow_the_links(schema, role):
    """Schemathesis chains operations by the links it infers (a created key's id → its revoke; a patient's id →
    its reads; an alert's id → acknowledge), with every check on every step."""
    loaded, tokens = schema
    steps = Counter()

    # POST /v1/write links to nothing (no id in its answer) and takes line protocol, not JSON: left to
    # test_every_operation_as_each_role and tests/api/test_write.py.
    class Workflow(loaded.exclude(path="/v1/write").as_state_machine()):  # type: ignore[misc]
        def setup(self):
            """Every scenario starts from the same registered webhooks (none): Hypothesis replays a scenario's
            choices and needs the links it follows (an endpoint's id from ``GET /v1/webhooks``) to be there again."""
            admin = bearer(tokens["admin"])
            listed = loaded["/v1/webhooks"]["GET"].Case(headers=admin).call()  # the run's own transport
            assert listed.status_code == 200, listed.text
            for endpoint in listed.json():
                gone = loaded["/v1/webhooks/{endpoint_id}"]["DELETE"].Case(
                    path_parameters={"endpoint_id": endpoint["id"]}, headers=admin).call()
                assert gone.status_code == 204, gone.text

        def get_call_kwargs(self, case):
            return {"headers": bearer(tokens[role])}

        def validate_response(self, response, case, additional_checks=None, **kwargs):
            steps[role] += 1
            # negative_data_rejection is left to test_every_operation_as_each_role: here get_call_kwargs puts back
            # the Authorization header a negative case removed, so such a case is not negative any more
            case.validate_response(response, checks=ALL_CHECKS, additional_checks=additional_checks,
                                   excluded_checks=[*_excluded(case), negative_data_rejection],
                                   transport_kwargs=kwargs or None, recorder=getattr(self, "recorder", None))

    Workflow.run(settings=settings(max_examples=STATEFUL_EXAMPLES, stateful_step_count=6, deadline=None,
                                   database=None, derandomize=True, suppress_health_check=list(HealthCheck)))
    print(f"schemathesis stateful as {role}: {steps[role]} steps")
    assert steps[role] > 0
