"""Pure builders: settings in, Docker create/host-config pieces out. No I/O.

DockerSpawner builds the container from its own traits plus
``extra_create_kwargs`` / ``extra_host_config``; the pieces here are merged
on top of whatever the admin configured there, so GPU assignment and
hardening cannot be switched off by accident.
"""

from __future__ import annotations

from collections.abc import Sequence

NO_NEW_PRIVILEGES = "no-new-privileges:true"
DOCKER_SOCKET = "docker.sock"


def gpu_environment(uuids: Sequence[str]) -> dict[str, str]:
    """Environment that keeps a CPU-only server away from every GPU.

    CUDA base images set ``NVIDIA_VISIBLE_DEVICES=all``; with the NVIDIA
    runtime as Docker's default that would expose every GPU. ``void`` hides
    them all. For GPU servers Docker's nvidia driver sets the variable from
    the device request itself.
    """
    return {} if uuids else {"NVIDIA_VISIBLE_DEVICES": "void"}


def device_requests(uuids: Sequence[str]) -> list[dict]:
    """Exactly these devices, by UUID, never by count (dockerspawner#331)."""
    if not uuids:
        return []
    return [{"driver": "nvidia", "device_ids": list(uuids), "capabilities": [["gpu"]]}]


def required_host_config(
    uuids: Sequence[str], shm_size: int, pids_limit: int, configured: dict | None = None
) -> dict:
    """The admin's ``extra_host_config`` with GPU devices, limits and hardening on top.

    Never privileged, no new privileges, no capabilities; the admin's other
    ``security_opt`` entries and ``cap_drop`` entries are kept.
    """
    configured = dict(configured or {})
    security_opt = [opt for opt in configured.get("security_opt") or [] if opt != NO_NEW_PRIVILEGES]
    host_config = configured | {
        "privileged": False,
        "security_opt": security_opt + [NO_NEW_PRIVILEGES],
        "cap_drop": ["ALL"],
        "shm_size": shm_size,
        "pids_limit": pids_limit,
        "device_requests": device_requests(uuids),
    }
    host_config.pop("cap_add", None)
    return host_config


def mounts_docker_socket(sources: Sequence[str]) -> bool:
    """True when any bind source would hand the container the Docker socket."""
    return any(DOCKER_SOCKET in str(source) for source in sources)
