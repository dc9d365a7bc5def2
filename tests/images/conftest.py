"""Fixtures for tests/images. The end-to-end tests (marker image_build) build the
notebook image on the local CPU base plus the rl stack in the private test engine
(tests/rig/engine.sh) once per session; select them with `-m image_build`, skip
them with `-m "not image_build"`. Containers they start are named gpuhubimg-e2e-* and
removed afterwards (never gpuhubtest-*: the integration tests delete those)."""

import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
# The end-to-end tests' containers; the build's own are gpuhubimg-build-*, the gate
# tests' gpuhubimg-gate-*: each removes only its own.
PREFIX = "gpuhubimg-e2e-"


BUILD_FIXTURES = {"built", "notebook_image", "engine_env"}


def pytest_configure(config):
    config.addinivalue_line("markers", "image_build: builds and runs the notebook images in the private test engine (minutes cold)")


def pytest_collection_modifyitems(items):
    # Every test that needs the built images is an image_build test, whoever wrote it.
    for item in items:
        if BUILD_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.image_build)


@dataclass
class Build:
    """One `gpuhub images build --local --stack rl` run."""

    output: str
    seconds: float
    env: dict

    def docker(self, *args, check=True, timeout=120):
        result = subprocess.run(["docker", *args], capture_output=True, text=True, env=self.env, timeout=timeout)
        if check and result.returncode != 0:
            raise AssertionError(f"docker {' '.join(args)} failed: {result.stderr}")
        return result.stdout.strip()

    def remove_containers(self):
        names = self.docker("ps", "-aq", "--filter", f"name=^{PREFIX}").split()
        if names:
            self.docker("rm", "-f", *names, check=False)


def run_build(env, *args):
    started = time.monotonic()
    result = subprocess.run(
        [str(Path(sys.executable).with_name("gpuhub")), "images", "build", *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=1200
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    return Build(output, time.monotonic() - started, env)


@pytest.fixture(scope="session")
def engine_env():
    subprocess.run([str(REPO / "tests/rig/engine.sh"), "start"], check=True, capture_output=True)
    out = subprocess.run([str(REPO / "tests/rig/engine.sh"), "env"], check=True, capture_output=True, text=True).stdout
    return {**os.environ, "DOCKER_HOST": out.strip().split("=", 1)[1]}


@pytest.fixture(scope="session")
def built(engine_env):
    build = run_build(engine_env, "--local", "--stack", "rl")
    print(f"\n----- gpuhub images build --local --stack rl ({build.seconds:.0f}s) -----\n{build.output}")
    build.remove_containers()
    yield build
    build.remove_containers()


@dataclass
class NotebookImage:
    tag: str  # the moving tag of the local line, e.g. gpuhub/pytorch-notebook:2.13-cpu
    torch_version: str  # what it holds, e.g. 2.13.0+cpu


@pytest.fixture(scope="session")
def notebook_image(built):
    """The notebook image built on the local CPU base (for the gate's tests)."""
    from gpuhub.images import versions

    local = versions.load().local
    return NotebookImage(f"{versions.repository()}:{local.line}", local.torch)
