"""Prometheus text from a sample and the GPU-hours."""

from prometheus_client.parser import text_string_to_metric_families

from gpuhub.hub.gpu_usage.metrics import UsageCollector, registry_for, render
from gpuhub.hub.gpu_usage.tracker import Server, Tracker
from gpuhub.spawner.inventory import GPU, GPUProcess, Inventory


def series(text):
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def test_metrics_per_gpu_and_per_user():
    tracker = Tracker()
    servers = (Server("a" * 64, "ann", "big", ("GPU-0",), created=90),)
    inventory = Inventory(gpus=(
        GPU("0", "GPU-0", "H100", memory_total=80, memory_used=8, utilization=77),
        GPU("1", "GPU-1", "H100", memory_total=80, memory_used=3, utilization=None,
            processes=(GPUProcess(5, 3),)),
    ))
    tracker.update(100, inventory, servers, {5: None})
    registry = registry_for(UsageCollector(lambda: tracker.latest, lambda: {"ann": 1.5, "bob": 0.25}))
    text = render(registry).decode()
    ann = (("gpu", "0"), ("name", "H100"), ("server", "big"), ("user", "ann"), ("uuid", "GPU-0"))
    free = (("gpu", "1"), ("name", "H100"), ("server", ""), ("user", ""), ("uuid", "GPU-1"))
    values = series(text)
    assert values[("gpuhub_gpu_utilization_percent", ann)] == 77
    assert ("gpuhub_gpu_utilization_percent", free) not in values  # NVML said nothing
    assert values[("gpuhub_gpu_memory_used_bytes", ann)] == 8
    assert values[("gpuhub_gpu_memory_total_bytes", free)] == 80
    assert values[("gpuhub_gpu_held", ann)] == 1 and values[("gpuhub_gpu_held", free)] == 0
    assert values[("gpuhub_gpu_idle_seconds", ann)] == 0  # 77 % is active
    assert values[("gpuhub_gpu_outside_processes", free)] == 1
    # GPU-1: nobody holds it, but a process outside the hub runs there: busy, not free.
    assert values[("gpuhub_gpu_status", tuple(sorted((*free, ("status", "busy")))))] == 1
    assert values[("gpuhub_gpu_status", tuple(sorted((*free, ("status", "free")))))] == 0
    assert values[("gpuhub_gpu_status", tuple(sorted((*ann, ("status", "held")))))] == 1
    assert values[("gpuhub_user_gpus_held", (("user", "ann"),))] == 2 - 1
    assert values[("gpuhub_user_gpu_hours_total", (("user", "bob"),))] == 0.25
    assert values[("gpuhub_sample_timestamp_seconds", ())] == 100
    assert "# TYPE gpuhub_user_gpu_hours_total counter" in text


def test_metrics_before_the_first_sample():
    text = render(registry_for(UsageCollector(lambda: None, dict))).decode()
    assert "# TYPE gpuhub_gpu_utilization_percent gauge" in text
    assert "gpuhub_sample_timestamp_seconds" not in text
