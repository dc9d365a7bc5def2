#!/usr/bin/env python3
"""Validation gate for a freshly built gpuhub notebook image.

Runs inside the image (standard library + torch only) and exits 1 unless every
check passes; CUDA checks are skipped where no GPU is visible. See README.md.

    /opt/conda/bin/python /opt/gpuhub-validate/gate.py --expect-torch 2.13.0 [--json]
"""

import argparse
import datetime
import http.server
import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import urllib.request
import uuid

NO_GPU = "no GPU visible: CUDA checks skipped"
SHM_ITEM_FLOATS = 256 * 1024  # 1 MiB per sample, 4 MiB per batch of 4: well past a 1m /dev/shm
SINGLEUSER_TIMEOUT = 30
DDP_TIMEOUT = 90
THROUGHPUT_SECONDS = 5.0


class Skip(Exception):
    """The check does not apply here (the message says why)."""


class CheckFailed(Exception):
    """The check ran and found the image wrong (the message says how)."""


def mib(n_bytes):
    return f"{n_bytes / 2**20:.1f} MiB"


def requested_gpus():
    """NVIDIA_VISIBLE_DEVICES as the container runtime set it, '' when no GPU was asked for."""
    value = os.environ.get("NVIDIA_VISIBLE_DEVICES", "").strip()
    return "" if value.lower() in ("", "void", "none") else value


def require_cuda(torch):
    """Skip on machines without GPUs; fail where GPUs were asked for but CUDA sees none."""
    if torch.cuda.is_available():
        return
    if not requested_gpus():
        raise Skip(NO_GPU)
    raise CheckFailed(
        f"NVIDIA_VISIBLE_DEVICES={requested_gpus()} but torch.cuda.is_available() is False "
        f"(torch built for CUDA {torch.version.cuda}; a CPU-only wheel, or no driver mounted?)"
    )


def cuda_uuid(torch, index):
    """The device's UUID as NVIDIA_VISIBLE_DEVICES spells it (GPU-…), None where torch < 2.1."""
    raw = getattr(torch.cuda.get_device_properties(index), "uuid", None)
    if raw is None:
        return None
    text = str(uuid.UUID(bytes=bytes(raw.bytes))) if hasattr(raw, "bytes") else str(raw)
    return text if text.startswith(("GPU-", "MIG-")) else f"GPU-{text}"


# --- the checks: each returns a detail string, or raises Skip / CheckFailed -------------------


def check_torch_version(args):
    import torch

    public = torch.__version__.split("+")[0]
    expected = args.expect_torch.split("+")[0]
    if public != expected:
        raise CheckFailed(f"torch {torch.__version__} (public {public}), expected {expected}")
    return f"torch {torch.__version__} (public {public}) == expected {expected}, CUDA {torch.version.cuda}"


def check_cuda_devices(args):
    import torch

    require_cuda(torch)
    count = torch.cuda.device_count()
    names = ", ".join(torch.cuda.get_device_name(i) for i in range(count))
    requested = requested_gpus()
    if requested in ("", "all"):  # nothing to compare with: require_cuda saw at least one
        return f"{count} GPU(s), NVIDIA_VISIBLE_DEVICES={requested or '(unset)'}: {names}"
    wanted = [entry.strip() for entry in requested.split(",") if entry.strip()]
    if count != len(wanted):
        raise CheckFailed(f"CUDA sees {count} GPU(s), NVIDIA_VISIBLE_DEVICES lists {len(wanted)}: {requested}")
    if not all(entry.startswith("GPU-") for entry in wanted):
        return f"{count} GPU(s) match NVIDIA_VISIBLE_DEVICES={requested} by count: {names}"
    seen = [cuda_uuid(torch, i) for i in range(count)]
    if None in seen:
        return f"{count} GPU(s) match by count (torch {torch.__version__} has no device uuid): {names}"
    if sorted(seen) != sorted(wanted):
        raise CheckFailed(f"CUDA sees {','.join(seen)}, NVIDIA_VISIBLE_DEVICES={requested}")
    return f"{count} GPU(s) match NVIDIA_VISIBLE_DEVICES by UUID: {names}"


def check_cuda_matmul(args):
    import torch

    require_cuda(torch)
    generator = torch.Generator().manual_seed(0)
    a, b = torch.randn(512, 512, generator=generator), torch.randn(512, 512, generator=generator)
    expected, errors = a @ b, []
    # Full float32 on the GPU too: torch's default matmul precision is "highest" (no TF32).
    for index in range(torch.cuda.device_count()):
        got = (a.to(f"cuda:{index}") @ b.to(f"cuda:{index}")).cpu()
        errors.append(f"cuda:{index} {(got - expected).abs().max().item():.1e}")
        if not torch.allclose(got, expected, rtol=1e-4, atol=1e-3):
            raise CheckFailed(f"matmul on cuda:{index} differs from the CPU's: max abs error {errors[-1]}")
    return f"512x512 matmul matches the CPU's (max abs error {', '.join(errors)})"


def check_cudnn(args):
    import torch

    require_cuda(torch)
    if not (torch.backends.cudnn.is_available() and torch.backends.cudnn.enabled):
        raise CheckFailed(f"cudnn.is_available() {torch.backends.cudnn.is_available()}, "
                          f"cudnn.enabled {torch.backends.cudnn.enabled}")
    images = torch.randn(2, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    conv = torch.nn.Conv2d(3, 4, 3)
    expected = conv(images)
    got = conv.cuda()(images.cuda()).cpu()  # a convolution on cuda:0 goes through cuDNN
    if not torch.allclose(got, expected, rtol=1e-3, atol=1e-3):
        raise CheckFailed("conv2d on cuda:0 (cuDNN) differs from CPU")
    return f"cuDNN {torch.backends.cudnn.version()} available and enabled, conv2d matches CPU"


def check_dataloader_shm(args):
    import torch
    from torch.utils.data import DataLoader, TensorDataset

    stats = os.statvfs("/dev/shm")
    shm = f"/dev/shm {mib(stats.f_blocks * stats.f_frsize)} ({mib(stats.f_bavail * stats.f_frsize)} free)"
    batch_bytes = 4 * SHM_ITEM_FLOATS * 4
    # 32 samples of 1 MiB, each filled with its index; workers collate batches into /dev/shm.
    samples = TensorDataset(torch.arange(32.0).unsqueeze(1).expand(32, SHM_ITEM_FLOATS))
    seen, failure = [], None
    try:
        for (batch,) in DataLoader(samples, batch_size=4, num_workers=4, timeout=60):
            if not torch.equal(batch[:, -1], batch[:, 0]):
                failure = "a batch came back corrupted"
                break
            seen.extend(batch[:, 0].tolist())
    except Exception as error:  # its last line says why, e.g. "No space left on device"
        failure = str(error).strip().splitlines()[-1]
        # The traceback's frames hold the failed iterator in a reference cycle; cleared, it
        # stops its 4 workers now (freed later by the garbage collector, that takes 20 s).
        traceback.clear_frames(error.__traceback__)
    if failure:
        raise CheckFailed(
            f"DataLoader(num_workers=4) with {mib(batch_bytes)} batches failed; {shm} "
            f"(give the container more, e.g. --shm-size 1g): {failure}"
        )
    if sorted(seen) != [float(i) for i in range(32)]:
        raise CheckFailed(f"DataLoader returned samples {sorted(seen)}, expected 0..31")
    return f"32 samples in {mib(batch_bytes)} batches through 4 workers; {shm}"


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def ddp_rank(rank, world_size, port, use_nccl):
    """One rank of check_ddp (module level: torch.multiprocessing.spawn pickles it by name)."""
    import torch
    import torch.distributed as dist

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    # Both pick their interface from the hostname, which need not resolve in a container.
    os.environ.setdefault("GLOO_SOCKET_IFNAME", "lo")
    os.environ.setdefault("NCCL_SOCKET_IFNAME", "lo")
    device = torch.device("cuda", rank) if use_nccl else torch.device("cpu")
    if use_nccl:
        torch.cuda.set_device(device)
    dist.init_process_group(
        "nccl" if use_nccl else "gloo", rank=rank, world_size=world_size,
        timeout=datetime.timedelta(seconds=60),
    )
    try:
        total = torch.tensor([rank + 1.0], device=device)
        dist.all_reduce(total)
        if total.item() != 3.0:
            raise CheckFailed(f"rank {rank}: all_reduce(1 + 2) gave {total.item()}")
        model = torch.nn.parallel.DistributedDataParallel(
            torch.nn.Linear(4, 2).to(device), device_ids=[rank] if use_nccl else None
        )
        model(torch.full((8, 4), rank + 1.0, device=device)).sum().backward()
        # d(sum)/dW is 8 * (rank + 1) per element; DDP averages it over ranks: 8 * (1 + 2) / 2.
        grad = model.module.weight.grad
        if not torch.allclose(grad, torch.full_like(grad, 12.0)):
            raise CheckFailed(f"rank {rank}: DDP gradient {grad.flatten().tolist()}, expected all 12.0")
        # Rank 0 holds the rendezvous store: leaving before rank 1 is done can abort rank 1.
        dist.barrier()
    finally:
        dist.destroy_process_group()


def check_ddp(args):
    import torch
    import torch.multiprocessing as mp

    use_nccl = torch.cuda.is_available() and torch.cuda.device_count() >= 2
    port = free_port()
    backend = "nccl on cuda:0, cuda:1" if use_nccl else "gloo on cpu"
    context = mp.spawn(ddp_rank, args=(2, port, use_nccl), nprocs=2, join=False)
    deadline = time.monotonic() + DDP_TIMEOUT
    try:
        while not context.join(timeout=1):
            if time.monotonic() > deadline:
                raise CheckFailed(f"2 ranks ({backend}) did not finish within {DDP_TIMEOUT} s (port {port})")
    except (mp.ProcessRaisedException, mp.ProcessExitedException) as error:  # its last line says why
        last_line = str(error).strip().splitlines()[-1].replace("__mp_main__.CheckFailed: ", "")
        raise CheckFailed(f"2 ranks ({backend}) failed: {last_line}") from error
    finally:
        for process in context.processes:
            process.kill()  # no-op for ranks that finished
    return f"2 ranks ({backend}): all_reduce sum 3.0 and one DDP step with averaged gradients"


class StandInHub(http.server.BaseHTTPRequestHandler):
    """Answers jupyterhub-singleuser's start-up request to the hub API: without an answer
    it retries for ~45 s and exits (jupyterhub 5.5.4, check_hub_version)."""

    def do_GET(self):
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args):
        pass


def singleuser_environment(port, hub_port):
    """The variables a spawner gives jupyterhub-singleuser, for user "gate"."""
    prefix = "/user/gate/"
    return {
        **os.environ,
        "JUPYTERHUB_USER": "gate",
        "JUPYTERHUB_SERVICE_PREFIX": prefix,
        "JUPYTERHUB_SERVICE_URL": f"http://127.0.0.1:{port}{prefix}",
        "JUPYTERHUB_API_URL": f"http://127.0.0.1:{hub_port}/hub/api",
        "JUPYTERHUB_API_TOKEN": secrets.token_hex(16),
        "JUPYTERHUB_CLIENT_ID": "jupyterhub-user-gate",
        "JUPYTERHUB_OAUTH_CALLBACK_URL": f"{prefix}oauth_callback",
    }


def check_singleuser(args):
    command = shutil.which("jupyterhub-singleuser") or os.path.join(
        os.path.dirname(sys.executable), "jupyterhub-singleuser"
    )
    if not os.access(command, os.X_OK):
        raise CheckFailed(f"jupyterhub-singleuser not found on PATH nor next to {sys.executable}")
    port = free_port()
    url = f"http://127.0.0.1:{port}/user/gate/api"
    hub = http.server.ThreadingHTTPServer(("127.0.0.1", 0), StandInHub)
    threading.Thread(target=hub.serve_forever, daemon=True).start()
    with tempfile.TemporaryDirectory() as workdir, open(os.path.join(workdir, "log"), "w+") as log:
        started = time.monotonic()
        # Root is refused unless --expect-uid 0 said root is intended (development on a host).
        allow_root = ["--allow-root"] if os.getuid() == 0 == args.expect_uid else []
        server = subprocess.Popen(
            [command, *allow_root], env=singleuser_environment(port, hub.server_address[1]),
            cwd=workdir, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
        )
        try:
            while time.monotonic() - started < SINGLEUSER_TIMEOUT and server.poll() is None:
                try:
                    with urllib.request.urlopen(url, timeout=2) as response:
                        version = json.load(response).get("version", "?")
                    return f"{url} answered 200 after {time.monotonic() - started:.1f} s (jupyter_server {version})"
                except OSError:
                    time.sleep(0.25)
            exit_code = server.poll()
        finally:
            server.kill()  # nothing of it is kept: no need for a clean shutdown
            server.wait()
            hub.shutdown()
            hub.server_close()
        log.seek(0)
        tail = "".join(log.readlines()[-10:]).strip()
    why = "gave no answer" if exit_code is None else f"exited with {exit_code}"
    raise CheckFailed(f"{command} {why} within {SINGLEUSER_TIMEOUT} s at {url}; last log lines:\n{tail}")


def check_user_id(args):
    uid = os.getuid()
    if uid != args.expect_uid:
        raise CheckFailed(f"running as uid {uid}, expected {args.expect_uid} (USER in the Dockerfile?)")
    return f"uid {uid}, gid {os.getgid()}"


def check_home_writable(args):
    home = os.path.expanduser("~")
    try:
        with tempfile.NamedTemporaryFile(dir=home, prefix=".gpuhub-gate-"):
            pass
    except OSError as error:
        raise CheckFailed(f"HOME={home} is not writable by uid {os.getuid()}: {error}") from error
    return f"HOME={home} is writable"


def check_throughput(args):
    """Training steps/s of a fixed tiny transformer: a figure to compare between versions."""
    import torch

    device = torch.device("cuda", 0) if torch.cuda.is_available() else torch.device("cpu")
    torch.manual_seed(0)
    layer = torch.nn.TransformerEncoderLayer(d_model=128, nhead=4, dim_feedforward=512, batch_first=True)
    model = torch.nn.TransformerEncoder(layer, num_layers=2, enable_nested_tensor=False).to(device)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    tokens = torch.randn(16, 64, 128, device=device)

    def step():
        optimizer.zero_grad()
        model(tokens).pow(2).mean().backward()
        optimizer.step()

    synchronize = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    step()  # warm-up: first-call allocations and kernel selection
    synchronize()
    steps, started = 0, time.monotonic()
    while time.monotonic() - started < THROUGHPUT_SECONDS and steps < 1000:
        step()
        steps += 1
        if steps % 10 == 0:  # keep the GPU's queue short, so the time limit holds
            synchronize()
    synchronize()
    seconds = time.monotonic() - started
    args.throughput = {
        "device": str(device), "steps_per_second": round(steps / seconds, 2), "steps": steps,
        "seconds": round(seconds, 2), "torch_threads": torch.get_num_threads(),
        "workload": "TransformerEncoder d_model=128 nhead=4 layers=2, batch 16x64, SGD",
    }
    return f"{steps / seconds:.1f} steps/s on {device} ({steps} steps in {seconds:.1f} s)"


CHECKS = [
    ("torch_version", check_torch_version),
    ("cuda_devices", check_cuda_devices),
    ("cuda_matmul", check_cuda_matmul),
    ("cudnn", check_cudnn),
    ("dataloader_shm", check_dataloader_shm),
    ("ddp", check_ddp),
    ("singleuser", check_singleuser),
    ("user_id", check_user_id),
    ("home_writable", check_home_writable),
    ("throughput", check_throughput),
]


def run_check(name, check, args):
    started = time.monotonic()
    try:
        status, detail = "PASS", check(args)
    except Skip as reason:
        status, detail = "SKIP", str(reason)
    except CheckFailed as failure:
        status, detail = "FAIL", str(failure)
    except Exception as error:  # a crash is a failure of this check only
        status, detail = "FAIL", f"{type(error).__name__}: {error}\n{traceback.format_exc(limit=-3)}".strip()
    return {"name": name, "status": status, "detail": detail, "seconds": round(time.monotonic() - started, 2)}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--expect-torch", required=True, help="torch version the image must have, e.g. 2.13.0")
    parser.add_argument("--expect-uid", type=int, default=1000, help="uid the gate must run as (default 1000)")
    parser.add_argument("--json", action="store_true", help="print one JSON document instead of lines")
    args = parser.parse_args(argv)
    args.throughput = None
    if args.json:
        # Keep stdout for the JSON alone: anything else (torch warnings, child processes)
        # writing to fd 1 goes to stderr instead.
        report_stream = os.fdopen(os.dup(1), "w")
        os.dup2(2, 1)
    started, results = time.monotonic(), []
    for name, check in CHECKS:
        result = run_check(name, check, args)
        results.append(result)
        if not args.json:
            print(f"{result['status']}  {name:<14} {result['detail']}  ({result['seconds']:.1f} s)", flush=True)
    ok = all(result["status"] != "FAIL" for result in results)
    if args.json:
        print(json.dumps({"ok": ok, "checks": results, "throughput": args.throughput}, indent=2), file=report_stream)
        report_stream.flush()
        return 0 if ok else 1
    if args.throughput:
        print(f"throughput: {args.throughput['steps_per_second']} steps/s on {args.throughput['device']}")
    counts = {status: sum(r["status"] == status for r in results) for status in ("PASS", "SKIP", "FAIL")}
    print(f"gate: {'PASS' if ok else 'FAIL'} ({counts['PASS']} passed, {counts['SKIP']} skipped, "
          f"{counts['FAIL']} failed) in {time.monotonic() - started:.1f} s", flush=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
