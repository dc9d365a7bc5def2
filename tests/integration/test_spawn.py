"""Spawning through the real hub: the container we get, for GPU and CPU-only servers."""

from tests.fakes.fake_gpus import FakeNVML
from tests.integration.hubrig import NETWORK, PREFIX, container_of, gpus_of

GIB = 1 << 30


def process_env(container) -> dict:
    """Environment of the container's main process, as the runtime set it."""
    raw = container.exec_run(["cat", "/proc/1/environ"]).output.decode()
    return dict(item.split("=", 1) for item in raw.split("\0") if "=" in item)


def test_gpu_server_gets_exactly_its_gpus_hardened_and_limited(start_hub, engine):
    gpus = FakeNVML.make_gpus(2)
    gpus[0].util_gpu = 30  # least used first: GPU 1 is chosen
    hub = start_hub(gpus)
    hub.create_users("ann")
    hub.start_server("ann", {"gpus": 1})

    container = container_of(engine, "ann")
    host = container.attrs["HostConfig"]
    assert {
        "DeviceRequests": host["DeviceRequests"],
        "Privileged": host["Privileged"],
        "SecurityOpt": host["SecurityOpt"],
        "CapDrop": host["CapDrop"],
        "ShmSize": host["ShmSize"],
        "PidsLimit": host["PidsLimit"],
        "Memory": host["Memory"],
        "CpuQuota": host["CpuQuota"],
        "NetworkMode": host["NetworkMode"],
        "Binds": host["Binds"],
        "User": container.attrs["Config"]["User"],
    } == {
        "DeviceRequests": [
            {
                "Driver": "nvidia",
                "Count": 0,
                "DeviceIDs": [gpus[1].uuid],
                "Capabilities": [["gpu"]],
                "Options": {},
            }
        ],
        "Privileged": False,
        "SecurityOpt": ["no-new-privileges:true"],
        "CapDrop": ["ALL"],
        "ShmSize": 8 * GIB,
        "PidsLimit": 4096,
        "Memory": 1 * GIB,
        "CpuQuota": 100_000,
        "NetworkMode": NETWORK,
        "Binds": [f"{PREFIX}-user-ann:/home/jovyan:rw"],
        "User": "1000",
    }
    labels = container.labels
    assert (labels["gpuhub.user"], labels["gpuhub.gpus"]) == ("ann", gpus[1].uuid)
    assert process_env(container)["NVIDIA_VISIBLE_DEVICES"] == gpus[1].uuid
    assert container.exec_run(["id", "-u"]).output.decode().strip() == "1000"
    mounts = container.exec_run(["df", "-B1", "/dev/shm"]).output.decode()
    assert str(8 * GIB) in mounts

    state = hub.api("GET", "/users/ann?include_stopped_servers").json()
    assert state["servers"][""]["ready"]

    hub.stop_server("ann")
    # Its GPU is free again: a second user gets it even though it is the busier one.
    hub.create_users("bob")
    hub.start_server("bob", {"gpus": 2})
    assert sorted(gpus_of(container_of(engine, "bob"))) == sorted(g.uuid for g in gpus)


def test_cpu_only_server_sees_no_gpu(start_hub, engine):
    hub = start_hub(FakeNVML.make_gpus(1))
    hub.create_users("carl")
    hub.start_server("carl", {"gpus": 0})
    container = container_of(engine, "carl")
    assert gpus_of(container) == []
    assert process_env(container)["NVIDIA_VISIBLE_DEVICES"] == "void"
    assert container.labels["gpuhub.gpus"] == ""
