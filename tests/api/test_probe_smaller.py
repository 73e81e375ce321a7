"""Issue 21, finding 11 (the items fixed so far; the rest are open in docs/hazard-log.md H25)."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient

from tests.support.api import NOW, bearer, serve


def assert_key_conflict(response) -> None:
    """A state conflict, not a malformed request: 409 (a schema-valid request is never a 422; Schemathesis' stateful
    run as admin found the 422)."""
    assert response.status_code == 409, response.text
    body = response.json()
    assert body["code"] == "key_conflict" and "last active admin key" in body["detail"]


def test_the_last_admin_key_cannot_be_revoked_through_the_api(tmp_path: Path) -> None:
    with serve(tmp_path, demo_key=None) as service:  # no demo key: the stored admin keys are the only way in
        keys = service.app.state.access.keys  # type: ignore[attr-defined]
        _, first = keys.create("admin one", "admin", NOW)
        admin = TestClient(service.app, headers=bearer(first))
        ids = {k["name"]: k["id"] for k in admin.get("/v1/keys").json()}
        assert_key_conflict(admin.post(f"/v1/keys/{ids['admin one']}/revoke"))  # before issue 21: 200, locked out
        assert admin.get("/v1/keys").status_code == 200
        _, second = keys.create("admin two", "admin", NOW)
        assert admin.post(f"/v1/keys/{ids['admin one']}/revoke").status_code == 200  # another admin remains
        other = TestClient(service.app, headers=bearer(second))
        ids = {k["name"]: k["id"] for k in other.get("/v1/keys").json()}
        assert_key_conflict(other.post(f"/v1/keys/{ids['admin two']}/revoke"))
        assert [k["name"] for k in other.get("/v1/keys").json() if k["revoked_at"] is None] == ["admin two"]


def test_with_a_demo_key_the_stored_admin_keys_may_all_be_revoked(client) -> None:
    keys = client.app.state.access.keys
    key, _ = keys.create("admin three", "admin", NOW)
    assert client.post(f"/v1/keys/{key.id}/revoke").status_code == 200
