"""One definition of what state a GPU is in, for every part of gpuhub. Pure, no I/O.

The allocator, the spawn form, the usage pages and the metrics all call
:func:`status_of`, so "free" means the same thing everywhere:

- **unhealthy**: NVML could not read it (lost GPU, no UUID): never handed out;
- **held**: a server holds it (a claim, or a live container's GPU label on
  the engine, whichever hub made it);
- **busy**: nobody holds it, but a compute process runs on it, or at least
  ``busy_memory`` bytes of its memory are in use (jobs outside the hub,
  zombie contexts): not handed out;
- **free**: none of these: it can be handed out.

Whether a *held* GPU is being used is another question, answered by
:func:`in_use` (the usage service's *active*/*idle*, and GPU idle reclaim).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from .inventory import GPU

DEFAULT_BUSY_MEMORY = 1024**3  # bytes: 1 GiB (GPUDockerSpawner.busy_memory_threshold)
DEFAULT_IN_USE_UTILIZATION = 5  # percent (GpuUsageApp.active_utilization)


class Status(str, enum.Enum):
    FREE = "free"
    HELD = "held"
    BUSY = "busy"
    UNHEALTHY = "unhealthy"


@dataclass(frozen=True)
class GPUStatus:
    status: Status
    reason: str = ""  # for a person: why it is not free ("" when free)
    holder: str | None = None  # who holds it, when held


def format_bytes(n: float) -> str:
    """1288490188 -> '1.2 GiB'."""
    if n < 1024:
        return f"{n:.0f} B"
    for unit in ("KiB", "MiB", "GiB"):
        n /= 1024
        if n < 1024 or unit == "GiB":
            break
    return f"{n:.1f} {unit}"


def status_of(gpu: GPU, holder: str | None, busy_memory: int = DEFAULT_BUSY_MEMORY) -> GPUStatus:
    """The state of ``gpu``, given who holds it (None: nobody)."""
    if not gpu.healthy or not gpu.uuid:
        return GPUStatus(Status.UNHEALTHY, f"unhealthy ({gpu.error or 'no UUID'})")
    if holder is not None:
        return GPUStatus(Status.HELD, f"held by {holder}", holder)
    if gpu.processes:
        pids = ", ".join(str(p.pid) for p in gpu.processes)
        used = sum(p.used_memory or 0 for p in gpu.processes)
        return GPUStatus(
            Status.BUSY,
            f"{len(gpu.processes)} process(es) outside the hub's servers "
            f"(pid {pids}) hold {format_bytes(used)}",
        )
    if gpu.memory_used >= busy_memory:
        return GPUStatus(
            Status.BUSY,
            f"{format_bytes(gpu.memory_used)} of memory in use "
            f"(limit for a free GPU: {format_bytes(busy_memory)})",
        )
    return GPUStatus(Status.FREE)


def in_use(utilization: int | None, processes: int, threshold: int = DEFAULT_IN_USE_UTILIZATION) -> bool:
    """Whether a GPU is being used: a compute process on it, or utilization at
    or above ``threshold`` %. An unknown utilization (None) with no process is not use."""
    return processes > 0 or (utilization or 0) >= threshold
