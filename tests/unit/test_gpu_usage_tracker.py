"""Samples, the history window, idle time and GPU-hours accumulation (pure)."""

from hypothesis import given
from hypothesis import strategies as st

from gpuhub.hub.gpu_usage.tracker import History, Point, Server, Tracker, held_gpu_seconds
from gpuhub.spawner.inventory import GPU, GPUProcess, Inventory

CID = "a" * 64


def gpu(index, util=0, processes=()):
    return GPU(index=str(index), uuid=f"GPU-{index}", name="H100", memory_total=80,
               memory_used=1, utilization=util, processes=tuple(processes))


def test_history_keeps_only_the_window():
    history = History(window=3600)
    for t in range(0, 7200, 5):
        history.add("GPU-0", Point(t, 50, 0))
    points = history.points("GPU-0")
    assert points[0].time == 7195 - 3600 and points[-1].time == 7195
    assert len(points) == 721
    assert [p.time for p in history.points("GPU-0", since=7190)] == [7190, 7195]
    assert history.points("GPU-unknown") == []


def test_history_forgets_devices_that_are_gone():
    history = History()
    history.add("GPU-0", Point(1, 1, 1))
    history.add("GPU-1", Point(1, 1, 1))
    history.forget_missing({"GPU-1"})
    assert history.points("GPU-0") == [] and len(history.points("GPU-1")) == 1


def test_gpu_seconds_are_gpus_held_times_time():
    servers = (Server(CID, "ann", "", ("GPU-0", "GPU-1"), 0),
               Server("b" * 64, "ann", "big", ("GPU-2",), 0),
               Server("c" * 64, "bob", "", ("GPU-3",), 0),
               Server("d" * 64, "cid", "", (), 0))
    assert held_gpu_seconds(servers, 5) == {"ann": 15, "bob": 5}
    assert held_gpu_seconds(servers, 0) == {}


@given(st.lists(st.floats(min_value=0.1, max_value=10), min_size=1, max_size=50))
def test_accumulation_adds_up_over_samples(gaps):
    tracker = Tracker(max_gap=60)
    servers = (Server(CID, "ann", "", ("GPU-0", "GPU-1"), 0),)
    inventory = Inventory(gpus=(gpu(0), gpu(1)))
    now, total = 1000.0, 0.0
    _, first = tracker.update(now, inventory, servers, {})
    assert first == {}  # nothing before the first sample
    for gap in gaps:
        now += gap
        _, seconds = tracker.update(now, inventory, servers, {})
        total += seconds.get("ann", 0)
    assert abs(total - 2 * (now - 1000)) < 1e-6


def test_a_long_gap_is_not_counted():
    tracker = Tracker(max_gap=15)
    servers = (Server(CID, "ann", "", ("GPU-0",), 0),)
    inventory = Inventory(gpus=(gpu(0),))
    tracker.update(0, inventory, servers, {})
    assert tracker.update(5, inventory, servers, {})[1] == {"ann": 5}
    assert tracker.update(500, inventory, servers, {})[1] == {}  # the service was down
    assert tracker.update(505, inventory, servers, {})[1] == {"ann": 5}


def test_holders_processes_and_idle_time():
    tracker = Tracker(active_utilization=5)
    servers = (Server(CID, "ann", "", ("GPU-0",), created=100),)
    owners = {11: CID, 22: None}
    inventory = Inventory(gpus=(gpu(0, util=0), gpu(1, processes=[GPUProcess(22, 5)])))
    sample, _ = tracker.update(160, inventory, servers, owners)
    held, free = sample.devices
    assert held.holder.user == "ann" and held.held_seconds == 60
    assert not held.active and held.idle_seconds == 0  # idle since first seen (no history yet)
    assert free.holder is None and free.held_seconds is None
    assert free.active and free.idle_seconds == 0  # a process outside the hub keeps it active
    assert [(d.gpu.uuid, p.pid) for d, p in sample.outside_processes] == [("GPU-1", 22)]

    busy = Inventory(gpus=(gpu(0, util=80, processes=[GPUProcess(11, 7)]), gpu(1)))
    sample, _ = tracker.update(170, busy, servers, owners)
    assert sample.devices[0].active and sample.devices[0].idle_seconds == 0
    assert sample.devices[1].idle_seconds == 10  # active at 160
    assert sample.devices[0].processes[0].holder.user == "ann"
    assert sample.outside_processes == []
    sample, _ = tracker.update(200, Inventory(gpus=(gpu(0, util=1), gpu(1))), servers, owners)
    assert not sample.devices[0].active and sample.devices[0].idle_seconds == 30
    assert sample.devices[1].idle_seconds == 40
    assert [p.utilization for p in tracker.history.points("GPU-0")] == [0, 80, 1]
    assert sample.device("GPU-0") is sample.devices[0] and sample.device("GPU-9") is None


def test_a_gpu_handed_out_later_is_idle_since_then():
    tracker = Tracker(max_gap=120)
    inventory = Inventory(gpus=(gpu(0),))
    tracker.update(0, inventory, (), {})
    servers = (Server(CID, "ann", "", ("GPU-0",), created=50),)
    sample, _ = tracker.update(80, inventory, servers, {})
    assert sample.devices[0].idle_seconds == 30 and sample.devices[0].held_seconds == 30


def test_idle_time_counts_again_after_a_gap_in_the_samples():
    """Nobody saw the GPU while the service was down: it may have been used."""
    tracker = Tracker(max_gap=60)
    inventory = Inventory(gpus=(gpu(0),))
    servers = (Server(CID, "ann", "", ("GPU-0",), created=0),)
    tracker.update(0, inventory, servers, {})
    assert tracker.update(50, inventory, servers, {})[0].devices[0].idle_seconds == 50
    assert tracker.update(500, inventory, servers, {})[0].devices[0].idle_seconds == 0
    assert tracker.update(530, inventory, servers, {})[0].devices[0].idle_seconds == 30
