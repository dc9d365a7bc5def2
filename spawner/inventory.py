"""What GPUs this host has and how busy they are, read through NVML.

Read-only: nothing here decides who gets a GPU (see ``allocator.py``).
NVML calls block, so they run on one dedicated thread, never on the hub's
event loop and never in DockerSpawner's Docker thread (a slow image pull
must not delay GPU discovery, nor the other way round).
"""

from __future__ import annotations

import asyncio
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import pynvml


@dataclass(frozen=True)
class GPUProcess:
    """A compute process NVML sees on a GPU (host PID namespace)."""

    pid: int
    used_memory: int | None  # bytes; None when the driver does not say


@dataclass(frozen=True)
class GPU:
    """One assignable device: a whole GPU, or a MIG device of a MIG-enabled GPU."""

    index: str  # "3" for a GPU, "3:1" for MIG device 1 of GPU 3
    uuid: str  # "GPU-…" or "MIG-…"; "" when an unhealthy GPU did not say
    name: str = ""
    memory_total: int = 0
    memory_used: int = 0
    utilization: int | None = None  # percent; NVML has none for MIG devices
    temperature: int | None = None  # °C
    power_watts: float | None = None
    processes: tuple[GPUProcess, ...] = ()
    healthy: bool = True
    error: str = ""  # why it is unhealthy
    parent_uuid: str | None = None  # set for MIG devices


@dataclass(frozen=True)
class Inventory:
    """One reading of every assignable device on the host."""

    gpus: tuple[GPU, ...] = ()
    nvml_available: bool = True
    driver_version: str = ""
    unavailable_reason: str = ""  # why NVML is unavailable (CPU-only mode)
    mig_parents: tuple[str, ...] = field(default=())  # UUIDs of MIG-enabled GPUs

    @property
    def healthy(self) -> tuple[GPU, ...]:
        return tuple(gpu for gpu in self.gpus if gpu.healthy and gpu.uuid)


def _text(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _optional(query, *args):
    """A metric some GPUs do not support: None instead of an error.

    Any other error (a lost GPU above all) propagates, so the GPU is
    reported unhealthy rather than half-read.
    """
    try:
        return query(*args)
    except pynvml.NVMLError_NotSupported:
        return None


def _processes(handle) -> tuple[GPUProcess, ...]:
    return tuple(
        GPUProcess(pid=p.pid, used_memory=p.usedGpuMemory)
        for p in pynvml.nvmlDeviceGetComputeRunningProcesses(handle)
    )


def _read_device(handle, index: str, parent_uuid: str | None = None) -> GPU:
    memory = pynvml.nvmlDeviceGetMemoryInfo(handle)
    utilization = None
    temperature = power = None
    if parent_uuid is None:
        rates = _optional(pynvml.nvmlDeviceGetUtilizationRates, handle)
        utilization = rates.gpu if rates is not None else None
        temperature = _optional(
            pynvml.nvmlDeviceGetTemperature, handle, pynvml.NVML_TEMPERATURE_GPU
        )
        milliwatts = _optional(pynvml.nvmlDeviceGetPowerUsage, handle)
        power = milliwatts / 1000 if milliwatts is not None else None
    return GPU(
        index=index,
        uuid=_text(pynvml.nvmlDeviceGetUUID(handle)),
        name=_text(pynvml.nvmlDeviceGetName(handle)),
        memory_total=memory.total,
        memory_used=memory.used,
        utilization=utilization,
        temperature=temperature,
        power_watts=power,
        processes=_processes(handle),
        parent_uuid=parent_uuid,
    )


def _mig_devices(handle, index: int, parent_uuid: str) -> list[GPU]:
    devices = []
    for mig_index in range(pynvml.nvmlDeviceGetMaxMigDeviceCount(handle)):
        try:
            mig = pynvml.nvmlDeviceGetMigDeviceHandleByIndex(handle, mig_index)
        except pynvml.NVMLError_NotFound:
            continue
        devices.append(_read_device(mig, f"{index}:{mig_index}", parent_uuid))
    return devices


def _mig_enabled(handle) -> bool:
    try:
        current, _pending = pynvml.nvmlDeviceGetMigMode(handle)
    except (pynvml.NVMLError_NotSupported, pynvml.NVMLError_FunctionNotFound):
        return False
    return current == pynvml.NVML_DEVICE_MIG_ENABLE


def read_gpu(handle, index: int) -> tuple[list[GPU], str | None]:
    """Read GPU ``index``: its assignable devices, and its UUID if MIG is on.

    A GPU that fails a query is returned as one unhealthy device; it is
    never assigned.
    """
    uuid = ""
    try:
        uuid = _text(pynvml.nvmlDeviceGetUUID(handle))
        if _mig_enabled(handle):
            return _mig_devices(handle, index, uuid), uuid
        return [_read_device(handle, str(index))], None
    except pynvml.NVMLError as error:
        return [GPU(index=str(index), uuid=uuid, healthy=False, error=str(error))], None


class NvmlInventory:
    """Reads the host's GPUs through NVML, on its own thread.

    When the NVML library or the driver is missing, every reading is an
    empty, ``nvml_available=False`` inventory: the hub runs CPU-only.
    """

    def __init__(self, log: logging.Logger | None = None):
        self.log = log or logging.getLogger(__name__)
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="gpuhub-nvml")
        self._initialized = False
        self._init_error = ""
        self._in_flight: asyncio.Future | None = None
        self._latest: tuple[float, Inventory] | None = None  # (monotonic time, reading)

    def _ensure_init(self) -> bool:
        if self._initialized:
            return True
        if self._init_error:
            return False
        try:
            pynvml.nvmlInit()
        except pynvml.NVMLError as error:
            self._init_error = str(error) or type(error).__name__
            self.log.warning(
                "NVML unavailable (%s): running CPU-only, every server gets 0 GPUs. "
                "Install the NVIDIA driver and restart the hub to hand out GPUs.",
                self._init_error,
            )
            return False
        self._initialized = True
        return True

    def read(self) -> Inventory:
        """Read every device now (blocking: call through :meth:`snapshot`)."""
        if not self._ensure_init():
            return Inventory(nvml_available=False, unavailable_reason=self._init_error)
        try:
            count = pynvml.nvmlDeviceGetCount()
            driver_version = _text(pynvml.nvmlSystemGetDriverVersion())
        except pynvml.NVMLError as error:
            self.log.error("NVML stopped answering (%s): no GPU can be assigned", error)
            return Inventory(nvml_available=False, unavailable_reason=str(error))
        gpus: list[GPU] = []
        mig_parents: list[str] = []
        for index in range(count):
            try:
                handle = pynvml.nvmlDeviceGetHandleByIndex(index)
            except pynvml.NVMLError as error:
                gpus.append(GPU(index=str(index), uuid="", healthy=False, error=str(error)))
                continue
            devices, mig_parent = read_gpu(handle, index)
            gpus.extend(devices)
            if mig_parent:
                mig_parents.append(mig_parent)
        return Inventory(
            gpus=tuple(gpus),
            driver_version=driver_version,
            mig_parents=tuple(mig_parents),
        )

    async def snapshot(self, max_age: float = 1.0) -> Inventory:
        """A reading at most ``max_age`` seconds old.

        Callers that ask while a reading runs share it, so a burst of 50
        spawns costs one NVML pass, and a spawn's option check and its claim
        share one. Claims never depend on NVML freshness (the claim table is
        authoritative); a second-old reading only delays noticing a job that
        started outside the hub by that second.
        """
        if self._latest is not None and time.monotonic() - self._latest[0] <= max_age:
            return self._latest[1]
        if self._in_flight is None:
            loop = asyncio.get_running_loop()
            self._in_flight = asyncio.ensure_future(
                loop.run_in_executor(self._executor, self._timed_read)
            )
            self._in_flight.add_done_callback(self._clear_in_flight)
        return await asyncio.shield(self._in_flight)

    def _timed_read(self) -> Inventory:
        started = time.monotonic()
        inventory = self.read()
        self._latest = (started, inventory)
        return inventory

    def _clear_in_flight(self, _future) -> None:
        self._in_flight = None
