"""The fake libnvidia-ml.so.1 (tests/fakes/nvml) as seen by the real pynvml.

pynvml keeps the library it loaded for the life of a process, so every
check runs in a fresh interpreter with LD_LIBRARY_PATH / FAKE_NVML_STATE set.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.fakes import fake_gpus
from tests.fakes.fake_gpus import FakeGPU, FakeMIG, FakeNVML, FakeProcess, fake_uuid

import pynvml  # noqa: E402,F401  (a core dependency: nvidia-ml-py)

GiB = 2**30
PRELUDE = "import json, sys\nfrom pynvml import *\n"


@pytest.fixture(scope="session")
def nvml_lib() -> Path:
    return fake_gpus.build_library()


@pytest.fixture
def nvml(tmp_path, nvml_lib) -> FakeNVML:
    return FakeNVML(tmp_path / "gpus.state")


def run_py(code: str, env: dict[str, str]) -> object:
    """Run `code` in a fresh interpreter; it must print one JSON value last."""
    proc = subprocess.run(
        [sys.executable, "-c", PRELUDE + textwrap.dedent(code)],
        env=env, capture_output=True, text=True, timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_three_gpus_report_their_state(nvml):
    gpus = FakeNVML.make_gpus(3)
    for i, gpu in enumerate(gpus):
        gpu.mem_used = i * GiB
        gpu.util_gpu, gpu.util_mem = 10 + i, 20 + i
        gpu.temp, gpu.power_mw = 40 + i, 100_000 + i
    gpus[2].name = "NVIDIA A100-SXM4-40GB"
    gpus[2].mem_total = 40 * GiB
    nvml.write(gpus, driver_version="550.54.15")

    out = run_py("""
        nvmlInit()
        res = {"driver": nvmlSystemGetDriverVersion(), "gpus": []}
        for i in range(nvmlDeviceGetCount()):
            h = nvmlDeviceGetHandleByIndex(i)
            m1 = nvmlDeviceGetMemoryInfo(h)
            m2 = nvmlDeviceGetMemoryInfo(h, version=nvmlMemory_v2)
            u = nvmlDeviceGetUtilizationRates(h)
            res["gpus"].append(dict(
                index=nvmlDeviceGetIndex(h), uuid=nvmlDeviceGetUUID(h), name=nvmlDeviceGetName(h),
                mem=[m1.total, m1.free, m1.used], mem2=[m2.total, m2.reserved, m2.free, m2.used],
                util=[u.gpu, u.memory], temp=nvmlDeviceGetTemperature(h, NVML_TEMPERATURE_GPU),
                power=nvmlDeviceGetPowerUsage(h), mig=nvmlDeviceGetMigMode(h),
                procs=nvmlDeviceGetComputeRunningProcesses(h)))
        nvmlShutdown()
        print(json.dumps(res))
    """, nvml.env())

    assert out["driver"] == "550.54.15"
    assert len(out["gpus"]) == 3
    for i, (got, want) in enumerate(zip(out["gpus"], gpus)):
        free = want.mem_total - want.mem_used
        assert got == dict(
            index=i, uuid=want.uuid, name=want.name,
            mem=[want.mem_total, free, want.mem_used], mem2=[want.mem_total, 0, free, want.mem_used],
            util=[10 + i, 20 + i], temp=40 + i, power=100_000 + i, mig=[0, 0], procs=[],
        )
    assert len({g["uuid"] for g in out["gpus"]}) == 3


def test_process_shows_with_pid_and_memory(nvml):
    gpus = FakeNVML.make_gpus(2)
    nvml.write(gpus, [FakeProcess(uuid=gpus[1].uuid, pid=4242, mem=1288490188)])
    out = run_py("""
        nvmlInit()
        res = []
        for i in range(nvmlDeviceGetCount()):
            h = nvmlDeviceGetHandleByIndex(i)
            res.append([[p.pid, p.usedGpuMemory, p.gpuInstanceId, p.computeInstanceId]
                        for p in nvmlDeviceGetComputeRunningProcesses(h)])
        print(json.dumps(res))
    """, nvml.env())
    assert out == [[], [[4242, 1288490188, 0xFFFFFFFF, 0xFFFFFFFF]]]


def test_rewritten_state_is_seen_by_an_initialised_process(nvml):
    gpus = FakeNVML.make_gpus(1)
    nvml.write(gpus)
    code = PRELUDE + textwrap.dedent("""
        nvmlInit()
        h = nvmlDeviceGetHandleByIndex(0)
        def snap():
            procs = [p.pid for p in nvmlDeviceGetComputeRunningProcesses(h)]
            return [nvmlDeviceGetCount(), nvmlDeviceGetMemoryInfo(h).used,
                    nvmlDeviceGetUtilizationRates(h).gpu, procs]
        print(json.dumps(snap()), flush=True)
        sys.stdin.readline()          # the test rewrites the file meanwhile
        print(json.dumps(snap()), flush=True)
    """)
    child = subprocess.Popen([sys.executable, "-c", code], env=nvml.env(), text=True,
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert json.loads(child.stdout.readline()) == [1, 0, 0, []]
        gpus = FakeNVML.make_gpus(2)
        gpus[0].mem_used, gpus[0].util_gpu = 3 * GiB, 97
        nvml.write(gpus, [FakeProcess(uuid=gpus[0].uuid, pid=777, mem=3 * GiB)])
        child.stdin.write("go\n")
        child.stdin.flush()
        assert json.loads(child.stdout.readline()) == [2, 3 * GiB, 97, [777]]
    finally:
        _, err = child.communicate(timeout=30)
    assert child.returncode == 0, err


def test_lost_gpu_fails_every_query(nvml):
    gpus = FakeNVML.make_gpus(2)
    gpus[1].lost = True
    nvml.write(gpus)
    out = run_py("""
        nvmlInit()
        h = nvmlDeviceGetHandleByIndex(1)   # still succeeds
        calls = {
            "uuid": lambda: nvmlDeviceGetUUID(h), "name": lambda: nvmlDeviceGetName(h),
            "index": lambda: nvmlDeviceGetIndex(h), "mem": lambda: nvmlDeviceGetMemoryInfo(h),
            "mem2": lambda: nvmlDeviceGetMemoryInfo(h, version=nvmlMemory_v2),
            "util": lambda: nvmlDeviceGetUtilizationRates(h),
            "temp": lambda: nvmlDeviceGetTemperature(h, NVML_TEMPERATURE_GPU),
            "power": lambda: nvmlDeviceGetPowerUsage(h),
            "procs": lambda: nvmlDeviceGetComputeRunningProcesses(h),
            "mig": lambda: nvmlDeviceGetMigMode(h),
        }
        res = {}
        for key, call in calls.items():
            try:
                call()
                res[key] = "no error"
            except NVMLError as e:
                res[key] = [e.value, str(e)]
        res["healthy"] = nvmlDeviceGetUUID(nvmlDeviceGetHandleByIndex(0))
        print(json.dumps(res))
    """, nvml.env())
    assert out.pop("healthy") == gpus[0].uuid
    assert out == {k: [pynvml.NVML_ERROR_GPU_IS_LOST, "GPU is lost"] for k in out}
    assert len(out) == 10


@pytest.mark.parametrize("case", ["loaded0", "no_file", "no_env"])
def test_driver_not_loaded(nvml, case):
    env = nvml.env()
    if case == "loaded0":
        nvml.write(FakeNVML.make_gpus(1), driver_loaded=False)
    elif case == "no_env":
        del env["FAKE_NVML_STATE"]
    out = run_py("""
        try:
            nvmlInit()
            print(json.dumps("initialised"))
        except NVMLError_DriverNotLoaded as e:
            print(json.dumps(["DriverNotLoaded", e.value]))
    """, env)
    assert out == ["DriverNotLoaded", pynvml.NVML_ERROR_DRIVER_NOT_LOADED]


def test_no_library_on_path(nvml, tmp_path):
    env = nvml.env()
    nvml.write(FakeNVML.make_gpus(1))
    env["LD_LIBRARY_PATH"] = str(tmp_path)   # holds no libnvidia-ml.so.1
    out = run_py("""
        import ctypes
        try:
            ctypes.CDLL("libnvidia-ml.so.1")
            print(json.dumps("real driver present"))
            sys.exit(0)
        except OSError:
            pass
        try:
            nvmlInit()
            print(json.dumps("initialised"))
        except NVMLError_LibraryNotFound as e:
            print(json.dumps(["LibraryNotFound", e.value]))
    """, env)
    if out == "real driver present":
        pytest.skip("this machine has a real libnvidia-ml.so.1 in its loader path")
    assert out == ["LibraryNotFound", pynvml.NVML_ERROR_LIBRARY_NOT_FOUND]


def test_mig_devices(nvml):
    gpus = FakeNVML.make_gpus(2)
    migs = [
        FakeMIG(uuid="MIG-fa4e0000-0000-4000-8000-100000000000", name="NVIDIA H100 80GB HBM3 MIG 1g.10gb",
                mem_total=10 * GiB, mem_used=GiB),
        FakeMIG(uuid="MIG-fa4e0000-0000-4000-8000-100000000001", name="NVIDIA H100 80GB HBM3 MIG 3g.40gb",
                mem_total=40 * GiB),
    ]
    gpus[1].mig = migs
    nvml.write(gpus, [FakeProcess(uuid=migs[1].uuid, pid=5151, mem=2 * GiB)])
    out = run_py("""
        nvmlInit()
        def procs(h):
            return [[p.pid, p.usedGpuMemory, p.gpuInstanceId, p.computeInstanceId]
                    for p in nvmlDeviceGetComputeRunningProcesses(h)]
        plain, g = nvmlDeviceGetHandleByIndex(0), nvmlDeviceGetHandleByIndex(1)
        res = {"mode": nvmlDeviceGetMigMode(g), "plain_mode": nvmlDeviceGetMigMode(plain),
               "max": nvmlDeviceGetMaxMigDeviceCount(g), "plain_max": nvmlDeviceGetMaxMigDeviceCount(plain),
               "gpu_is_mig": bool(nvmlDeviceIsMigDeviceHandle(g)), "gpu_procs": procs(g), "migs": []}
        for i in range(nvmlDeviceGetMaxMigDeviceCount(g)):
            try:
                m = nvmlDeviceGetMigDeviceHandleByIndex(g, i)
            except NVMLError_NotFound:
                continue
            mem = nvmlDeviceGetMemoryInfo(m)
            res["migs"].append(dict(
                slot=i, uuid=nvmlDeviceGetUUID(m), name=nvmlDeviceGetName(m),
                mem=[mem.total, mem.free, mem.used], is_mig=bool(nvmlDeviceIsMigDeviceHandle(m)),
                parent=nvmlDeviceGetUUID(nvmlDeviceGetDeviceHandleFromMigDeviceHandle(m)),
                procs=procs(m)))
        print(json.dumps(res))
    """, nvml.env())
    assert out["mode"] == [1, 1] and out["plain_mode"] == [0, 0]
    assert out["max"] == 7 and out["plain_max"] == 0
    assert out["gpu_is_mig"] is False
    assert out["gpu_procs"] == []   # the MIG process shows on its MIG handle only
    assert out["migs"] == [
        dict(slot=0, uuid=migs[0].uuid, name=migs[0].name, mem=[10 * GiB, 9 * GiB, GiB],
             is_mig=True, parent=gpus[1].uuid, procs=[]),
        dict(slot=1, uuid=migs[1].uuid, name=migs[1].name, mem=[40 * GiB, 40 * GiB, 0],
             is_mig=True, parent=gpus[1].uuid, procs=[[5151, 2 * GiB, 0, 0]]),
    ]


def test_many_processes_use_the_size_protocol(nvml):
    gpus = FakeNVML.make_gpus(2)
    procs = [FakeProcess(uuid=gpus[0].uuid, pid=1000 + i, mem=(i + 1) * GiB) for i in range(5)]
    procs.append(FakeProcess(uuid=gpus[1].uuid, pid=2000, mem=GiB))
    nvml.write(gpus, procs)
    out = run_py("""
        import ctypes
        import pynvml
        nvmlInit()
        h = nvmlDeviceGetHandleByIndex(0)
        res = {"py": [[p.pid, p.usedGpuMemory] for p in nvmlDeviceGetComputeRunningProcesses(h)]}
        # The raw protocol: too small -> INSUFFICIENT_SIZE with the needed count.
        fn = pynvml._nvmlGetFunctionPointer("nvmlDeviceGetComputeRunningProcesses_v3")
        count = ctypes.c_uint(2)
        arr = (pynvml.c_nvmlProcessInfo_v3_t * 5)()
        res["small"] = [fn(h, ctypes.byref(count), arr), count.value]
        res["exact"] = [fn(h, ctypes.byref(count), arr), count.value, [p.pid for p in arr]]
        print(json.dumps(res))
    """, nvml.env())
    assert out["py"] == [[p.pid, p.mem] for p in procs[:5]]
    assert out["small"] == [pynvml.NVML_ERROR_INSUFFICIENT_SIZE, 5]
    assert out["exact"] == [pynvml.NVML_SUCCESS, 5, [1000, 1001, 1002, 1003, 1004]]


def test_queries_from_threads_while_the_file_changes(nvml):
    nvml.write(FakeNVML.make_gpus(4))
    code = PRELUDE + textwrap.dedent("""
        import threading
        nvmlInit()
        errors = []
        def worker():
            try:
                for _ in range(300):
                    for i in range(nvmlDeviceGetCount()):
                        h = nvmlDeviceGetHandleByIndex(i)
                        nvmlDeviceGetUUID(h); nvmlDeviceGetMemoryInfo(h)
            except Exception as e:
                errors.append(repr(e))
        threads = [threading.Thread(target=worker) for _ in range(4)]
        for t in threads: t.start()
        print("started", flush=True)
        for t in threads: t.join()
        print(json.dumps(errors))
    """)
    child = subprocess.Popen([sys.executable, "-c", code], env=nvml.env(), text=True,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert child.stdout.readline().strip() == "started"
    for n in range(30):
        nvml.write(FakeNVML.make_gpus(4, mem_used=n))
    out, err = child.communicate(timeout=60)
    assert child.returncode == 0, err
    assert json.loads(out.strip().splitlines()[-1]) == []


def test_malformed_state_file_is_reported(nvml):
    nvml.state_path.write_text("gpu index=0 uuid=GPU-x colour=red\n")
    proc = subprocess.run(
        [sys.executable, "-c", PRELUDE + "nvmlInit()"],
        env=nvml.env(), capture_output=True, text=True, timeout=60,
    )
    assert proc.returncode != 0
    assert "NVMLError_Unknown" in proc.stderr
    assert "fake_nvml:" in proc.stderr and "unknown key: colour" in proc.stderr


def test_helper_uuids_and_names():
    gpus = FakeNVML.make_gpus(20)
    uuids = [g.uuid for g in gpus]
    assert len(set(uuids)) == 20
    assert uuids[1] == fake_uuid("GPU", 1)
    for u in uuids:
        int(u.removeprefix("GPU-").replace("-", ""), 16)   # valid hex
    with pytest.raises(ValueError):
        FakeNVML("/nonexistent/x").write([FakeGPU(index=0, uuid="GPU-1", name="bad_name")])


def test_hang_blocks_calls_until_cleared(nvml):
    """hang=1 is a wedged driver: calls (nvmlInit too) block, from every
    thread, and return with the new state once the flag clears."""
    gpus = FakeNVML.make_gpus(2)
    nvml.write(gpus)
    code = PRELUDE + textwrap.dedent("""
        import threading
        nvmlInit()
        print("initialised", flush=True)
        results = {}
        def call(name, fn):
            try:
                results[name] = fn()
            except NVMLError as e:
                results[name] = str(e)
        sys.stdin.readline()                        # the test sets hang=1
        threads = [threading.Thread(target=call, args=a) for a in (
            ("count", nvmlDeviceGetCount),
            ("init", lambda: nvmlInit() or "initialised"),
            ("uuid", lambda: nvmlDeviceGetUUID(nvmlDeviceGetHandleByIndex(1))))]
        for t in threads: t.start()
        for t in threads: t.join(0.5)
        print(json.dumps(sorted(t.name for t in threads if t.is_alive())), flush=True)
        sys.stdin.readline()                        # the test clears it
        for t in threads: t.join(30)
        print(json.dumps([any(t.is_alive() for t in threads), results]), flush=True)
    """)
    child = subprocess.Popen([sys.executable, "-c", code], env=nvml.env(), text=True,
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert child.stdout.readline().strip() == "initialised"
        nvml.write(gpus, hang=True)
        child.stdin.write("hang\n")
        child.stdin.flush()
        assert len(json.loads(child.stdout.readline())) == 3   # all three still blocked
        gpus.append(FakeGPU(index=2, uuid="GPU-fa4e0000-0000-4000-8000-0000000000ff"))
        nvml.write(gpus)
        child.stdin.write("clear\n")
        child.stdin.flush()
        still_blocked, results = json.loads(child.stdout.readline())
    finally:
        _, err = child.communicate(timeout=30)
    assert child.returncode == 0, err
    assert not still_blocked
    assert results == {"count": 3, "init": "initialised", "uuid": gpus[1].uuid}


def test_driver_loaded_later_lets_init_succeed_in_the_same_process(nvml):
    gpus = FakeNVML.make_gpus(1)
    nvml.write(gpus, driver_loaded=False)
    code = PRELUDE + textwrap.dedent("""
        res = []
        for _ in range(2):
            try:
                nvmlInit()
                res.append(nvmlDeviceGetCount())
            except NVMLError as e:
                res.append(str(e))
            print(json.dumps(res), flush=True)
            sys.stdin.readline()                    # the test loads the driver
    """)
    child = subprocess.Popen([sys.executable, "-c", code], env=nvml.env(), text=True,
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert json.loads(child.stdout.readline()) == ["Driver Not Loaded"]
        nvml.write(gpus)
        child.stdin.write("loaded\n")
        child.stdin.flush()
        assert json.loads(child.stdout.readline()) == ["Driver Not Loaded", 1]
        child.stdin.write("done\n")
        child.stdin.flush()
    finally:
        _, err = child.communicate(timeout=30)
    assert child.returncode == 0, err
