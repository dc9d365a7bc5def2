"""Which container a host process belongs to, from ``/proc/<pid>/cgroup``.

NVML reports compute processes by host PID. Docker puts each container in
its own cgroup, named after the 64-hex container ID:

- cgroupfs driver (v1 and v2): ``/docker/<id>``
- systemd driver: ``/system.slice/docker-<id>.scope``

A PID that maps to no hub container is a job outside the hub.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

_HEX_ID = re.compile(r"[0-9a-f]{64}")
_SCOPE = re.compile(r"docker-([0-9a-f]{64})\.scope")


def container_id_from_cgroup(text: str) -> str | None:
    """The Docker container ID in a ``/proc/<pid>/cgroup`` file, or None."""
    for line in text.splitlines():
        parts = line.strip().split(":", 2)
        if len(parts) != 3:
            continue
        segments = parts[2].split("/")
        for position, segment in enumerate(segments):
            scope = _SCOPE.fullmatch(segment)
            if scope:
                return scope.group(1)
            if position and segments[position - 1] == "docker" and _HEX_ID.fullmatch(segment):
                return segment
    return None


def container_id_of_pid(pid: int, proc_root: str = "/proc") -> str | None:
    """Read one process's cgroup file; None when it is gone or unreadable."""
    try:
        with open(f"{proc_root}/{int(pid)}/cgroup") as f:
            return container_id_from_cgroup(f.read())
    except (OSError, ValueError):
        return None


def container_ids(pids: Iterable[int], proc_root: str = "/proc") -> dict[int, str | None]:
    """PID -> container ID (None: not in a container, or gone). Blocking: run in a thread."""
    return {pid: container_id_of_pid(pid, proc_root) for pid in set(pids)}
