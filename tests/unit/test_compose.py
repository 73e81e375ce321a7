"""``docker-compose.yml`` is right without a Docker engine: the services issue 24 asks for, images pinned to a
version, every reference (depends_on, volumes, the control store's database) resolving, every ``WARDTWIN_*``
variable a setting the service reads, every required secret without a default, and the commands real CLI
commands."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from app.settings import Settings
from lab.cli import build_parser

ROOT = Path(__file__).parents[2]
COMPOSE = ROOT / "docker-compose.yml"


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE.read_text())


def instances(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {name: s for name, s in compose["services"].items() if s.get("command", [None, None])[:2]
            == ["wardtwin", "serve"]}


def test_the_fleet_s_services_are_there(compose) -> None:
    assert set(compose["services"]) == {"postgres", "influxdb", "wardtwin-1", "wardtwin-2", "simulator"}
    assert set(instances(compose)) == {"wardtwin-1", "wardtwin-2"}


def test_every_third_party_image_is_pinned_to_a_version(compose) -> None:
    for name, service in compose["services"].items():
        image = service["image"]
        if image == "wardtwin:latest":  # built here from the Dockerfile (the simulator reuses it)
            assert "build" in service or any("build" in s and s["image"] == image for s in compose["services"].values())
            continue
        assert re.fullmatch(r"[a-z0-9/_-]+:\d+\.\d+(\.\d+)?(-[a-z0-9.]+)?", image), f"{name}: {image} is not pinned"


def test_references_resolve(compose) -> None:
    services, volumes = compose["services"], set(compose["volumes"])
    for name, service in services.items():
        for dependency in service.get("depends_on", {}):
            assert dependency in services, f"{name} depends on unknown {dependency}"
            assert "healthcheck" in services[dependency], f"{name} waits for {dependency}'s health, which has none"
        for mount in service.get("volumes", []):
            assert mount.split(":")[0] in volumes, f"{name} mounts undeclared {mount}"


def test_each_instance_is_a_fleet_member_on_the_shared_stores(compose) -> None:
    postgres = compose["services"]["postgres"]["environment"]
    ids, data = set(), set()
    for service in instances(compose).values():
        env = service["environment"]
        target = urlsplit(env["WARDTWIN_CONTROL_DB"].replace("${POSTGRES_PASSWORD:?set POSTGRES_PASSWORD}", "pw"))
        assert target.scheme == "postgresql" and target.hostname == "postgres"
        assert target.path == "/" + postgres["POSTGRES_DB"] and target.username == postgres["POSTGRES_USER"]
        assert urlsplit(env["WARDTWIN_INFLUX_URL"]).hostname == "influxdb"
        assert float(env["WARDTWIN_FLEET_RENEW_S"]) * 2 <= float(env["WARDTWIN_FLEET_LEASE_S"])
        ids.add(env["WARDTWIN_INSTANCE_ID"])
        data.add(service["volumes"][0].split(":")[0])
    assert len(ids) == len(data) == 2, "each instance needs its own id and its own data volume (keys, spool)"
    url = compose["services"]["simulator"]["command"]
    assert urlsplit(url[url.index("--url") + 1]).hostname in instances(compose)


def test_every_instance_seals_webhook_secrets_with_the_one_shared_key_file(compose) -> None:
    """A secret one instance sealed must open on the other (either signs a delivery): the same key file, given as a
    compose secret (never baked into the image or a data volume, so it does not travel with backups)."""
    declared = compose["secrets"]
    for name, service in instances(compose).items():
        path = service["environment"]["WARDTWIN_SECRETS_KEY_FILE"]
        secret = path.removeprefix("/run/secrets/")
        assert path.startswith("/run/secrets/") and secret in service.get("secrets", []), name
        assert "file" in declared[secret]
    assert len({s["environment"]["WARDTWIN_SECRETS_KEY_FILE"] for s in instances(compose).values()}) == 1


def test_every_wardtwin_variable_is_a_setting(compose) -> None:
    fields = set(Settings.model_fields)
    for name, service in compose["services"].items():
        for key in service.get("environment", {}):
            if key.startswith("WARDTWIN_") and key != "WARDTWIN_API_KEY":  # the simulator's key, not a setting
                assert key.removeprefix("WARDTWIN_").lower() in fields, f"{name}: {key} is read by nothing"


def test_secrets_have_no_default_and_are_documented(compose) -> None:
    text = COMPOSE.read_text()
    header = "".join(line for line in text.splitlines(keepends=True) if line.startswith("#"))
    for variable in set(re.findall(r"\$\{(\w+)", text)):
        assert re.search(r"\$\{" + variable + r":\?", text), f"{variable} must be required (${{{variable}:?…}})"
        assert not re.search(r"\$\{" + variable + r":-", text), f"{variable} has a default"
        assert variable in header, f"{variable} is not in the header's export line"


def test_the_commands_are_real_cli_commands(compose) -> None:
    parser = build_parser()
    for service in compose["services"].values():
        command = service.get("command")
        if command and command[0] == "wardtwin":
            parser.parse_args(command[1:])  # argparse exits (SystemExit) on an unknown command or option
