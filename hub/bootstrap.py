"""Idempotent start-up steps that ``config/jupyterhub_config.py`` calls.

Each ``ensure_*`` step makes one thing true and returns what the config
needs, doing nothing when it already holds (tljh's installer style).
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Mapping

import docker

from gpuhub.hub.fence import NotFenced, facts_from_attrs, verify_fence
from gpuhub.hub.fence_rules import FenceSettingError, FenceSettings, NetworkFacts


def ensure_private_dir(path: str | os.PathLike) -> Path:
    """A directory only the hub's user can enter (database, secrets)."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    path.chmod(0o700)
    return path


def ensure_secret_file(path: str | os.PathLike, nbytes: int = 32) -> str:
    """Return the secret kept in ``path``, creating it (mode 0600) the first time."""
    path = Path(path)
    if not path.exists():
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_hex(nbytes))
    path.chmod(0o600)
    return path.read_text().strip()


def ensure_docker_network(name: str) -> str:
    """Create the hub's Docker bridge network if missing; return its gateway IP."""
    return ensure_network_facts(name).gateway


def ensure_network_facts(name: str) -> NetworkFacts:
    """Create the hub's Docker bridge network if missing; return its bridge and gateway.

    The hub listens on that gateway address: reachable from user
    containers and this host, not from outside. Containers on it cannot
    talk to each other (inter-container communication off): an existing
    network that allows it is refused, not reused.
    """
    client = docker.from_env()
    try:
        network = client.networks.get(name)
    except docker.errors.NotFound:
        network = client.networks.create(
            name,
            driver="bridge",
            options={"com.docker.network.bridge.enable_icc": "false"},
        )
        network.reload()
    facts = facts_from_attrs(network.attrs)
    if facts.icc:
        raise NotFenced(
            f"gpuhub: Docker network {name!r} allows traffic between containers "
            '(com.docker.network.bridge.enable_icc is not "false"), so one user\'s '
            f"server could reach another's. Fix: stop the containers on it, remove it "
            f"(docker network rm {name}) and start the hub again: it creates the "
            "network with that traffic off."
        )
    return facts


def ensure_fenced_network(env: Mapping[str, str]) -> tuple[FenceSettings, str]:
    """The containers' network, created if missing and fenced (hub/fence.py).

    Returns the fence settings (GPUHUB_NETWORK, GPUHUB_HUB_PORT,
    GPUHUB_FENCE_*) and the gateway IP the hub listens on. Stops the hub
    with a message naming the fix when the network allows traffic between
    containers, or when its fence is missing (GPUHUB_FENCE_CHECK=warn: a
    warning instead, for hubs that cannot read iptables).
    """
    try:
        settings = FenceSettings.from_environ(env)
    except FenceSettingError as error:
        raise NotFenced(f"gpuhub: {error}") from None
    facts = ensure_network_facts(settings.network)
    verify_fence(settings, facts)
    return settings, facts.gateway
