"""Burst: 50 users press Start at once, ours and stock DockerSpawner in one run.

Both hubs run side by side on the private test engine (benchmarks/rig.py: same
image and container limits, shipped timeouts on both sides). Each hub gets the
burst in turn, its servers stopped before the other's; per hub it prints how
many became ready, the time to the last ready server, and every failure with
the hub's reason.

The CPU floor, measured in the same run: the machine-wide busy CPU seconds
(/proc/stat, every process: hub, proxy, dockerd, the container) from Start to
ready of one lone spawn on our hub, median of 3, times the users, divided by the
cores: the time the burst would take if the CPU were the only limit and nothing
were wasted. Target: ours <= 1.3 x floor, with every server ready. Other
processes on a shared machine count in /proc/stat too, so a second floor
subtracts the busy rate measured with both hubs idle just before each lone spawn.

    .venv/bin/python benchmarks/burst.py [--users 50] [--floor-runs 3] [--quiet 5]

Other processes slow the burst too: compare figures from quiet hosts only.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

from benchmarks import rig

TARGET = 1.3
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
IDLE_FIELDS = (3, 4)  # idle, iowait in /proc/stat's cpu line; the rest is busy time


def busy_cpu_seconds(stat: str) -> float:
    """Busy CPU seconds of the whole machine since boot, from /proc/stat's text."""
    fields = [int(v) for v in stat.splitlines()[0].split()[1:9]]  # user .. steal (guest is inside user)
    return sum(v for i, v in enumerate(fields) if i not in IDLE_FIELDS) / CLOCK_TICKS


def read_busy() -> float:
    return busy_cpu_seconds(Path("/proc/stat").read_text())


def background_rate(seconds: float) -> float:
    """Busy CPU seconds per second while both hubs idle: what other processes on the machine cost."""
    before = read_busy()
    time.sleep(seconds)
    return (read_busy() - before) / seconds


def lone_spawn_cpu(hub, name: str, options: dict, runs: int, quiet: float) -> list[tuple[float, float]]:
    """Busy CPU seconds from Start to ready of one spawn on an otherwise idle hub, ``runs`` times:
    (machine-wide, net of the background measured over ``quiet`` seconds just before)."""
    costs = []
    for _ in range(runs):
        rate = background_rate(quiet)
        before = read_busy()
        outcome = rig.spawn(hub, name, options)
        cost = read_busy() - before
        hub.stop_server(name)
        if not outcome.ready:
            raise RuntimeError(f"the lone spawn for the CPU floor failed: {outcome.reason}")
        costs.append((cost, max(0.0, cost - rate * outcome.seconds)))
    return costs


def summary(outcomes: list[rig.Outcome]) -> dict:
    ready = [o.seconds for o in outcomes if o.ready]
    return {
        "ready": len(ready),
        "last_ready": max(ready, default=float("nan")),
        "failures": [o for o in outcomes if not o.ready],
    }


def measure(workdir: Path, users: int, floor_runs: int, quiet: float) -> dict:
    with rig.hubs(workdir, gpus=max(64, users)) as hubs:
        for kind, hub in hubs.items():
            hub.create_users(f"lone-{kind}", *rig.user_names(kind, users))
        ours = "gpu-docker"
        costs = lone_spawn_cpu(hubs[ours], f"lone-{ours}", rig.KINDS[ours][1], floor_runs, quiet)
        results = {"floor_costs": costs}
        for kind, hub in hubs.items():
            names = rig.user_names(kind, users)
            print(f"{rig.LABELS[kind]}: {users} users press Start ...", flush=True)
            results[kind] = summary(rig.burst(hub, names, rig.KINDS[kind][1]))
            rig.stop_all(hub, names)
        return results


def report(results: dict, users: int) -> None:
    cores = os.cpu_count() or 1
    floors = {}
    for i, what in enumerate(("machine-wide", "net of background")):
        costs = [c[i] for c in results["floor_costs"]]
        cost = statistics.median(costs)
        floors[what] = cost * users / cores
        listed = ", ".join(f"{c:.2f}" for c in costs)
        print(f"CPU floor, {what}: one spawn {cost:.2f} CPU-s (median of {listed}) x {users} / {cores} cores"
              f" = {floors[what]:.1f} s")
    print(f"\n{'':28}{'ready':>10}{'last ready':>13}" + "".join(f"{'/ ' + w:>22}" for w in floors))
    for kind in rig.KINDS:
        r = results[kind]
        ratios = "".join(f"{r['last_ready'] / f:>22.2f}" for f in floors.values())
        print(f"{rig.LABELS[kind]:28}{r['ready']:>7}/{users:<2}{r['last_ready']:>12.1f}s{ratios}")
    ours, stock = results["gpu-docker"], results["docker"]
    print(f"\nours vs stock, time to the last ready: {ours['last_ready'] / stock['last_ready']:.2f}")
    for what, floor in floors.items():
        verdict = "met" if ours["ready"] == users and ours["last_ready"] <= TARGET * floor else "NOT met"
        print(f"target ({users}/{users} ready, last ready <= {TARGET} x floor {what}): {verdict}")
    for kind in rig.KINDS:
        for failure in results[kind]["failures"]:
            print(f"  {rig.LABELS[kind]} failed {failure.user} after {failure.seconds:.1f}s: {failure.reason}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=50, help="users pressing Start at once (default 50)")
    parser.add_argument("--floor-runs", type=int, default=3, help="lone spawns for the CPU floor, median taken (default 3)")
    parser.add_argument("--quiet", type=float, default=5.0,
                        help="seconds of idle hubs before each lone spawn, to measure the background load (default 5)")
    args = parser.parse_args()
    if args.users < 1 or args.floor_runs < 1 or args.quiet <= 0:
        parser.error("--users and --floor-runs must be at least 1, --quiet more than 0")
    with rig.engine(), tempfile.TemporaryDirectory(prefix="gpuhub-burst-") as workdir:
        results = measure(Path(workdir), args.users, args.floor_runs, args.quiet)
    report(results, args.users)


if __name__ == "__main__":
    main()
