"""The one sampler loop: NVML (through the core's inventory), the servers'
GPU claims (Docker labels) and process attribution, every ``interval`` seconds.

Requests read the tracker's latest sample; nothing here runs per request. NVML runs
on the inventory's own thread; Docker, /proc and SQLite on one worker thread.
"""

from __future__ import annotations

import asyncio
import logging
import time
from concurrent.futures import ThreadPoolExecutor

import docker

from gpuhub.spawner import labels as gpu_labels
from gpuhub.spawner.inventory import NvmlInventory

from . import attribution
from .lifecycle import every
from .store import UsageStore
from .tracker import Sample, Server, Tracker
from .warn_once import WarnOnce


def home_volume(container: dict, home_path: str) -> str:
    """The named volume a container mounts at ``home_path``, or ""."""
    return next((mount.get("Name") or "" for mount in container.get("Mounts") or ()
                 if mount.get("Type") == "volume" and mount.get("Destination") == home_path), "")


def servers_from_containers(containers: list[dict], name_prefix: str = "",
                            home_path: str = "/home/jovyan") -> tuple[Server, ...]:
    """Hub servers from Docker's container list (``/containers/json`` entries)."""
    servers = []
    for container in containers:
        labels = container.get("Labels") or {}
        names = [n.lstrip("/") for n in container.get("Names") or []]
        if gpu_labels.USER_LABEL not in labels:
            continue
        if name_prefix and not any(n.startswith(name_prefix) for n in names):
            continue
        servers.append(
            Server(
                container_id=container["Id"],
                user=labels[gpu_labels.USER_LABEL],
                server=labels.get(gpu_labels.SERVER_LABEL, ""),
                gpus=gpu_labels.gpus_from_labels(labels),
                created=float(container.get("Created") or 0),
                image=labels.get(gpu_labels.IMAGE_LABEL) or container.get("ImageID", ""),
                share=max(1, int(gpu_labels.number_label(labels, gpu_labels.SHARE_LABEL, 1))),
                lease=gpu_labels.number_label(labels, gpu_labels.LEASE_LABEL),
                idle_timeout=gpu_labels.number_label(labels, gpu_labels.IDLE_TIMEOUT_LABEL),
                hub=labels.get(gpu_labels.HUB_LABEL, ""),
                queue_wait=gpu_labels.number_label(labels, gpu_labels.QUEUE_WAIT_LABEL),
                home_volume=home_volume(container, home_path),
                ends=gpu_labels.number_label(labels, gpu_labels.ENDS_LABEL),
            )
        )
    return tuple(servers)


class Sampler:
    """``recorders``: more bookkeeping per sample (peaks, queue waits, homes):
    each one's ``observe(sample)`` runs on the event loop and returns what its
    ``write`` then stores on the worker thread."""

    def __init__(
        self,
        store: UsageStore,
        tracker: Tracker,
        interval: float = 5.0,
        container_prefix: str = "",
        log: logging.Logger | None = None,
        home_path: str = "/home/jovyan",
        recorders=(),
    ):
        self.store = store
        self.home_path = home_path
        self.recorders = tuple(recorders)
        self.tracker = tracker
        self.interval = interval
        self.container_prefix = container_prefix
        self.log = log or logging.getLogger(__name__)
        self.inventory = NvmlInventory(self.log)
        self._nvml_missing_logged = False
        self._worker = ThreadPoolExecutor(1, thread_name_prefix="gpu-usage-io")
        self._docker: docker.DockerClient | None = None
        self._servers: tuple[Server, ...] = ()
        self._docker_state = WarnOnce(self.log, "Docker answers again: GPU holders are current")

    def _list_servers(self) -> tuple[Server, ...]:
        if self._docker is None:
            self._docker = docker.from_env()  # honours DOCKER_HOST
        containers = self._docker.api.containers(filters={"label": gpu_labels.USER_LABEL})
        return servers_from_containers(containers, self.container_prefix, self.home_path)

    async def _run(self, function, *args):
        return await asyncio.get_running_loop().run_in_executor(self._worker, function, *args)

    async def sample_once(self) -> Sample:
        inventory = await self.inventory.snapshot(max_age=0)
        if not inventory.nvml_available and not self._nvml_missing_logged:
            self.log.warning("GPU usage: NVML unavailable (%s); no GPU readings until it answers",
                             inventory.unavailable_reason)
            self._nvml_missing_logged = True
        try:
            self._servers = await self._run(self._list_servers)
            self._docker_state.worked()
        except Exception as error:  # keep the last known holders
            self._docker_state.failed(
                "Cannot list containers (%s): GPU holders are from the last good "
                "listing; check DOCKER_HOST and the Docker daemon", error,
            )
        pids = [p.pid for gpu in inventory.gpus for p in gpu.processes]
        owners = await self._run(attribution.container_ids, pids) if pids else {}
        now = time.time()
        sample, gpu_seconds = self.tracker.update(now, inventory, self._servers, owners)
        increments = self.store.add(gpu_seconds, now)
        await self._run(self.store.write, increments)
        for recorder in self.recorders:
            pending = recorder.observe(sample)
            if pending:
                await self._run(recorder.write, pending)
        return sample

    async def run(self) -> None:
        await every(self.interval, self.sample_once, self.log, "GPU sample")
