"""One definition of what state a GPU is in, for every part of gpuhub. Pure, no I/O.

The allocator, the spawn form, the usage pages and the metrics all call
:func:`status_of`, so "free" means the same thing everywhere:

- **unhealthy**: NVML could not read it (lost GPU, no UUID): never handed out;
- **held**: a server holds it (a claim, or a live container's GPU label on
  the engine, whichever hub made it), or servers that share it fill all its
  places;
- **shared**: servers that agreed to share it N ways (``gpu_share`` N > 1)
  hold k < N of its places: it has a place for a server of the same share
  only (exclusive and shared servers never share a GPU, nor different N);
- **busy**: nobody holds it, but a compute process runs on it, or at least
  ``busy_memory`` bytes of its memory are in use (jobs outside the hub,
  zombie contexts): not handed out;
- **free**: none of these: it can be handed out.

:func:`has_place` says whether a server of a given share may get a device.
Whether a *held* GPU is being used is another question, answered by
:func:`in_use` (the usage service's *active*/*idle*, and GPU idle reclaim).
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass

from .inventory import GPU

DEFAULT_BUSY_MEMORY = 1024**3  # bytes: 1 GiB (GPUDockerSpawner.busy_memory_threshold)
DEFAULT_IN_USE_UTILIZATION = 5  # percent (GpuUsageApp.active_utilization)


class Status(str, enum.Enum):
    FREE = "free"
    HELD = "held"
    SHARED = "shared"
    BUSY = "busy"
    UNHEALTHY = "unhealthy"


@dataclass(frozen=True)
class GPUStatus:
    status: Status
    reason: str = ""  # for a person: why it is not free ("" when free)
    holder: str | None = None  # who holds it, when held or shared ("ann, bob")
    share: int = 1  # the share of its holders (1: exclusive)
    places: int = 0  # places left for servers of that share (shared only)


@dataclass(frozen=True)
class Holder:
    """One server on a device: its name for people and its share (1: exclusive)."""

    name: str
    share: int = 1


def matches_model(gpu_name: str, model: str) -> bool:
    """A device is of ``model`` when its NVML name contains it, ignoring case
    ("a100" matches "NVIDIA A100-SXM4-80GB")."""
    return model.strip().casefold() in gpu_name.casefold()


def has_place(status: GPUStatus, share: int = 1) -> bool:
    """Whether a server that shares ``share`` ways (1: exclusive) may get the device."""
    return status.status is Status.FREE or (
        status.status is Status.SHARED and status.share == share and status.places > 0
    )


def format_bytes(n: float) -> str:
    """1288490188 -> '1.2 GiB'."""
    if n < 1024:
        return f"{n:.0f} B"
    for unit in ("KiB", "MiB", "GiB"):
        n /= 1024
        if n < 1024 or unit == "GiB":
            break
    return f"{n:.1f} {unit}"


def status_of(
    gpu: GPU, holders: Sequence[Holder] | None, busy_memory: int = DEFAULT_BUSY_MEMORY
) -> GPUStatus:
    """The state of ``gpu``, given the servers on it (none: nobody)."""
    holders = tuple(holders or ())
    if not gpu.healthy or not gpu.uuid:
        return GPUStatus(Status.UNHEALTHY, f"unhealthy ({gpu.error or 'no UUID'})")
    if holders:
        return _held(holders)
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


def _held(holders: tuple[Holder, ...]) -> GPUStatus:
    names = ", ".join(holder.name for holder in holders)
    shares = {holder.share for holder in holders}
    share = shares.pop() if len(shares) == 1 else 1  # mixed shares (a race of hubs): full
    if share == 1:
        return GPUStatus(Status.HELD, f"held by {names}", names)
    if len(holders) >= share:
        return GPUStatus(Status.HELD, f"held by {names} (shared by {share}, full)", names, share)
    return GPUStatus(
        Status.SHARED,
        f"shared by {names} ({len(holders)} of {share} places used)",
        names, share, places=share - len(holders),
    )


def in_use(utilization: int | None, processes: int, threshold: int = DEFAULT_IN_USE_UTILIZATION) -> bool:
    """Whether a GPU is being used: a compute process on it, or utilization at
    or above ``threshold`` %. An unknown utilization (None) with no process is not use."""
    return processes > 0 or (utilization or 0) >= threshold
