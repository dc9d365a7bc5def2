"""Idempotent start-up steps that ``config/jupyterhub_config.py`` calls.

Each ``ensure_*`` step makes one thing true and returns what the config
needs, doing nothing when it already holds (tljh's installer style).
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

import docker


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
    """Create the hub's Docker bridge network if missing; return its gateway IP.

    The hub listens on that gateway address: reachable from user
    containers and this host, not from outside. Containers on it cannot
    talk to each other (inter-container communication off).
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
    configs = network.attrs.get("IPAM", {}).get("Config") or []
    gateways = [c["Gateway"] for c in configs if c.get("Gateway") and ":" not in c["Gateway"]]
    if not gateways:
        raise RuntimeError(
            f"Docker network {name!r} has no IPv4 gateway; remove it "
            f"(docker network rm {name}) and let the hub create it."
        )
    return gateways[0]
