"""Fixtures for tests/images. The end-to-end tests (marker image_build) build the
notebook image on the local CPU base plus the rl stack in the private test engine
(tests/rig/engine.sh) once per session; select them with `-m image_build`, skip
them with `-m "not image_build"`. Containers they start are named
<GPUHUB_TEST_PREFIX>-img-e2e-* (default prefix gpuhubimg) and removed afterwards, so
parallel sessions with their own prefixes leave each other's containers alone."""

import hashlib
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
# The end-to-end tests' containers; the gate tests' are TEST_PREFIX-img-gate-*, the
# build's own gpuhubimg-build-<random> (removed by the build itself): each removes only its own.
TEST_PREFIX = os.environ.get("GPUHUB_TEST_PREFIX", "gpuhubimg")
PREFIX = f"{TEST_PREFIX}-img-e2e-"


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
    build = run_build(engine_env, "--local", "--stack", "rl", "--ide")
    print(f"\n----- gpuhub images build --local --stack rl --ide ({build.seconds:.0f}s) -----\n{build.output}")
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


class NoGatewayEngine:
    """A second private engine (tests/rig/engine.sh with its own socket, data root and
    bridge) whose default bridge reports no gateway: its bridge has no address when
    dockerd starts, so dockerd picks the subnet and `docker network inspect bridge`
    shows only a Subnet -- as Debian's docker.io 20.10 does on some hosts. Names come
    from GPUHUB_TEST_PREFIX; the data root (its images) is kept between runs."""

    def __init__(self):
        digest = int(hashlib.sha256(TEST_PREFIX.encode()).hexdigest(), 16)
        run_dir = f"/run/{TEST_PREFIX}-nogw"
        self.settings = {
            "GPUHUB_TEST_RUN_DIR": run_dir,
            "GPUHUB_TEST_DATA_ROOT": f"/var/lib/{TEST_PREFIX}-nogw/docker",
            "GPUHUB_TEST_DOCKERD_LOG": f"/var/log/{TEST_PREFIX}-nogw-dockerd.log",
            "GPUHUB_TEST_BRIDGE": f"{TEST_PREFIX[:9]}nogw{digest % 10}",
            "GPUHUB_TEST_BRIDGE_CIDR": "",
            # 10.200-249.0.0/16: away from the shared engine's 172.31.0.0/16.
            "GPUHUB_TEST_CIDR": f"10.{200 + digest % 50}.0.0/16",
        }
        self.env = {**os.environ, "DOCKER_HOST": f"unix://{run_dir}/docker.sock"}

    def engine_sh(self, command):
        return subprocess.run([str(REPO / "tests/rig/engine.sh"), command], env={**os.environ, **self.settings},
                              capture_output=True, text=True, timeout=120)

    def docker(self, *args, check=True, timeout=120):
        result = subprocess.run(["docker", *args], capture_output=True, text=True, env=self.env, timeout=timeout)
        if check and result.returncode != 0:
            raise AssertionError(f"docker {' '.join(args)} failed: {result.stderr}")
        return result.stdout.strip()

    def copy_images(self, source_env, *refs):
        """docker save | docker load from the shared engine, for the images this engine lacks
        (or holds with another id)."""
        def image_id(env, ref):
            result = subprocess.run(["docker", "image", "inspect", "-f", "{{.Id}}", ref], capture_output=True, text=True, env=env)
            return result.stdout.strip() if result.returncode == 0 else None

        wanted = [ref for ref in refs if image_id(self.env, ref) != image_id(source_env, ref)]
        if not wanted:
            return
        save = subprocess.Popen(["docker", "save", *wanted], stdout=subprocess.PIPE, env=source_env)
        load = subprocess.run(["docker", "load", "-q"], stdin=save.stdout, capture_output=True, text=True, env=self.env, timeout=900)
        save.stdout.close()
        assert save.wait(timeout=60) == 0 and load.returncode == 0, load.stderr

    def remove_everything(self):
        """Containers, then networks and volumes: this engine is the test's alone."""
        containers = self.docker("ps", "-aq").split()
        if containers:
            self.docker("rm", "-f", *containers, check=False)
        self.docker("network", "prune", "-f", check=False)
        self.docker("volume", "prune", "-f", check=False)


@pytest.fixture(scope="session")
def no_gateway_engine():
    engine = NoGatewayEngine()
    started = engine.engine_sh("start")
    assert started.returncode == 0, started.stderr
    engine.remove_everything()
    yield engine
    engine.remove_everything()
    engine.engine_sh("stop")  # stops the dockerd by its pidfile (the one started above)
