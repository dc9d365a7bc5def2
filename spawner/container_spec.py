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


def sharing_environment(uuids: Sequence[str], share: int) -> dict[str, str]:
    """Hints for a server whose GPUs are shared ``share`` ways: advisory, nothing
    enforces them (time-slicing does not partition memory).

    ``GPUHUB_GPU_SHARE`` and ``GPUHUB_GPU_MEMORY_FRACTION`` (1/N) for the user's
    own code, e.g. PyTorch's ``torch.cuda.set_per_process_memory_fraction``.
    JAX and TensorFlow take most of a GPU's memory at their first use, which
    would starve the other sharers; their documented variables make them take
    1/N (``XLA_PYTHON_CLIENT_MEM_FRACTION``) or grow as needed
    (``TF_FORCE_GPU_ALLOW_GROWTH``). ``PYTORCH_CUDA_ALLOC_CONF`` is not set:
    only recent PyTorch releases know a memory-fraction key there, and older
    ones refuse unknown keys when CUDA starts.
    """
    if not uuids or share <= 1:
        return {}
    fraction = f"{1 / share:.4g}"
    return {
        "GPUHUB_GPU_SHARE": str(share),
        "GPUHUB_GPU_MEMORY_FRACTION": fraction,
        "XLA_PYTHON_CLIENT_MEM_FRACTION": fraction,
        "TF_FORCE_GPU_ALLOW_GROWTH": "true",
    }


def activity_interval(idle_timeout: float) -> int:
    """How often to report activity to a judge of idleness with ``idle_timeout``:
    a quarter of it (1 to 300 s, JupyterHub's own default), well inside the window."""
    return max(1, min(300, int(idle_timeout // 4)))


def activity_environment(gpu_idle_timeout: float) -> dict[str, str]:
    """How often the server reports kernel and terminal activity to the hub.

    JupyterHub's single-user server reports every 300 s by default: GPU idle
    reclaim, which reads that activity, would miss up to 5 minutes of it.
    """
    if gpu_idle_timeout <= 0:
        return {}
    return {"JUPYTERHUB_ACTIVITY_INTERVAL": str(activity_interval(gpu_idle_timeout))}


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
