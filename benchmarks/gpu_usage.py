"""GPU usage service under load: 50 running servers over 8 GPUs, 100 clients.

A real hub (config/jupyterhub_config.py, the gpu-usage service it starts, the
real proxy) on the private test engine, fake NVML with 8 GPUs. The 50
"servers" are `sleep` containers from the test image's Debian base carrying the
labels GPUDockerSpawner writes (gpuhub.user, gpuhub.server, gpuhub.gpus):
8 hold one GPU each, 42 are CPU-only — the sampler sees exactly what it sees
with 50 spawned notebook servers, without 50 notebook processes on 2 cores.

  sampler:  the service process's CPU time / wall time over --idle seconds
            with no requests, at the default 5 s interval
  load:     100 clients (90 users polling api/me and their page, 10
            instructors polling api/gpus and the all-GPUs page), each one
            request every --period seconds, for --load seconds: p50/p95,
            with --history-days of GPU-hours already stored for every client
            (requests read running totals: their cost does not grow with it)

Run: PYTHONPATH=. DOCKER_HOST=unix:///run/gpuhub-test/docker.sock \
     .venv/bin/python benchmarks/gpu_usage.py
Targets: p95 < 100 ms; sampler < 2 % of one core.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

os.environ.setdefault("GPUHUB_TEST_PREFIX", "gpuhubbench")
os.environ["GPUHUB_USAGE_CONTAINER_PREFIX"] = f"{os.environ['GPUHUB_TEST_PREFIX']}-"
os.environ.pop("GPUHUB_USAGE_INTERVAL", None)  # the default, 5 s

import aiohttp  # noqa: E402

from gpuhub.hub.gpu_usage.store import UsageStore  # noqa: E402
from gpuhub.images import versions  # noqa: E402
from tests.fakes.fake_gpus import FakeNVML, FakeProcess, build_library  # noqa: E402
from tests.integration.hubrig import PREFIX, Hub, docker_client, remove_test_objects  # noqa: E402
from tests.integration.test_gpu_usage import gpus_of_this_run  # noqa: E402

BASE_IMAGE = versions.load().local.debian_base  # built by `make test-images`
TICKS = os.sysconf("SC_CLK_TCK")
# The clients' first requests (each token checked with the hub once, then
# cached by the service for 5 min) all land in the first seconds: reported apart.
WARM_UP = 5.0


def service_pid(hub: Hub) -> int:
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
                if ppid == hub.proc.pid and b"gpuhub.hub.gpu_usage" in (entry / "cmdline").read_bytes():
                    return int(entry.name)
            except OSError:
                continue
    raise RuntimeError("no gpu-usage service under the hub")


def store_history(state_dir: Path, names: list[str], days: int) -> None:
    """``days`` days of GPU-hours for every name, as a long-running hub has them."""
    state_dir.mkdir(mode=0o700, exist_ok=True)
    store = UsageStore(state_dir / "gpu_usage.sqlite")
    now = time.time()
    for day in range(days, 0, -1):
        store.write(store.add({name: 600.0 for name in names}, now - day * 86400))
    store.close()


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime + stime


def start_servers(client, gpus, count: int):
    def run(i):
        uuid = gpus[i].uuid if i < len(gpus) else ""
        return client.containers.run(
            BASE_IMAGE, ["sleep", "infinity"], name=f"{PREFIX}-user{i:03d}", detach=True,
            labels={"gpuhub.user": f"user{i:03d}", "gpuhub.server": "", "gpuhub.gpus": uuid},
            network_disabled=True,
        )
    with ThreadPoolExecutor(4) as pool:
        return list(pool.map(run, range(count)))


async def poll(session, url, token, paths, period, warm_until, until, latencies, errors):
    headers = {"Authorization": f"token {token}"}
    i = 0
    await asyncio.sleep(period * (hash(token) % 1000) / 1000)  # spread the clients
    while time.monotonic() < until:
        started = time.perf_counter()
        try:
            async with session.get(url + paths[i % len(paths)], headers=headers) as response:
                await response.read()
                if response.status != 200:
                    errors.append(response.status)
        except aiohttp.ClientError as error:
            errors.append(repr(error))
        # A client's first request makes the service ask the hub who the token
        # belongs to (then cached for 5 min): reported apart as "first".
        latencies.append((i == 0, time.monotonic() < warm_until, time.perf_counter() - started))
        i += 1
        await asyncio.sleep(max(0.0, period - (time.perf_counter() - started)))


async def load(hub, tokens, instructors, period, seconds):
    latencies, errors = [], []
    warm_until = time.monotonic() + WARM_UP
    until = warm_until + seconds
    url = f"{hub.url}/services/gpu-usage/"
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as session:
        await asyncio.gather(*[
            poll(session, url, token, ["api/gpus", "all"] if name in instructors else ["api/me", ""],
                 period, warm_until, until, latencies, errors)
            for name, token in tokens.items()
        ])
    return latencies, errors


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--servers", type=int, default=50)
    parser.add_argument("--gpus", type=int, default=8)
    parser.add_argument("--clients", type=int, default=100)
    parser.add_argument("--period", type=float, default=1.0, help="seconds between a client's requests")
    parser.add_argument("--idle", type=float, default=60, help="seconds measuring the sampler alone")
    parser.add_argument("--load", type=float, default=30, help="seconds of client load")
    parser.add_argument("--history-days", type=int, default=365,
                        help="days of GPU-hours stored for every client before the hub starts")
    args = parser.parse_args()
    build_library()
    client = docker_client()
    remove_test_objects(client)
    try:
        with tempfile.TemporaryDirectory(prefix="gpuhub-bench-usage-") as workdir:
            gpus = gpus_of_this_run(args.gpus)
            for gpu in gpus[: args.gpus // 2]:
                gpu.util_gpu, gpu.mem_used = 60, 30 * 2**30
            nvml = FakeNVML(Path(workdir) / "gpus.state")
            hub = Hub(workdir=Path(workdir), nvml=nvml)
            containers = start_servers(client, gpus, args.servers)
            pids = [c.attrs["State"]["Pid"] or 0 for c in (client.containers.get(c.id) for c in containers[:4])]
            nvml.write(gpus, [FakeProcess(uuid=g.uuid, pid=p, mem=2**30) for g, p in zip(gpus, pids)]
                       + [FakeProcess(uuid=gpus[-1].uuid, pid=os.getpid(), mem=2**30)])
            names = [f"user{i:03d}" for i in range(args.clients)]
            store_history(Path(workdir) / "state", names, args.history_days)
            hub.start()
            try:
                instructors = set(names[-args.clients // 10:])
                hub.create_users(*sorted(set(names) - instructors))
                hub.create_users(*sorted(instructors), groups=("instructors",))
                tokens = {name: hub.user_token(name) for name in names}
                pid = service_pid(hub)
                time.sleep(6)  # the first samples, docker client set up
                cpu0, wall0 = cpu_seconds(pid), time.monotonic()
                time.sleep(args.idle)
                sampler = (cpu_seconds(pid) - cpu0) / (time.monotonic() - wall0)

                cpu0, wall0 = cpu_seconds(pid), time.monotonic()
                latencies, errors = asyncio.run(load(hub, tokens, instructors, args.period, args.load))
                busy = (cpu_seconds(pid) - cpu0) / (time.monotonic() - wall0)
            finally:
                hub.stop()
    finally:
        remove_test_objects(client)
    first = sorted(t for is_first, _, t in latencies if is_first)
    warm = sorted(t for _, in_warm_up, t in latencies if in_warm_up)
    total = len(latencies)
    latencies = sorted(t for _, in_warm_up, t in latencies if not in_warm_up)
    p50 = statistics.median(latencies) * 1000
    p95 = latencies[int(len(latencies) * 0.95) - 1] * 1000
    print(f"\n{args.servers} servers ({args.gpus} GPUs held by {min(args.gpus, args.servers)}), "
          f"{args.clients} clients, one request each per {args.period:g} s, {args.load:g} s, "
          f"{args.history_days} days of GPU-hours stored per client")
    print(f"requests: {total} ({total / (args.load + WARM_UP):.0f}/s), errors: {len(errors)} {errors[:5]}")
    print(f"latency after a {WARM_UP:g} s warm-up, p50: {p50:.1f} ms   p95: {p95:.1f} ms   max: {latencies[-1] * 1000:.1f} ms   (target p95 < 100 ms)")
    print(f"warm-up ({len(warm)} requests): p95 {warm[int(len(warm) * 0.95) - 1] * 1000:.0f} ms; "
          f"first request per client (token checked with the hub): p50 "
          f"{statistics.median(first) * 1000:.0f} ms, max {first[-1] * 1000:.0f} ms")
    print(f"sampler CPU, 5 s interval, no requests: {sampler * 100:.2f} % of one core (target < 2 %)")
    print(f"service CPU under load: {busy * 100:.1f} % of one core")


if __name__ == "__main__":
    main()
