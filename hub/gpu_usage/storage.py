"""Each user's home volume size, for My GPUs, the home page and the cohort report.

Which volume is a user's home: the one their server mounts at the home
directory (``home_path``), seen in each sample and kept in the service's
SQLite file (table ``homes``) so a stopped server's home still counts.
How big: Docker's disk-usage API (``GET /system/df``, ``UsageData.Size``),
which walks every volume and can take long on a big engine: it runs on a
thread of its own every ``interval`` seconds; requests read the last answer.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import docker

from .tracker import Sample
from .warn_once import WarnOnce

HOMES = """
CREATE TABLE IF NOT EXISTS homes (
    user TEXT PRIMARY KEY,
    volume TEXT NOT NULL  -- the named volume at the home directory
)
"""


def volume_sizes(df: dict) -> dict[str, int]:
    """Volume name -> bytes, from ``/system/df``; sizes Docker did not measure (-1) are left out."""
    sizes = {}
    for volume in df.get("Volumes") or ():
        size = (volume.get("UsageData") or {}).get("Size", -1)
        if isinstance(size, int) and size >= 0:
            sizes[volume["Name"]] = size
    return sizes


class HomeSizes:
    """User -> home volume (a sampler recorder), volume -> size (measured on its own thread)."""

    def __init__(self, path: str | Path, interval: float, log: logging.Logger | None = None):
        self.interval = interval
        self.log = log or logging.getLogger(__name__)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(path), check_same_thread=False, timeout=30)
        with self._db:
            self._db.execute(HOMES)
        self._homes: dict[str, str] = dict(self._db.execute("SELECT user, volume FROM homes").fetchall())
        self._sizes: dict[str, int] = {}
        self.measured_at: float | None = None
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="gpu-usage-df")
        self._state = WarnOnce(self.log)

    # ---- sampler recorder ----
    def observe(self, sample: Sample) -> dict[str, str]:
        changed = {s.user: s.home_volume for s in sample.servers
                   if s.home_volume and self._homes.get(s.user) != s.home_volume}
        self._homes.update(changed)
        return changed

    def write(self, changed: dict[str, str]) -> None:
        if not changed:
            return
        with self._lock, self._db:
            self._db.executemany(
                "INSERT INTO homes (user, volume) VALUES (?, ?) "
                "ON CONFLICT (user) DO UPDATE SET volume = excluded.volume", list(changed.items()))

    # ---- sizes ----
    @staticmethod
    def _measure() -> dict[str, int]:
        client = docker.from_env()  # honours DOCKER_HOST; one per call: this thread only
        try:
            return volume_sizes(client.api.df())
        finally:
            client.close()

    async def measure_once(self) -> None:
        started = time.monotonic()
        try:
            self._sizes = await asyncio.get_running_loop().run_in_executor(self._thread, self._measure)
        except Exception as error:  # keep the last sizes
            self._state.failed("Cannot measure home volumes (%s): sizes are from the last good "
                               "measurement; check DOCKER_HOST and the Docker daemon", error)
            return
        self._state.worked()
        self.measured_at = time.time()
        took = time.monotonic() - started
        if took > self.interval / 2:
            self.log.warning("Measuring home volumes took %.0f s (every %.0f s): raise "
                             "GpuUsageApp.storage_interval", took, self.interval)

    async def run(self) -> None:
        while True:
            await self.measure_once()
            await asyncio.sleep(self.interval)

    def size_of(self, user: str) -> int | None:
        volume = self._homes.get(user)
        return self._sizes.get(volume) if volume else None

    def by_user(self) -> dict[str, int]:
        return {user: self._sizes[volume] for user, volume in self._homes.items() if volume in self._sizes}

    def close(self) -> None:
        self._thread.shutdown(wait=False, cancel_futures=True)
        with self._lock:
            self._db.close()
