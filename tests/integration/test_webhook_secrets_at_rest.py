"""Webhook secrets sealed at rest (hazard H18), on the embedded SQLite file and on a real PostgreSQL server: the
column never holds a ``whsec_`` secret, deliveries are still signed so that the ``standardwebhooks`` package verifies
them, rows stored in plain text before H18 are sealed on open (once), ``wardtwin webhooks rekey`` rotates, and a
secret no key opens fails its deliveries naming the key file instead of sending them unsigned."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from cryptography.fernet import Fernet
from standardwebhooks import Webhook

from app.alerts.store import AlertStore
from app.alerts.webhooks import Endpoint, WebhookStore, WebhookWorker
from app.security.secrets_box import PREFIX, SecretBox
from lab.cli import main
from tests.support.api import serve
from tests.support.webhooks import new_secret

T0 = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
ENGINES = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
EVENTS = ["alert.raised"]


@pytest.fixture(params=ENGINES)
def target(request: pytest.FixtureRequest, tmp_path: Path) -> Path | str:
    """Where the control state lives: a SQLite file, or a fresh PostgreSQL database's URL."""
    if request.param == "sqlite":
        return tmp_path / "alerts.db"
    return request.getfixturevalue("postgres_dsn")


def key_file(path: Path, *keys: bytes) -> Path:
    path.write_text("".join(k.decode() + "\n" for k in keys))
    return path


@contextlib.asynccontextmanager
async def one_endpoint(target: Path | str, tmp_path: Path, secret: str
                       ) -> AsyncIterator[tuple[AlertStore, WebhookStore, SecretBox, Endpoint]]:
    """An alert store on ``target``, its webhook store sealing with a fresh key, and one endpoint holding ``secret``."""
    box = SecretBox.from_file(key_file(tmp_path / "secrets.key", Fernet.generate_key()))
    alerts = AlertStore(target)
    await alerts.open()
    try:
        hooks = WebhookStore(alerts.db, box=box)
        await hooks.open()
        yield alerts, hooks, box, await hooks.create("http://receiver/hook", secret, EVENTS)
    finally:
        await alerts.close()


def stored_secrets(alerts: AlertStore) -> dict[str, str]:
    """The raw column, read past the store."""
    rows = alerts.db.call_read(lambda c: c.execute("SELECT id, secret FROM webhook_endpoints").fetchall())
    return dict(rows)


async def raise_one(alerts: AlertStore, patient: str) -> None:
    await alerts.raise_alert(patient, T0, 0.8, ["NEWS2 7"], T0, kind="news2", news2={"total": 7})


async def deliver_once(hooks: WebhookStore, alerts: AlertStore) -> list[httpx.Request]:
    """Run a worker until one POST arrived; the requests it sent."""
    sent: list[httpx.Request] = []

    def receive(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        return httpx.Response(204)

    async def confirm(seqs, actor):
        await alerts.confirm_delivery(seqs, T0, actor)

    worker = WebhookWorker(hooks, confirm, max_attempts=3, backoff_base_s=1, backoff_max_s=1, timeout_s=5,
                           poll_s=0.05, transport=httpx.MockTransport(receive))
    await worker.start()
    try:
        for _ in range(6000):  # polls a condition; the bound only turns a hang into a failure
            if sent and not worker._in_flight:
                break
            await asyncio.sleep(0.02)
    finally:
        await worker.stop()
    assert sent, "nothing was delivered"
    return sent


async def test_the_column_holds_no_secret_and_the_delivery_verifies(target: Path | str, tmp_path: Path) -> None:
    secret = new_secret()
    async with one_endpoint(target, tmp_path, secret) as (alerts, hooks, _, endpoint):
        (stored,) = stored_secrets(alerts).values()
        assert stored.startswith(PREFIX) and "whsec_" not in stored and secret[6:] not in stored  # main: the secret
        assert secret not in repr(await hooks.endpoints())
        await raise_one(alerts, "bed-01")
        (request,) = await deliver_once(hooks, alerts)
        assert request.headers["webhook-id"].startswith("msg_" + endpoint.id[3:])
        body = Webhook(secret).verify(request.content, dict(request.headers))  # raises when forged
        assert body["type"] == "alert.raised" and body["data"]["patient_id"] == "bed-01"
        assert "whsec_" not in "".join(stored_secrets(alerts).values())  # delivering did not unseal the column


async def test_a_plaintext_row_is_sealed_on_open_once(target: Path | str, tmp_path: Path) -> None:
    """A row stored before H18 (plain ``whsec_``) is sealed when a store opens; a second open changes nothing; the
    delivery is signed with the original secret."""
    secret = new_secret()
    async with one_endpoint(target, tmp_path, secret) as (alerts, _, box, endpoint):
        alerts.db.call(lambda c: c.execute("UPDATE webhook_endpoints SET secret = ?", (secret,)))  # as before H18
        assert stored_secrets(alerts) == {endpoint.id: secret}
        reopened = WebhookStore(alerts.db, box=box)
        await reopened.open()  # the next start
        sealed = stored_secrets(alerts)[endpoint.id]
        assert sealed.startswith(PREFIX) and box.unseal(sealed) == secret  # main: still the plain secret
        await WebhookStore(alerts.db, box=box).open()
        assert stored_secrets(alerts)[endpoint.id] == sealed  # idempotent: sealed rows are left alone
        await raise_one(alerts, "bed-02")
        (request,) = await deliver_once(reopened, alerts)
        Webhook(secret).verify(request.content, dict(request.headers))


async def test_a_secret_no_key_opens_fails_its_delivery_naming_the_key_file(target: Path | str,
                                                                            tmp_path: Path) -> None:
    """Sealed under a key the file no longer holds: nothing is sent, the delivery's error names the key file."""
    alerts = AlertStore(target)
    await alerts.open()
    try:
        lost = SecretBox.from_file(key_file(tmp_path / "lost.key", Fernet.generate_key()))
        first = WebhookStore(alerts.db, box=lost)
        await first.open()
        await first.create("http://receiver/hook", new_secret(), EVENTS)
        other = key_file(tmp_path / "other.key", Fernet.generate_key())
        hooks = WebhookStore(alerts.db, box=SecretBox.from_file(other))
        await hooks.open()
        await raise_one(alerts, "bed-03")
        await hooks.fan_out()
        [(delivery, _, opened, _)] = await hooks.due(1e12)
        assert opened is None  # main: no box, the column itself

        sent: list[httpx.Request] = []
        receive = httpx.MockTransport(lambda request: sent.append(request) or httpx.Response(204))
        worker = WebhookWorker(hooks, None, max_attempts=3, backoff_base_s=60, backoff_max_s=60,  # type: ignore[arg-type]
                               timeout_s=5, transport=receive)
        await worker.start()  # the client; the round below is run by hand
        try:
            await worker._send(delivery, "http://receiver/hook", None, "{}")
        finally:
            await worker.stop()
        after = await hooks.get(delivery.id)
        assert sent == [] and after.status == "pending" and after.attempts == 1
        assert str(other) in (after.last_error or "")
    finally:
        await alerts.close()


async def test_rekey_reseals_every_secret_with_the_newest_key(target: Path | str, tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    old, new = Fernet.generate_key(), Fernet.generate_key()
    path = key_file(tmp_path / "secrets.key", old)
    data = tmp_path / "data"
    monkeypatch.setenv("WARDTWIN_SECRETS_KEY_FILE", str(path))
    if isinstance(target, str):
        monkeypatch.setenv("WARDTWIN_CONTROL_DB", target)
    else:
        monkeypatch.delenv("WARDTWIN_CONTROL_DB", raising=False)
        target = data / "alerts.db"
    secrets_ = [new_secret(), new_secret()]
    alerts = AlertStore(target)
    await alerts.open()
    try:
        hooks = WebhookStore(alerts.db, box=SecretBox.from_file(path))
        await hooks.open()
        for secret in secrets_:
            await hooks.create("http://receiver/hook", secret, EVENTS)
        deleted = await hooks.create("http://receiver/old", new_secret(), EVENTS)
        await hooks.delete(deleted.id)  # a deleted endpoint's secret is still at rest: re-sealed too
        before = stored_secrets(alerts)

        key_file(path, new, old)  # rotation: the new key first, the old one still there
        assert await asyncio.to_thread(main, ["webhooks", "rekey", "--data-dir", str(data)]) == 0
        assert f"re-sealed 3 webhook secret(s) with the newest key of {path}" in capsys.readouterr().out

        after = stored_secrets(alerts)
        assert after.keys() == before.keys() and all(after[k] != before[k] for k in after)
        only_new = SecretBox.from_file(key_file(tmp_path / "new.key", new))
        assert sorted(only_new.unseal(v) for k, v in after.items() if k != deleted.id) == sorted(secrets_)

        key_file(path, Fernet.generate_key())  # a key file that opens none of them: nothing changed, exit 1
        assert await asyncio.to_thread(main, ["webhooks", "rekey", "--data-dir", str(data)]) == 1
        assert "no key in" in capsys.readouterr().out and stored_secrets(alerts) == after
        path.write_text("not a key\n")  # malformed: refused naming the file, exit 2
        assert await asyncio.to_thread(main, ["webhooks", "rekey", "--data-dir", str(data)]) == 2
        assert f"secrets key file {path}: line 1" in capsys.readouterr().out and stored_secrets(alerts) == after
    finally:
        await alerts.close()


def test_the_service_seals_with_its_key_file_and_no_route_echoes_the_secret(tmp_path: Path) -> None:
    """Through ``create_app``: the default key file is created, the API never shows the secret or its sealed form,
    and the alert database holds neither the secret nor ``whsec_``."""
    secret, data = new_secret(), tmp_path / "svc"
    with serve(data) as client:
        created = client.post("/v1/webhooks", json={"url": "https://nursecall.example/hook", "secret": secret,
                                                    "events": EVENTS})
        assert created.status_code == 201, created.text
        answers = [created.text, client.get("/v1/webhooks").text, client.get("/v1/webhooks/dead-letters").text]
        sealed = stored_secrets(client.app.state.wardtwin.alert_store)[created.json()["id"]]
    assert sealed.startswith(PREFIX)
    assert not any(secret in a or "whsec_" in a or sealed in a or PREFIX in a for a in answers)
    raw = b"".join(p.read_bytes() for p in data.glob("alerts.db*"))
    assert b"whsec_" not in raw and secret[6:].encode() not in raw  # main: the secret in the file
    assert SecretBox.from_file(data / "secrets.key").unseal(sealed) == secret


def test_healthz_is_not_ok_while_an_endpoint_secret_does_not_open_with_this_instance_keys(tmp_path: Path) -> None:
    """A fleet instance given another key file (or a lost key): the endpoints another instance sealed cannot be signed
    here. ``/healthz`` counts them and is not ok (it said ok while their deliveries failed), with no endpoint id."""
    data = tmp_path / "svc"
    with serve(data) as client:
        created = client.post("/v1/webhooks", json={"url": "https://nursecall.example/hook", "secret": new_secret(),
                                                    "events": EVENTS})
        assert created.status_code == 201, created.text
        health = client.get("/healthz").json()
        assert health["ok"] is True and health["webhook_secrets_unopened"] == 0

        wt = client.app.state.wardtwin
        elsewhere = SecretBox.from_file(key_file(tmp_path / "other-instance.key", Fernet.generate_key()))
        other = client.portal.call(lambda: WebhookStore(wt.alert_store.db, box=elsewhere).create(
            "https://nursecall.example/other", new_secret(), EVENTS))
        health = client.get("/healthz").json()
        assert health["ok"] is False and health["webhook_secrets_unopened"] == 1
        assert other.id not in client.get("/healthz").text

        assert client.delete(f"/v1/webhooks/{other.id}").status_code == 204  # removed: nothing left to sign
        assert client.get("/healthz").json()["ok"] is True
