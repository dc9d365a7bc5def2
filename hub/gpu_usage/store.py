"""GPU-seconds per user and UTC day, in SQLite under the hub's state dir.

The totals live in memory too (read per request, never from disk); each
sample's increments are written in one transaction, so a killed service
loses at most one interval.
"""

from __future__ import annotations

import datetime
import sqlite3
import threading
from pathlib import Path

SCHEMA = """
CREATE TABLE IF NOT EXISTS gpu_seconds (
    user TEXT NOT NULL,
    day TEXT NOT NULL,  -- UTC date, YYYY-MM-DD
    seconds REAL NOT NULL,
    PRIMARY KEY (user, day)
)
"""


def utc_day(epoch: float) -> str:
    return datetime.datetime.fromtimestamp(epoch, datetime.timezone.utc).date().isoformat()


def week_start(epoch: float) -> str:
    """Monday (UTC) of the week ``epoch`` falls in."""
    day = datetime.datetime.fromtimestamp(epoch, datetime.timezone.utc).date()
    return (day - datetime.timedelta(days=day.weekday())).isoformat()


class UsageStore:
    """GPU-seconds per (user, day). ``add`` updates memory; ``write`` persists (blocking)."""

    def __init__(self, path: str | Path):
        self.path = str(path)
        self._lock = threading.Lock()  # the connection is used from one worker thread
        self._db = sqlite3.connect(self.path, check_same_thread=False)
        self._db.execute(SCHEMA)
        self._db.commit()
        self._seconds: dict[tuple[str, str], float] = {
            (user, day): seconds
            for user, day, seconds in self._db.execute("SELECT user, day, seconds FROM gpu_seconds")
        }

    def add(self, seconds_by_user: dict[str, float], now: float) -> dict[tuple[str, str], float]:
        """Count the increments in memory; returns them for :meth:`write`."""
        day = utc_day(now)
        increments = {(user, day): s for user, s in seconds_by_user.items() if s > 0}
        for key, seconds in increments.items():
            self._seconds[key] = self._seconds.get(key, 0.0) + seconds
        return increments

    def write(self, increments: dict[tuple[str, str], float]) -> None:
        if not increments:
            return
        with self._lock, self._db:
            self._db.executemany(
                "INSERT INTO gpu_seconds (user, day, seconds) VALUES (?, ?, ?) "
                "ON CONFLICT (user, day) DO UPDATE SET seconds = seconds + excluded.seconds",
                [(user, day, seconds) for (user, day), seconds in increments.items()],
            )

    def hours(self, user: str | None = None, since_day: str = "") -> dict[str, float]:
        """GPU-hours per user (one user, or everyone) from ``since_day`` on."""
        totals: dict[str, float] = {}
        for (name, day), seconds in list(self._seconds.items()):
            if (user is None or name == user) and day >= since_day:
                totals[name] = totals.get(name, 0.0) + seconds / 3600
        return totals

    def close(self) -> None:
        with self._lock:
            self._db.close()
