"""Prometheus metrics from the latest sample and the GPU-hours, on a private
registry (no process metrics of the service itself mixed in).

Every per-GPU series carries the holder's ``user`` and ``server`` labels
("" when free), so a Grafana panel can sum usage per user.
"""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from gpuhub.spawner.gpu_status import Status

from .tracker import Sample

GPU_LABELS = ["gpu", "uuid", "name", "user", "server"]


class UsageCollector:
    def __init__(self, latest: Callable[[], Sample | None],
                 hours: Callable[[], dict[str, float]]):
        self.latest = latest
        self.hours = hours

    def collect(self):
        sample = self.latest()
        utilization = GaugeMetricFamily(
            "gpuhub_gpu_utilization_percent", "GPU utilization, percent (NVML)", labels=GPU_LABELS)
        memory_used = GaugeMetricFamily(
            "gpuhub_gpu_memory_used_bytes", "GPU memory in use", labels=GPU_LABELS)
        memory_total = GaugeMetricFamily(
            "gpuhub_gpu_memory_total_bytes", "GPU memory in all", labels=GPU_LABELS)
        held = GaugeMetricFamily(
            "gpuhub_gpu_held", "1 when a hub server holds the GPU", labels=GPU_LABELS)
        status = GaugeMetricFamily(
            "gpuhub_gpu_status", "1 for the GPU's state (free, held, busy, unhealthy: as the "
            "spawner decides), 0 for the others", labels=[*GPU_LABELS, "status"])
        idle = GaugeMetricFamily(
            "gpuhub_gpu_idle_seconds", "Seconds since the GPU was last active", labels=GPU_LABELS)
        outside = GaugeMetricFamily(
            "gpuhub_gpu_outside_processes", "Processes on the GPU outside the hub's servers",
            labels=GPU_LABELS)
        if sample is not None:
            for device in sample.devices:
                gpu, holder = device.gpu, device.holder
                labels = [gpu.index, gpu.uuid, gpu.name,
                          holder.user if holder else "", holder.server if holder else ""]
                if gpu.utilization is not None:
                    utilization.add_metric(labels, gpu.utilization)
                memory_used.add_metric(labels, gpu.memory_used)
                memory_total.add_metric(labels, gpu.memory_total)
                held.add_metric(labels, 1 if holder else 0)
                for state in Status:
                    status.add_metric([*labels, state.value], int(device.status.status is state))
                idle.add_metric(labels, device.idle_seconds)
                outside.add_metric(labels, sum(1 for p in device.processes if p.holder is None))
        yield from (utilization, memory_used, memory_total, held, status, idle, outside)

        gpus_held = GaugeMetricFamily(
            "gpuhub_user_gpus_held", "GPUs a user's servers hold now", labels=["user"])
        if sample is not None:
            per_user: dict[str, int] = {}
            for server in sample.servers:
                per_user[server.user] = per_user.get(server.user, 0) + len(server.gpus)
            for user, count in sorted(per_user.items()):
                gpus_held.add_metric([user], count)
        yield gpus_held
        hours = CounterMetricFamily(
            "gpuhub_user_gpu_hours", "GPU-hours held by a user's servers (all time)",
            labels=["user"])
        for user, value in sorted(self.hours().items()):
            hours.add_metric([user], value)
        yield hours
        if sample is not None:
            yield GaugeMetricFamily(
                "gpuhub_sample_timestamp_seconds", "When the latest sample was taken",
                value=sample.time)


def registry_for(collector: UsageCollector) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector)
    return registry


def render(registry: CollectorRegistry) -> bytes:
    return generate_latest(registry)
