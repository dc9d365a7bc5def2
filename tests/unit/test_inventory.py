"""spawner.inventory over the real pynvml and the fake libnvidia-ml.so.1.

pynvml keeps its library for the life of a process, so each reading runs
in a fresh interpreter.
"""

import json
import subprocess
import sys

import pytest

from tests.fakes.fake_gpus import FakeGPU, FakeMIG, FakeNVML, FakeProcess, build_library

GIB = 1 << 30
READ = """
import dataclasses, json
from gpuhub.spawner.inventory import NvmlInventory
print(json.dumps(dataclasses.asdict(NvmlInventory().read())))
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


@pytest.mark.parametrize("case", ["no library", "driver not loaded"])
def test_without_nvml_the_hub_runs_cpu_only_and_says_so(nvml, case):
    nvml.write(FakeNVML.make_gpus(1), driver_loaded=case != "no library")
    env = nvml.env()
    if case == "no library":
        env["LD_LIBRARY_PATH"] = "/nonexistent"
    else:
        nvml.write(FakeNVML.make_gpus(1), driver_loaded=False)
    stdout, stderr = read(env)
    inventory = json.loads(stdout)
    assert inventory["gpus"] == [] and not inventory["nvml_available"]
    assert inventory["unavailable_reason"]
    assert "running CPU-only" in stderr
