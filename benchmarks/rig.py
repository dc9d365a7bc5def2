"""What the spawn benchmarks share: our hub and a stock DockerSpawner hub side by
side on the private test engine, and spawns measured through the REST API.

Both hubs are tests/integration/hubrig.py's real JupyterHub (config/jupyterhub_config.py,
configurable-http-proxy, fake NVML); the stock one swaps in DockerSpawner with the
same image and the same container settings (network, volume, limits, hardening).
Timeouts are the shipped ones on both sides: JupyterHub's and DockerSpawner's
defaults for stock, config/jupyterhub_config.py and the spawner's for ours.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.fakes.fake_gpus import FakeNVML, build_library
from tests.integration.hubrig import IMAGE, NETWORK, PREFIX, Hub, docker_client, remove_test_objects

# Container limits of both hubs, set here once (ours: on top of the shipped config).
MEM_LIMIT, CPU_LIMIT = "1G", 1.0
STOCK = f"""
c.JupyterHub.spawner_class = "docker"
c.DockerSpawner.image = {IMAGE!r}
c.DockerSpawner.prefix = {PREFIX!r}
c.DockerSpawner.network_name = {NETWORK!r}
c.DockerSpawner.remove = True
c.DockerSpawner.volumes = {{"{PREFIX}-user-{{username}}": "/home/jovyan"}}
c.DockerSpawner.mem_limit = {MEM_LIMIT!r}
c.DockerSpawner.cpu_limit = {CPU_LIMIT!r}
c.DockerSpawner.extra_create_kwargs = {{"user": "1000"}}
c.DockerSpawner.extra_host_config = {{
    "shm_size": 8 << 30, "pids_limit": 4096, "privileged": False,
    "security_opt": ["no-new-privileges:true"], "cap_drop": ["ALL"],
}}
"""
# hubrig's test override may raise timeouts for slow test machines; a benchmark
# runs the shipped ones, so drop whatever it set (this file is the same sub-config).
OURS = f"""
for name in ("http_timeout", "start_timeout"):
    c.GPUDockerSpawner.pop(name, None)
c.GPUDockerSpawner.mem_limit = {MEM_LIMIT!r}
c.GPUDockerSpawner.cpu_limit = {CPU_LIMIT!r}
"""
# kind -> (hub config, spawn options); ours also asks for a (fake) GPU per server
KINDS = {"docker": (STOCK, {}), "gpu-docker": (OURS, {"gpus": 1})}
LABELS = {"docker": "stock DockerSpawner", "gpu-docker": "GPUDockerSpawner"}


@contextmanager
def engine():
    """The fake NVML library built and the engine clear of this prefix's leftovers, before and after."""
    build_library()
    client = docker_client()
    remove_test_objects(client)
    try:
        yield client
    finally:
        remove_test_objects(client)


@contextmanager
def hubs(workdir: Path, gpus: int = 64):
    """Both hubs started (each with its own fake GPUs), stopped on the way out."""
    started = {}
    try:
        for kind, (extra, _) in KINDS.items():
            nvml = FakeNVML(workdir / kind / "gpus.state")
            nvml.write(FakeNVML.make_gpus(gpus))
            started[kind] = Hub(workdir=workdir / kind, nvml=nvml, extra_config=extra).start()
        yield started
    finally:
        for hub in started.values():
            hub.stop()


@dataclass(frozen=True)
class Outcome:
    """How one spawn ended, ``seconds`` after its start."""

    user: str
    ready: bool
    seconds: float
    reason: str = ""  # why it failed, as the hub said it (progress event, or the POST's answer)


def spawn(hub: Hub, name: str, options: dict, start: float | None = None) -> Outcome:
    """Ask for a server and wait for it: ready, or failed with the hub's reason. Never raises."""
    start = time.perf_counter() if start is None else start
    try:
        response = hub.spawn(name, options)
        if response.status_code not in (201, 202):
            return Outcome(name, False, time.perf_counter() - start, f"POST {response.status_code}: {response.text[:200]}")
        state, message = hub.wait_spawn(name)
    except Exception as error:  # a benchmark reports every failure, and goes on
        return Outcome(name, False, time.perf_counter() - start, f"{type(error).__name__}: {error}")
    ready = state == "ready"
    reason = "" if ready else message or "no reason: its progress stream ended without a failure event"
    return Outcome(name, ready, time.perf_counter() - start, reason)


def burst(hub: Hub, names: list[str], options: dict) -> list[Outcome]:
    """Every user presses Start at once; each outcome is timed from that moment."""
    start = time.perf_counter()
    with ThreadPoolExecutor(len(names)) as pool:
        return list(pool.map(lambda name: spawn(hub, name, options, start), names))


def stop_all(hub: Hub, names: list[str]):
    """Stop the servers (failed ones too: their containers may linger), eight at a time."""
    def stop(name):
        try:
            hub.stop_server(name)
        except Exception as error:  # one stuck stop must not hide the figures
            print(f"  could not stop {name}'s server: {error}")
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(stop, names))


def user_names(kind: str, count: int, what: str = "burst") -> list[str]:
    return [f"{what}-{kind}-{i:02d}" for i in range(count)]
