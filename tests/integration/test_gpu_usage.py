"""The gpu-usage service against the real hub, proxy and containers, with fake GPUs.

Two users with GPUs and one without; the sampler follows the fake NVML as
it changes; processes are attributed through /proc/<pid>/cgroup (a
container's real main PID, and this test's own PID outside the hub);
GPU-hours survive a killed service and a hub restart; access control and
bad input answer 4xx with a message, never 500.
"""

import os
import signal
from pathlib import Path

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from tests.fakes.fake_gpus import FakeNVML, FakeProcess
from tests.integration.hubrig import PREFIX, container_of, gpus_of, wait_for

USAGE = "/services/gpu-usage"


@pytest.fixture(autouse=True)
def fast_sampler(monkeypatch):
    # The hub passes these on to the service (config/jupyterhub_config.py).
    monkeypatch.setenv("GPUHUB_USAGE_INTERVAL", "1")
    monkeypatch.setenv("GPUHUB_USAGE_IDLE_FLAG", "2")
    monkeypatch.setenv("GPUHUB_USAGE_CONTAINER_PREFIX", f"{PREFIX}-")


def get(hub, path, token=None, headers=None):
    headers = headers or ({"Authorization": f"token {token}"} if token else {})
    return requests.get(f"{hub.url}{USAGE}{path}", headers=headers, timeout=30)


def usage_of(hub, token, path="/api/me"):
    response = get(hub, path, token)
    return response.json() if response.status_code == 200 else None


def service_pid(hub) -> int:
    """The gpu-usage process the hub started (a child of the hub)."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if ppid == hub.proc.pid and b"gpuhub.hub.gpu_usage" in cmdline:
            return int(entry.name)
    raise AssertionError("the hub runs no gpu-usage service")


def gpus_by_uuid(data):
    return {g["uuid"]: g for server in data["servers"] for g in server["gpus"]}


def test_usage_follows_gpus_and_is_private(start_hub, engine):
    gpus = FakeNVML.make_gpus(4)
    hub = start_hub(gpus)
    hub.create_users("ann", "bob", "cid")
    hub.create_users("ian", groups=("instructors",))
    hub.start_server("ann", {"gpus": 2})
    hub.start_server("bob", {"gpus": 1})
    hub.start_server("cid", {"gpus": 0})
    tokens = {name: hub.user_token(name) for name in ("ann", "bob", "cid", "ian", "admin")}
    ann_gpus = gpus_of(container_of(engine, "ann"))
    (bob_gpu,) = gpus_of(container_of(engine, "bob"))
    free = [g for g in gpus if g.uuid not in {*ann_gpus, bob_gpu}][0]

    # Each user sees their own servers and GPUs.
    ann = wait_for(lambda: usage_of(hub, tokens["ann"]), "ann's usage")
    assert sorted(gpus_by_uuid(ann)) == sorted(ann_gpus)
    assert ann["gpus_held"] == 2
    bob = usage_of(hub, tokens["bob"])
    assert list(gpus_by_uuid(bob)) == [bob_gpu]
    cid = usage_of(hub, tokens["cid"])
    assert cid["gpus_held"] == 0 and cid["servers"][0]["gpus"] == []

    # The sampler follows NVML: load on ann's first GPU, a process in her
    # container (its real main PID), and a job outside the hub (this test).
    for gpu in gpus:
        if gpu.uuid == ann_gpus[0]:
            gpu.util_gpu, gpu.mem_used = 77, 10 * 2**30
    ann_pid = container_of(engine, "ann").attrs["State"]["Pid"]
    hub.nvml.write(gpus, [FakeProcess(uuid=ann_gpus[0], pid=ann_pid, mem=2**30),
                          FakeProcess(uuid=free.uuid, pid=os.getpid(), mem=3 * 2**30)])

    def ann_loaded():
        data = usage_of(hub, tokens["ann"])
        gpu = data and gpus_by_uuid(data)[ann_gpus[0]]
        return gpu if gpu and gpu["utilization"] == 77 else None

    loaded = wait_for(ann_loaded, "ann's GPU at 77 %", timeout=30)
    assert loaded["memory_used"] == 10 * 2**30
    assert loaded["memory_total"] == 80 * 2**30
    assert loaded["idle_seconds"] == 0
    assert loaded["processes"] == [{"pid": ann_pid, "used_memory": 2**30}]
    assert loaded["history"][-1]["utilization"] == 77
    assert loaded["temperature"] == 30 and loaded["power_watts"] == 70.0

    everything = usage_of(hub, tokens["admin"], "/api/gpus")
    rows = {g["uuid"]: g for g in everything["gpus"]}
    assert rows[ann_gpus[0]]["holder"] == {"user": "ann", "server": ""}
    assert rows[ann_gpus[0]]["processes"] == [
        {"pid": ann_pid, "used_memory": 2**30, "user": "ann", "server": ""}]
    assert rows[bob_gpu]["holder"] == {"user": "bob", "server": ""}
    assert rows[free.uuid]["holder"] is None
    assert everything["outside_processes"] == [
        {"gpu_index": str(free.index), "uuid": free.uuid,
         "pid": os.getpid(), "used_memory": 3 * 2**30}]
    totals = everything["totals"]
    # The GPU nobody holds runs a job outside the hub: busy, as the spawner sees it, not free.
    assert (totals["gpus"], totals["held"], totals["free"], totals["busy"]) == (4, 3, 0, 1)
    assert rows[free.uuid]["status"] == "busy" and str(os.getpid()) in rows[free.uuid]["status_reason"]
    assert totals["users_holding"] == 2 and totals["outside_processes"] == 1
    # Held and idle past the (test) 2 s threshold: bob's GPU, and ann's second.
    assert wait_for(lambda: usage_of(hub, tokens["admin"], "/api/gpus")["totals"]["idle_flagged"] == 2,
                    "idle GPUs flagged", timeout=15)
    # An instructor sees everything too; bob never sees ann's process.
    assert get(hub, "/api/gpus", tokens["ian"]).status_code == 200
    assert all(g["processes"] == [] for g in gpus_by_uuid(usage_of(hub, tokens["bob"])).values())

    # ---- access control ----
    assert get(hub, "/api/users/bob", tokens["ann"]).status_code == 403
    assert get(hub, "/api/gpus", tokens["ann"]).status_code == 403
    denied = get(hub, f"/api/gpus/{bob_gpu}", tokens["ann"])
    assert denied.status_code == 403 and "message" in denied.json()
    assert get(hub, f"/api/gpus/{ann_gpus[0]}", tokens["ann"]).status_code == 200
    assert get(hub, "/api/users/bob", tokens["admin"]).json()["gpus_held"] == 1
    assert get(hub, "/api/users/cid", tokens["ian"]).status_code == 200
    unscoped = hub.api("POST", "/users/ann/tokens", json={"scopes": ["read:users:name!user=ann"]})
    assert get(hub, "/api/me", unscoped.json()["token"]).status_code == 403
    assert get(hub, "/api/me").status_code == 401
    assert get(hub, "/all", tokens["ann"]).status_code == 403
    page = get(hub, "/all", tokens["admin"])
    assert page.status_code == 200 and "ann" in page.text and "outside the hub" in page.text
    mine = get(hub, "/", tokens["bob"])
    assert mine.status_code == 200 and bob_gpu in mine.text and "ann" not in mine.text

    # ---- bad input: 4xx with a message, never 500 ----
    odd_windows = ["abc", "99999", "-5", "%C2%B2", "60%C2%B2", "%D9%A3%D9%A0%D9%A0", "%EF%BC%96%EF%BC%90",
                   "9" * 5000, "", "%2B300", "300.0", "%00"]
    for path, status in [
        ("/api/users/nobody", 404),
        ("/api/users/%C2%B2%F0%9F%98%80", 404),
        ("/api/users/" + "x" * 2000, 404),
        ("/api/gpus/GPU-nope", 404),
        ("/api/gpus/%C2%B2", 404),
        *((f"/api/me?window={w}", 400) for w in odd_windows),
        *((f"/api/gpus?window={w}", 400) for w in odd_windows),
        *((f"/api/users/ann?window={w}", 400) for w in odd_windows),
        (f"/api/gpus/{ann_gpus[0]}?window=%C2%B2", 400),
        ("/api/nothing-here", 404),
    ]:
        response = get(hub, path, tokens["admin"])
        assert response.status_code == status, (path, response.text)
        assert response.json()["message"], path
    assert "window must be a whole number of seconds" in get(
        hub, "/api/me?window=abc", tokens["ann"]).json()["message"]
    for page in ("/", "/all", "/embed"):
        for w in ("abc", "%C2%B2", "9" * 5000, ""):
            response = get(hub, f"{page}?window={w}", tokens["admin"])
            assert response.status_code == 400, (page, w, response.status_code)
            assert "window must be a whole number of seconds" in response.text

    # ---- metrics: token-protected, per GPU and per user ----
    token_file = hub.workdir / "state" / "gpu_usage_metrics_token"
    assert token_file.stat().st_mode & 0o777 == 0o600
    assert get(hub, "/metrics").status_code == 401
    assert get(hub, "/metrics", headers={"Authorization": "Bearer wrong"}).status_code == 403
    metrics = get(hub, "/metrics", headers={"Authorization": f"Bearer {token_file.read_text()}"})
    assert metrics.status_code == 200
    series = {(s.name, tuple(sorted(s.labels.items()))): s.value
              for family in text_string_to_metric_families(metrics.text) for s in family.samples}
    ann_labels = (("gpu", loaded["index"]), ("name", "NVIDIA H100 80GB HBM3"), ("server", ""),
                  ("user", "ann"), ("uuid", ann_gpus[0]))
    assert series[("gpuhub_gpu_utilization_percent", ann_labels)] == 77
    assert series[("gpuhub_gpu_memory_used_bytes", ann_labels)] == 10 * 2**30
    assert series[("gpuhub_user_gpus_held", (("user", "ann"),))] == 2
    assert ("gpuhub_user_gpu_hours_total", (("user", "bob"),)) in series

    # ---- GPU-hours accumulate, and survive a killed service and a hub restart ----
    def hours(name):
        return usage_of(hub, tokens["admin"], f"/api/users/{name}")["gpu_hours_total"]

    before = wait_for(lambda: hours("ann") > 0 and hours("ann"), "ann's GPU-hours", timeout=15)
    wait_for(lambda: hours("ann") > before, "more GPU-hours", timeout=15)
    assert hours("bob") > 0 and hours("cid") == 0
    killed = hours("ann")
    os.kill(service_pid(hub), signal.SIGKILL)
    hub.restart()
    after = wait_for(lambda: usage_of(hub, tokens["admin"], "/api/users/ann"),
                     "the service after a restart", timeout=30)["gpu_hours_total"]
    # At most one interval (1 s x 2 GPUs) is lost with a SIGKILL.
    assert after >= killed - 2 / 3600
