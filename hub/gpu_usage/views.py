"""What the pages, the JSON API and the home page show: plain dicts built
from the latest sample, its history and the GPU-hours. Pure.

Privacy: only :func:`all_gpus` (for read-all holders) names other users or
shows their processes; a user's own view holds only their servers.
"""

from __future__ import annotations

import datetime

from markupsafe import Markup

from gpuhub.spawner.gpu_status import Status

from .report import human_bytes, over_limit
from .tracker import Device, History, Point, Sample


def device_model(device: Device, history: History, since: float, idle_flag: float) -> dict:
    gpu = device.gpu
    holder = device.holder
    points = history.points(gpu.uuid or f"index:{gpu.index}", since)
    return {
        "index": gpu.index,
        "uuid": gpu.uuid,
        "name": gpu.name,
        "mig_parent": gpu.parent_uuid,
        "healthy": gpu.healthy,
        "error": gpu.error,
        "utilization": gpu.utilization,
        "memory_used": gpu.memory_used,
        "memory_total": gpu.memory_total,
        "temperature": gpu.temperature,
        "power_watts": gpu.power_watts,
        "holder": {"user": holder.user, "server": holder.server} if holder else None,
        # free / held / busy / unhealthy, as the spawner decides (gpu_status)
        "status": device.status.status.value,
        "status_reason": device.status.reason,
        "share": device.status.share,  # servers that may share it (1: exclusive, or nobody's)
        "held_seconds": round(device.held_seconds) if device.held_seconds is not None else None,
        "active": device.active,
        "idle_seconds": round(device.idle_seconds),
        "idle_flagged": holder is not None and not device.active and device.idle_seconds >= idle_flag,
        "processes": len(device.processes),
        "history": [
            {"time": round(p.time, 1), "utilization": p.utilization, "memory_used": p.memory_used}
            for p in points
        ],
    }


def user_gpus(sample: Sample, history: History, user: str, since: float, idle_flag: float,
              hours_week: float, hours_total: float) -> dict:
    """One user's servers and the devices they hold (their processes only)."""
    servers = []
    for server in sample.servers_of(user):
        devices = [sample.device(uuid) for uuid in server.gpus]
        gpus = []
        for device in devices:
            if device is None:
                continue
            model = device_model(device, history, since, idle_flag)
            model["processes"] = [
                {"pid": p.pid, "used_memory": p.used_memory}
                for p in device.processes
                if p.holder is not None and p.holder.container_id == server.container_id
            ]
            gpus.append(model)
        servers.append({"name": server.server, "gpus": gpus, "gpu_count": len(server.gpus),
                        "share": server.share})
    return {
        "user": user,
        "time": sample.time,
        "servers": servers,
        "gpus_held": sum(s["gpu_count"] for s in servers),
        "gpu_hours_this_week": round(hours_week, 4),
        "gpu_hours_total": round(hours_total, 4),
    }


def all_gpus(sample: Sample, history: History, since: float, idle_flag: float,
             hours_total: dict[str, float], hours_week: dict[str, float]) -> dict:
    """Every device, its holder, totals and the processes outside the hub."""
    gpus = [device_model(d, history, since, idle_flag) for d in sample.devices]
    for model, device in zip(gpus, sample.devices):
        model["processes"] = [
            {"pid": p.pid, "used_memory": p.used_memory,
             "user": p.holder.user if p.holder else None,
             "server": p.holder.server if p.holder else None}
            for p in device.processes
        ]
    statuses = [d.status.status for d in sample.devices]
    users = sorted({s.user for s in sample.servers if s.gpus})
    return {
        "time": sample.time,
        "nvml_available": sample.nvml_available,
        "unavailable_reason": sample.unavailable_reason,
        "totals": {
            "gpus": len(gpus),
            **{status.value: statuses.count(status) for status in Status},
            "active": sum(1 for d in sample.devices if d.active),
            "idle_flagged": sum(1 for g in gpus if g["idle_flagged"]),
            "users_holding": len(users),
            "outside_processes": len(sample.outside_processes),
        },
        "gpus": gpus,
        "outside_processes": [
            {"gpu_index": d.gpu.index, "uuid": d.gpu.uuid, "pid": p.pid, "used_memory": p.used_memory}
            for d, p in sample.outside_processes
        ],
        # which image each server runs, so an admin sees what code holds the GPUs
        "servers": [
            {"user": s.user, "server": s.server, "gpus": len(s.gpus), "image": s.image, "share": s.share}
            for s in sorted(sample.servers, key=lambda s: (s.user, s.server))
        ],
        "users": [
            {"user": u, "gpus_held": sum(len(s.gpus) for s in sample.servers_of(u)),
             "gpu_hours_this_week": round(hours_week.get(u, 0.0), 4),
             "gpu_hours_total": round(hours_total.get(u, 0.0), 4)}
            for u in sorted(set(users) | set(hours_total))
        ],
    }


def home_model(size: int | None, soft_limit: int) -> dict:
    """A user's home volume: its size (None: not measured yet) and the soft limit's warning."""
    over = over_limit(size, soft_limit)
    return {
        "bytes": size,
        "size": human_bytes(size),
        "soft_limit": soft_limit or None,
        "over_soft_limit": over,
        "warning": f"Your files use {human_bytes(size)} of the {human_bytes(soft_limit)} soft limit: "
                   "please delete what you no longer need (old checkpoints, copies of data sets, "
                   "~/.cache), or ask an admin for more room." if over else "",
    }


def sparkline(points: list[dict] | list[Point], width: int = 120, height: int = 24) -> Markup:
    """Utilization (0-100 %) over time as an inline SVG polyline."""
    values = [
        (p["time"], p["utilization"]) if isinstance(p, dict) else (p.time, p.utilization)
        for p in points
    ]
    values = [(t, u) for t, u in values if u is not None]
    if len(values) < 2:
        return Markup(f'<svg class="gpu-spark" width="{width}" height="{height}" role="img" '
                      f'aria-label="not enough history yet"></svg>')
    start, end = values[0][0], values[-1][0]
    span = (end - start) or 1
    coords = " ".join(
        f"{(t - start) / span * (width - 2) + 1:.1f},{height - 1 - u / 100 * (height - 2):.1f}"
        for t, u in values
    )
    last = values[-1][1]
    return Markup(
        f'<svg class="gpu-spark" width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
        f'role="img" aria-label="utilization, last {round(span / 60)} min, now {last}%">'
        f'<polyline fill="none" stroke="currentColor" stroke-width="1.5" points="{coords}"/></svg>'
    )


def duration(seconds: float | None) -> str:
    """12 s, 5 min, 3 h 20 min, 2 d 4 h."""
    if seconds is None:
        return "–"
    seconds = int(seconds)
    if seconds < 60:
        return f"{seconds} s"
    minutes = seconds // 60
    if minutes < 60:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    days, hours = divmod(hours, 24)
    return f"{days} d {hours} h" if hours else f"{days} d"


def utc_time(epoch: float) -> str:
    """2026-11-22 14:05."""
    return datetime.datetime.fromtimestamp(epoch, datetime.timezone.utc).strftime("%Y-%m-%d %H:%M")


def gib(value: int) -> str:
    return f"{value / 2**30:.1f} GiB"
