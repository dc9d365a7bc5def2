"""spawner.inventory over the real pynvml and the fake libnvidia-ml.so.1.

pynvml keeps its library for the life of a process, so each scenario runs
in a fresh interpreter; the scenario drives the fake through its state file
and prints what it saw as JSON.
"""

import json
import pathlib
import subprocess
import sys
import textwrap

import pynvml
import pytest

from gpuhub.spawner.inventory import InitRetry
from gpuhub.spawner.nvml_reasons import no_answer_reason, plain_reason
from tests.fakes.fake_gpus import LIBRARY_NAME, FakeMIG, FakeNVML, FakeProcess, build_library

GIB = 1 << 30
REPO = pathlib.Path(__file__).resolve().parents[2]
READ = """
import dataclasses, json
from gpuhub.spawner.inventory import NvmlInventory
print(json.dumps(dataclasses.asdict(NvmlInventory().read())))
"""
# Prelude of the scenarios: an inventory whose log lines are collected.
SCENARIO = """
import asyncio, dataclasses, json, logging, os, sys, threading, time
import pynvml
from gpuhub.spawner.inventory import InitRetry, NvmlInventory
from tests.fakes.fake_gpus import FakeNVML

nvml = FakeNVML(os.environ["FAKE_NVML_STATE"])
lines = []
class Collect(logging.Handler):
    def emit(self, record):
        lines.append([record.levelname, record.getMessage()])
log = logging.getLogger("scenario")
log.addHandler(Collect())
log.setLevel(logging.DEBUG)

async def until_available(inventory, timeout=30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        reading = await inventory.snapshot(max_age=0)
        if reading.nvml_available:
            return reading
        await asyncio.sleep(0.02)
    raise SystemExit("NVML never came back")
"""


@pytest.fixture(scope="module")
def nvml_lib():
    return build_library()


@pytest.fixture
def nvml(tmp_path, nvml_lib):
    return FakeNVML(tmp_path / "gpus.state")


def read(env):
    out = subprocess.run(
        [sys.executable, "-c", READ], env=env, capture_output=True, text=True, check=True
    )
    return out.stdout, out.stderr


def scenario(code: str, env) -> dict:
    """Run SCENARIO + code in a fresh interpreter; it prints one JSON object last."""
    proc = subprocess.run(
        [sys.executable, "-c", SCENARIO + textwrap.dedent(code)],
        env=env, cwd=REPO, capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_reads_gpus_processes_mig_and_lost(nvml):
    gpus = FakeNVML.make_gpus(3, mem_used=GIB, util_gpu=40, temp=55, power_mw=123_000)
    gpus[1].lost = True
    gpus[2].mig = [FakeMIG("MIG-aaaa", "NVIDIA H100 MIG 1g.10gb", 10 * GIB, 0)]
    nvml.write(gpus, processes=[FakeProcess(gpus[0].uuid, 4242, GIB)])
    inventory = json.loads(read(nvml.env())[0])
    assert inventory["nvml_available"] and inventory["driver_version"] == "550.54.15"
    first, lost, mig = inventory["gpus"]
    assert first == {
        "index": "0", "uuid": gpus[0].uuid, "name": "NVIDIA H100 80GB HBM3",
        "memory_total": 80 * GIB, "memory_used": GIB, "utilization": 40, "temperature": 55,
        "power_watts": 123.0, "processes": [{"pid": 4242, "used_memory": GIB}],
        "healthy": True, "error": "", "parent_uuid": None,
    }
    assert (lost["index"], lost["healthy"]) == ("1", False) and lost["error"] == "GPU is lost"
    assert (mig["index"], mig["uuid"], mig["parent_uuid"]) == ("2:0", "MIG-aaaa", gpus[2].uuid)
    assert inventory["mig_parents"] == [gpus[2].uuid]


@pytest.mark.parametrize(
    "case, reason, raw",
    [
        ("no library", "no NVIDIA driver found on this host", "NVML Shared Library Not Found"),
        ("driver not loaded", "the NVIDIA driver is not loaded", "Driver Not Loaded"),
    ],
)
def test_without_nvml_the_hub_runs_cpu_only_and_says_so_in_plain_words(nvml, case, reason, raw):
    nvml.write(FakeNVML.make_gpus(1), driver_loaded=case != "driver not loaded")
    env = nvml.env()
    if case == "no library":
        env["LD_LIBRARY_PATH"] = "/nonexistent"
    stdout, stderr = read(env)
    inventory = json.loads(stdout)
    assert inventory["gpus"] == [] and not inventory["nvml_available"]
    # Plain words for users; NVML's own text for admins and the log.
    assert (inventory["unavailable_reason"], inventory["nvml_error"]) == (reason, raw)
    assert f"NVML unavailable: {reason} (NVML: {raw}). Running CPU-only" in stderr


def test_plain_words_for_nvml_errors():
    error = pynvml.NVMLError
    assert plain_reason(error(pynvml.NVML_ERROR_LIBRARY_NOT_FOUND)) == (
        "no NVIDIA driver found on this host"
    )
    assert plain_reason(error(pynvml.NVML_ERROR_DRIVER_NOT_LOADED)) == (
        "the NVIDIA driver is not loaded"
    )
    assert "reboot" in plain_reason(error(pynvml.NVML_ERROR_LIB_RM_VERSION_MISMATCH))
    # An error without plain words still says what NVML said.
    assert plain_reason(error(pynvml.NVML_ERROR_INSUFFICIENT_POWER)) == (
        "the NVIDIA driver reported an error (Insufficient External Power)"
    )
    assert no_answer_reason(10.0) == (
        "NVML did not answer within 10 s (a GPU or the driver may be wedged)"
    )


def test_init_retry_doubles_up_to_its_longest_wait():
    retry = InitRetry(first=5, longest=300)
    assert retry.due(0)
    now, delays = 0.0, []
    for _ in range(9):
        delays.append(retry.failed(now))
        assert not retry.due(now + delays[-1] - 0.001) and retry.due(now + delays[-1])
        now += delays[-1]
    assert delays == [5, 10, 20, 40, 80, 160, 300, 300, 300]
    retry.succeeded()
    assert retry.due(now) and retry.failed(now) == 5
    retry.failures = 10_000  # a host without a driver, up for years: no overflow
    assert retry.failed(now) == 300


def test_hung_nvml_answers_within_the_timeout_and_recovers(nvml):
    """A wedged driver: callers get "unavailable" after the timeout, later
    callers at once, no call queues behind the stuck one, and readings
    resume when it returns."""
    gpus = FakeNVML.make_gpus(2)
    nvml.write(gpus)
    out = scenario(f"""
        gpus = FakeNVML.make_gpus(2)
        async def main():
            inventory = NvmlInventory(log, timeout=0.5)
            before = await inventory.snapshot(max_age=0)
            nvml.write(gpus, hang=True)
            started = time.monotonic()
            first = await inventory.snapshot(max_age=0)
            first_took = time.monotonic() - started
            started = time.monotonic()
            later = [await inventory.snapshot(max_age=0) for _ in range(20)]
            later_took = time.monotonic() - started
            threads = [t.name for t in threading.enumerate() if t.name == "gpuhub-nvml"]
            nvml.write(FakeNVML.make_gpus(3))         # the driver comes back, with a third GPU
            after = await until_available(inventory)
            return dict(
                before=len(before.gpus), first=dataclasses.asdict(first), first_took=first_took,
                later=sorted({{r.unavailable_reason for r in later}}), later_took=later_took,
                threads=threads, after=len(after.gpus), log=lines)
        print(json.dumps(asyncio.run(main())))
    """, nvml.env())
    assert out["before"] == 2
    assert out["first"]["nvml_available"] is False and out["first"]["gpus"] == []
    assert out["first"]["unavailable_reason"] == (
        "NVML did not answer within 0.5 s (a GPU or the driver may be wedged)"
    )
    assert 0.4 < out["first_took"] < 10
    # 20 callers after the first: none waits for the timeout again.
    assert out["later"] == [out["first"]["unavailable_reason"]] and out["later_took"] < 0.5 * 20 / 2
    assert out["threads"] == ["gpuhub-nvml"]  # one stuck thread, no read queued behind it
    assert out["after"] == 3
    # Said once when it stalled, once when it came back: not per call.
    assert [level for level, _ in out["log"]] == ["ERROR", "INFO"]
    assert "has not answered for 0.5 s" in out["log"][0][1]
    assert "answered again" in out["log"][1][1]


@pytest.mark.parametrize("case", ["driver loaded later", "driver installed later"])
def test_failed_init_is_retried_with_backoff_until_gpus_appear(nvml, tmp_path, case):
    gpus = FakeNVML.make_gpus(2)
    env = nvml.env()
    if case == "driver loaded later":
        nvml.write(gpus, driver_loaded=False)
        reason = "the NVIDIA driver is not loaded"
    else:  # the library directory is on the loader path, but empty
        nvml.write(gpus)
        env["LD_LIBRARY_PATH"] = str(tmp_path / "driver")
        (tmp_path / "driver").mkdir()
        reason = "no NVIDIA driver found on this host"
    library = build_library() / LIBRARY_NAME
    out = scenario(f"""
        tries = []
        real_init = pynvml.nvmlInit
        def counting_init():
            tries.append(time.monotonic())
            return real_init()
        pynvml.nvmlInit = counting_init
        async def main():
            inventory = NvmlInventory(log, init_retry=InitRetry(first=0.2, longest=0.4))
            calls, reasons, started = 0, set(), time.monotonic()
            while time.monotonic() - started < 1.0:   # readings as the form and sampler make them
                reasons.add((await inventory.snapshot(max_age=0)).unavailable_reason)
                calls += 1
                await asyncio.sleep(0.01)
            if {case!r} == "driver loaded later":
                nvml.write(FakeNVML.make_gpus(2))
            else:
                import shutil
                shutil.copy({str(library)!r}, {str(tmp_path / "driver")!r})
            after = await until_available(inventory)
            gaps = [b - a for a, b in zip(tries, tries[1:])]
            return dict(calls=calls, tries=len(tries), gaps=gaps, reasons=sorted(reasons),
                        after=[g.uuid for g in after.gpus], log=lines)
        print(json.dumps(asyncio.run(main())))
    """, env)
    assert out["reasons"] == [reason]
    assert out["after"] == [gpu.uuid for gpu in gpus]  # found without a restart
    # Backoff: not one nvmlInit per reading, and never sooner than due.
    assert out["tries"] < out["calls"] / 4
    expected = [0.2, 0.4, 0.4, 0.4, 0.4, 0.4, 0.4, 0.4]
    assert all(gap >= want - 0.01 for gap, want in zip(out["gaps"], expected)), out["gaps"]
    # One line when it failed, one when GPUs appeared.
    assert [level for level, _ in out["log"]] == ["WARNING", "INFO"]
    assert out["log"][0][1].startswith(f"NVML unavailable: {reason}")
    assert "Trying again in 0.2 s" in out["log"][0][1]
    assert out["log"][1][1] == "NVML answers again (driver 550.54.15): 2 healthy GPU(s) can be handed out"


def test_driver_unloaded_under_a_running_hub_then_back(nvml):
    gpus = FakeNVML.make_gpus(1)
    nvml.write(gpus)
    out = scenario("""
        async def main():
            inventory = NvmlInventory(log, init_retry=InitRetry(first=0.05, longest=0.1))
            before = await inventory.snapshot(max_age=0)
            nvml.write(FakeNVML.make_gpus(1), driver_loaded=False)
            gone = await inventory.snapshot(max_age=0)
            nvml.write(FakeNVML.make_gpus(1))
            back = await until_available(inventory)
            return dict(before=len(before.gpus), gone=gone.unavailable_reason,
                        back=len(back.gpus), log=[level for level, _ in lines])
        print(json.dumps(asyncio.run(main())))
    """, nvml.env())
    assert out == dict(before=1, gone="the NVIDIA driver is not loaded", back=1,
                       log=["WARNING", "INFO"])


def test_a_stuck_nvml_call_does_not_keep_the_hub_from_exiting(nvml):
    """The stuck call's thread is a daemon: the process ends while it hangs
    (a worker pool's thread would be joined at exit, for ever)."""
    gpus = FakeNVML.make_gpus(1)
    nvml.write(gpus)
    out = scenario("""
        async def main():
            inventory = NvmlInventory(log, timeout=0.2)
            await inventory.snapshot()
            nvml.write(FakeNVML.make_gpus(1), hang=True)
            return (await inventory.snapshot(max_age=0)).unavailable_reason
        print(json.dumps({"reason": asyncio.run(main())}))
    """, nvml.env())  # scenario() fails if the process has not ended within 120 s
    assert out["reason"].startswith("NVML did not answer within 0.2 s")
