"""Fixtures for tests against the real engine, hub and proxy (tests/integration,
and tests/images for spawning the built notebook image).

The private test engine (tests/rig/engine.sh) and the test notebook image
are made ready once per session; every hub runs in its own work folder.
Leftover test containers and volumes are removed before and after the run.
When a test fails, the hub's log and the containers' logs are printed.
"""

import os
import subprocess

import pytest

from tests.fakes.fake_gpus import FakeNVML, build_library
from tests.integration.hubrig import (
    IMAGE,
    PREFIX,
    REPO,
    Hub,
    docker_client,
    fence_test_network,
    remove_test_objects,
)


@pytest.hookimpl(tryfirst=True, hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    setattr(item, f"report_{report.when}", report)


@pytest.fixture(scope="session")
def engine():
    subprocess.run([str(REPO / "tests/rig/engine.sh"), "start"], check=True)
    out = subprocess.run(
        [str(REPO / "tests/rig/engine.sh"), "env"], check=True, capture_output=True, text=True
    ).stdout
    os.environ["DOCKER_HOST"] = out.strip().split("=", 1)[1]
    client = docker_client()
    if not client.images.list(name=IMAGE):
        pytest.exit(f"{IMAGE} is missing from the test engine: run `make test-images`", 2)
    remove_test_objects(client)
    fence_test_network()  # test hubs refuse to start on an unfenced network
    yield client
    remove_test_objects(client)


@pytest.fixture(scope="session")
def nvml_library():
    return build_library()


@pytest.fixture
def start_hub(request, engine, nvml_library, tmp_path):
    """start_hub(gpus, processes=(), extra_config="", name="", driver_loaded=True,
    hang=False, **hub_fields) -> a running Hub.

    Hubs of one test share the fake GPUs (one host); a second hub needs its
    own ``name`` (work folder) and ``prefix`` (hubrig.other_prefix()).
    ``driver_loaded``/``hang`` go to FakeNVML.write, ``hub_fields`` to Hub.
    """
    hubs = []

    def start(gpus, processes=(), extra_config="", name="", driver_loaded=True, hang=False,
              **hub_fields):
        nvml = FakeNVML(tmp_path / "gpus.state")
        nvml.write(gpus, processes, driver_loaded=driver_loaded, hang=hang)
        hub = Hub(workdir=tmp_path / name, nvml=nvml, extra_config=extra_config, **hub_fields)
        hubs.append(hub)
        return hub.start()

    yield start

    failed = getattr(request.node, "report_call", None)
    for hub in hubs:
        if failed is not None and failed.failed:
            print(f"\n----- hub log ({hub.log_path}) -----\n{hub.log_tail(200)}")
            for container in engine.containers.list(all=True, filters={"name": f"^{PREFIX}-"}):
                logs = container.logs(tail=40).decode(errors="replace")
                print(f"----- {container.name} ({container.status}) -----\n{logs}")
        hub.stop()
    remove_test_objects(engine)
