"""The record of servers stopped for GPU idleness, an ended lease or cohort, in the
service's SQLite file (table ``reclaims``).

The most recent records stay in memory for the pages (requests never read
the disk); :meth:`ReclaimLog.write` is blocking: run it in a thread.
"""

from __future__ import annotations

import sqlite3
import threading
from collections import deque
from dataclasses import asdict, dataclass
from pathlib import Path

SCHEMA = """
CREATE TABLE IF NOT EXISTS reclaims (
    time REAL NOT NULL,  -- epoch seconds
    user TEXT NOT NULL,
    server TEXT NOT NULL,  -- "" for the default server
    gpus TEXT NOT NULL,  -- comma-separated UUIDs
    kind TEXT NOT NULL,  -- idle | lease | cohort
    reason TEXT NOT NULL
)
"""


@dataclass(frozen=True)
class Reclaim:
    time: float
    user: str
    server: str
    gpus: tuple[str, ...]
    kind: str
    reason: str

    def model(self) -> dict:
        return {**asdict(self), "gpus": list(self.gpus)}


class ReclaimLog:
    """Every reclaim on disk; the last ``keep`` in memory, newest first."""

    def __init__(self, path: str | Path, keep: int = 1000):
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(path), check_same_thread=False)
        with self._db:
            self._db.execute(SCHEMA)
        rows = self._db.execute(
            "SELECT time, user, server, gpus, kind, reason FROM reclaims ORDER BY time DESC LIMIT ?", (keep,)
        ).fetchall()
        self._recent: deque[Reclaim] = deque(
            (Reclaim(t, u, s, tuple(g for g in gpus.split(",") if g), k, r) for t, u, s, gpus, k, r in rows),
            maxlen=keep,
        )
        # all time, for the organizer's report (the deque keeps only the last ``keep``)
        self._counts: dict[str, int] = dict(
            self._db.execute("SELECT user, COUNT(*) FROM reclaims GROUP BY user").fetchall())

    def write(self, record: Reclaim) -> None:
        """Store ``record`` (blocking), then show it."""
        with self._lock, self._db:
            self._db.execute(
                "INSERT INTO reclaims (time, user, server, gpus, kind, reason) VALUES (?, ?, ?, ?, ?, ?)",
                (record.time, record.user, record.server, ",".join(record.gpus), record.kind, record.reason),
            )
        self._recent.appendleft(record)
        self._counts[record.user] = self._counts.get(record.user, 0) + 1

    def counts(self) -> dict[str, int]:
        """Servers reclaimed per user, all time."""
        return dict(self._counts)

    def recent(self, user: str | None = None, since: float = 0.0, limit: int = 50) -> list[Reclaim]:
        """Newest first: everyone's, or one user's."""
        found = []
        for record in list(self._recent):
            if record.time < since or len(found) >= limit:
                break
            if user is None or record.user == user:
                found.append(record)
        return found

    def close(self) -> None:
        with self._lock:
            self._db.close()
