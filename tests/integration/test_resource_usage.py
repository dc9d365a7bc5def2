"""jupyter-resource-usage in a spawned server: JupyterLab's status bar shows memory
against the server's mem_limit, which reaches it as MEM_LIMIT (Spawner.get_env)."""

import requests

from tests.fakes.fake_gpus import FakeNVML
from tests.integration.hubrig import container_of

GIB, MIB = 1 << 30, 1 << 20


def metrics(hub, name: str, token: str) -> dict:
    response = requests.get(
        f"{hub.url}/user/{name}/api/metrics/v1", headers={"Authorization": f"token {token}"}, timeout=30
    )
    assert response.status_code == 200, response.text
    return response.json()


def in_container(container, command: str) -> str:
    result = container.exec_run(["sh", "-c", command])
    assert result.exit_code == 0, result.output.decode()
    return result.output.decode()


def cgroup_memory(container) -> int:
    """The container's memory as its cgroup (and so mem_limit) counts it, in bytes
    (cgroup v2, or v1 as on the test engine)."""
    return int(in_container(container, "cat /sys/fs/cgroup/memory.current 2>/dev/null"
                                       " || cat /sys/fs/cgroup/memory/memory.usage_in_bytes"))


def test_status_bar_memory_is_measured_against_the_servers_limit(start_hub, engine):
    hub = start_hub(FakeNVML.make_gpus(1))
    hub.create_users("ann")
    hub.start_server("ann", {"gpus": 0})
    container = container_of(engine, "ann")

    # installed and enabled on both sides: the server extension and the status-bar item
    servers = in_container(container, "jupyter server extension list 2>&1")
    assert any("jupyter_resource_usage" in line and "enabled" in line for line in servers.splitlines()), servers
    labs = in_container(container, "jupyter labextension list 2>&1")
    assert any("@jupyter-server/resource-usage" in line and "enabled" in line for line in labs.splitlines()), labs

    token = hub.user_token("ann")
    before = metrics(hub, "ann", token)
    # the limit shown is the container's real one: the rig's mem_limit = "1G"
    assert before["limits"]["memory"]["rss"] == container.attrs["HostConfig"]["Memory"] == 1 * GIB
    assert 0 < before["rss"] < 1 * GIB

    # /dev/shm is memory of the container's cgroup (it counts against mem_limit),
    # but no process's RSS: the status bar does not show it (the form says so).
    cgroup_before = cgroup_memory(container)
    in_container(container, "dd if=/dev/zero of=/dev/shm/filler bs=1M count=256 2>/dev/null")
    cgroup_after = cgroup_memory(container)
    after = metrics(hub, "ann", token)
    assert cgroup_after - cgroup_before >= 200 * MIB
    assert after["rss"] - before["rss"] < 64 * MIB
