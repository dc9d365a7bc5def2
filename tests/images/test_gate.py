"""The validation gate (images/validate/gate.py) run inside the real notebook image.

Only the CPU path can run here (the test engine has no GPUs): the CUDA checks
must say they were skipped. The GPU path is the manual check in
images/validate/README.md. Containers are named <GPUHUB_TEST_PREFIX>-img-gate-*, run with
--rm, and leftovers are removed before and after this module.
"""

import json
import secrets
import subprocess
from pathlib import Path

import pytest

from tests.images.conftest import TEST_PREFIX

REPO = Path(__file__).resolve().parents[2]
VALIDATE = REPO / "images" / "validate"
PREFIX = f"{TEST_PREFIX}-img-gate-"
PYTHON = "/opt/conda/bin/python"
CUDA_CHECKS = ("cuda_devices", "cuda_matmul", "cudnn")
ALL_CHECKS = (
    "torch_version", *CUDA_CHECKS, "dataloader_shm", "ddp",
    "singleuser", "user_id", "home_writable", "throughput",
)
NO_GPU = "no GPU visible: CUDA checks skipped"
GATE_TIMEOUT = 240  # the gate takes ~30 s on 2 CPU cores; container start and torch import on top


def docker(engine_env, *args, timeout=60):
    return subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout, env=engine_env)


def remove_gate_containers(engine_env):
    names = docker(engine_env, "ps", "-aq", "--filter", f"name=^{PREFIX}").stdout.split()
    if names:
        docker(engine_env, "rm", "-f", *names)


@pytest.fixture(scope="module")
def run_gate(engine_env, notebook_image):
    """run_gate(*gate_args, expect_torch=None, docker_args=()) -> CompletedProcess of the gate in the image."""
    remove_gate_containers(engine_env)
    yield lambda *gate_args, **options: run_gate_in(engine_env, notebook_image, *gate_args, **options)
    remove_gate_containers(engine_env)


def run_gate_in(engine_env, image, *gate_args, expect_torch=None, docker_args=()):
    """docker run the gate the way images/validate/README.md says."""
    expect_torch = expect_torch or image.torch_version
    name = PREFIX + secrets.token_hex(4)
    command = [
        # No network: the gate needs none, and on a bridge without DNS every c10d connection
        # to 127.0.0.1 waits 10 s on a reverse lookup of ::ffff:127.0.0.1.
        "run", "--rm", "--name", name, "--network", "none", *docker_args,
        "-v", f"{VALIDATE}:/opt/gpuhub-validate:ro",
        image.tag, PYTHON, "/opt/gpuhub-validate/gate.py", "--expect-torch", expect_torch, *gate_args,
    ]
    try:
        return docker(engine_env, *command, timeout=GATE_TIMEOUT)
    except subprocess.TimeoutExpired:
        docker(engine_env, "rm", "-f", name)
        pytest.fail(f"the gate ran past {GATE_TIMEOUT} s in {image.tag}")


def report_of(result):
    """The gate's JSON report, or a test failure that shows what the container printed."""
    try:
        report = json.loads(result.stdout)
    except json.JSONDecodeError:
        pytest.fail(f"no JSON on stdout (exit {result.returncode}):\n{explain(result)}")
    return report, {check["name"]: check for check in report["checks"]}


def explain(result):
    return f"--- stdout ---\n{result.stdout[-4000:]}\n--- stderr ---\n{result.stderr[-4000:]}"


@pytest.fixture(scope="module")
def cpu_run(run_gate):
    """One default run of the gate (JSON), shared by the tests that only read it."""
    return run_gate("--json")


def test_gate_passes_in_the_image_on_cpu(cpu_run):
    report, checks = report_of(cpu_run)
    assert cpu_run.returncode == 0, explain(cpu_run)
    assert report["ok"] is True
    assert tuple(checks) == ALL_CHECKS
    not_passed = {n: c["detail"] for n, c in checks.items() if c["status"] != "PASS" and n not in CUDA_CHECKS}
    assert not_passed == {}, explain(cpu_run)
    assert checks["user_id"]["detail"].startswith("uid 1000,")
    assert "answered 200 after" in checks["singleuser"]["detail"]
    assert "gloo on cpu" in checks["ddp"]["detail"]
    throughput = report["throughput"]
    assert throughput["device"] == "cpu"
    assert throughput["steps_per_second"] > 0
    assert all(check["seconds"] < 30 for check in report["checks"]), report["checks"]


def test_cuda_checks_are_skipped_without_gpu(cpu_run):
    _, checks = report_of(cpu_run)
    assert {name: (checks[name]["status"], checks[name]["detail"]) for name in CUDA_CHECKS} == {
        name: ("SKIP", NO_GPU) for name in CUDA_CHECKS
    }


def test_gate_fails_on_wrong_torch_version(run_gate, notebook_image):
    wrong = "1.0.0"
    result = run_gate(expect_torch=wrong)
    assert result.returncode == 1, explain(result)
    lines = result.stdout.splitlines()
    torch_line = next(line for line in lines if line.startswith(("PASS", "FAIL", "SKIP")))
    assert torch_line.startswith("FAIL  torch_version"), explain(result)
    assert f"expected {wrong}" in torch_line and notebook_image.torch_version in torch_line
    # One failing check does not stop the others.
    assert sum(line.startswith("PASS") for line in lines) == len(ALL_CHECKS) - 1 - len(CUDA_CHECKS), explain(result)
    assert lines[-1].startswith("gate: FAIL (6 passed, 3 skipped, 1 failed)"), explain(result)


def test_dataloader_check_fails_with_tiny_shm(run_gate):
    result = run_gate("--json", docker_args=("--shm-size", "1m"))
    report, checks = report_of(result)
    assert result.returncode == 1, explain(result)
    assert report["ok"] is False
    dataloader = checks["dataloader_shm"]
    assert dataloader["status"] == "FAIL", explain(result)
    assert "/dev/shm 1.0 MiB" in dataloader["detail"]
    assert "--shm-size" in dataloader["detail"]
    failed = {name for name, check in checks.items() if check["status"] == "FAIL"}
    # DDP's worker processes share tensors through /dev/shm too: with 1 MiB it may
    # fail as well (seen now and then); nothing else may.
    assert {"dataloader_shm"} <= failed <= {"dataloader_shm", "ddp"}, explain(result)
