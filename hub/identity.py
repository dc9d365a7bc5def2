"""This hub's identity on a shared Docker engine: start-up steps the config calls.

Several hubs may share one engine. Each has an id (kept in its state dir)
written as the ``gpuhub.hub`` label on its containers and volumes, and a
prefix for their names. A hub whose prefix another hub's containers or
volumes already use would adopt that hub's servers and volumes: it refuses to
start instead, saying which hub and what to set.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

import docker

from gpuhub.spawner.labels import HUB_LABEL


class PrefixTaken(RuntimeError):
    """Another hub's containers or volumes use this hub's prefix."""


def ensure_hub_id(state_dir: str | os.PathLike) -> str:
    """The id kept in ``<state_dir>/hub_id``, made the first time."""
    path = Path(state_dir) / "hub_id"
    if not path.exists():
        path.write_text(f"gpuhub-{secrets.token_hex(6)}\n")
    return path.read_text().strip()


def others_using_prefix(client: docker.DockerClient, prefix: str, hub_id: str) -> dict[str, list[str]]:
    """Other hubs' ids → names of their containers and volumes named ``{prefix}-…``."""
    found: dict[str, list[str]] = {}
    for container in client.api.containers(all=True, filters={"label": HUB_LABEL}):
        name = (container.get("Names") or ["/"])[0].lstrip("/")
        found.setdefault(container["Labels"][HUB_LABEL], []).append(name)
    for volume in client.api.volumes(filters={"label": HUB_LABEL}).get("Volumes") or []:
        found.setdefault(volume["Labels"][HUB_LABEL], []).append(volume["Name"])
    return {
        other: sorted(name for name in names if name.startswith(f"{prefix}-"))
        for other, names in found.items()
        if other != hub_id and any(name.startswith(f"{prefix}-") for name in names)
    }


def ensure_prefix_is_ours(prefix: str, hub_id: str) -> None:
    """Refuse to start when another hub on this engine uses ``prefix``."""
    others = others_using_prefix(docker.from_env(), prefix, hub_id)
    if others:
        other, names = next(iter(others.items()))
        raise PrefixTaken(
            f"Another hub ({HUB_LABEL}={other}) already uses the name prefix {prefix!r} on "
            f"this Docker engine ({', '.join(names[:3])}{', …' if len(names) > 3 else ''}). "
            "Give this hub a prefix of its own: set GPUHUB_PREFIX (or "
            "c.GPUDockerSpawner.prefix), and a state dir of its own (GPUHUB_STATE_DIR)."
        )
