"""The gate's PyTorch checks: version, CUDA devices, matmul, cuDNN, DataLoader through
/dev/shm, two-process DDP, training throughput. Each returns a detail string, or
raises Skip / CheckFailed."""

import datetime
import gc
import os
import tempfile
import time
import traceback

from outcomes import CheckFailed, cuda_uuid, mib, require_cuda, requested_gpus

SHM_ITEM_FLOATS = 256 * 1024  # 1 MiB per sample, 4 MiB per batch of 4: well past a 1m /dev/shm
DDP_TIMEOUT = 90
THROUGHPUT_SECONDS = 5.0


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


def ddp_rank(rank, world_size, store, use_nccl):
    """One rank of check_ddp (module level: torch.multiprocessing.spawn pickles it by name)."""
    import torch
    import torch.distributed as dist

    # Gloo and NCCL pick their interface from the hostname, which need not resolve in a container.
    os.environ.setdefault("GLOO_SOCKET_IFNAME", "lo")
    os.environ.setdefault("NCCL_SOCKET_IFNAME", "lo")
    device = torch.device("cuda", rank) if use_nccl else torch.device("cpu")
    if use_nccl:
        torch.cuda.set_device(device)
    # A file store: no port has to be picked (and raced for) inside the container.
    dist.init_process_group(
        "nccl" if use_nccl else "gloo", init_method=f"file://{store}", rank=rank, world_size=world_size,
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
        # Neither rank closes its connections while the other still sends.
        dist.barrier()
    finally:
        # DDP's reducer holds the process group. Dropped here, the group and its gloo
        # threads are torn down by destroy_process_group, in order; left to interpreter
        # exit, a thread still running aborted the rank now and then with SIGABRT
        # ("terminate called without an active exception", 1 run in 25 on this host).
        model = total = grad = None
        gc.collect()
        dist.destroy_process_group()


def check_ddp(args):
    import torch
    import torch.multiprocessing as mp

    use_nccl = torch.cuda.is_available() and torch.cuda.device_count() >= 2
    backend = "nccl on cuda:0, cuda:1" if use_nccl else "gloo on cpu"
    with tempfile.TemporaryDirectory(prefix="gpuhub-ddp-") as folder:
        store = os.path.join(folder, "store")  # must not exist yet: the ranks create it
        context = mp.spawn(ddp_rank, args=(2, store, use_nccl), nprocs=2, join=False)
        deadline = time.monotonic() + DDP_TIMEOUT
        try:
            while not context.join(timeout=1):
                if time.monotonic() > deadline:
                    raise CheckFailed(f"2 ranks ({backend}) did not finish within {DDP_TIMEOUT} s")
        except (mp.ProcessRaisedException, mp.ProcessExitedException) as error:  # its last line says why
            last_line = str(error).strip().splitlines()[-1].replace("__mp_main__.CheckFailed: ", "")
            raise CheckFailed(f"2 ranks ({backend}) failed: {last_line}") from error
        finally:
            for process in context.processes:
                process.kill()  # no-op for ranks that finished
    return f"2 ranks ({backend}): all_reduce sum 3.0 and one DDP step with averaged gradients"


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
