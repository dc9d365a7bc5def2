"""The image checks' own network: the start-up check places its stand-in hub on a
network it creates (with a gateway), so it works on an engine whose default bridge
reports no gateway. Runs on such an engine (conftest.NoGatewayEngine)."""

import json

from gpuhub.images import startup, versions
from gpuhub.images.docker_cli import Docker
from tests.images.conftest import TEST_PREFIX

BASE = versions.load().local.debian_base  # has python3; built by `make test-images`


def test_the_engine_reproduces_a_default_bridge_without_gateway(no_gateway_engine):
    config = json.loads(no_gateway_engine.docker("network", "inspect", "bridge", "-f", "{{json .IPAM.Config}}"))
    assert config and all(not entry.get("Gateway") for entry in config), config


def test_a_container_reaches_the_stand_in_hub_on_the_checks_own_network(no_gateway_engine, engine_env, monkeypatch):
    no_gateway_engine.copy_images(engine_env, BASE)
    monkeypatch.setenv("DOCKER_HOST", no_gateway_engine.env["DOCKER_HOST"])
    docker = Docker()
    name = f"{TEST_PREFIX}-img-net-probe"
    with startup.check_network(docker) as (network, gateway), startup.stand_in_hub(gateway, "5.5.4") as url:
        assert network.startswith(startup.NETWORK_PREFIX)
        answer = docker.run(["run", "--rm", "--name", name, "--network", network, "--entrypoint", "python3", BASE, "-c",
                             f"import urllib.request; print(urllib.request.urlopen({url!r}, timeout=10).read().decode())"],
                            timeout=120)
        assert json.loads(answer) == {"version": "5.5.4"}
    # Removed afterwards; the next run gets another name.
    assert no_gateway_engine.docker("network", "ls", "-q", "--filter", f"name={network}") == ""
