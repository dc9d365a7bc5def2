"""What GPUs this host has and how busy they are, read through NVML.

Read-only: nothing here decides who gets a GPU (see ``allocator.py``).
NVML calls block, so each reading runs on a thread of its own, never on the
hub's event loop and never in DockerSpawner's Docker thread (a slow image
pull must not delay GPU discovery, nor the other way round).

NVML never stalls the hub: a reading that takes longer than ``timeout`` is
answered as "NVML unavailable" (a wedged GPU or driver can block an NVML
call for minutes), and a failed ``nvmlInit`` is tried again with backoff
(a hub started before the driver loaded finds its GPUs without a restart).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import threading
import time
from dataclasses import dataclass, field

import pynvml

from .nvml_reasons import no_answer_reason, plain_reason, raw_text

DEFAULT_TIMEOUT = 10.0
"""Seconds an NVML reading may take before GPUs count as unavailable."""
INIT_RETRY_FIRST = 5.0
"""Seconds after a failed ``nvmlInit`` before the next try; doubles per failure..."""
INIT_RETRY_LONGEST = 300.0
"""...up to this many seconds between tries."""


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
    unavailable_reason: str = ""  # why NVML is unavailable, in plain words (CPU-only mode)
    mig_parents: tuple[str, ...] = field(default=())  # UUIDs of MIG-enabled GPUs
    nvml_error: str = ""  # NVML's own text for the failure, for admins and the log

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


class InitRetry:
    """When to try ``nvmlInit`` again after it failed. Pure: no I/O.

    Tries are made by readings, not by a loop of their own (nothing to stop
    at shutdown), so this only says whether a try is due: ``first`` seconds
    after a failure, doubling with each failure up to ``longest``.
    """

    def __init__(self, first: float = INIT_RETRY_FIRST, longest: float = INIT_RETRY_LONGEST):
        self.first, self.longest = first, longest
        self.failures = 0
        self.next_try = 0.0  # time.monotonic() from which a try is due

    def due(self, now: float) -> bool:
        return now >= self.next_try

    def failed(self, now: float) -> float:
        """Record a failed try at ``now``; return the seconds until the next one."""
        delay = min(self.first * 2 ** min(self.failures, 32), self.longest)
        self.failures += 1
        self.next_try = now + delay
        return delay

    def succeeded(self) -> None:
        self.failures, self.next_try = 0, 0.0


@dataclass
class _Reading:
    """One NVML pass, on a daemon thread of its own."""

    started: float  # time.monotonic()
    result: concurrent.futures.Future
    stuck: bool = False  # it ran past the timeout (said once in the log)


class NvmlInventory:
    """Reads the host's GPUs through NVML, off the event loop, with a timeout.

    When NVML cannot be used (no library, driver not loaded, a call that does
    not answer within ``timeout`` seconds), a reading is an empty
    ``nvml_available=False`` inventory whose ``unavailable_reason`` says why
    in plain words: the hub runs CPU-only until NVML answers again. Each
    episode is logged once when it starts and once when it ends.
    """

    def __init__(
        self,
        log: logging.Logger | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        init_retry: InitRetry | None = None,
    ):
        self.log = log or logging.getLogger(__name__)
        self.timeout = timeout
        self._init_retry = init_retry or InitRetry()
        self._initialized = False
        self._unavailable: Inventory | None = None  # answer while init waits for its next try
        self._failure_logged = ""  # the reason of the failure episode under way, "" if none
        # Guards _reading, _latest and _Reading.stuck, which the reading
        # thread and the event loop both touch: assignments only, no I/O.
        self._state_lock = threading.Lock()
        self._reading: _Reading | None = None
        self._latest: tuple[float, Inventory] | None = None  # (monotonic time, reading)

    # ---- on the reading thread ------------------------------------------
    def _unavailable_now(self, error: pynvml.NVMLError, what: str, retry_in: float) -> Inventory:
        """The inventory for an NVML failure; logged when a new episode starts."""
        reason = plain_reason(error)
        if reason != self._failure_logged:
            self._failure_logged = reason
            self.log.warning(
                "%s: %s (NVML: %s). Running CPU-only: every server gets 0 GPUs. "
                "Trying again in %g s, then less often (at most every %g s); "
                "no hub restart needed once the driver works.",
                what, reason, raw_text(error), retry_in, self._init_retry.longest,
            )
        return Inventory(nvml_available=False, unavailable_reason=reason, nvml_error=raw_text(error))

    def _ensure_init(self) -> Inventory | None:
        """None once NVML is initialised; else the inventory to answer with."""
        if self._initialized:
            return None
        if not self._init_retry.due(time.monotonic()):
            return self._unavailable
        try:
            pynvml.nvmlInit()
        except pynvml.NVMLError as error:
            delay = self._init_retry.failed(time.monotonic())
            self._unavailable = self._unavailable_now(error, "NVML unavailable", delay)
            return self._unavailable
        self._init_retry.succeeded()
        self._initialized = True
        return None

    def _start_over(self, error: pynvml.NVMLError) -> Inventory:
        """NVML failed after init (driver unloaded or replaced): init again later."""
        self._initialized = False
        try:
            pynvml.nvmlShutdown()
        except pynvml.NVMLError:
            pass  # nothing to release: the driver is gone already
        delay = self._init_retry.failed(time.monotonic())
        self._unavailable = self._unavailable_now(error, "NVML stopped answering", delay)
        return self._unavailable

    def read(self) -> Inventory:
        """Read every device now (blocking: call through :meth:`snapshot`)."""
        failure = self._ensure_init()
        if failure is not None:
            return failure
        try:
            count = pynvml.nvmlDeviceGetCount()
            driver_version = _text(pynvml.nvmlSystemGetDriverVersion())
        except pynvml.NVMLError as error:
            return self._start_over(error)
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
        inventory = Inventory(
            gpus=tuple(gpus),
            driver_version=driver_version,
            mig_parents=tuple(mig_parents),
        )
        if self._failure_logged:
            self._failure_logged = ""
            self.log.info(
                "NVML answers again (driver %s): %d healthy GPU(s) can be handed out",
                driver_version, len(inventory.healthy),
            )
        return inventory

    def _run_reading(self, reading: _Reading) -> None:
        try:
            inventory = self.read()
        except BaseException as error:  # a bug: hand it to the waiters, never leave them waiting
            with self._state_lock:
                self._reading = None
            reading.result.set_exception(error)
            return
        with self._state_lock:
            self._latest = (reading.started, inventory)
            self._reading = None
            stuck = reading.stuck
        if stuck:
            self.log.info(
                "NVML answered again after %.0f s: NVML readings resume",
                time.monotonic() - reading.started,
            )
        reading.result.set_result(inventory)

    # ---- on the event loop ------------------------------------------------
    def latest(self) -> Inventory | None:
        """The last reading, however old; None before the first."""
        with self._state_lock:
            return self._latest[1] if self._latest else None

    async def snapshot(self, max_age: float = 1.0) -> Inventory:
        """A reading at most ``max_age`` seconds old, or "unavailable" within ``timeout``.

        Callers that ask while a reading runs share it, so a burst of 50
        spawns costs one NVML pass, and a spawn's option check and its claim
        share one. Claims never depend on NVML freshness (the claim table is
        authoritative); a second-old reading only delays noticing a job that
        started outside the hub by that second.

        A reading that runs past the timeout cannot be interrupted (its
        thread is stuck in the driver), and on a wedged driver another call
        would hang as well: so no new reading starts while it runs (at most
        one stuck thread), and every caller meanwhile gets the "did not
        answer" inventory at once. When the stuck call returns, the next
        snapshot reads afresh.
        """
        start = None
        with self._state_lock:
            latest = self._latest
            if latest is not None and time.monotonic() - latest[0] <= max_age:
                return latest[1]
            reading = self._reading
            if reading is None:
                result = concurrent.futures.Future()
                # Running from the start: a waiter that gives up (timeout,
                # a cancelled spawn) never cancels the reading others share.
                result.set_running_or_notify_cancel()
                reading = start = self._reading = _Reading(time.monotonic(), result)
        if start is not None:
            threading.Thread(
                target=self._run_reading, args=(start,), name="gpuhub-nvml", daemon=True
            ).start()
        remaining = reading.started + self.timeout - time.monotonic()
        if remaining > 0:
            try:
                return await asyncio.wait_for(
                    asyncio.shield(asyncio.wrap_future(reading.result)), remaining
                )
            except asyncio.TimeoutError:
                pass
        return self._no_answer(reading)

    def _no_answer(self, reading: _Reading) -> Inventory:
        with self._state_lock:
            first = not reading.stuck and self._reading is reading
            reading.stuck = True
        if first:
            self.log.error(
                "NVML has not answered for %g s (a GPU or the driver may be wedged): "
                "no GPU can be assigned. The call cannot be interrupted; its thread is "
                "left waiting and no other NVML call is made until it returns.",
                self.timeout,
            )
        return Inventory(
            nvml_available=False,
            unavailable_reason=no_answer_reason(self.timeout),
            nvml_error=f"no answer within {self.timeout:g} s",
        )
