"""Long jobs count as active: the gpu-usage service tells the hub about servers
whose GPUs are in use (hub/gpu_usage/gpu_activity.py, activity_reporter.py)."""

import logging

import pytest
from traitlets.config import Config

from gpuhub.hub.gpu_usage.activity_reporter import ActivityReporter
from gpuhub.hub.gpu_usage.app import GpuUsageApp
from gpuhub.hub.gpu_usage.gpu_activity import due, gpus_in_use
from gpuhub.hub.gpu_usage.reclaimer import epoch, iso
from gpuhub.hub.gpu_usage.tracker import Server, Tracker
from gpuhub.hub.gpu_usage.wiring import SERVICE_SCOPES, configure_gpu_usage
from gpuhub.spawner.inventory import GPU, GPUProcess, Inventory

T0 = 1_800_000_000.0


def gpu(index, util=0, processes=(), healthy=True):
    return GPU(index=str(index), uuid=f"GPU-{index}", name="H100", memory_total=80, memory_used=1,
               utilization=util, processes=processes, healthy=healthy)


def server(letter, user, *gpus, hub="hub-a", share=1, name=""):
    return Server(letter * 64, user, name, tuple(gpus), created=0, hub=hub, share=share)


def sample_of(now, gpus, servers, owners=None):
    tracker = Tracker(max_gap=10**6)
    sample, _ = tracker.update(now, Inventory(gpus=tuple(gpus)), tuple(servers), owners or {})
    return sample


def test_a_server_whose_gpu_is_in_use_is_due_once_per_interval():
    ann = server("a", "ann", "GPU-0", "GPU-1")  # one of her two GPUs at work is enough
    bob = server("b", "bob", "GPU-2")  # idle
    cpu = server("c", "cid")  # CPU-only: nothing to say
    sample = sample_of(T0, [gpu(0), gpu(1, util=80), gpu(2, util=4)], [ann, bob, cpu])
    assert gpus_in_use(sample, ann) and not gpus_in_use(sample, bob)
    assert due(sample, {}, interval=300) == [ann]
    assert due(sample, {ann.container_id: T0 - 299}, interval=300) == []
    assert due(sample, {ann.container_id: T0 - 300}, interval=300) == [ann]
    # a process with no utilization reading (a job between kernels) is use too
    busy = sample_of(T0, [gpu(0), gpu(1), gpu(2, util=None, processes=(GPUProcess(7, 10),))], [ann, bob])
    assert due(busy, {}, interval=300) == [bob]


def test_only_this_hubs_servers_and_only_gpus_with_a_reading():
    ours, theirs = server("a", "ann", "GPU-0"), server("b", "ann", "GPU-1", hub="hub-b")
    sample = sample_of(T0, [gpu(0, util=90), gpu(1, util=90)], [ours, theirs])
    assert due(sample, {}, 300, hub_id="hub-a") == [ours]
    assert due(sample, {}, 300) == [ours, theirs]  # hub_id "": one hub per engine
    lost = sample_of(T0, [gpu(0, util=90, healthy=False)], [ours])
    assert due(lost, {}, 300) == []  # an unhealthy GPU's numbers say nothing
    missing = sample_of(T0, [], [ours])
    assert due(missing, {}, 300) == []


def test_on_a_shared_gpu_only_the_servers_own_processes_count():
    ann = server("a", "ann", "GPU-0", share=2)
    bob = server("b", "bob", "GPU-0", share=2)
    # 90 % utilization from bob's job (pid 42 in his container): ann is not kept by it
    sample = sample_of(T0, [gpu(0, util=90, processes=(GPUProcess(42, 10),))], [ann, bob],
                       owners={42: bob.container_id})
    assert due(sample, {}, 300) == [bob]
    unattributed = sample_of(T0, [gpu(0, util=90, processes=(GPUProcess(42, 10),))], [ann, bob])
    assert due(unattributed, {}, 300) == []


class FakeHub:
    """Stands in for the hub REST API (HubServers) in a unit test of the loop."""

    def __init__(self, failing=()):
        self.reports = []
        self.failing = set(failing)

    async def report_activity(self, user, server, when):
        if user in self.failing:
            raise ConnectionError("hub restarting")
        self.reports.append((user, server, when))


async def test_the_loop_reports_as_of_the_sample_at_most_once_per_interval(caplog):
    tracker = Tracker(max_gap=10**6)
    ann, bob = server("a", "ann", "GPU-0", name="big"), server("b", "bob", "GPU-1")
    hub = FakeHub(failing={"bob"})
    reporter = ActivityReporter(lambda: tracker.latest, hub, interval=60, period=5,
                                max_sample_age=30, hub_id="hub-a")
    for t in range(0, 130, 5):
        tracker.update(T0 + t, Inventory(gpus=(gpu(0, util=80), gpu(1, util=80))), (ann, bob), {})
        with caplog.at_level(logging.WARNING):
            await reporter.check(now=T0 + t + 1)
    assert hub.reports == [("ann", "big", T0), ("ann", "big", T0 + 60), ("ann", "big", T0 + 120)]
    # bob's reports failed: said, and tried again an interval later, not every period
    failures = [r.getMessage() for r in caplog.records if "bob" in r.getMessage()]
    assert len(failures) == 3 and "the idle culler may stop it" in failures[0]
    # a stale sample (the sampler stopped): nothing is said
    await reporter.check(now=T0 + 125 + 31)
    assert len(hub.reports) == 3
    # ann's server restarted (a new container): reported at once
    again = server("d", "ann", "GPU-0", name="big")
    tracker.update(T0 + 130, Inventory(gpus=(gpu(0, util=80), gpu(1))), (again,), {})
    await reporter.check(now=T0 + 131)
    assert hub.reports[-1] == ("ann", "big", T0 + 130) and set(reporter.reported) == {again.container_id}


def test_reported_times_are_the_hubs_timestamps():
    assert iso(T0 + 0.25) == "2027-01-15T08:00:00.250000Z"
    assert epoch(iso(T0 + 0.25)) == T0 + 0.25


@pytest.mark.parametrize("environ, interval", [
    ({}, 300.0),  # the culler's default 3600 s: every 5 min
    ({"GPUHUB_IDLE_TIMEOUT": "120"}, 30.0),  # a quarter of the culler's window
    ({"GPUHUB_IDLE_TIMEOUT": "0"}, None),  # no culler: the service's default
])
def test_the_service_may_report_activity_and_well_inside_the_cullers_window(tmp_path, environ, interval):
    c = Config()
    configure_gpu_usage(c, state_dir=tmp_path, port=8099, environ=environ)
    (usage,) = c.JupyterHub.services
    role = next(role for role in c.JupyterHub.load_roles if role["name"] == "gpu-usage-service")
    assert "users:activity" in role["scopes"] and role["scopes"] == SERVICE_SCOPES
    passed = [arg for arg in usage["command"] if arg.startswith("--GpuUsageApp.activity_interval=")]
    assert passed == ([f"--GpuUsageApp.activity_interval={int(interval)}"] if interval else [])
    app = GpuUsageApp()
    app.parse_command_line(usage["command"][3:])
    assert app.activity_interval == (interval or 300.0)
