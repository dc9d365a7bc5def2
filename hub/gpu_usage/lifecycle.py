"""One gpu-usage service per state dir, and none that outlives its hub.

The hub starts its managed services in a session of their own, so a hub
killed with SIGKILL leaves its service running: it keeps the port, and
answers with the dead hub's token. Two guards:

- :func:`watch_parent`: the service stops when its parent (the hub) is gone
  (the kernel re-parents an orphan, so ``getppid()`` changes);
- :func:`take_over`: before binding its port, a starting service ends an
  older copy recorded in the state dir's pid file (checked by its command
  line, so a PID reused by another program is left alone).

Blocking; :func:`take_over` runs once, before the event loop starts.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import time
from pathlib import Path

MARKER = b"gpuhub.hub.gpu_usage"  # an argument of every copy of the service (python -m …)


def _command_line(pid: int) -> bytes | None:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return None


def _alive(pid: int) -> bool:
    """Running, and not a zombie waiting for a parent to reap it (its port is closed)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def take_over(pid_file: Path, log: logging.Logger, timeout: float = 10.0) -> None:
    """End the older service named in ``pid_file`` (if it still runs), then record ours."""
    try:
        old = int(pid_file.read_text().strip())
    except (OSError, ValueError):
        old = None
    if old and old != os.getpid() and _alive(old) and MARKER in (_command_line(old) or b"").split(b"\0"):
        log.warning("An older gpu-usage service (pid %s) still runs for this state dir; "
                    "its hub is gone: stopping it", old)
        _stop(old, timeout, log)
    temporary = pid_file.with_name(pid_file.name + ".new")
    temporary.write_text(f"{os.getpid()}\n")
    temporary.chmod(0o600)
    temporary.replace(pid_file)


def _stop(pid: int, timeout: float, log: logging.Logger) -> None:
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.kill(pid, sig)
            os.kill(pid, signal.SIGCONT)  # a stopped process handles SIGTERM only once resumed
        except ProcessLookupError:
            return
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not _alive(pid):
                return
            time.sleep(0.1)
        if sig == signal.SIGTERM:
            log.warning("gpu-usage service pid %s did not stop in %.0f s: killing it", pid, timeout)


def release(pid_file: Path) -> None:
    """Remove the pid file if it still names this process."""
    try:
        if int(pid_file.read_text().strip()) == os.getpid():
            pid_file.unlink()
    except (OSError, ValueError):
        pass


async def watch_parent(parent: int, stop: asyncio.Event, log: logging.Logger,
                       interval: float = 1.0, service: str = "gpu-usage") -> None:
    """Set ``stop`` once the process that started us (``parent``) is gone."""
    while not stop.is_set():
        if os.getppid() != parent:
            log.warning("The hub (pid %s) is gone: stopping, so that the next hub "
                        "starts a %s service of its own", parent, service)
            stop.set()
            return
        await asyncio.sleep(interval)


async def every(interval: float, step, log: logging.Logger, what: str) -> None:
    """Await ``step()`` every ``interval`` seconds (start to start), forever; a
    step that fails is logged and the next one comes on time."""
    while True:
        started = time.monotonic()
        try:
            await step()
        except Exception:
            log.exception("%s failed; trying again in %ss", what, interval)
        await asyncio.sleep(max(0.0, interval - (time.monotonic() - started)))
