"""Issue 21, finding 2: webhook targets go only where an operator said so.

An admin registered ``http://127.0.0.1:<influx port>/query?q=DROP DATABASE wardtwin`` and the next alert's delivery
dropped the database, its 2xx marking the alerts delivered. Now a URL is checked at registration (a 422 naming
``url``) and, after DNS resolution, on every connection (``app.security.outbound.GuardedTransport``): a refused
delivery is never sent and never counts as delivered."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from app.security.outbound import GuardedTransport, OutboundPolicy, OutboundRefused
from app.settings import Settings
from app.storage.influxd_local import free_port
from tests.support.api import WINDOW_ENDS, assert_422, post_readings, run_cycle, serve
from tests.support.wait import wait_until
from tests.support.webhooks import new_secret, received, receiver

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


def register(client, url: str) -> httpx.Response:
    return client.post("/v1/webhooks", json={"url": url, "secret": SECRET, "events": ["alert.raised"]})


REFUSED = [
    pytest.param("http://127.0.0.1:8086/query?q=DROP%20DATABASE%20wardtwin", id="influx-on-loopback"),
    pytest.param("http://0x7f000001:9/", id="hex-ipv4"),
    pytest.param("http://2130706433:9/", id="decimal-ipv4"),
    pytest.param("http://0177.0.0.1:9/", id="octal-ipv4"),
    pytest.param("http://127.1:9/", id="short-ipv4"),
    pytest.param("http://[::1]:9/x", id="ipv6-loopback"),
    pytest.param("http://[::ffff:127.0.0.1]:9/", id="ipv4-mapped-loopback"),
    pytest.param("http://[2002:7f00:1::]:9/", id="6to4-loopback"),
    pytest.param("http://[64:ff9b::7f00:1]:9/", id="nat64-loopback"),
    pytest.param("http://[fe80::1]:9/", id="ipv6-link-local"),
    pytest.param("http://user:pass@127.0.0.1:9/", id="userinfo-loopback"),
    pytest.param("https://user:pass@nursecall.example/hook", id="userinfo-public-name"),
    pytest.param("http://169.254.169.254/latest/meta-data/", id="metadata-ipv4"),
    pytest.param("http://[fd00:ec2::254]/latest/meta-data/", id="metadata-ipv6"),
    pytest.param("http://10.1.2.3/hook", id="private"),
    pytest.param("http://100.64.0.1/hook", id="shared-cgnat"),
    pytest.param("http://0.0.0.0:9/", id="unspecified"),
    pytest.param("http://224.0.0.1/", id="multicast"),
    pytest.param("http://localhost:9/", id="localhost"),
    pytest.param("http://api.localhost:9/", id="under-localhost"),
    pytest.param("http://" + "a" * 3000 + ".example/", id="3000-character-host"),
    pytest.param("https://nursecall.example/" + "p" * 2048, id="url-over-2048"),
]


@pytest.mark.parametrize("url", REFUSED)
def test_a_target_outside_the_policy_is_a_422_naming_the_url(client, url):
    (item,) = assert_422(register(client, url), ["body", "url"])
    assert len(item["msg"]) < 400  # says why, echoes no 3,000-character host
    assert client.get("/v1/webhooks").json() == []


def test_a_public_name_is_accepted(client):
    assert register(client, "https://nursecall.example/hook").status_code == 201


def test_the_allow_list_admits_a_local_receiver_but_never_credentials(tmp_path: Path):
    with serve(tmp_path, webhook_allow_hosts=["127.0.0.1"], webhook_allow_cidrs=["10.0.0.0/8"]) as client:
        assert register(client, "http://127.0.0.1:9/hook").status_code == 201
        assert register(client, "http://10.1.2.3/hook").status_code == 201
        assert_422(register(client, "http://user:pass@127.0.0.1:9/"), ["body", "url"])
        assert_422(register(client, "http://[::1]:9/x"), ["body", "url"])  # only what was listed
        assert_422(register(client, "http://169.254.169.254/"), ["body", "url"])


def test_the_influx_back_end_is_refused_even_when_its_host_is_allow_listed() -> None:
    settings = Settings(influx_url="http://127.0.0.1:8086", webhook_allow_hosts=["127.0.0.1"])
    policy = OutboundPolicy.from_settings(settings)
    assert policy.check_url("http://127.0.0.1:9/hook") == ("127.0.0.1", 9)
    with pytest.raises(OutboundRefused, match="back end"):
        policy.check_url("http://127.0.0.1:8086/query?q=DROP%20DATABASE%20wardtwin")


# -- on every connection, after DNS ----------------------------------------------------------------------------------
class _Recorder(httpx.AsyncBaseTransport):
    """The transport behind the guard: records what reached it and answers 204 (as InfluxDB does to a write)."""

    def __init__(self) -> None:
        self.sent: list[httpx.Request] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.sent.append(request)
        return httpx.Response(204)


def _resolver(table: dict[str, list[str]]):
    async def resolve(host: str, port: int) -> list[str]:
        return table[host]
    return resolve


DNS = {"rebind.example": ["127.0.0.1"], "mixed.example": ["93.184.215.14", "10.0.0.7"],
       "public.example": ["93.184.215.14"], "metadata.example": ["169.254.169.254"],
       "influx.example": ["127.0.0.1"]}


@pytest.mark.parametrize("url", ["http://rebind.example:9/x", "http://mixed.example/hook",
                                 "http://metadata.example/latest", "http://127.0.0.1:9/"])
async def test_a_name_resolving_to_a_denied_address_is_never_connected(url: str) -> None:
    inner = _Recorder()
    async with httpx.AsyncClient(transport=GuardedTransport(OutboundPolicy(), inner, _resolver(DNS))) as client:
        with pytest.raises(httpx.ConnectError, match="outbound policy"):
            await client.post(url, content=b"{}")
    assert inner.sent == []


async def test_a_checked_address_is_pinned_and_the_name_kept_for_host_and_tls() -> None:
    inner = _Recorder()
    async with httpx.AsyncClient(transport=GuardedTransport(OutboundPolicy(), inner, _resolver(DNS))) as client:
        assert (await client.post("https://public.example/hook", content=b"{}")).status_code == 204
    (sent,) = inner.sent
    assert sent.url.host == "93.184.215.14" and sent.headers["host"] == "public.example"
    assert sent.extensions["sni_hostname"] == "public.example"


async def test_a_name_for_the_back_end_is_refused_even_inside_an_allowed_network() -> None:
    settings = Settings(influx_url="http://127.0.0.1:8086", webhook_allow_cidrs=["127.0.0.0/8"])
    inner = _Recorder()
    guard = GuardedTransport(OutboundPolicy.from_settings(settings), inner, _resolver(DNS))
    async with httpx.AsyncClient(transport=guard) as client:
        with pytest.raises(httpx.ConnectError, match="back end"):
            await client.post("http://influx.example:8086/query", content=b"q=DROP DATABASE wardtwin")
        assert (await client.post("http://influx.example:9/hook", content=b"{}")).status_code == 204
    assert [r.url.port for r in inner.sent] == [9]


def test_an_endpoint_stored_before_the_guard_is_never_delivered_to(tmp_path: Path, clock, sick_readings) -> None:
    """The probe's endpoint, already in the store (registered before this check existed): its 2xx-answering
    receiver on loopback is never reached, and no alert counts as delivered."""
    port, secret, log = free_port(), new_secret(), tmp_path / "received.jsonl"
    with serve(tmp_path / "svc", clock, webhook_backoff_base_s=0.05, webhook_backoff_max_s=0.2,
               webhook_poll_s=0.1) as client, receiver(port, secret, log):
        store = client.app.state.wardtwin.webhooks  # type: ignore[attr-defined]
        client.portal.call(store.create, f"http://127.0.0.1:{port}/hook", secret, ["alert.raised"])
        post_readings(client, sick_readings)
        assert sum(run_cycle(client, end)["alerts_raised"] for end in WINDOW_ENDS) >= 1

        def refused() -> list:
            rows = client.portal.call(store.list, "pending")
            return rows if rows and all(d.attempts >= 2 for d in rows) else []

        rows = wait_until(refused, "every delivery refused twice")
        assert all("outbound policy" in (d.last_error or "") for d in rows)
        assert client.get("/v1/webhooks").json()[0]["delivered"] == 0
        assert all(a["delivery_pending"] for a in client.get("/v1/alerts").json())
    assert received(log) == []
