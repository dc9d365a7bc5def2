"""Spawn speed: GPUDockerSpawner against stock DockerSpawner, in one run.

Both hubs run side by side on the private test engine, same image, same
container settings (network, volume, limits, hardening); GPUDockerSpawner also
reads (fake, 64-GPU) NVML and assigns a GPU to every server. Measured through
the REST API:

  sequential: median spawn-to-ready over 10 spawns, one at a time,
              alternating between the two hubs
  burst:      50 users spawning at once, time until all are ready

Run with `make bench` (it prepares the engine and image first).
Targets: sequential ratio <= 1.05, burst ratio <= 1.10.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from tests.fakes.fake_gpus import FakeNVML, build_library
from tests.integration.hubrig import IMAGE, NETWORK, PREFIX, Hub, docker_client, remove_test_objects

STOCK = f"""
c.JupyterHub.spawner_class = "docker"
c.DockerSpawner.image = {IMAGE!r}
c.DockerSpawner.prefix = {PREFIX!r}
c.DockerSpawner.network_name = {NETWORK!r}
c.DockerSpawner.remove = True
c.DockerSpawner.volumes = {{"{PREFIX}-user-{{username}}": "/home/jovyan"}}
c.DockerSpawner.mem_limit = "1G"
c.DockerSpawner.cpu_limit = 1.0
c.DockerSpawner.http_timeout = 120
c.DockerSpawner.start_timeout = 300
c.DockerSpawner.extra_create_kwargs = {{"user": "1000"}}
c.DockerSpawner.extra_host_config = {{
    "shm_size": 8 << 30, "pids_limit": 4096, "privileged": False,
    "security_opt": ["no-new-privileges:true"], "cap_drop": ["ALL"],
}}
"""
OURS = """
c.GPUDockerSpawner.start_timeout = 300
"""


KINDS = {"docker": (STOCK, {}), "gpu-docker": (OURS, {"gpus": 1})}


def spawn_to_ready(hub: Hub, name: str, options: dict) -> float:
    start = time.perf_counter()
    hub.start_server(name, options)
    return time.perf_counter() - start


def burst(hub: Hub, options: dict, names: list[str]) -> float:
    start = time.perf_counter()
    with ThreadPoolExecutor(len(names)) as pool:
        list(pool.map(lambda name: hub.start_server(name, options), names))
    elapsed = time.perf_counter() - start
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(hub.stop_server, names))
    return elapsed


def measure(workdir: Path, runs: int, users: int) -> dict:
    """Both hubs run side by side; sequential spawns alternate between them."""
    hubs = {}
    for kind, (extra, _) in KINDS.items():
        nvml = FakeNVML(workdir / kind / "gpus.state")
        nvml.write(FakeNVML.make_gpus(64))
        hubs[kind] = Hub(workdir=workdir / kind, nvml=nvml, extra_config=extra).start()
    try:
        times = {kind: [] for kind in KINDS}
        for kind, hub in hubs.items():
            hub.create_users(f"seq-{kind}", *[f"burst-{kind}-{i:02d}" for i in range(users)])
        for _ in range(runs):
            for kind, hub in hubs.items():
                options = KINDS[kind][1]
                times[kind].append(spawn_to_ready(hub, f"seq-{kind}", options))
                hub.stop_server(f"seq-{kind}")
        results = {kind: {"sequential": statistics.median(t)} for kind, t in times.items()}
        for kind, hub in hubs.items():
            names = [f"burst-{kind}-{i:02d}" for i in range(users)]
            results[kind]["burst"] = burst(hub, KINDS[kind][1], names)
        return results
    finally:
        for hub in hubs.values():
            hub.stop()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10, help="sequential spawns (default 10)")
    parser.add_argument("--users", type=int, default=50, help="users in the burst (default 50)")
    args = parser.parse_args()
    build_library()
    client = docker_client()
    remove_test_objects(client)
    try:
        with tempfile.TemporaryDirectory(prefix="gpuhub-bench-") as workdir:
            results = measure(Path(workdir), args.runs, args.users)
    finally:
        remove_test_objects(client)
    stock, ours = results["docker"], results["gpu-docker"]
    print(f"\n{'':34}{'stock DockerSpawner':>22}{'GPUDockerSpawner':>20}{'ratio':>8}")
    for key, label in (("sequential", f"median spawn-to-ready ({args.runs} seq.)"),
                       ("burst", f"{args.users}-user burst, all ready")):
        print(f"{label:34}{stock[key]:>21.2f}s{ours[key]:>19.2f}s{ours[key] / stock[key]:>8.3f}")


if __name__ == "__main__":
    main()
