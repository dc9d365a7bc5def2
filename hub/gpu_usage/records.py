"""What the organizer's report needs besides GPU-hours, kept in the service's
SQLite file across restarts: peak concurrent GPUs per user and per cohort or
team group (table ``peaks``), and each start's wait in the GPU queue (table
``queue_waits``, from the container's ``gpuhub.queue_wait`` label).

Each is a recorder of the sampler: ``observe(sample)`` updates the in-memory
figures on the event loop and returns what to store; ``write`` stores it
(blocking: the sampler runs it on its worker thread).
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Mapping
from pathlib import Path

from .cohorts import gpus_held, raised_peaks
from .report import WaitTotals
from .tracker import Sample

PEAKS = """
CREATE TABLE IF NOT EXISTS peaks (
    kind TEXT NOT NULL,  -- user | group
    name TEXT NOT NULL,
    gpus INTEGER NOT NULL,  -- most GPUs held at once
    time REAL NOT NULL,  -- epoch seconds: when first seen at that peak
    PRIMARY KEY (kind, name)
)
"""

QUEUE_WAITS = """
CREATE TABLE IF NOT EXISTS queue_waits (
    container_id TEXT PRIMARY KEY,  -- one start, counted once
    user TEXT NOT NULL,
    seconds REAL NOT NULL,
    time REAL NOT NULL  -- epoch seconds: the sample that saw it
)
"""


class _Table:
    def __init__(self, path: str | Path, schema: str):
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(path), check_same_thread=False, timeout=30)
        with self._db:
            self._db.execute(schema)

    def close(self) -> None:
        with self._lock:
            self._db.close()


class PeakRecord(_Table):
    """Most GPUs held at once by each user, and by the members of each group
    that ``groups()`` names (cohorts and teams, from the hub), with when."""

    def __init__(self, path: str | Path, groups: Callable[[], Mapping[str, frozenset[str]]]):
        super().__init__(path, PEAKS)
        self._groups = groups
        self._peaks = {(kind, name): (gpus, time)
                       for kind, name, gpus, time in self._db.execute("SELECT kind, name, gpus, time FROM peaks")}

    def observe(self, sample: Sample) -> dict:
        raised = raised_peaks(self._peaks, gpus_held(sample.servers, self._groups()), sample.time)
        self._peaks.update(raised)
        return raised

    def write(self, raised: dict) -> None:
        if not raised:
            return
        with self._lock, self._db:
            self._db.executemany(
                "INSERT INTO peaks (kind, name, gpus, time) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (kind, name) DO UPDATE SET gpus = excluded.gpus, time = excluded.time",
                [(kind, name, gpus, time) for (kind, name), (gpus, time) in raised.items()],
            )

    def peaks(self, kind: str) -> dict[str, int]:
        """name -> most GPUs held at once, for ``kind`` "user" or "group"."""
        return {name: gpus for (k, name), (gpus, _time) in self._peaks.items() if k == kind}


class QueueWaits(_Table):
    """Each start that waited in the GPU queue, counted once per container."""

    def __init__(self, path: str | Path):
        super().__init__(path, QUEUE_WAITS)
        self._counted: set[str] = set()
        self._totals: dict[str, WaitTotals] = {}
        for container_id, user, seconds in self._db.execute("SELECT container_id, user, seconds FROM queue_waits"):
            self._count(container_id, user, seconds)

    def _count(self, container_id: str, user: str, seconds: float) -> None:
        self._counted.add(container_id)
        self._totals[user] = self._totals.get(user, WaitTotals()).plus(seconds)

    def observe(self, sample: Sample) -> list[tuple]:
        new = [(s.container_id, s.user, s.queue_wait, sample.time) for s in sample.servers
               if s.queue_wait > 0 and s.container_id not in self._counted]
        for container_id, user, seconds, _time in new:
            self._count(container_id, user, seconds)
        return new

    def write(self, new: list[tuple]) -> None:
        if not new:
            return
        with self._lock, self._db:
            self._db.executemany(
                "INSERT OR IGNORE INTO queue_waits (container_id, user, seconds, time) VALUES (?, ?, ?, ?)", new)

    def totals(self) -> dict[str, WaitTotals]:
        return dict(self._totals)
