"""What every gate check shares: outcomes, and what the container was asked for.
Standard library only (the gate runs in the image's own Python)."""

import os
import socket
import uuid

NO_GPU = "no GPU visible: CUDA checks skipped"


class Skip(Exception):
    """The check does not apply here (the message says why)."""


class CheckFailed(Exception):
    """The check ran and found the image wrong (the message says how)."""


def mib(n_bytes):
    return f"{n_bytes / 2**20:.1f} MiB"


def requested_gpus():
    """NVIDIA_VISIBLE_DEVICES as the container runtime set it, '' when no GPU was asked for."""
    value = os.environ.get("NVIDIA_VISIBLE_DEVICES", "").strip()
    return "" if value.lower() in ("", "void", "none") else value


def require_cuda(torch):
    """Skip on machines without GPUs; fail where GPUs were asked for but CUDA sees none."""
    if torch.cuda.is_available():
        return
    if not requested_gpus():
        raise Skip(NO_GPU)
    raise CheckFailed(
        f"NVIDIA_VISIBLE_DEVICES={requested_gpus()} but torch.cuda.is_available() is False "
        f"(torch built for CUDA {torch.version.cuda}; a CPU-only wheel, or no driver mounted?)"
    )


def cuda_uuid(torch, index):
    """The device's UUID as NVIDIA_VISIBLE_DEVICES spells it (GPU-…), None where torch < 2.1."""
    raw = getattr(torch.cuda.get_device_properties(index), "uuid", None)
    if raw is None:
        return None
    text = str(uuid.UUID(bytes=bytes(raw.bytes))) if hasattr(raw, "bytes") else str(raw)
    return text if text.startswith(("GPU-", "MIG-")) else f"GPU-{text}"


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]
