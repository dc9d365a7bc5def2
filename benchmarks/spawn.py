"""Spawn speed: GPUDockerSpawner against stock DockerSpawner, in one run.

Both hubs run side by side on the private test engine (benchmarks/rig.py: same
image, same container settings, shipped timeouts); GPUDockerSpawner also reads
(fake, 64-GPU) NVML and assigns a GPU to every server. Measured through the
REST API:

  sequential: median spawn-to-ready over 10 spawns, one at a time,
              alternating between the two hubs
  burst:      50 users spawning at once, time until the last is ready
              (benchmarks/burst.py looks at the burst in detail)

Run with `make bench` (it prepares the engine and image first).
Targets: sequential ratio <= 1.05, burst ratio <= 1.10.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from benchmarks import rig


def spawn_to_ready(hub, name: str, options: dict) -> float:
    start = time.perf_counter()
    hub.start_server(name, options)
    return time.perf_counter() - start


def measure(workdir: Path, runs: int, users: int) -> dict:
    """Both hubs run side by side; sequential spawns alternate between them."""
    with rig.hubs(workdir) as hubs:
        times = {kind: [] for kind in rig.KINDS}
        for kind, hub in hubs.items():
            hub.create_users(f"seq-{kind}", *rig.user_names(kind, users))
        for _ in range(runs):
            for kind, hub in hubs.items():
                times[kind].append(spawn_to_ready(hub, f"seq-{kind}", rig.KINDS[kind][1]))
                hub.stop_server(f"seq-{kind}")
        results = {kind: {"sequential": statistics.median(t)} for kind, t in times.items()}
        for kind, hub in hubs.items():
            names = rig.user_names(kind, users)
            outcomes = rig.burst(hub, names, rig.KINDS[kind][1])
            rig.stop_all(hub, names)
            ready = [o.seconds for o in outcomes if o.ready]
            results[kind]["burst"] = max(ready, default=float("nan"))
            results[kind]["ready"] = len(ready)
        return results


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10, help="sequential spawns (default 10)")
    parser.add_argument("--users", type=int, default=50, help="users in the burst (default 50)")
    args = parser.parse_args()
    with rig.engine(), tempfile.TemporaryDirectory(prefix="gpuhub-bench-") as workdir:
        results = measure(Path(workdir), args.runs, args.users)
    stock, ours = results["docker"], results["gpu-docker"]
    print(f"\n{'':34}{'stock DockerSpawner':>22}{'GPUDockerSpawner':>20}{'ratio':>8}")
    for key, label in (("sequential", f"median spawn-to-ready ({args.runs} seq.)"),
                       ("burst", f"{args.users}-user burst, last ready")):
        print(f"{label:34}{stock[key]:>21.2f}s{ours[key]:>19.2f}s{ours[key] / stock[key]:>8.3f}")
    print(f"{'ready in the burst':34}{stock['ready']:>19}/{args.users}{ours['ready']:>17}/{args.users}")


if __name__ == "__main__":
    main()
