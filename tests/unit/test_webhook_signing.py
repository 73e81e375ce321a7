"""Our Standard Webhooks signer against the specification's test vectors, and checked by the reference package."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from app.alerts.webhooks import WebhookWorker, headers, secret_bytes, sign

#: The specification's test vectors (copied from the standard-webhooks repository's library tests; MIT licence
#: beside them).
VECTORS = json.loads((Path(__file__).resolve().parents[1] / "fixtures/standard_webhooks/vectors.json").read_text())


def test_the_signature_matches_the_specification_vector():
    v = VECTORS["symmetric_sign"]
    assert sign(v["secret"], v["msg_id"], v["timestamp"], v["payload"]) == v["expected_signature_header"]


@pytest.mark.parametrize("case", VECTORS["verify_must_fail"][:5], ids=lambda c: c["case"])
def test_near_misses_from_the_vectors_differ_from_our_signature(case):
    v = VECTORS["symmetric_sign"]
    assert sign(v["secret"], v["msg_id"], v["timestamp"], v["payload"]) != case["webhook-signature"]


def test_the_reference_package_verifies_what_we_sign_and_rejects_a_changed_body():
    secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    now = int(datetime.now(UTC).timestamp())
    body = json.dumps({"type": "alert.raised", "data": {"patient_id": "bed-07"}}, separators=(",", ":"))
    sent = headers(secret, "msg_abc_1", now, body)
    assert Webhook(secret).verify(body, sent) == json.loads(body)
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(body.replace("07", "08"), sent)


@pytest.mark.parametrize(("secret", "why"), [
    ("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "must start with 'whsec_'"),
    ("whsec_", "24–64 bytes"),
    ("whsec_not base64!!", "must be base64"),
    ("whsec_c2hvcnQ=", "24–64 bytes"),
])
def test_bad_secrets_are_refused_with_the_reason(secret, why):
    with pytest.raises(ValueError, match=why):
        secret_bytes(secret)


def test_backoff_is_exponential_capped_and_jittered():
    low = WebhookWorker(None, None, max_attempts=5, backoff_base_s=1, backoff_max_s=10, timeout_s=1,  # type: ignore[arg-type]
                        jitter=lambda: 0.0)
    high = WebhookWorker(None, None, max_attempts=5, backoff_base_s=1, backoff_max_s=10, timeout_s=1,  # type: ignore[arg-type]
                         jitter=lambda: 1.0)
    assert [low.backoff_s(n) for n in range(1, 7)] == [0.5, 1, 2, 4, 5, 5]
    assert [high.backoff_s(n) for n in range(1, 7)] == [1, 2, 4, 8, 10, 10]
