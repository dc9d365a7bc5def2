"""Pure builders: settings in, Docker create/host-config pieces out. No I/O.

DockerSpawner builds the container from its own traits plus
``extra_create_kwargs`` / ``extra_host_config``; the pieces here are merged
on top of whatever the admin configured there, so GPU assignment and
hardening cannot be switched off by accident. What would weaken the container
on purpose (privileged, added capabilities, the Docker socket, host
namespaces) is not overwritten here but refused by ``hardening.py``, which
sees the final create request.
"""

from __future__ import annotations

from collections.abc import Sequence

from .hardening import NO_NEW_PRIVILEGES


def gpu_environment(uuids: Sequence[str]) -> dict[str, str]:
    """Environment that keeps a CPU-only server away from every GPU.

    CUDA base images set ``NVIDIA_VISIBLE_DEVICES=all``; with the NVIDIA
    runtime as Docker's default that would expose every GPU. ``void`` hides
    them all. For GPU servers Docker's nvidia driver sets the variable from
    the device request itself.
    """
    return {} if uuids else {"NVIDIA_VISIBLE_DEVICES": "void"}


def activity_environment(gpu_idle_timeout: float) -> dict[str, str]:
    """How often the server reports kernel and terminal activity to the hub.

    JupyterHub's single-user server reports every 300 s by default: GPU idle
    reclaim, which reads that activity, would miss up to 5 minutes of it. A
    quarter of the idle timeout (1 to 300 s) keeps reports well inside the window.
    """
    if gpu_idle_timeout <= 0:
        return {}
    return {"JUPYTERHUB_ACTIVITY_INTERVAL": str(max(1, min(300, int(gpu_idle_timeout // 4))))}


def device_requests(uuids: Sequence[str]) -> list[dict]:
    """Exactly these devices, by UUID, never by count (dockerspawner#331)."""
    if not uuids:
        return []
    return [{"driver": "nvidia", "device_ids": list(uuids), "capabilities": [["gpu"]]}]


def required_host_config(
    uuids: Sequence[str], shm_size: int, pids_limit: int, configured: dict | None = None
) -> dict:
    """The admin's ``extra_host_config`` with GPU devices, limits and hardening on top.

    No new privileges, all capabilities dropped; the admin's other
    ``security_opt`` entries are kept. ``privileged`` and ``cap_add`` are left
    as configured so that the check before create refuses them, naming them.
    """
    configured = dict(configured or {})
    security_opt = [opt for opt in configured.get("security_opt") or [] if opt != NO_NEW_PRIVILEGES]
    host_config = configured | {
        "security_opt": security_opt + [NO_NEW_PRIVILEGES],
        "cap_drop": ["ALL"],
        "shm_size": shm_size,
        "pids_limit": pids_limit,
        "device_requests": device_requests(uuids),
    }
    return host_config
