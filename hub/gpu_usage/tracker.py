"""Pure bookkeeping between samples: the latest sample, an hour of history,
idle time per GPU and GPU-seconds per user. No I/O; the sampler feeds it.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from gpuhub.spawner.gpu_status import (
    DEFAULT_BUSY_MEMORY, DEFAULT_IN_USE_UTILIZATION, GPUStatus, Holder, in_use, status_of,
)
from gpuhub.spawner.inventory import GPU, Inventory


@dataclass(frozen=True)
class Server:
    """A running hub container, from its gpuhub.* labels."""

    container_id: str
    user: str
    server: str  # "" for the default server
    gpus: tuple[str, ...]
    created: float  # epoch seconds: when it got its GPUs
    image: str = ""  # the image it runs: repo digest or image ID (labels.IMAGE_LABEL)
    share: int = 1  # servers per GPU it shares with (labels.SHARE_LABEL; 1: exclusive)
    lease: float = 0  # seconds it may hold GPUs (labels.LEASE_LABEL); 0: no lease
    idle_timeout: float = 0  # seconds of GPU idleness before reclaim (labels.IDLE_TIMEOUT_LABEL); 0: never
    hub: str = ""  # the hub that runs it (labels.HUB_LABEL)
    queue_wait: float = 0  # seconds its start waited in the GPU queue (labels.QUEUE_WAIT_LABEL)
    home_volume: str = ""  # the volume mounted at the home directory ("" : none)
    ends: float = 0  # epoch seconds its cohort ends, GPUs or not (labels.ENDS_LABEL); 0: never


@dataclass(frozen=True)
class Process:
    """A compute process on a device, attributed to a hub server or not."""

    pid: int
    used_memory: int | None
    holder: Server | None  # None: outside the hub


@dataclass(frozen=True)
class Device:
    """One device in one sample."""

    gpu: GPU
    holder: Server | None
    processes: tuple[Process, ...]
    status: GPUStatus  # free / held / busy / unhealthy: gpu_status, as the spawner sees it
    active: bool  # in use: utilization at/above the threshold, or a process on it
    idle_seconds: float  # since last active (or first seen / handed out); 0 while active
    held_seconds: float | None  # None when free


@dataclass(frozen=True)
class Sample:
    time: float
    devices: tuple[Device, ...] = ()
    servers: tuple[Server, ...] = ()
    nvml_available: bool = True
    unavailable_reason: str = ""

    def device(self, uuid: str) -> Device | None:
        return next((d for d in self.devices if d.gpu.uuid == uuid), None)

    def servers_of(self, user: str) -> tuple[Server, ...]:
        return tuple(s for s in self.servers if s.user == user)

    @property
    def outside_processes(self) -> list[tuple[Device, Process]]:
        return [(d, p) for d in self.devices for p in d.processes if p.holder is None]


@dataclass(frozen=True)
class Point:
    time: float
    utilization: int | None
    memory_used: int


class History:
    """Per-device readings over the last ``window`` seconds."""

    def __init__(self, window: float = 3600):
        self.window = window
        self._points: dict[str, deque[Point]] = {}

    def add(self, uuid: str, point: Point) -> None:
        points = self._points.setdefault(uuid, deque())
        points.append(point)
        while points and points[0].time < point.time - self.window:
            points.popleft()

    def points(self, uuid: str, since: float | None = None) -> list[Point]:
        points = self._points.get(uuid, ())
        return [p for p in points if since is None or p.time >= since]

    def forget_missing(self, present: set[str]) -> None:
        for uuid in set(self._points) - present:
            del self._points[uuid]


def holder_name(server: Server | None) -> str | None:
    """How pages and logs name a holder: "ann", or "ann/big" for a named server."""
    if server is None:
        return None
    return f"{server.user}/{server.server}" if server.server else server.user


def held_gpu_seconds(servers: tuple[Server, ...], elapsed: float) -> dict[str, float]:
    """GPU-seconds per user for ``elapsed`` seconds of holding: GPUs held x time."""
    seconds: dict[str, float] = {}
    for server in servers:
        if server.gpus and elapsed > 0:
            seconds[server.user] = seconds.get(server.user, 0.0) + len(server.gpus) * elapsed
    return seconds


class Tracker:
    """Turns readings into samples; remembers what spans samples.

    ``active_utilization``: a device at or above this utilization % (or with a
    process on it) is active, otherwise idle. ``busy_memory``: the spawner's
    threshold for :func:`~gpuhub.spawner.gpu_status.status_of` (a GPU nobody
    holds with this much memory in use is busy, not free). ``max_gap``: a
    longer gap between samples (the service was down) is not counted as held time,
    and idle time counts again from after it: nobody saw the GPUs meanwhile.
    """

    def __init__(self, window: float = 3600, active_utilization: int = DEFAULT_IN_USE_UTILIZATION,
                 max_gap: float = 60, busy_memory: int = DEFAULT_BUSY_MEMORY):
        self.history = History(window)
        self.active_utilization = active_utilization
        self.busy_memory = busy_memory
        self.max_gap = max_gap
        self._active_at: dict[str, float] = {}  # uuid -> last time seen active
        self._first_seen: dict[str, float] = {}
        self._previous: float | None = None
        self._seen_since: float | None = None  # start of the unbroken run of samples
        self.latest: Sample | None = None

    def update(
        self,
        now: float,
        inventory: Inventory,
        servers: tuple[Server, ...],
        owners: dict[int, str | None],
    ) -> tuple[Sample, dict[str, float]]:
        """One new sample and the GPU-seconds per user since the previous one.

        ``owners`` maps NVML host PIDs to container IDs (from attribution).
        """
        if self._previous is None or now - self._previous > self.max_gap:
            self._seen_since = now
        holder_of = {uuid: server for server in servers for uuid in server.gpus}
        sharers = {}  # uuid -> every server on it (several on a shared GPU)
        for server in servers:
            for uuid in server.gpus:
                sharers.setdefault(uuid, []).append(Holder(holder_name(server), server.share))
        by_container = {server.container_id: server for server in servers}
        devices = []
        for gpu in inventory.gpus:
            key = gpu.uuid or f"index:{gpu.index}"
            self._first_seen.setdefault(key, now)
            holder = holder_of.get(gpu.uuid)
            processes = tuple(
                Process(p.pid, p.used_memory, by_container.get(owners.get(p.pid) or ""))
                for p in gpu.processes
            )
            active = in_use(gpu.utilization, len(processes), self.active_utilization)
            if active:
                self._active_at[key] = now
            idle_from = max(
                self._active_at.get(key, self._first_seen[key]),
                self._seen_since,
                holder.created if holder else 0,
            )
            devices.append(
                Device(
                    gpu=gpu,
                    holder=holder,
                    processes=processes,
                    status=status_of(gpu, sharers.get(gpu.uuid), self.busy_memory),
                    active=active,
                    idle_seconds=max(0.0, now - idle_from),
                    held_seconds=max(0.0, now - holder.created) if holder else None,
                )
            )
            self.history.add(key, Point(now, gpu.utilization, gpu.memory_used))
        self.history.forget_missing({gpu.uuid or f"index:{gpu.index}" for gpu in inventory.gpus})
        elapsed = 0.0 if self._previous is None else now - self._previous
        if elapsed > self.max_gap:
            elapsed = 0.0
        self._previous = now
        sample = Sample(
            time=now,
            devices=tuple(devices),
            servers=servers,
            nvml_available=inventory.nvml_available,
            unavailable_reason=inventory.unavailable_reason,
        )
        self.latest = sample
        return sample, held_gpu_seconds(servers, elapsed)
